//! SMS gateways: the Twilio Messages API and a generic HTTP gateway whose request and
//! success condition the operator describes, and the checks of the inbound webhooks that
//! bring the replies of two-way SMS (Twilio's incoming-message webhook, signed with
//! `X-Twilio-Signature`; the generic gateway's, with a shared secret). The HTTP
//! front-end serves those webhooks.

use crate::live::{Listening, Live};
use crate::webhook::{check_twilio_signature, PublicUrl};
use crate::{one_line, NotifyError, SecretText};
use async_trait::async_trait;
use mfad_core::delivery::{DeliveryError, SmsSender};
use minijinja::{Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::Zeroizing;

/// Which gateway sends SMS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayKind {
    /// No SMS: users with the SMS method are rejected.
    #[default]
    None,
    Twilio,
    Http,
}

/// `[sms]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    pub gateway: GatewayKind,
    /// The text sent; `{{ code }}` is the one-time code.
    pub message: String,
    /// Two-way mode: the text asking for a reply with `{{ code }}`, and the one for PIN
    /// users, who reply with their PIN followed by the code. `{{ client }}` names what
    /// the reply approves (the RADIUS client the login came through).
    pub two_way_message: String,
    pub two_way_pin_message: String,
    /// Retired: the inbound webhooks are served by the HTTP listeners that serve
    /// `webhooks`, at `[http] public_url`. Set, the configuration is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Limit for one request to the gateway.
    pub timeout_seconds: u64,
    pub twilio: TwilioConfig,
    pub http: HttpSmsConfig,
}

impl Default for SmsConfig {
    fn default() -> Self {
        Self {
            gateway: GatewayKind::None,
            message: "Your sign-in code is {{ code }}".into(),
            two_way_message: "To sign in to {{ client }}, reply to this message with {{ code }}"
                .into(),
            two_way_pin_message:
                "To sign in to {{ client }}, reply to this message with your PIN followed by {{ code }}"
                    .into(),
            listen: None,
            public_url: None,
            timeout_seconds: 10,
            twilio: TwilioConfig::default(),
            http: HttpSmsConfig::default(),
        }
    }
}

/// `[sms.twilio]`: the Messages API (POST /2010-04-01/Accounts/{AccountSid}/Messages.json).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TwilioConfig {
    pub api_url: String,
    pub account_sid: String,
    /// File holding the auth token (or an API key secret with `api_key_sid`).
    pub auth_token_file: PathBuf,
    /// The auth token as a stored secret setting; when set it is used instead of the file.
    #[serde(skip_serializing_if = "SecretText::is_empty")]
    pub auth_token: SecretText,
    /// Sign in with an API key instead of the account SID (recommended by Twilio).
    pub api_key_sid: String,
    /// The sending number (E.164) or alphanumeric sender id.
    pub from: String,
}

impl Default for TwilioConfig {
    fn default() -> Self {
        Self {
            api_url: "https://api.twilio.com".into(),
            account_sid: String::new(),
            auth_token_file: PathBuf::new(),
            auth_token: SecretText::default(),
            api_key_sid: String::new(),
            from: String::new(),
        }
    }
}

/// `[sms.http]`: any gateway reachable with one HTTP request. `url`, the header values and
/// `body` are templates with `to`, `message` and `secret` (from `secret_file`); the
/// filters `urlencode` and `tojson` escape values for forms and JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSmsConfig {
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub content_type: String,
    pub body: String,
    pub secret_file: PathBuf,
    /// `secret` as a stored secret setting; when set it is used instead of the file.
    #[serde(skip_serializing_if = "SecretText::is_empty")]
    pub secret: SecretText,
    /// Statuses that mean success; empty: any 2xx.
    pub success_status: Vec<u16>,
    /// Text the response body must contain; empty: not checked.
    pub success_contains: String,
    /// Two-way mode: the file holding the shared secret the gateway sends as
    /// `Authorization: Bearer <secret>` when it posts a reply (form fields `from` and
    /// `text`) to `/sms/inbound/http`; empty: replies are not received.
    pub inbound_secret_file: PathBuf,
}

impl Default for HttpSmsConfig {
    fn default() -> Self {
        Self {
            method: "POST".into(),
            url: String::new(),
            headers: BTreeMap::new(),
            content_type: "application/x-www-form-urlencoded".into(),
            body: "to={{ to|urlencode }}&text={{ message|urlencode }}".into(),
            secret_file: PathBuf::new(),
            secret: SecretText::default(),
            success_status: Vec::new(),
            success_contains: String::new(),
            inbound_secret_file: PathBuf::new(),
        }
    }
}

enum Backend {
    Twilio {
        endpoint: String,
        user: String,
        token: Zeroizing<String>,
        from: String,
        /// Whether `token` is the account's auth token, with which Twilio signs its
        /// webhooks; an API key secret cannot check them, so no reply is taken then.
        checks_webhooks: bool,
    },
    Http {
        method: reqwest::Method,
        config: Box<HttpSmsConfig>,
        secret: Zeroizing<String>,
        /// Empty: no inbound webhook.
        inbound_secret: Zeroizing<String>,
    },
}

/// A configured SMS gateway.
pub struct SmsGateway {
    backend: Backend,
    templates: Environment<'static>,
    client: reqwest::Client,
    public_url: PublicUrl,
}

impl std::fmt::Debug for SmsGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.backend {
            Backend::Twilio { .. } => "twilio",
            Backend::Http { .. } => "http",
        };
        f.debug_struct("SmsGateway")
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

pub(crate) fn read_secret(key: &str, path: &Path) -> Result<Zeroizing<String>, NotifyError> {
    if path.as_os_str().is_empty() {
        return Err(NotifyError::Config(format!(
            "{key} is not set; name a file holding the credential"
        )));
    }
    let text =
        Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            NotifyError::Config(format!("cannot read {key} {}: {e}", path.display()))
        })?);
    let secret = text.trim_end_matches(['\r', '\n']);
    // An empty key would make the HMAC of a webhook signature anyone's to compute.
    if secret.trim().is_empty() {
        return Err(NotifyError::Config(format!(
            "{key} {} is empty; put the credential in it",
            path.display()
        )));
    }
    Ok(Zeroizing::new(secret.to_owned()))
}

/// HTTPS, or plain HTTP to a loopback address (a local relay or a test double).
pub(crate) fn check_url(key: &str, url: &str) -> Result<(), NotifyError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| NotifyError::Config(format!("{key} '{url}' is not a URL: {e}")))?;
    let loopback = parsed.host_str().is_some_and(crate::smtp::is_loopback);
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(NotifyError::Config(format!(
            "{key} '{url}' must use https (plain http only to a loopback address)"
        ))),
    }
}

impl SmsGateway {
    /// The configured gateway, `None` when `gateway = "none"`. Reads credential files
    /// and compiles the templates, so mistakes show at start-up.
    pub fn new(config: &SmsConfig) -> Result<Option<Self>, NotifyError> {
        let backend = match config.gateway {
            GatewayKind::None => return Ok(None),
            GatewayKind::Twilio => {
                let t = &config.twilio;
                if t.account_sid.is_empty() || t.from.is_empty() {
                    return Err(NotifyError::Config(
                        "sms.twilio.account_sid and sms.twilio.from must be set for the Twilio gateway".into(),
                    ));
                }
                check_url("sms.twilio.api_url", &t.api_url)?;
                let token = crate::credential(
                    &t.auth_token,
                    "sms.twilio.auth_token_file",
                    &t.auth_token_file,
                )?;
                let user = if t.api_key_sid.is_empty() {
                    t.account_sid.clone()
                } else {
                    t.api_key_sid.clone()
                };
                Backend::Twilio {
                    endpoint: format!(
                        "{}/2010-04-01/Accounts/{}/Messages.json",
                        t.api_url.trim_end_matches('/'),
                        t.account_sid
                    ),
                    user,
                    token,
                    from: t.from.clone(),
                    checks_webhooks: t.api_key_sid.is_empty(),
                }
            }
            GatewayKind::Http => {
                let h = &config.http;
                if h.url.is_empty() {
                    return Err(NotifyError::Config(
                        "sms.http.url must be set for the HTTP gateway".into(),
                    ));
                }
                let method = reqwest::Method::from_bytes(h.method.to_ascii_uppercase().as_bytes())
                    .map_err(|_| {
                        NotifyError::Config(format!(
                            "sms.http.method '{}' is not an HTTP method; use POST or GET",
                            h.method
                        ))
                    })?;
                let secret = if h.secret.is_empty() && h.secret_file.as_os_str().is_empty() {
                    Zeroizing::new(String::new())
                } else {
                    crate::credential(&h.secret, "sms.http.secret_file", &h.secret_file)?
                };
                let inbound_secret = if h.inbound_secret_file.as_os_str().is_empty() {
                    Zeroizing::new(String::new())
                } else {
                    let secret =
                        read_secret("sms.http.inbound_secret_file", &h.inbound_secret_file)?;
                    if secret.len() < 16 {
                        return Err(NotifyError::Config(
                            "sms.http.inbound_secret_file holds fewer than 16 characters; use a long random secret".into(),
                        ));
                    }
                    secret
                };
                Backend::Http {
                    method,
                    config: Box::new(h.clone()),
                    secret,
                    inbound_secret,
                }
            }
        };
        let mut templates = Environment::new();
        templates.set_undefined_behavior(UndefinedBehavior::Strict);
        templates.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        let mut add = |name: String, source: String| {
            templates
                .add_template_owned(name.clone(), source)
                .map_err(|e| NotifyError::Template {
                    line: e.line().unwrap_or(0),
                    message: one_line(e.kind()),
                    name,
                })
        };
        add("sms.message".into(), config.message.clone())?;
        add("sms.two_way_message".into(), config.two_way_message.clone())?;
        add(
            "sms.two_way_pin_message".into(),
            config.two_way_pin_message.clone(),
        )?;
        if let Backend::Http { config: h, .. } = &backend {
            add("sms.http.url".into(), h.url.clone())?;
            add("sms.http.body".into(), h.body.clone())?;
            for (name, value) in &h.headers {
                add(format!("sms.http.headers.{name}"), value.clone())?;
            }
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_seconds.max(1)))
            .build()
            .map_err(|e| NotifyError::Config(format!("cannot set up HTTPS: {}", one_line(e))))?;
        let gateway = Self {
            backend,
            templates,
            client,
            public_url: PublicUrl::default(),
        };
        // Render once with sample values: a misspelt placeholder fails now.
        gateway.render("sms.message", "+15550100", "123456", "")?;
        gateway.render_two_way("sms.two_way_message", "+15550100", "123456", "vpn")?;
        gateway.render_two_way("sms.two_way_pin_message", "+15550100", "123456", "vpn")?;
        if let Backend::Http { config: h, .. } = &gateway.backend {
            check_url(
                "sms.http.url",
                &gateway.render("sms.http.url", "+15550100", "x", "")?,
            )?;
            gateway.render("sms.http.body", "+15550100", "x", "")?;
            for name in h.headers.keys() {
                gateway.render(&format!("sms.http.headers.{name}"), "+15550100", "x", "")?;
            }
        }
        Ok(Some(gateway))
    }

    fn render(
        &self,
        name: &str,
        to: &str,
        message: &str,
        secret: &str,
    ) -> Result<String, NotifyError> {
        self.render_in(
            name,
            minijinja::context! { to, message, code => message, secret },
        )
    }

    /// Renders a two-way text: `code` to reply with, for a login through `client`.
    fn render_two_way(
        &self,
        name: &str,
        to: &str,
        code: &str,
        client: &str,
    ) -> Result<String, NotifyError> {
        self.render_in(
            name,
            minijinja::context! { to, message => code, code, client, secret => "" },
        )
    }

    fn render_in(&self, name: &str, context: minijinja::Value) -> Result<String, NotifyError> {
        let template = self
            .templates
            .get_template(name)
            .map_err(|e| NotifyError::Template {
                name: name.into(),
                line: 0,
                message: one_line(e),
            })?;
        template.render(context).map_err(|e| NotifyError::Template {
            name: name.into(),
            line: e.line().unwrap_or(0),
            message: one_line(e.kind()),
        })
    }

    /// Sends `text` to `to` (E.164).
    pub async fn send(&self, to: &str, text: &str) -> Result<(), NotifyError> {
        match &self.backend {
            Backend::Twilio {
                endpoint,
                user,
                token,
                from,
                ..
            } => {
                let response = self
                    .client
                    .post(endpoint)
                    .basic_auth(user, Some(token.as_str()))
                    .form(&[("To", to), ("From", from.as_str()), ("Body", text)])
                    .send()
                    .await
                    .map_err(|e| {
                        NotifyError::Sms(format!("Twilio: {}", one_line(e.without_url())))
                    })?;
                let status = response.status();
                if status.is_success() {
                    return Ok(());
                }
                // Twilio's error body: {"code": 21211, "message": "...", "more_info": ...}.
                let body = response.text().await.unwrap_or_default();
                let detail = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .map(|v| {
                        let code = v.get("code").map(ToString::to_string).unwrap_or_default();
                        let message = v
                            .get("message")
                            .and_then(|m| m.as_str())
                            .unwrap_or_default();
                        format!("error {code} {message}")
                    })
                    .unwrap_or_default();
                Err(NotifyError::Sms(
                    format!("Twilio answered {status} {detail}")
                        .trim()
                        .to_owned(),
                ))
            }
            Backend::Http {
                method,
                config,
                secret,
                ..
            } => {
                let url = self.render("sms.http.url", to, text, secret)?;
                let body = self.render("sms.http.body", to, text, secret)?;
                let mut request = self
                    .client
                    .request(method.clone(), &url)
                    .header(reqwest::header::CONTENT_TYPE, &config.content_type);
                for name in config.headers.keys() {
                    let value =
                        self.render(&format!("sms.http.headers.{name}"), to, text, secret)?;
                    request = request.header(name.as_str(), value);
                }
                if *method != reqwest::Method::GET {
                    request = request.body(body);
                }
                let response = request.send().await.map_err(|e| {
                    NotifyError::Sms(format!("HTTP gateway: {}", one_line(e.without_url())))
                })?;
                let status = response.status();
                let ok_status = if config.success_status.is_empty() {
                    status.is_success()
                } else {
                    config.success_status.contains(&status.as_u16())
                };
                let text = response.text().await.unwrap_or_default();
                if !ok_status {
                    return Err(NotifyError::Sms(format!("HTTP gateway answered {status}")));
                }
                if !config.success_contains.is_empty() && !text.contains(&config.success_contains) {
                    return Err(NotifyError::Sms(format!(
                        "HTTP gateway answered {status} without '{}' in the response",
                        config.success_contains
                    )));
                }
                Ok(())
            }
        }
    }
}

/// The SMS gateway in force, replaced when its settings change on a running node; the
/// inbound webhooks check replies against it.
pub type LiveSms = Live<SmsGateway>;

impl Listening for SmsGateway {
    fn listening_at(&self, url: &str) {
        self.public_url.set(url);
    }
}

/// Where Twilio's incoming-message webhook is served (a form POST with `From`, `To`,
/// `Body`; answered with [`EMPTY_TWIML`]).
pub const INBOUND_PATH: &str = "/hooks/sms/inbound";
/// Where the generic gateway posts replies: form fields `from` and `text`, with
/// `Authorization: Bearer <sms.http.inbound_secret_file>`.
pub const INBOUND_HTTP_PATH: &str = "/hooks/sms/inbound/http";
/// The answer to Twilio's incoming-message webhook: mfad texts nothing back.
pub const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";

/// What to do with an inbound webhook request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InboundCheck {
    /// This gateway takes no replies this way (404).
    NotServed,
    /// Not from the gateway (403; logged).
    Refused,
    /// From the gateway: hand the reply to the engine.
    Accepted,
}

impl SmsGateway {
    /// Checks Twilio's incoming-message webhook to `path_and_query` (as received) with
    /// `signature` (`X-Twilio-Signature`) and the posted `form`.
    pub fn check_twilio_inbound(
        &self,
        path_and_query: &str,
        signature: Option<&str>,
        form: &BTreeMap<String, String>,
    ) -> InboundCheck {
        let Backend::Twilio {
            token,
            checks_webhooks: true,
            ..
        } = &self.backend
        else {
            return InboundCheck::NotServed;
        };
        let url = self.public_url.get();
        if check_twilio_signature("inbound SMS", token, &url, path_and_query, signature, form) {
            InboundCheck::Accepted
        } else {
            InboundCheck::Refused
        }
    }

    /// Checks the generic gateway's reply: `authorization` is the header's value,
    /// `Bearer <secret>`.
    pub fn check_http_inbound(&self, authorization: Option<&str>) -> InboundCheck {
        let Backend::Http { inbound_secret, .. } = &self.backend else {
            return InboundCheck::NotServed;
        };
        if inbound_secret.is_empty() {
            return InboundCheck::NotServed;
        }
        let given = authorization
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if bool::from(subtle::ConstantTimeEq::ct_eq(
            given.as_bytes(),
            inbound_secret.as_bytes(),
        )) {
            InboundCheck::Accepted
        } else {
            tracing::warn!("inbound SMS webhook without the shared secret ignored");
            InboundCheck::Refused
        }
    }
}

impl LiveSms {
    /// Whether replies can be received: Twilio signs its inbound webhooks with the
    /// account's auth token (so not when mfad holds an API key instead); an HTTP gateway
    /// sends the configured shared secret.
    pub fn receives_replies(&self) -> bool {
        match &self.current().backend {
            Backend::Twilio {
                checks_webhooks, ..
            } => *checks_webhooks,
            Backend::Http { inbound_secret, .. } => !inbound_secret.is_empty(),
        }
    }
}

#[async_trait]
impl SmsSender for LiveSms {
    async fn send_code(&self, to: &str, code: &str) -> Result<(), DeliveryError> {
        counted(self.current().send_code(to, code).await)
    }

    async fn send_reply_request(
        &self,
        to: &str,
        code: &str,
        with_pin: bool,
        client: &str,
    ) -> Result<(), DeliveryError> {
        counted(
            self.current()
                .send_reply_request(to, code, with_pin, client)
                .await,
        )
    }
}

/// Counts a message the gateway refused or never answered, for `/metrics`.
fn counted(sent: Result<(), DeliveryError>) -> Result<(), DeliveryError> {
    let result = if sent.is_ok() { "sent" } else { "error" };
    metrics::counter!("mfad_gateway_requests_total", "gateway" => "sms", "result" => result)
        .increment(1);
    sent
}

#[async_trait]
impl SmsSender for SmsGateway {
    async fn send_reply_request(
        &self,
        to: &str,
        code: &str,
        with_pin: bool,
        client: &str,
    ) -> Result<(), DeliveryError> {
        let template = if with_pin {
            "sms.two_way_pin_message"
        } else {
            "sms.two_way_message"
        };
        let text = self
            .render_two_way(template, to, code, client)
            .map_err(|e| DeliveryError(e.to_string()))?;
        self.send(to, &text)
            .await
            .map_err(|e| DeliveryError(e.to_string()))
    }

    async fn send_code(&self, to: &str, code: &str) -> Result<(), DeliveryError> {
        let text = self
            .render("sms.message", to, code, "")
            .map_err(|e| DeliveryError(e.to_string()))?;
        self.send(to, &text)
            .await
            .map_err(|e| DeliveryError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_credential_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        for empty in ["", "\n", "  \r\n"] {
            std::fs::write(&path, empty).unwrap();
            let err = read_secret("sms.twilio.auth_token_file", &path)
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains("is empty"), "{err}");
        }
        std::fs::write(&path, "token\n").unwrap();
        let read = read_secret("sms.twilio.auth_token_file", &path).unwrap();
        assert_eq!(read.as_str(), "token");
    }

    #[test]
    fn plain_http_is_refused_to_a_remote_gateway() {
        let config = SmsConfig {
            gateway: GatewayKind::Http,
            http: HttpSmsConfig {
                url: "http://sms.example.org/send".into(),
                ..HttpSmsConfig::default()
            },
            ..SmsConfig::default()
        };
        let err = SmsGateway::new(&config).unwrap_err().to_string();
        assert!(
            err.contains("sms.http.url") && err.contains("https"),
            "{err}"
        );
    }

    #[test]
    fn twilio_without_credentials_says_which_keys_to_set() {
        let config = SmsConfig {
            gateway: GatewayKind::Twilio,
            ..SmsConfig::default()
        };
        let err = SmsGateway::new(&config).unwrap_err().to_string();
        assert!(err.contains("sms.twilio.account_sid"), "{err}");
    }

    #[test]
    fn a_misspelt_placeholder_in_the_message_fails_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "t").unwrap();
        let config = SmsConfig {
            gateway: GatewayKind::Twilio,
            message: "Code: {{ cdoe }}".into(),
            twilio: TwilioConfig {
                account_sid: "AC1".into(),
                from: "+15550100".into(),
                auth_token_file: token,
                ..TwilioConfig::default()
            },
            ..SmsConfig::default()
        };
        let err = SmsGateway::new(&config).unwrap_err().to_string();
        assert!(err.contains("sms.message"), "{err}");
    }
}
