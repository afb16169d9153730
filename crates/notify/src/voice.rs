//! Verification calls through the Twilio Voice API, and the webhooks Twilio calls back.
//!
//! mfad places the call (POST /2010-04-01/Accounts/{sid}/Calls.json) with a `Url` that
//! answers with TwiML `<Gather>` and a `StatusCallback` for calls that are not answered.
//! Every webhook is checked against `X-Twilio-Signature` ([`crate::webhook`]) before it
//! can decide a login. The webhooks carry the login's transaction id and hand how the call
//! ended to the engine, which finds the transaction in the store: any node may receive
//! them.

use crate::live::{Listening, Live};
use crate::sms::TwilioConfig;
use crate::webhook::{require_twilio_signature, PublicUrl};
use crate::{one_line, NotifyError};
use async_trait::async_trait;
use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Router};
use mfad_core::delivery::{CallRequest, CallResult, VoiceCaller};
use mfad_core::engine::Engine;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

pub use crate::webhook::twilio_signature;

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
    /// Replaced by `policy.out_of_band_timeout_seconds`; when set, it is used for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    pub twilio: TwilioConfig,
}

impl Default for VoiceConfig {
    fn default() -> Self {
        Self {
            gateway: VoiceKind::None,
            listen: "127.0.0.1:8088".into(),
            public_url: String::new(),
            ring_seconds: 30,
            timeout_seconds: None,
            twilio: TwilioConfig::default(),
        }
    }
}

/// The Twilio voice gateway and its webhook state.
pub struct TwilioVoice {
    calls_endpoint: String,
    user: String,
    token: Zeroizing<String>,
    from: String,
    ring_seconds: u32,
    public_url: PublicUrl,
    client: reqwest::Client,
}

impl std::fmt::Debug for TwilioVoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioVoice").finish_non_exhaustive()
    }
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
    pub fn new(config: &VoiceConfig) -> Result<Option<Self>, NotifyError> {
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
                "voice.twilio.api_key_sid cannot be used: webhook signatures are checked with the account's auth token; leave it empty and set voice.twilio.auth_token_file (or store voice.twilio.auth_token)".into(),
            ));
        }
        crate::sms::check_url("voice.twilio.api_url", &t.api_url)?;
        let token = crate::credential(
            &t.auth_token,
            "voice.twilio.auth_token_file",
            &t.auth_token_file,
        )?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| NotifyError::Config(format!("cannot set up HTTPS: {}", one_line(e))))?;
        Ok(Some(Self {
            calls_endpoint: format!(
                "{}/2010-04-01/Accounts/{}/Calls.json",
                t.api_url.trim_end_matches('/'),
                t.account_sid
            ),
            user: t.account_sid.clone(),
            token,
            from: t.from.clone(),
            ring_seconds: config.ring_seconds.max(5),
            public_url: PublicUrl::new(&config.public_url),
            client,
        }))
    }

    fn public_url(&self) -> String {
        self.public_url.get()
    }

    /// Refuses (403, logged) a webhook request that does not come from Twilio.
    fn require_signature(
        &self,
        uri: &axum::http::Uri,
        headers: &HeaderMap,
        form: &BTreeMap<String, String>,
    ) -> Result<(), StatusCode> {
        require_twilio_signature("voice", &self.token, &self.public_url(), uri, headers, form)
    }
}

impl Listening for TwilioVoice {
    fn listening_on(&self, addr: std::net::SocketAddr) {
        self.public_url.listening_on(addr);
    }
}

/// The voice gateway in force, replaced when its settings change on a running node; the
/// webhooks check signatures with the credential in force.
pub type LiveVoice = Live<TwilioVoice>;

impl LiveVoice {
    /// The webhook routes, to be served on the `[voice] listen` address; they report to
    /// `engine`.
    pub fn router(self: Arc<Self>, engine: Arc<Engine>) -> Router {
        Router::new()
            .route("/voice/answer", post(answer))
            .route("/voice/gather", post(gather))
            .route("/voice/status", post(status))
            .with_state(Hooks {
                voice: self,
                engine,
            })
    }
}

#[derive(Clone)]
struct Hooks {
    voice: Arc<LiveVoice>,
    engine: Arc<Engine>,
}

impl Hooks {
    /// Hands how a call ended to the engine: false when no login waits for it.
    async fn report(&self, txn: &str, result: CallResult) -> bool {
        match self.engine.call_ended(txn, result).await {
            Ok(decided) => decided,
            Err(err) => {
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

async fn answer(
    State(hooks): State<Hooks>,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<Txn>,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    let voice = hooks.voice.current();
    if let Err(refused) = voice.require_signature(&uri, &headers, &form) {
        return refused.into_response();
    }
    let action = xml_escape(&format!(
        "{}/voice/gather?txn={}",
        voice.public_url(),
        q.txn
    ));
    let policy = hooks.engine.policy();
    let fraud_code = policy.fraud.report_code().unwrap_or_default();
    let report = if fraud_code.is_empty() {
        String::new()
    } else {
        // Digits apart, so that "10" is read as "1 0", not "ten".
        let keys: Vec<String> = fraud_code.chars().map(String::from).collect();
        format!(
            " If you did not start this sign-in, press {} and then pound.",
            keys.join(" ")
        )
    };
    // Twilio requests the action URL only for input (no actionOnEmptyResult): a Gather
    // that times out without a key (a voicemail, a phone left ringing in a pocket) goes
    // on to the goodbye, and the status callback ends the login as answered without a
    // key. In standard mode # must therefore be input, not the key that ends it: no
    // finishing key, and the Gather ends at the first key when the fraud code is one
    // key (the default "0": "#" approves, "0" reports at once), else after the fraud
    // code's length and "#" (a lone # then waits for the Gather's timeout).
    let (ask, keys) = if q.pin == "1" {
        (
            "Enter your PIN followed by the pound key.",
            "finishOnKey=\"#\"".to_owned(),
        )
    } else {
        let most = match fraud_code.len() {
            0 | 1 => 1,
            n => n + 1,
        };
        (
            "Press the pound key to sign in.",
            format!("finishOnKey=\"\" numDigits=\"{most}\""),
        )
    };
    let prompt = xml_escape(&format!("This is your sign-in verification. {ask}{report}"));
    twiml(&format!(
        "<Gather action=\"{action}\" method=\"POST\" {keys} timeout=\"15\"><Say>{prompt}</Say></Gather><Say>No input received. Goodbye.</Say><Hangup/>"
    ))
}

async fn gather(
    State(hooks): State<Hooks>,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<Txn>,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    if let Err(refused) = hooks
        .voice
        .current()
        .require_signature(&uri, &headers, &form)
    {
        return refused.into_response();
    }
    // A request without Digits is no key press: it decides nothing (a timeout never comes
    // here; see `answer`). Standard mode's Digits end in the # that approves ("#", or the
    // fraud code and "#"); in PIN mode Twilio leaves the finishing # out. Either way the
    // engine gets the keys before the #.
    let Some(digits) = form.get("Digits") else {
        tracing::warn!("voice gather webhook without Digits ignored");
        return twiml("<Say>No input received. Goodbye.</Say><Hangup/>");
    };
    let digits = digits.strip_suffix('#').unwrap_or(digits).to_owned();
    if hooks
        .report(&q.txn, CallResult::Digits(Zeroizing::new(digits)))
        .await
    {
        twiml("<Say>Thank you. Goodbye.</Say><Hangup/>")
    } else {
        twiml("<Say>This sign-in has ended. Goodbye.</Say><Hangup/>")
    }
}

async fn status(
    State(hooks): State<Hooks>,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<Txn>,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    if let Err(refused) = hooks
        .voice
        .current()
        .require_signature(&uri, &headers, &form)
    {
        return refused.into_response();
    }
    // CallStatus values per Twilio's call resource: queued, ringing, in-progress,
    // completed, busy, failed, no-answer, canceled. "completed" is a call that was
    // answered; one whose keys decided the login finds nothing left to decide.
    let result = match form.get("CallStatus").map(String::as_str) {
        Some("no-answer") | Some("canceled") => CallResult::NoAnswer,
        Some("busy") => CallResult::Busy,
        Some("failed") => CallResult::InvalidNumber,
        Some("completed") => CallResult::HungUp,
        _ => return StatusCode::NO_CONTENT.into_response(),
    };
    hooks.report(&q.txn, result).await;
    StatusCode::NO_CONTENT.into_response()
}

#[async_trait]
impl VoiceCaller for LiveVoice {
    async fn place(&self, call: &CallRequest, txn: &str) -> Result<(), CallResult> {
        self.current().place(call, txn).await
    }
}

#[async_trait]
impl VoiceCaller for TwilioVoice {
    async fn place(&self, call: &CallRequest, txn: &str) -> Result<(), CallResult> {
        let base = self.public_url();
        if base.is_empty() {
            return Err(CallResult::Failed(
                "the voice webhook listener is not running".into(),
            ));
        }
        let pin = if call.ask_pin { "1" } else { "0" };
        let mut form = vec![
            ("To", call.to.clone()),
            ("From", self.from.clone()),
            ("Url", format!("{base}/voice/answer?txn={txn}&pin={pin}")),
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
        match placed {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                let code = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("code").and_then(serde_json::Value::as_u64));
                // 21211, 21217, 13224: Twilio's "invalid phone number" errors.
                Err(match code {
                    Some(21211 | 21217 | 13224) => CallResult::InvalidNumber,
                    _ => CallResult::Failed(format!(
                        "Twilio answered {status} {}",
                        code.map(|c| format!("error {c}")).unwrap_or_default()
                    )),
                })
            }
            Err(e) => Err(CallResult::Failed(format!(
                "Twilio: {}",
                one_line(e.without_url())
            ))),
        }
    }
}
