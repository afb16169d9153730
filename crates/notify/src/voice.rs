//! Verification calls through the Twilio Voice API, and the webhooks Twilio calls back.
//!
//! mfad places the call (POST /2010-04-01/Accounts/{sid}/Calls.json) with a `Url` that
//! answers with TwiML `<Gather>` and a `StatusCallback` for calls that are not answered.
//! Every webhook is checked against `X-Twilio-Signature` (HMAC-SHA1 with the auth token
//! over the URL and the sorted POST parameters, as Twilio's webhook security guide
//! describes) before it can decide a login. Each node receives the callbacks of the calls
//! it placed, so waiting logins live in this process.

use crate::sms::TwilioConfig;
use crate::{one_line, NotifyError};
use async_trait::async_trait;
use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Router};
use hmac::{Hmac, Mac};
use mfad_core::delivery::{CallRequest, CallResult, VoiceCaller};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;
use zeroize::Zeroizing;

/// Which provider places calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VoiceKind {
    #[default]
    None,
    Twilio,
}

/// `[voice]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VoiceConfig {
    pub gateway: VoiceKind,
    /// Where the webhook listener binds (plain HTTP: put a TLS proxy in front of it).
    pub listen: String,
    /// The URL Twilio reaches the listener at; empty: `http://<listen address>`.
    pub public_url: String,
    /// How long the phone rings before the call counts as unanswered.
    pub ring_seconds: u32,
    /// How long a login waits for the call to end.
    pub timeout_seconds: u64,
    pub twilio: TwilioConfig,
}

impl Default for VoiceConfig {
    fn default() -> Self {
        Self {
            gateway: VoiceKind::None,
            listen: "127.0.0.1:8088".into(),
            public_url: String::new(),
            ring_seconds: 30,
            timeout_seconds: 45,
            twilio: TwilioConfig::default(),
        }
    }
}

/// A call waiting for its outcome.
struct Waiting {
    reply: oneshot::Sender<CallResult>,
    ask_pin: bool,
    answered: bool,
}

/// The Twilio voice gateway and its webhook state.
pub struct TwilioVoice {
    calls_endpoint: String,
    user: String,
    token: Zeroizing<String>,
    from: String,
    ring_seconds: u32,
    timeout: Duration,
    public_url: RwLock<String>,
    waiting: Mutex<HashMap<String, Waiting>>,
    client: reqwest::Client,
}

impl std::fmt::Debug for TwilioVoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioVoice").finish_non_exhaustive()
    }
}

type HmacSha1 = Hmac<sha1::Sha1>;

/// Twilio's request signature: base64(HMAC-SHA1(token, url + sorted name+value pairs)).
pub fn twilio_signature(token: &str, url: &str, params: &BTreeMap<String, String>) -> String {
    let mut data = url.to_owned();
    for (name, value) in params {
        data.push_str(name);
        data.push_str(value);
    }
    let Ok(mut mac) = HmacSha1::new_from_slice(token.as_bytes()) else {
        return String::new();
    };
    mac.update(data.as_bytes());
    data_encoding::BASE64.encode(&mac.finalize().into_bytes())
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn twiml(body: &str) -> Response {
    (
        StatusCode::OK,
        [("content-type", "text/xml")],
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{body}</Response>"),
    )
        .into_response()
}

impl TwilioVoice {
    /// `None` when `gateway = "none"`.
    pub fn new(config: &VoiceConfig) -> Result<Option<Arc<Self>>, NotifyError> {
        if config.gateway == VoiceKind::None {
            return Ok(None);
        }
        let t = &config.twilio;
        if t.account_sid.is_empty() || t.from.is_empty() {
            return Err(NotifyError::Config(
                "voice.twilio.account_sid and voice.twilio.from must be set for Twilio calls"
                    .into(),
            ));
        }
        if !t.api_key_sid.is_empty() {
            // Twilio signs webhooks with the account's auth token, never with an API key.
            return Err(NotifyError::Config(
                "voice.twilio.api_key_sid cannot be used: webhook signatures are checked with the account's auth token; leave it empty and set voice.twilio.auth_token_file".into(),
            ));
        }
        crate::sms::check_url("voice.twilio.api_url", &t.api_url)?;
        let token = crate::sms::read_secret("voice.twilio.auth_token_file", &t.auth_token_file)?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| NotifyError::Config(format!("cannot set up HTTPS: {}", one_line(e))))?;
        Ok(Some(Arc::new(Self {
            calls_endpoint: format!(
                "{}/2010-04-01/Accounts/{}/Calls.json",
                t.api_url.trim_end_matches('/'),
                t.account_sid
            ),
            user: t.account_sid.clone(),
            token,
            from: t.from.clone(),
            ring_seconds: config.ring_seconds.max(5),
            timeout: Duration::from_secs(config.timeout_seconds.max(1)),
            public_url: RwLock::new(config.public_url.trim_end_matches('/').to_owned()),
            waiting: Mutex::new(HashMap::new()),
            client,
        })))
    }

    /// Sets the public URL once the listener is bound, unless one was configured.
    pub fn listening_on(&self, addr: std::net::SocketAddr) {
        let mut url = self
            .public_url
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if url.is_empty() {
            *url = format!("http://{addr}");
        }
    }

    fn public_url(&self) -> String {
        self.public_url
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiting>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn finish(&self, txn: &str, result: CallResult) {
        if let Some(w) = self.waiting().remove(txn) {
            let _ = w.reply.send(result);
        }
    }

    /// The webhook routes, to be served on the `[voice] listen` address.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/voice/answer", post(answer))
            .route("/voice/gather", post(gather))
            .route("/voice/status", post(status))
            .with_state(self)
    }

    /// Whether a webhook request really comes from Twilio.
    fn verified(
        &self,
        uri: &axum::http::Uri,
        headers: &HeaderMap,
        form: &BTreeMap<String, String>,
    ) -> bool {
        let Some(given) = headers
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let path = uri.path_and_query().map_or("", |p| p.as_str());
        let url = format!("{}{path}", self.public_url());
        let expected = twilio_signature(&self.token, &url, form);
        bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
    }
}

#[derive(Deserialize)]
struct Txn {
    txn: String,
}

async fn answer(
    State(voice): State<Arc<TwilioVoice>>,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<Txn>,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    if !voice.verified(&uri, &headers, &form) {
        tracing::warn!("voice webhook with a missing or wrong X-Twilio-Signature ignored");
        return StatusCode::FORBIDDEN.into_response();
    }
    let ask_pin = {
        let mut waiting = voice.waiting();
        match waiting.get_mut(&q.txn) {
            Some(w) => {
                w.answered = true;
                w.ask_pin
            }
            None => return twiml("<Say>This sign-in has ended. Goodbye.</Say><Hangup/>"),
        }
    };
    let action = xml_escape(&format!(
        "{}/voice/gather?txn={}",
        voice.public_url(),
        q.txn
    ));
    let prompt = if ask_pin {
        "This is your sign-in verification. Enter your PIN followed by the pound key."
    } else {
        "This is your sign-in verification. Press the pound key to sign in. If you did not start this sign-in, press zero and then pound."
    };
    // actionOnEmptyResult: # alone (no digits) must still reach the action URL.
    twiml(&format!(
        "<Gather action=\"{action}\" method=\"POST\" finishOnKey=\"#\" timeout=\"15\" actionOnEmptyResult=\"true\"><Say>{prompt}</Say></Gather><Say>No input received. Goodbye.</Say><Hangup/>"
    ))
}

async fn gather(
    State(voice): State<Arc<TwilioVoice>>,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<Txn>,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    if !voice.verified(&uri, &headers, &form) {
        tracing::warn!("voice webhook with a missing or wrong X-Twilio-Signature ignored");
        return StatusCode::FORBIDDEN.into_response();
    }
    let digits = form.get("Digits").cloned().unwrap_or_default();
    voice.finish(&q.txn, CallResult::Digits(Zeroizing::new(digits)));
    twiml("<Say>Thank you. Goodbye.</Say><Hangup/>")
}

async fn status(
    State(voice): State<Arc<TwilioVoice>>,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<Txn>,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    if !voice.verified(&uri, &headers, &form) {
        tracing::warn!("voice webhook with a missing or wrong X-Twilio-Signature ignored");
        return StatusCode::FORBIDDEN.into_response();
    }
    let answered = voice.waiting().get(&q.txn).map(|w| w.answered);
    let Some(answered) = answered else {
        return StatusCode::NO_CONTENT.into_response();
    };
    // CallStatus values per Twilio's call resource: queued, ringing, in-progress,
    // completed, busy, failed, no-answer, canceled.
    let result = match form.get("CallStatus").map(String::as_str) {
        Some("no-answer") => CallResult::NoAnswer,
        Some("busy") => CallResult::Busy,
        Some("failed") => CallResult::InvalidNumber,
        Some("completed") | Some("canceled") if answered => CallResult::HungUp,
        Some("completed") | Some("canceled") => CallResult::NoAnswer,
        _ => return StatusCode::NO_CONTENT.into_response(),
    };
    voice.finish(&q.txn, result);
    StatusCode::NO_CONTENT.into_response()
}

fn new_txn() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::getrandom(&mut bytes).is_err() {
        return String::new();
    }
    data_encoding::HEXLOWER.encode(&bytes)
}

#[async_trait]
impl VoiceCaller for TwilioVoice {
    async fn call(&self, call: &CallRequest) -> CallResult {
        let txn = new_txn();
        if txn.is_empty() {
            return CallResult::Failed("no randomness for a call id".into());
        }
        let base = self.public_url();
        if base.is_empty() {
            return CallResult::Failed("the voice webhook listener is not running".into());
        }
        let (reply, outcome) = oneshot::channel();
        self.waiting().insert(
            txn.clone(),
            Waiting {
                reply,
                ask_pin: call.ask_pin,
                answered: false,
            },
        );
        // Forgets the call however this future ends, cancelled requests included, so
        // late webhooks find nothing to decide.
        let _forget = Forget {
            voice: self,
            txn: &txn,
        };
        let mut form = vec![
            ("To", call.to.clone()),
            ("From", self.from.clone()),
            ("Url", format!("{base}/voice/answer?txn={txn}")),
            ("StatusCallback", format!("{base}/voice/status?txn={txn}")),
            ("Timeout", self.ring_seconds.to_string()),
        ];
        if let Some(ext) = &call.extension {
            // Each "w" waits half a second after the answer before the extension is dialled.
            form.push(("SendDigits", format!("wwww{ext}")));
        }
        let placed = self
            .client
            .post(&self.calls_endpoint)
            .basic_auth(&self.user, Some(self.token.as_str()))
            .form(&form)
            .send()
            .await;
        let failed = match placed {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                let code = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("code").and_then(serde_json::Value::as_u64));
                // 21211, 21217, 13224: Twilio's "invalid phone number" errors.
                Some(match code {
                    Some(21211 | 21217 | 13224) => CallResult::InvalidNumber,
                    _ => CallResult::Failed(format!(
                        "Twilio answered {status} {}",
                        code.map(|c| format!("error {c}")).unwrap_or_default()
                    )),
                })
            }
            Err(e) => Some(CallResult::Failed(format!(
                "Twilio: {}",
                one_line(e.without_url())
            ))),
        };
        if let Some(result) = failed {
            return result;
        }
        match tokio::time::timeout(self.timeout, outcome).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) | Err(_) => CallResult::TimedOut,
        }
    }
}

struct Forget<'a> {
    voice: &'a TwilioVoice,
    txn: &'a str,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.voice.waiting().remove(self.txn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_twilios_published_example() {
        // The worked example of Twilio's webhook security guide (docs/usage/security).
        let params: BTreeMap<String, String> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(
            twilio_signature(
                "12345",
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                &params
            ),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }
}
