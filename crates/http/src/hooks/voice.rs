//! Twilio's voice webhooks: the call was answered (TwiML `<Gather>`), keys were pressed,
//! the call ended. Each is signed; the transaction id in the URL names the login.

use super::{twilio_signature, twiml, FormFields};
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Router};
use mfad_core::delivery::CallResult;
use mfad_core::engine::{Engine, TxnId};
use mfad_notify::voice::{self, LiveVoice};
use serde::Deserialize;
use std::sync::Arc;

pub(super) fn router(voice: Arc<LiveVoice>, engine: Arc<Engine>) -> Router {
    Router::new()
        .route(voice::ANSWER_PATH, post(answer))
        .route(voice::GATHER_PATH, post(gather))
        .route(voice::STATUS_PATH, post(status))
        .with_state(Hooks { voice, engine })
}

#[derive(Clone)]
struct Hooks {
    voice: Arc<LiveVoice>,
    engine: Arc<Engine>,
}

impl Hooks {
    /// Whether the request is signed by Twilio with the credential in force.
    fn verified(&self, uri: &axum::http::Uri, headers: &HeaderMap, form: &FormFields) -> bool {
        let path = uri.path_and_query().map_or("", |p| p.as_str());
        self.voice
            .current()
            .verify_webhook(path, twilio_signature(headers), form)
    }

    /// Hands how a call ended to the engine: false when no login waits for it.
    async fn report(&self, txn: &str, result: CallResult) -> bool {
        match self.engine.call_ended(&TxnId::from(txn), result).await {
            Ok(decided) => decided,
            Err(err) => {
                metrics::counter!("mfad_store_errors_total", "during" => "webhook").increment(1);
                tracing::warn!("call outcome not recorded, the store failed: {err}");
                false
            }
        }
    }
}

#[derive(Deserialize)]
struct Txn {
    txn: String,
    /// "1": ask for the PIN (part of the signed URL, so it cannot be changed).
    #[serde(default)]
    pin: String,
}

/// A voice webhook whose Twilio signature checked out: the login it names and the
/// fields Twilio posted. Unsigned or forged requests are refused with 403.
struct Signed {
    txn: Txn,
    form: FormFields,
}

impl FromRequest<Hooks> for Signed {
    type Rejection = Response;

    async fn from_request(req: Request, hooks: &Hooks) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let OriginalUri(uri) = OriginalUri::from_request_parts(&mut parts, hooks)
            .await
            .map_err(IntoResponse::into_response)?;
        let Query(txn) = Query::<Txn>::from_request_parts(&mut parts, hooks)
            .await
            .map_err(IntoResponse::into_response)?;
        let headers = parts.headers.clone();
        let Form(form) = Form::<FormFields>::from_request(Request::from_parts(parts, body), hooks)
            .await
            .map_err(IntoResponse::into_response)?;
        if !hooks.verified(&uri, &headers, &form) {
            return Err(StatusCode::FORBIDDEN.into_response());
        }
        Ok(Signed { txn, form })
    }
}

async fn answer(State(hooks): State<Hooks>, Signed { txn: q, .. }: Signed) -> Response {
    let policy = hooks.engine.policy();
    let fraud_code = policy.fraud.report_code().unwrap_or_default();
    twiml(
        hooks
            .voice
            .current()
            .answer_twiml(&q.txn, q.pin == "1", fraud_code),
    )
}

async fn gather(State(hooks): State<Hooks>, Signed { txn: q, form }: Signed) -> Response {
    let Some(keys) = voice::gathered_keys(&form) else {
        tracing::warn!("voice gather webhook without Digits ignored");
        return twiml(voice::no_input_twiml());
    };
    twiml(voice::gathered_twiml(hooks.report(&q.txn, keys).await))
}

async fn status(State(hooks): State<Hooks>, Signed { txn: q, form }: Signed) -> Response {
    if let Some(result) = voice::call_ended(&form) {
        hooks.report(&q.txn, result).await;
    }
    StatusCode::NO_CONTENT.into_response()
}
