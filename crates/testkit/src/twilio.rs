//! The only simulated part of the tests: a local HTTP server that speaks the shape of
//! Twilio's Messages and Voice APIs (and a generic SMS endpoint), recording every message
//! and playing every call as the test scripted it: it fetches the call's TwiML, presses
//! keys at the `<Gather>` action, and posts status callbacks, all signed like Twilio's.
//! Replies to SMS reach mfad as Twilio's signed incoming-message webhook.
//!
//! Request and response shapes follow Twilio's REST API reference for the Message
//! resource: form-encoded `To`, `From`, `Body`, HTTP basic auth with the account SID and
//! auth token, `201 Created` with a JSON Message, errors as `{"code", "message", ...}`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Form, Router};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One SMS as the provider received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sms {
    pub to: String,
    pub from: String,
    pub body: String,
}

impl Sms {
    /// The first run of `digits` digits in the text: the one-time code.
    pub fn code(&self, digits: usize) -> Option<String> {
        self.body
            .split(|c: char| !c.is_ascii_digit())
            .find(|run| run.len() == digits)
            .map(str::to_owned)
    }
}

/// One request to the generic endpoint, `POST /generic/send`.
#[derive(Clone, Debug)]
pub struct GenericRequest {
    pub headers: HashMap<String, String>,
    pub body: String,
}

/// One call as the provider was asked to place it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub to: String,
    pub from: String,
    /// The TwiML URL fetched when the call is answered.
    pub url: String,
    pub status_callback: String,
    pub send_digits: String,
}

/// What the person called does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallScript {
    /// Answers and presses these keys, e.g. "#", "2580#", "0#".
    Press(String),
    /// Answers and hangs up without pressing anything.
    HangUp,
    /// Answers and listens until the Gather times out (a voicemail, a phone in a
    /// pocket): Twilio then requests the Gather's action URL only when its TwiML asks
    /// for that with `actionOnEmptyResult="true"`, with no digits.
    Silent,
    /// Lets it ring out.
    NoAnswer,
    Busy,
    /// The provider refuses the number (error 21217).
    InvalidNumber,
    /// Nothing ever comes back (the provider lost the call).
    Ignore,
}

#[derive(Default)]
struct Recorded {
    sms: Vec<Sms>,
    generic: Vec<GenericRequest>,
    calls: Vec<Call>,
    /// Incoming-message webhooks sent so far.
    inbound: usize,
    /// mfad's TwiML answers to the keys pressed (the `<Gather>` action), in order.
    gather_answers: Vec<String>,
    scripts: std::collections::VecDeque<CallScript>,
    /// How long a call rings before the script plays.
    ring: Duration,
}

struct Shared {
    account_sid: String,
    auth_token: String,
    recorded: Mutex<Recorded>,
    changed: Condvar,
    /// Sends still to be answered with 503 (the provider being down).
    fail_next: AtomicU32,
}

impl Shared {
    fn record(&self, f: impl FnOnce(&mut Recorded)) {
        let mut recorded = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut recorded);
        self.changed.notify_all();
    }
}

/// A running fake provider; stopped on drop.
pub struct FakeTwilio {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeTwilio {
    /// Starts on a free port of 127.0.0.1, accepting `account_sid` / `auth_token`.
    pub fn start(account_sid: &str, auth_token: &str) -> FakeTwilio {
        let shared = Arc::new(Shared {
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            recorded: Mutex::new(Recorded::default()),
            changed: Condvar::new(),
            fail_next: AtomicU32::new(0),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local_addr");
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new()
            .route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                post(create_message),
            )
            .route("/2010-04-01/Accounts/{sid}/Calls.json", post(create_call))
            .route("/generic/send", post(generic_send))
            .with_state(Arc::clone(&shared));
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for the fake provider");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        FakeTwilio {
            addr,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, the value for `api_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers the next `n` sends with `503 Service Unavailable`.
    pub fn fail_next(&self, n: u32) {
        self.shared.fail_next.store(n, Ordering::SeqCst);
    }

    /// What the next calls do, in order; calls beyond the list are [`CallScript::Ignore`]d.
    pub fn script_calls(&self, scripts: impl IntoIterator<Item = CallScript>) {
        self.lock().scripts.extend(scripts);
    }

    /// How long each call rings before its script plays.
    pub fn set_ring(&self, ring: Duration) {
        self.lock().ring = ring;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    pub fn messages(&self) -> Vec<Sms> {
        self.lock().sms.clone()
    }

    /// Waits until `count` calls were placed.
    pub fn wait_for_calls(&self, count: usize, timeout: Duration) -> Vec<Call> {
        self.wait(timeout, |r| {
            (r.calls.len() >= count).then(|| r.calls.clone())
        })
        .unwrap_or_else(|| {
            panic!(
                "expected {count} calls within {timeout:?}, got {:?}",
                self.calls()
            )
        })
    }

    /// The phone `from` replies `body` to a message sent from `to`: posts Twilio's signed
    /// incoming-message webhook to `webhook_url` (mfad's `/hooks/sms/inbound`) and returns the
    /// HTTP status mfad answered with.
    pub fn reply_sms(&self, webhook_url: &str, from: &str, to: &str, body: &str) -> u16 {
        let shared = Arc::clone(&self.shared);
        let (url, from, to, body) = (
            webhook_url.to_owned(),
            from.to_owned(),
            to.to_owned(),
            body.to_owned(),
        );
        // A thread of its own: the caller may be a test's async runtime or none.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for an inbound webhook");
            runtime.block_on(inbound_sms(&shared, &url, &from, &to, &body))
        })
        .join()
        .expect("inbound webhook thread")
    }

    /// The phone `from` replies `text` through the generic HTTP gateway: posts the form
    /// (`from`, `text`) with `Authorization: Bearer <secret>` to `webhook_url` (mfad's
    /// `/hooks/sms/inbound/http`) and returns the HTTP status mfad answered with.
    pub fn reply_http_sms(&self, webhook_url: &str, secret: &str, from: &str, text: &str) -> u16 {
        let (url, secret, from, text) = (
            webhook_url.to_owned(),
            secret.to_owned(),
            from.to_owned(),
            text.to_owned(),
        );
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for an inbound webhook");
            runtime.block_on(async move {
                reqwest::Client::new()
                    .post(&url)
                    .bearer_auth(&secret)
                    .form(&[("from", from.as_str()), ("text", text.as_str())])
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16())
            })
        })
        .join()
        .expect("inbound webhook thread")
    }

    /// Waits until the keys of `count` calls were pressed and returns mfad's TwiML answers.
    pub fn wait_for_gather_answers(&self, count: usize, timeout: Duration) -> Vec<String> {
        self.wait(timeout, |r| {
            (r.gather_answers.len() >= count).then(|| r.gather_answers.clone())
        })
        .unwrap_or_else(|| panic!("expected {count} key presses within {timeout:?}"))
    }

    pub fn generic_requests(&self) -> Vec<GenericRequest> {
        self.lock().generic.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.shared
            .recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `count` messages arrived and returns them all; panics at the deadline.
    pub fn wait_for_messages(&self, count: usize, timeout: Duration) -> Vec<Sms> {
        self.wait(timeout, |r| (r.sms.len() >= count).then(|| r.sms.clone()))
            .unwrap_or_else(|| {
                panic!(
                    "expected {count} SMS within {timeout:?}, got {:?}",
                    self.messages()
                )
            })
    }

    /// Waits until `count` generic requests arrived.
    pub fn wait_for_generic(&self, count: usize, timeout: Duration) -> Vec<GenericRequest> {
        self.wait(timeout, |r| {
            (r.generic.len() >= count).then(|| r.generic.clone())
        })
        .unwrap_or_else(|| panic!("expected {count} generic gateway requests within {timeout:?}"))
    }

    fn wait<T>(
        &self,
        timeout: Duration,
        mut ready: impl FnMut(&Recorded) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut recorded = self.lock();
        loop {
            if let Some(found) = ready(&recorded) {
                return Some(found);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            recorded = self
                .shared
                .changed
                .wait_timeout(recorded, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl Drop for FakeTwilio {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn twilio_error(status: StatusCode, code: u32, message: &str) -> axum::response::Response {
    let body = serde_json::json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// HTTP basic auth (RFC 7617) as Twilio checks it.
fn authorised(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = data_encoding::BASE64.decode(encoded.as_bytes()) else {
        return false;
    };
    decoded == format!("{}:{}", shared.account_sid, shared.auth_token).as_bytes()
}

fn take_failure(shared: &Shared) -> bool {
    shared
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

async fn create_message(
    State(shared): State<Arc<Shared>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> axum::response::Response {
    if sid != shared.account_sid || !authorised(&shared, &headers) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    if take_failure(&shared) {
        return twilio_error(
            StatusCode::SERVICE_UNAVAILABLE,
            20503,
            "Service Unavailable",
        );
    }
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    let (to, from, body) = (field("To"), field("From"), field("Body"));
    if !to.starts_with('+') || to.len() < 9 {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21211,
            &format!("The 'To' number {to} is not a valid phone number."),
        );
    }
    let sms = Sms {
        to: to.clone(),
        from: from.clone(),
        body: body.clone(),
    };
    let sid_n = {
        let mut n = 0;
        shared.record(|r| {
            r.sms.push(sms);
            n = r.sms.len();
        });
        n
    };
    let message = serde_json::json!({
        "sid": format!("SM{sid_n:032x}"),
        "account_sid": shared.account_sid,
        "to": to,
        "from": from,
        "body": body,
        "status": "queued",
        "num_segments": "1",
        "direction": "outbound-api",
    });
    (
        StatusCode::CREATED,
        [("content-type", "application/json")],
        message.to_string(),
    )
        .into_response()
}

async fn generic_send(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    if take_failure(&shared) {
        return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    let headers = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    shared.record(|r| r.generic.push(GenericRequest { headers, body }));
    (StatusCode::OK, r#"{"result":"accepted"}"#).into_response()
}

/// Twilio's webhook signature: base64(HMAC-SHA1(token, url + sorted name+value pairs)).
fn signature(
    token: &str,
    url: &str,
    params: &std::collections::BTreeMap<String, String>,
) -> String {
    use hmac::Mac;
    let mut data = url.to_owned();
    for (k, v) in params {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).expect("any key");
    mac.update(data.as_bytes());
    data_encoding::BASE64.encode(&mac.finalize().into_bytes())
}

/// POSTs a signed webhook and returns the body of the answer.
async fn webhook(
    client: &reqwest::Client,
    token: &str,
    url: &str,
    params: &std::collections::BTreeMap<String, String>,
) -> Option<String> {
    let response = client
        .post(url)
        .header("X-Twilio-Signature", signature(token, url, params))
        .form(params)
        .send()
        .await
        .ok()?;
    response.text().await.ok()
}

/// Twilio's incoming-message webhook: a form POST with the message's fields (as in
/// Twilio's Messaging webhook reference), signed like every webhook.
async fn inbound_sms(shared: &Shared, url: &str, from: &str, to: &str, body: &str) -> u16 {
    let n = {
        let mut n = 0;
        shared.record(|r| {
            r.inbound += 1;
            n = r.inbound;
        });
        n
    };
    let params: std::collections::BTreeMap<String, String> = [
        ("ToCountry", "US"),
        ("SmsMessageSid", &format!("SM{n:032x}")),
        ("NumMedia", "0"),
        ("SmsSid", &format!("SM{n:032x}")),
        ("SmsStatus", "received"),
        ("Body", body),
        ("To", to),
        ("NumSegments", "1"),
        ("MessageSid", &format!("SM{n:032x}")),
        ("AccountSid", &shared.account_sid),
        ("From", from),
        ("ApiVersion", "2010-04-01"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let response = reqwest::Client::new()
        .post(url)
        .header(
            "X-Twilio-Signature",
            signature(&shared.auth_token, url, &params),
        )
        .form(&params)
        .send()
        .await;
    response.map_or(0, |r| r.status().as_u16())
}

/// What Twilio posts as `Digits` to the first `<Gather>`'s action when the person
/// presses `keys`, or `None` when it goes on to the next verb without calling it.
///
/// A key in `finishOnKey` (default "#") ends the input and is left out; `numDigits`
/// keys end it too; otherwise it ends when the keys run out (the timeout). Input that
/// is empty reaches the action only with `actionOnEmptyResult="true"`. A lone finishing
/// key counts as empty input here: the stricter of the two readings of Twilio's
/// documentation, so that mfad does not depend on the other.
fn gathered(twiml: &str, keys: &str) -> Option<String> {
    let finish = gather_attribute(twiml, "finishOnKey").unwrap_or_else(|| "#".to_owned());
    let most = gather_attribute(twiml, "numDigits")
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX);
    let on_empty = gather_attribute(twiml, "actionOnEmptyResult").as_deref() == Some("true");
    let mut digits = String::new();
    for key in keys.chars() {
        if finish.contains(key) {
            break;
        }
        digits.push(key);
        if digits.len() >= most {
            break;
        }
    }
    (!digits.is_empty() || on_empty).then_some(digits)
}

/// The `action` of the first `<Gather>` in TwiML, unescaped.
fn gather_action(twiml: &str) -> Option<String> {
    gather_attribute(twiml, "action").map(|url| url.replace("&amp;", "&"))
}

/// Attribute `name` of the first `<Gather>` tag in TwiML, as written.
fn gather_attribute(twiml: &str, name: &str) -> Option<String> {
    let gather = &twiml[twiml.find("<Gather")?..];
    let tag = &gather[..gather.find('>')?];
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].to_owned())
}

async fn play(
    shared: Arc<Shared>,
    call: Call,
    call_sid: String,
    script: CallScript,
    ring: Duration,
) {
    tokio::time::sleep(ring).await;
    let client = reqwest::Client::new();
    let token = shared.auth_token.clone();
    let base: std::collections::BTreeMap<String, String> = [
        ("AccountSid", shared.account_sid.as_str()),
        ("CallSid", call_sid.as_str()),
        ("From", call.from.as_str()),
        ("To", call.to.as_str()),
        ("Direction", "outbound-api"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let with = |extra: &[(&str, &str)]| {
        let mut params = base.clone();
        for (k, v) in extra {
            params.insert((*k).to_owned(), (*v).to_owned());
        }
        params
    };
    let status = |s: &'static str| with(&[("CallStatus", s)]);
    match script {
        CallScript::Ignore | CallScript::InvalidNumber => {}
        CallScript::NoAnswer => {
            webhook(&client, &token, &call.status_callback, &status("no-answer")).await;
        }
        CallScript::Busy => {
            webhook(&client, &token, &call.status_callback, &status("busy")).await;
        }
        CallScript::HangUp => {
            webhook(&client, &token, &call.url, &status("in-progress")).await;
            webhook(&client, &token, &call.status_callback, &status("completed")).await;
        }
        CallScript::Press(_) | CallScript::Silent => {
            let keys = if let CallScript::Press(keys) = &script {
                keys.as_str()
            } else {
                ""
            };
            let twiml = webhook(&client, &token, &call.url, &status("in-progress")).await;
            let twiml = twiml.unwrap_or_default();
            if let (Some(action), Some(digits)) = (gather_action(&twiml), gathered(&twiml, keys)) {
                let params = with(&[("CallStatus", "in-progress"), ("Digits", &digits)]);
                let said = webhook(&client, &token, &action, &params).await;
                shared.record(|r| r.gather_answers.push(said.unwrap_or_default()));
            }
            webhook(&client, &token, &call.status_callback, &status("completed")).await;
        }
    }
}

async fn create_call(
    State(shared): State<Arc<Shared>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> axum::response::Response {
    if sid != shared.account_sid || !authorised(&shared, &headers) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    let call = Call {
        to: field("To"),
        from: field("From"),
        url: field("Url"),
        status_callback: field("StatusCallback"),
        send_digits: field("SendDigits"),
    };
    let mut script = CallScript::Ignore;
    let mut ring = Duration::ZERO;
    let mut n = 0;
    shared.record(|r| {
        r.calls.push(call.clone());
        n = r.calls.len();
        script = r.scripts.pop_front().unwrap_or(CallScript::Ignore);
        ring = r.ring;
    });
    if script == CallScript::InvalidNumber {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21217,
            "Phone number does not appear to be valid",
        );
    }
    let call_sid = format!("CA{n:032x}");
    tokio::spawn(play(
        Arc::clone(&shared),
        call.clone(),
        call_sid.clone(),
        script,
        ring,
    ));
    let body = serde_json::json!({
        "sid": call_sid,
        "account_sid": shared.account_sid,
        "to": call.to,
        "from": call.from,
        "status": "queued",
    });
    (
        StatusCode::CREATED,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}
