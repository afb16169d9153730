//! Verification calls through the Twilio Voice API, and the webhooks Twilio calls back.
//!
//! mfad places the call (POST /2010-04-01/Accounts/{sid}/Calls.json) with a `Url` that
//! answers with TwiML `<Gather>` and a `StatusCallback` for calls that are not answered.
//! The HTTP front-end serves those webhooks; here are the plain parts: the signature
//! check ([`crate::webhook`]) every webhook passes before it can decide a login, the TwiML
//! it answers with, and how Twilio's fields map to a [`CallResult`]. The webhooks carry the
//! login's transaction id, so any node may receive them.

use crate::live::{Listening, Live};
use crate::sms::TwilioConfig;
use crate::webhook::{check_twilio_signature, twiml, PublicUrl};
use crate::{one_line, NotifyError};
use async_trait::async_trait;
use mfad_core::delivery::{CallRequest, CallResult, VoiceCaller};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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
    /// Retired: the webhooks are served by the HTTP listeners that serve `webhooks`, at
    /// `[http] public_url`. Set, the configuration is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
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
            listen: None,
            public_url: None,
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
            public_url: PublicUrl::default(),
            client,
        }))
    }

    fn public_url(&self) -> String {
        self.public_url.get()
    }

    /// Whether a webhook request to `path_and_query` (as received) comes from Twilio:
    /// `signature` is its `X-Twilio-Signature`. A request that does not is logged.
    pub fn verify_webhook(
        &self,
        path_and_query: &str,
        signature: Option<&str>,
        form: &BTreeMap<String, String>,
    ) -> bool {
        check_twilio_signature(
            "voice",
            &self.token,
            &self.public_url(),
            path_and_query,
            signature,
            form,
        )
    }

    /// The TwiML that answers a call: a `<Gather>` asking for the pound key (or the PIN
    /// and the pound key when `ask_pin`), mentioning `fraud_code` when there is one.
    pub fn answer_twiml(&self, txn: &str, ask_pin: bool, fraud_code: &str) -> String {
        let action = xml_escape(&format!("{}{GATHER_PATH}?txn={txn}", self.public_url()));
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
        let (ask, keys) = if ask_pin {
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
}

impl Listening for TwilioVoice {
    fn listening_at(&self, url: &str) {
        self.public_url.set(url);
    }
}

/// The voice gateway in force, replaced when its settings change on a running node; the
/// webhooks check signatures with the credential in force.
pub type LiveVoice = Live<TwilioVoice>;

/// Twilio fetches this when the call is answered (`?txn=...&pin=0|1`).
pub const ANSWER_PATH: &str = "/hooks/voice/answer";
/// The `<Gather>`'s action: the keys pressed (`?txn=...`).
pub const GATHER_PATH: &str = "/hooks/voice/gather";
/// The status callback: how the call ended (`?txn=...`).
pub const STATUS_PATH: &str = "/hooks/voice/status";

/// The answer to a gather whose keys reached the engine: `decided` when a login waited
/// for them.
pub fn gathered_twiml(decided: bool) -> String {
    if decided {
        twiml("<Say>Thank you. Goodbye.</Say><Hangup/>")
    } else {
        twiml("<Say>This sign-in has ended. Goodbye.</Say><Hangup/>")
    }
}

/// The answer to a gather without keys.
pub fn no_input_twiml() -> String {
    twiml("<Say>No input received. Goodbye.</Say><Hangup/>")
}

/// The keys of a gather's `Digits` the engine gets. A request without Digits is no key
/// press: it decides nothing (a timeout never comes here; see
/// [`TwilioVoice::answer_twiml`]). Standard mode's Digits end in the # that approves
/// ("#", or the fraud code and "#"); in PIN mode Twilio leaves the finishing # out.
/// Either way the engine gets the keys before the #.
pub fn gathered_keys(form: &BTreeMap<String, String>) -> Option<CallResult> {
    let digits = form.get("Digits")?;
    let digits = digits.strip_suffix('#').unwrap_or(digits).to_owned();
    Some(CallResult::Digits(Zeroizing::new(digits)))
}

/// How a call ended, from the status callback's `CallStatus` (Twilio's call resource:
/// queued, ringing, in-progress, completed, busy, failed, no-answer, canceled); `None`
/// for a call still going. "completed" is a call that was answered; one whose keys
/// decided the login finds nothing left to decide.
pub fn call_ended(form: &BTreeMap<String, String>) -> Option<CallResult> {
    match form.get("CallStatus").map(String::as_str) {
        Some("no-answer") | Some("canceled") => Some(CallResult::NoAnswer),
        Some("busy") => Some(CallResult::Busy),
        Some("failed") => Some(CallResult::InvalidNumber),
        Some("completed") => Some(CallResult::HungUp),
        _ => None,
    }
}

#[async_trait]
impl VoiceCaller for LiveVoice {
    async fn place(&self, call: &CallRequest, txn: &str) -> Result<(), CallResult> {
        let placed = self.current().place(call, txn).await;
        // A number the provider calls invalid is the user's, not the gateway's, error.
        let result = match &placed {
            Ok(()) => "sent",
            Err(CallResult::InvalidNumber) => "invalid_number",
            Err(_) => "error",
        };
        metrics::counter!("mfad_gateway_requests_total", "gateway" => "voice", "result" => result)
            .increment(1);
        placed
    }
}

#[async_trait]
impl VoiceCaller for TwilioVoice {
    async fn place(&self, call: &CallRequest, txn: &str) -> Result<(), CallResult> {
        let base = self.public_url();
        if base.is_empty() {
            return Err(CallResult::Failed(
                "no HTTP listener serves the voice webhooks and [http] public_url is empty".into(),
            ));
        }
        let pin = if call.ask_pin { "1" } else { "0" };
        let mut form = vec![
            ("To", call.to.clone()),
            ("From", self.from.clone()),
            ("Url", format!("{base}{ANSWER_PATH}?txn={txn}&pin={pin}")),
            ("StatusCallback", format!("{base}{STATUS_PATH}?txn={txn}")),
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
