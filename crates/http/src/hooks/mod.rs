//! `/hooks/...` (surface `webhooks`): the calls providers make back to mfad. Each
//! handler checks that the request comes from the provider (a plain function of
//! `mfad-notify`), hands what it says to the engine and answers in the provider's format.

mod sms;
mod voice;

use crate::App;
use axum::Router;

/// The webhook routes of the gateways that are configured.
pub fn router(app: &App) -> Router {
    let mut router = Router::new();
    if let Some(live) = &app.voice {
        router = router.merge(voice::router(live.clone(), app.engine.clone()));
    }
    if let Some(live) = &app.sms {
        router = router.merge(sms::router(live.clone(), app.engine.clone()));
    }
    router
}

/// The form a provider posted, as name → value.
type FormFields = std::collections::BTreeMap<String, String>;

/// `X-Twilio-Signature`, when present.
fn twilio_signature(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
}

/// A TwiML answer.
fn twiml(body: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    ([(axum::http::header::CONTENT_TYPE, "text/xml")], body).into_response()
}
