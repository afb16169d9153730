//! `/healthz` (the process answers) and `/readyz` (and reaches its store), on every
//! listener, for load balancers and supervisors.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use mfad_core::store::Store;
use std::sync::Arc;

pub fn router(store: Arc<dyn Store>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(store)
}

async fn ready(State(store): State<Arc<dyn Store>>) -> (StatusCode, &'static str) {
    match store.settings_version().await {
        Ok(_) => (StatusCode::OK, "ready\n"),
        Err(err) => {
            metrics::counter!("mfad_store_errors_total", "during" => "readyz").increment(1);
            tracing::warn!("not ready, the store failed: {err}");
            (StatusCode::SERVICE_UNAVAILABLE, "store unreachable\n")
        }
    }
}
