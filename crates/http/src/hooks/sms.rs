//! The replies of two-way SMS: Twilio's incoming-message webhook (signed) and the
//! generic gateway's (a shared secret).

use super::{twilio_signature, FormFields};
use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Router};
use mfad_core::engine::Engine;
use mfad_notify::sms::{InboundCheck, EMPTY_TWIML, INBOUND_HTTP_PATH, INBOUND_PATH};
use mfad_notify::LiveSms;
use std::sync::Arc;
use zeroize::Zeroizing;

pub(super) fn router(sms: Arc<LiveSms>, engine: Arc<Engine>) -> Router {
    Router::new()
        .route(INBOUND_PATH, post(inbound))
        .route(INBOUND_HTTP_PATH, post(inbound_http))
        .with_state(Inbound { sms, engine })
}

#[derive(Clone)]
struct Inbound {
    sms: Arc<LiveSms>,
    engine: Arc<Engine>,
}

impl Inbound {
    /// Hands the reply in the form fields `from` and `text` (each gateway names them its
    /// own way) to the engine.
    async fn reply(&self, form: &FormFields, from: &str, text: &str) {
        let from = form.get(from).map_or("", String::as_str);
        let text = Zeroizing::new(form.get(text).cloned().unwrap_or_default());
        if let Err(err) = self.engine.sms_reply(from, &text).await {
            metrics::counter!("mfad_store_errors_total", "during" => "webhook").increment(1);
            tracing::warn!("SMS reply not recorded, the store failed: {err}");
        }
    }
}

/// Twilio's incoming-message webhook: form fields `From`, `To`, `Body` (and more).
async fn inbound(
    State(inbound): State<Inbound>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Form(form): Form<FormFields>,
) -> Response {
    let path = uri.path_and_query().map_or("", |p| p.as_str());
    let checked =
        inbound
            .sms
            .current()
            .check_twilio_inbound(path, twilio_signature(&headers), &form);
    match checked {
        InboundCheck::NotServed => StatusCode::NOT_FOUND.into_response(),
        InboundCheck::Refused => StatusCode::FORBIDDEN.into_response(),
        InboundCheck::Accepted => {
            inbound.reply(&form, "From", "Body").await;
            ([(header::CONTENT_TYPE, "text/xml")], EMPTY_TWIML).into_response()
        }
    }
}

/// A reply through the generic HTTP gateway: form fields `from` and `text`.
async fn inbound_http(
    State(inbound): State<Inbound>,
    headers: HeaderMap,
    Form(form): Form<FormFields>,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match inbound.sms.current().check_http_inbound(authorization) {
        InboundCheck::NotServed => StatusCode::NOT_FOUND.into_response(),
        InboundCheck::Refused => StatusCode::FORBIDDEN.into_response(),
        InboundCheck::Accepted => {
            inbound.reply(&form, "from", "text").await;
            StatusCode::NO_CONTENT.into_response()
        }
    }
}
