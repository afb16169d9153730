//! The verification engine: one request in, one [`Outcome`] out, every rule applied here.

use crate::audit::{AuditRecord, AuditResult};
use crate::clock::{random_array, Clock, Random};
use crate::delivery::{FraudAlerts, SmsSender, VoiceCaller};
use crate::directory::Directory;
use crate::first_factor;
use crate::model::Challenge;
use crate::model::{ChallengeKind, FirstFactor, Method, PinMode, Prompt, Token, User};
use crate::pin::{self, PinError};
use crate::policy::{CacheMode, LivePolicy, Policy};
use crate::store::{Store, StoreError};
use crate::upstream::{Resume, UpstreamAnswer, UpstreamHandle};
use crate::username;
use std::net::IpAddr;
use std::sync::Arc;
use zeroize::Zeroizing;

mod call;
mod code;
mod lockout;
mod pending;
mod sms;

/// The client a request came through, as the engine needs it.
#[derive(Clone, Debug)]
pub struct ClientInfo {
    pub name: String,
    pub first_factor: FirstFactor,
    pub prompt: Prompt,
    pub require_user_match: bool,
    /// Separates the first-factor password from the code in one field; empty: none.
    pub code_separator: String,
}

/// One authentication attempt, from any channel.
#[derive(Clone, Debug)]
pub struct Request {
    pub username: String,
    /// What the user typed (RADIUS User-Password): `[PIN]code`, a PIN, or a challenge answer.
    pub password: Option<Zeroizing<String>>,
    /// The state of the challenge this request answers (RADIUS State).
    pub state: Option<Vec<u8>>,
    pub client: ClientInfo,
    pub source_ip: IpAddr,
    /// `radius`, `api`, ...
    pub channel: &'static str,
    pub calling_station: Option<String>,
    /// How to reach the target servers of a `first_factor = radius` client, set by the
    /// front-end that received the request.
    pub upstream: Option<UpstreamHandle>,
}

/// Why a request was rejected: a stable word for the audit log. Never sent to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    UnknownUser,
    Disabled,
    Blocked,
    Locked,
    NoToken,
    WrongCode,
    Replayed,
    WrongPin,
    NoCode,
    ChallengeExpired,
    PinRejected,
    PinMismatch,
    StoreUnavailable,
    Unsupported,
    WrongPassword,
    DirectoryUnavailable,
    NoPhone,
    NoGateway,
    DeliveryFailed,
    ResendLimit,
    FraudReported,
    NoPinEntered,
    CallHungUp,
    CallNoAnswer,
    InvalidNumber,
    CallTimeout,
    SmsNoReply,
    SmsReplyPending,
    RateLimited,
    UpstreamUnavailable,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownUser => "unknown_user",
            Self::Disabled => "disabled",
            Self::Blocked => "blocked",
            Self::Locked => "locked",
            Self::NoToken => "no_token",
            Self::WrongCode => "wrong_code",
            Self::Replayed => "replayed_code",
            Self::WrongPin => "wrong_pin",
            Self::NoCode => "no_code",
            Self::ChallengeExpired => "challenge_expired",
            Self::PinRejected => "pin_rejected",
            Self::PinMismatch => "pin_mismatch",
            Self::StoreUnavailable => "store_unavailable",
            Self::Unsupported => "unsupported",
            Self::WrongPassword => "wrong_password",
            Self::DirectoryUnavailable => "directory_unavailable",
            Self::NoPhone => "no_phone",
            Self::NoGateway => "no_gateway",
            Self::DeliveryFailed => "delivery_failed",
            Self::ResendLimit => "resend_limit",
            Self::FraudReported => "fraud_reported",
            Self::NoPinEntered => "answered_without_pin",
            Self::CallHungUp => "call_hung_up",
            Self::CallNoAnswer => "call_no_answer",
            Self::InvalidNumber => "invalid_number",
            Self::CallTimeout => "call_timeout",
            Self::SmsNoReply => "sms_no_reply",
            Self::SmsReplyPending => "sms_reply_pending",
            Self::RateLimited => "rate_limited",
            Self::UpstreamUnavailable => "upstream_unavailable",
        }
    }
}

/// The engine's answer; front-ends map it to protocol replies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Accept,
    Reject(Reason),
    /// Ask the user for more: `state` goes back in the follow-up request.
    Challenge {
        state: Vec<u8>,
        prompt: String,
    },
    /// An out-of-band answer (a call, a two-way SMS reply) is awaited: the front-end
    /// holds the request and asks [`Engine::wait`] for the final outcome.
    Pending {
        txn: String,
    },
}

/// Who answers: recorded in every audit record.
#[derive(Clone, Debug, Default)]
pub struct ServerInfo {
    pub name: String,
    pub ip: String,
}

/// The verification engine. Cheap to share: hold it in an `Arc`.
pub struct Engine {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn Random>,
    policy: LivePolicy,
    server: ServerInfo,
    directory: Option<Arc<dyn Directory>>,
    sms: Option<Arc<dyn SmsSender>>,
    voice: Option<Arc<dyn VoiceCaller>>,
    alerts: Option<Arc<dyn FraudAlerts>>,
    /// The out-of-band transactions whose requests this node holds.
    waiting: pending::Waiting,
    /// Permits for argon2id work, one per core: see [`Engine::argon2`].
    argon2: Arc<tokio::sync::Semaphore>,
}

/// Length of a RADIUS State issued with a challenge: 128 random bits.
const STATE_LEN: usize = 16;

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn Random>,
        policy: Policy,
        server: ServerInfo,
    ) -> Self {
        Self {
            store,
            clock,
            rng,
            policy: LivePolicy::new(policy),
            server,
            directory: None,
            sms: None,
            voice: None,
            alerts: None,
            waiting: pending::Waiting::default(),
            argon2: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
        }
    }

    /// Checks first-factor passwords of `first_factor = "directory"` clients with `directory`.
    #[must_use]
    pub fn with_directory(mut self, directory: Arc<dyn Directory>) -> Self {
        self.directory = Some(directory);
        self
    }

    /// Tells the operators about fraud reports through `alerts`.
    pub fn with_alerts(mut self, alerts: Arc<dyn FraudAlerts>) -> Self {
        self.alerts = Some(alerts);
        self
    }

    /// Places verification calls through `caller`; without one, call users are rejected.
    pub fn with_voice(mut self, caller: Arc<dyn VoiceCaller>) -> Self {
        self.voice = Some(caller);
        self
    }

    /// Sends SMS codes through `sender`; without one, SMS users are rejected.
    pub fn with_sms(mut self, sender: Arc<dyn SmsSender>) -> Self {
        self.sms = Some(sender);
        self
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.get()
    }

    /// Puts a new policy in force for requests that start from now on (stored settings
    /// changed while the server runs); true when it differs from the one in force.
    pub fn set_policy(&self, policy: Policy) -> bool {
        self.policy.replace(policy)
    }

    /// Decides one attempt and writes its audit record. Any store error rejects (fail closed).
    /// A `Pending` outcome's audit record is written by [`Engine::wait`], with the final
    /// result.
    pub async fn authenticate(&self, req: Request) -> Outcome {
        let mut audit = AuditRecord {
            id: hex(&random_array::<16>(&*self.rng)),
            time_ms: self.clock.now_ms(),
            username: req.username.clone(),
            server_name: self.server.name.clone(),
            server_ip: self.server.ip.clone(),
            client_name: req.client.name.clone(),
            client_ip: req.source_ip.to_string(),
            channel: req.channel.to_string(),
            calling_station: req.calling_station.clone().unwrap_or_default(),
            ..AuditRecord::default()
        };
        let outcome = match self.decide(&req, &mut audit).await {
            Ok(outcome) => outcome,
            Err(err) => {
                tracing::warn!(user = %req.username, "rejecting because the store failed: {err}");
                Outcome::Reject(Reason::StoreUnavailable)
            }
        };
        if let Outcome::Pending { txn } = &outcome {
            self.waiting.hold(txn, audit);
            return outcome;
        }
        self.write_audit(audit, outcome).await
    }

    /// Completes and writes the one audit record of an attempt, and returns the outcome
    /// to send. The record is durable before the outcome is returned, and with it every
    /// write the attempt made (the code it used): a reply never tells of an attempt the
    /// log could lose. When it cannot be written, an Accept becomes a Reject (the code
    /// may not be used for good), and the record of what was sent is queued instead, to
    /// reach the log once the database is back.
    async fn write_audit(&self, mut audit: AuditRecord, outcome: Outcome) -> Outcome {
        // A draft with its result was written with the attempt's last write (an
        // accepted code, see `second_factor`).
        if audit.result.is_some() {
            return outcome;
        }
        // A pending outcome's record is written by `wait` once the outcome is final.
        if !finish_record(&mut audit, &outcome) {
            return outcome;
        }
        if outcome == Outcome::Reject(Reason::StoreUnavailable) {
            // The database is away: the record waits for it, the reply does not.
            self.queue_audit(audit).await;
            return outcome;
        }
        let Err(err) = self.store.append_audit(audit.clone()).await else {
            return outcome;
        };
        tracing::warn!(user = %audit.username, "rejecting: the attempt's audit record could not be written: {err}");
        audit.result = Some(AuditResult::Reject);
        audit.reason = Reason::StoreUnavailable.as_str().into();
        self.queue_audit(audit).await;
        Outcome::Reject(Reason::StoreUnavailable)
    }

    /// Queues a record to be written once the database takes it.
    async fn queue_audit(&self, audit: AuditRecord) {
        if let Err(err) = self.store.queue_audit(audit).await {
            tracing::error!("audit record lost: {err}");
        }
    }

    async fn decide(&self, req: &Request, audit: &mut AuditRecord) -> Result<Outcome, StoreError> {
        let now = self.clock.now();
        let answer = req.password.as_ref().map_or("", |p| p.as_str());
        if let Some(state) = &req.state {
            return self.answer_challenge(req, state, answer, now, audit).await;
        }
        let subject = match self.resolve(&req.username).await? {
            Some(found) => Some(found),
            None => match self.resolve_alias(&req.username).await? {
                Ok(found) => found,
                Err(reason) => return Ok(Outcome::Reject(reason)),
            },
        };
        let Some((user, tokens)) = subject else {
            if req.client.require_user_match {
                return Ok(Outcome::Reject(Reason::UnknownUser));
            }
            match req.client.first_factor {
                FirstFactor::None => {}
                FirstFactor::Directory => {
                    if let Some(reason) = self.directory_password(&req.username, answer).await {
                        return Ok(Outcome::Reject(reason));
                    }
                }
                // The credentials go to the target as they came: there is no code to split off.
                FirstFactor::Radius => match self.upstream(req, None, None).await {
                    Ok(UpstreamAnswer::Accept) => {}
                    Ok(UpstreamAnswer::Reject) => {
                        return Ok(Outcome::Reject(Reason::WrongPassword));
                    }
                    Ok(UpstreamAnswer::Challenge { .. }) => {
                        // A challenge is bound to a user mfad knows; this one has none.
                        tracing::warn!(
                            user = %req.username,
                            "rejecting: the target challenged a user mfad does not know; add the user or set require_user_match"
                        );
                        return Ok(Outcome::Reject(Reason::Unsupported));
                    }
                    Err(reason) => return Ok(Outcome::Reject(reason)),
                },
            }
            // The client accepts users mfad does not know on their first factor alone.
            audit.reason = "unknown_user_first_factor_only".into();
            return Ok(Outcome::Accept);
        };
        describe(audit, &user);
        // A locked user is rejected before the password is tried: no bind, no probing.
        if let Some(reason) = self.unavailable(&user, now) {
            return Ok(Outcome::Reject(reason));
        }
        let mut answer = answer;
        let mut code_follows = false;
        if req.client.first_factor == FirstFactor::Radius {
            // A PAP password may hold the code; MS-CHAP and CHAP carry no password mfad
            // can read, so the code follows in a challenge.
            let code_len = tokens.first().map_or(6, |t| t.digits as usize);
            let split = req.password.as_ref().map(|_| {
                first_factor::split(
                    req.client.prompt,
                    &req.client.code_separator,
                    code_len,
                    answer,
                )
            });
            // Only a password with a code split off is sent in place of the received
            // one; otherwise the target gets the User-Password octets as they came.
            let password = split
                .as_ref()
                .filter(|s| s.code.is_some())
                .map(|s| s.password);
            if let Some(reason) = self.slot_or_reject(&user, now).await? {
                return Ok(Outcome::Reject(reason));
            }
            let target = self.upstream(req, password, None).await;
            if let Some(outcome) = self.upstream_outcome(&user, req, target).await? {
                return Ok(outcome);
            }
            match split.and_then(|s| s.code) {
                Some(code) => answer = code,
                None => code_follows = true,
            }
        }
        if req.client.first_factor == FirstFactor::Directory {
            let code_len = tokens.first().map_or(6, |t| t.digits as usize);
            let split = first_factor::split(
                req.client.prompt,
                &req.client.code_separator,
                code_len,
                answer,
            );
            if let Some(reason) = self.slot_or_reject(&user, now).await? {
                return Ok(Outcome::Reject(reason));
            }
            let checked = self
                .directory_password(&user.username, split.password)
                .await;
            // A wrong password keeps its slot; a right one (the code is checked under
            // a slot of its own) or a directory that did not answer gives it back.
            if checked != Some(Reason::WrongPassword) {
                self.release_slot(&user).await?;
            }
            if let Some(reason) = checked {
                return Ok(Outcome::Reject(reason));
            }
            match split.code {
                Some(code) => answer = code,
                None => code_follows = true,
            }
        }
        self.after_first_factor(&user, &tokens, answer, code_follows, req, now, audit)
            .await
    }

    /// Bypass, cache and the second factor, once any first factor has passed.
    /// `code_follows`: the request held no code, so one is asked for with a challenge.
    #[allow(clippy::too_many_arguments)] // the request's parts the check needs
    async fn after_first_factor(
        &self,
        user: &User,
        tokens: &[Token],
        answer: &str,
        code_follows: bool,
        req: &Request,
        now: i64,
        audit: &mut AuditRecord,
    ) -> Result<Outcome, StoreError> {
        // The bypass is checked on the record in hand first: most users have none, and
        // using one is a write.
        if user.bypass_until.is_some_and(|t| t > now)
            && self.store.consume_bypass(user.id, now).await?
        {
            audit.method = "bypass".into();
            audit.reason = "bypass".into();
            return Ok(Outcome::Accept);
        }
        let cache_key = self.cache_key(user, req);
        if let Some(key) = &cache_key {
            if self.store.cached_auth(key, now).await? {
                audit.method = "cache".into();
                audit.reason = "cached".into();
                return Ok(Outcome::Accept);
            }
        }
        match user.method {
            Method::App | Method::Token => {}
            Method::Sms => return self.start_sms(user, req, answer, now, audit).await,
            Method::Call => return self.phone_call(user, req, now, audit).await,
            // Not in this build: never let such a user in on the first factor alone.
            Method::Push => return Ok(Outcome::Reject(Reason::Unsupported)),
        }
        if tokens.is_empty() {
            return Ok(Outcome::Reject(Reason::NoToken));
        }
        let inline = !code_follows
            && match req.client.prompt {
                Prompt::Inline => true,
                Prompt::Challenge => req.client.first_factor != FirstFactor::None,
                Prompt::Auto => {
                    req.client.first_factor != FirstFactor::None || holds_code(user, tokens, answer)
                }
            };
        if !inline {
            return self
                .challenge(
                    user,
                    &req.client.name,
                    ChallengeKind::Otp,
                    code_prompt(user),
                )
                .await;
        }
        self.second_factor(user, tokens, answer, req, now, cache_key, audit)
            .await
    }

    /// Asks the target servers of a `first_factor = radius` client. Any trouble rejects
    /// (fail closed).
    async fn upstream(
        &self,
        req: &Request,
        password: Option<&str>,
        resume: Option<&Resume>,
    ) -> Result<UpstreamAnswer, Reason> {
        let Some(upstream) = &req.upstream else {
            tracing::warn!(
                user = %req.username,
                client = %req.client.name,
                "rejecting: the client forwards to target RADIUS servers, but the request came where there are none"
            );
            return Err(Reason::UpstreamUnavailable);
        };
        upstream.0.check(password, resume).await.map_err(|err| {
            tracing::warn!(user = %req.username, client = %req.client.name, "rejecting: {err}");
            Reason::UpstreamUnavailable
        })
    }

    /// What a known user's first factor at the target servers means, under the slot the
    /// attempt took: `None` when the password passed and the second factor follows. A
    /// wrong password keeps the slot; every other answer gives it back.
    async fn upstream_outcome(
        &self,
        user: &User,
        req: &Request,
        answer: Result<UpstreamAnswer, Reason>,
    ) -> Result<Option<Outcome>, StoreError> {
        if !matches!(answer, Ok(UpstreamAnswer::Reject)) {
            self.release_slot(user).await?;
        }
        Ok(match answer {
            Ok(UpstreamAnswer::Accept) => None,
            Ok(UpstreamAnswer::Reject) => Some(Outcome::Reject(Reason::WrongPassword)),
            Ok(UpstreamAnswer::Challenge {
                target,
                state,
                prompt,
            }) => {
                let kind = ChallengeKind::Upstream { target, state };
                Some(self.challenge(user, &req.client.name, kind, prompt).await?)
            }
            Err(reason) => Some(Outcome::Reject(reason)),
        })
    }

    /// The user for a typed name, with their enabled tokens.
    async fn resolve(&self, name: &str) -> Result<Option<(User, Vec<Token>)>, StoreError> {
        for candidate in username::candidates(name) {
            if let Some(found) = self.store.auth_subject(&candidate).await? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// A name the store does not hold may be another form of a stored user's name: the
    /// sAMAccountName of a user stored by their UPN, `DOMAIN\user`, another case. The
    /// directory entry it names decides, by its unique ID, as the import keys users; an
    /// entry that belongs to an mfad user always needs that user's second factor.
    /// `Ok(None)`: no such entry, or not one of mfad's users. A directory that cannot be
    /// asked rejects: the user cannot be known to be unknown (fail closed).
    async fn resolve_alias(
        &self,
        name: &str,
    ) -> Result<Result<Option<(User, Vec<Token>)>, Reason>, StoreError> {
        let Some(directory) = &self.directory else {
            return Ok(Ok(None));
        };
        for candidate in username::candidates(name) {
            let entry = match directory.find_user(&candidate).await {
                Ok(Some(entry)) => entry,
                Ok(None) => continue,
                Err(err) => {
                    tracing::warn!(user = %name, "rejecting: cannot tell whether the name belongs to a user: {err}");
                    return Ok(Err(Reason::DirectoryUnavailable));
                }
            };
            let Some(user) = self.store.user_by_directory_id(&entry.unique_id).await? else {
                return Ok(Ok(None));
            };
            let tokens = self.store.tokens_for_user(user.id).await?;
            let tokens = tokens.into_iter().filter(|t| t.enabled).collect();
            return Ok(Ok(Some((user, tokens))));
        }
        Ok(Ok(None))
    }

    /// Whether a typed name is `user`'s, under any of its forms.
    async fn names_user(&self, name: &str, user: &User) -> Result<bool, StoreError> {
        if username::candidates(name).contains(&user.username) {
            return Ok(true);
        }
        Ok(matches!(
            self.resolve_alias(name).await?,
            Ok(Some((found, _))) if found.id == user.id
        ))
    }

    /// Disabled, blocked and locked users get a reject whatever they send, so that a
    /// lockout cannot be probed with right codes (NIST SP 800-63B §5.2.2).
    fn unavailable(&self, user: &User, now: i64) -> Option<Reason> {
        if !user.enabled {
            Some(Reason::Disabled)
        } else if user.is_blocked(now) {
            Some(Reason::Blocked)
        } else if user.is_locked(now) {
            Some(Reason::Locked)
        } else {
            None
        }
    }

    fn cache_key(&self, user: &User, req: &Request) -> Option<String> {
        if self.policy().cache_seconds <= 0 {
            return None;
        }
        match self.policy().cache {
            CacheMode::Off => None,
            CacheMode::User => Some(format!("u:{}", user.id)),
            CacheMode::UserClient => Some(format!("uc:{}:{}", user.id, req.client.name)),
            CacheMode::UserClientIp => {
                let station = req.calling_station.as_deref().unwrap_or_default();
                Some(format!("uci:{}:{}:{}", user.id, req.client.name, station))
            }
        }
    }

    /// The second factor was proven: clear the failure count (with the slot this attempt
    /// took), then [`Engine::succeeded`].
    async fn accepted(
        &self,
        user: &User,
        client: &str,
        now: i64,
        cache_key: Option<String>,
    ) -> Result<Outcome, StoreError> {
        self.store.clear_failures(user.id).await?;
        self.succeeded(user, client, now, cache_key).await
    }

    /// After a proven second factor whose failure count is cleared: ask for a new PIN
    /// when one is due, remember the success for the cache.
    async fn succeeded(
        &self,
        user: &User,
        client: &str,
        now: i64,
        cache_key: Option<String>,
    ) -> Result<Outcome, StoreError> {
        if new_pin_due(user) {
            let prompt = "Enter a new PIN".to_string();
            return self
                .challenge(user, client, ChallengeKind::NewPin, prompt)
                .await;
        }
        if let Some(key) = cache_key {
            let until = now.saturating_add(self.policy().cache_seconds);
            self.store.put_cached_auth(&key, until).await?;
        }
        Ok(Outcome::Accept)
    }

    /// Whether `user` may get one more SMS (`channel` "sms") or call ("call") within the
    /// per-user and per-gateway limits; counts the use when so.
    async fn within_limits(
        &self,
        user: &User,
        channel: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let limits = &self.policy().limits;
        let (per_user, per_gateway) = match channel {
            "sms" => (limits.sms_per_user, limits.sms_per_gateway),
            _ => (limits.calls_per_user, limits.calls_per_gateway),
        };
        let window = limits.window_seconds.max(1);
        for (key, limit) in [
            (format!("{channel}:user:{}", user.id), per_user),
            (format!("{channel}:gateway"), per_gateway),
        ] {
            if limit > 0 && !self.store.take_rate(&key, now, window, limit).await? {
                tracing::warn!(user = %user.username, key, limit, window, "{channel} limit reached; not sending");
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The first factor of a `directory` client: `None` when the password is right.
    async fn directory_password(&self, username: &str, password: &str) -> Option<Reason> {
        first_factor::check_directory(self.directory.as_deref(), username, password).await
    }

    /// argon2id is deliberately slow: run it off the async workers, bounded. Callers
    /// take the attempt's slot first.
    async fn pin_matches(&self, hash: &str, pin: &str) -> bool {
        let (hash, pin) = (hash.to_string(), Zeroizing::new(pin.to_string()));
        self.argon2(move || pin::verify(&hash, &pin))
            .await
            .unwrap_or(false)
    }

    async fn challenge(
        &self,
        user: &User,
        client: &str,
        kind: ChallengeKind,
        prompt: String,
    ) -> Result<Outcome, StoreError> {
        let expires_at = self
            .clock
            .now()
            .saturating_add(self.policy().challenge_seconds);
        self.challenge_until(user, client, kind, prompt, expires_at)
            .await
    }

    /// A new single-use state for `kind`, answerable until `expires_at`.
    async fn challenge_until(
        &self,
        user: &User,
        client: &str,
        kind: ChallengeKind,
        prompt: String,
        expires_at: i64,
    ) -> Result<Outcome, StoreError> {
        let state = random_array::<STATE_LEN>(&*self.rng).to_vec();
        let challenge = Challenge {
            state: state.clone(),
            user_id: user.id,
            client: client.to_owned(),
            kind,
            expires_at,
        };
        self.store.put_challenge(&challenge).await?;
        Ok(Outcome::Challenge { state, prompt })
    }

    async fn answer_challenge(
        &self,
        req: &Request,
        state: &[u8],
        answer: &str,
        now: i64,
        audit: &mut AuditRecord,
    ) -> Result<Outcome, StoreError> {
        // Out-of-band transactions and their indexes share the store's challenges but
        // are longer: a State that cannot be one of ours never touches the store, so a
        // client cannot take (even for a moment) what a webhook is waiting to decide.
        if state.len() != STATE_LEN {
            return Ok(Outcome::Reject(Reason::ChallengeExpired));
        }
        let Some(challenge) = self.store.take_challenge(state, now).await? else {
            return Ok(Outcome::Reject(Reason::ChallengeExpired));
        };
        if matches!(
            challenge.kind,
            ChallengeKind::Call { .. }
                | ChallengeKind::SmsReply { .. }
                | ChallengeKind::SmsReplyTo { .. }
                | ChallengeKind::Decided { .. }
        ) {
            // Out-of-band transactions are no RADIUS State: leave them to their webhooks.
            self.store.put_challenge(&challenge).await?;
            return Ok(Outcome::Reject(Reason::ChallengeExpired));
        }
        let Some(user) = self.store.user_by_id(challenge.user_id).await? else {
            return Ok(Outcome::Reject(Reason::UnknownUser));
        };
        describe(audit, &user);
        // A state is bound to the user and client it was issued to.
        if challenge.client != req.client.name || !self.names_user(&req.username, &user).await? {
            return Ok(Outcome::Reject(Reason::ChallengeExpired));
        }
        if let Some(reason) = self.unavailable(&user, now) {
            return Ok(Outcome::Reject(reason));
        }
        match challenge.kind {
            ChallengeKind::Upstream { target, state } => {
                let resume = Resume { target, state };
                if let Some(reason) = self.slot_or_reject(&user, now).await? {
                    return Ok(Outcome::Reject(reason));
                }
                let answer = self.upstream(req, None, Some(&resume)).await;
                if let Some(outcome) = self.upstream_outcome(&user, req, answer).await? {
                    return Ok(outcome);
                }
                let tokens = self.store.tokens_for_user(user.id).await?;
                let tokens: Vec<Token> = tokens.into_iter().filter(|t| t.enabled).collect();
                self.after_first_factor(&user, &tokens, "", true, req, now, audit)
                    .await
            }
            ChallengeKind::Otp => {
                let tokens = self.store.tokens_for_user(user.id).await?;
                let tokens: Vec<Token> = tokens.into_iter().filter(|t| t.enabled).collect();
                let cache_key = self.cache_key(&user, req);
                self.second_factor(&user, &tokens, answer, req, now, cache_key, audit)
                    .await
            }
            ChallengeKind::NewPin => {
                let (pin, phone, history) = (
                    Zeroizing::new(answer.to_string()),
                    user.phone.clone(),
                    user.pin_history.clone(),
                );
                let rules = self.policy().pin.clone();
                let rng = self.rng.clone();
                let checked = self
                    .argon2(move || {
                        pin::check(&pin, &rules, &phone, &history)?;
                        pin::hash(&pin, &*rng)
                    })
                    .await
                    .unwrap_or(Err(PinError::Hash));
                match checked {
                    Ok(pin_hash) => {
                        let kind = ChallengeKind::ConfirmPin { pin_hash };
                        self.challenge(
                            &user,
                            &req.client.name,
                            kind,
                            "Enter the new PIN again".into(),
                        )
                        .await
                    }
                    Err(err) => {
                        audit.reason = Reason::PinRejected.as_str().into();
                        let prompt = format!("PIN not accepted: {err}. Enter a new PIN");
                        self.challenge(&user, &req.client.name, ChallengeKind::NewPin, prompt)
                            .await
                    }
                }
            }
            ChallengeKind::SmsCode {
                salt,
                code_hash,
                attempts,
                sends,
            } => {
                let sent = sms::SentCode {
                    salt,
                    code_hash,
                    attempts,
                    sends,
                    expires_at: challenge.expires_at,
                };
                self.answer_sms(&user, req, answer, sent, now, audit).await
            }
            ChallengeKind::Call { .. }
            | ChallengeKind::SmsReply { .. }
            | ChallengeKind::SmsReplyTo { .. }
            | ChallengeKind::Decided { .. } => Ok(Outcome::Reject(Reason::ChallengeExpired)),
            ChallengeKind::ConfirmPin { pin_hash } => {
                if self.pin_matches(&pin_hash, answer).await {
                    self.store
                        .set_pin(user.id, Some(&pin_hash), false, self.policy().pin.history)
                        .await?;
                    audit.reason = "pin_changed".into();
                    Ok(Outcome::Accept)
                } else {
                    audit.reason = Reason::PinMismatch.as_str().into();
                    let prompt = "The PINs did not match. Enter a new PIN".to_string();
                    self.challenge(&user, &req.client.name, ChallengeKind::NewPin, prompt)
                        .await
                }
            }
        }
    }
}

/// Whether a password looks like `[PIN]code` for this user rather than something else
/// (a directory password, or nothing), for the `auto` prompt mode.
fn holds_code(user: &User, tokens: &[Token], answer: &str) -> bool {
    if !answer.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let with_pin = user.pin_mode == PinMode::Pin && user.has_pin();
    tokens.iter().any(|t| {
        let digits = t.digits as usize;
        if with_pin {
            answer.len() > digits
        } else {
            answer.len() == digits
        }
    })
}

fn code_prompt(user: &User) -> String {
    if user.pin_mode == PinMode::Pin && user.has_pin() {
        "Enter your PIN followed by the code from your authenticator".into()
    } else {
        "Enter the code from your authenticator".into()
    }
}

/// Completes an attempt's record with its outcome; false for a pending outcome, which
/// has no record yet.
fn finish_record(audit: &mut AuditRecord, outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Accept => {
            audit.result = Some(AuditResult::Accept);
            if audit.reason.is_empty() {
                audit.reason = "accepted".into();
            }
        }
        Outcome::Reject(reason) => {
            audit.result = Some(AuditResult::Reject);
            audit.reason = reason.as_str().into();
        }
        Outcome::Challenge { .. } => audit.result = Some(AuditResult::Challenge),
        Outcome::Pending { .. } => return false,
    }
    true
}

/// Whether a user who proved their second factor must choose a new PIN before the
/// login ends.
fn new_pin_due(user: &User) -> bool {
    user.pin_mode == PinMode::Pin && (user.pin_change_required || !user.has_pin())
}

fn describe(audit: &mut AuditRecord, user: &User) {
    audit.username = user.username.clone();
    audit.given_name = user.given_name.clone();
    audit.surname = user.surname.clone();
    audit.email = user.email.clone();
    audit.phone = user.phone.clone();
    audit.mode = user.pin_mode.to_string();
}

/// The phone as the audit log shows it for SMS and calls.
fn describe_phone(audit: &mut AuditRecord, user: &User) {
    audit.device = user.phone.clone();
}

/// Lower-case hex, without the formatting machinery: it runs for every attempt's audit ID.
fn hex(bytes: &[u8]) -> String {
    let digit = |n: u8| char::from_digit(u32::from(n), 16).unwrap_or('0');
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(digit(b >> 4));
        out.push(digit(b & 0x0f));
    }
    out
}
