//! The pipeline: one request in, one outcome out. Resolves the user, applies their state,
//! the bypass and the cache, checks the first factor, hands the second factor to the
//! user's method, and writes the attempt's one audit record.

use super::{describe, hex, Engine, Outcome, PromptKind, Reason, Request};
use crate::audit::{AuditRecord, AuditResult};
use crate::clock::random_array;
use crate::first_factor;
use crate::model::{
    ChallengeKind, FirstFactor, Method, PinMode, Prompt as PromptMode, Token, User,
};
use crate::policy::CacheMode;
use crate::store::StoreError;
use crate::upstream::{Resume, UpstreamAnswer};
use crate::username;

impl Engine {
    /// Decides one attempt and writes its audit record. Any store error rejects (fail closed).
    /// A `Pending` outcome's audit record waits in the store with the transaction, and is
    /// written with the final result by the poll that finishes it ([`Engine::poll`],
    /// [`Engine::wait`]), on whichever node.
    pub async fn authenticate(&self, req: Request) -> Outcome {
        let mut audit = AuditRecord {
            id: hex(&random_array::<16>(&*self.rng)),
            time_ms: self.clock.now_ms(),
            username: req.username.clone(),
            server_name: self.server.name.clone(),
            server_ip: self.server.ip.clone(),
            client_name: req.client.name.clone(),
            client_ip: req.source_ip.to_string(),
            channel: req.channel.as_str().to_owned(),
            calling_station: req.calling_station.clone().unwrap_or_default(),
            ..AuditRecord::default()
        };
        let outcome = match self.decide(&req, &mut audit).await {
            // A channel that cannot take an answer has no way to go on: the code was not
            // in the request.
            Ok(Outcome::Challenge { .. }) if !req.channel.can_answer() => {
                Outcome::Reject(Reason::NoCode)
            }
            Ok(outcome) => outcome,
            Err(err) => {
                tracing::warn!(user = %req.username, "rejecting because the store failed: {err}");
                Outcome::Reject(Reason::StoreUnavailable)
            }
        };
        self.write_audit(audit, outcome).await
    }

    /// Completes and writes the one audit record of an attempt, and returns the outcome
    /// to send. The record is durable before the outcome is returned, and with it every
    /// write the attempt made (the code it used): a reply never tells of an attempt the
    /// log could lose. When it cannot be written, an Accept becomes a Reject (the code
    /// may not be used for good), and the record of what was sent is queued instead, to
    /// reach the log once the database is back.
    pub(super) async fn write_audit(&self, mut audit: AuditRecord, outcome: Outcome) -> Outcome {
        // A draft with its result was written with the attempt's last write (an
        // accepted code, see `second_factor`).
        if audit.result.is_some() {
            self.counters.count(&audit);
            return outcome;
        }
        // A pending outcome's record is written by `wait` once the outcome is final.
        if !finish_record(&mut audit, &outcome) {
            return outcome;
        }
        if outcome == Outcome::Reject(Reason::StoreUnavailable) {
            // The database is away: the record waits for it, the reply does not.
            self.counters.count(&audit);
            self.queue_audit(audit).await;
            return outcome;
        }
        let Err(err) = self.store.append_audit(audit.clone()).await else {
            self.counters.count(&audit);
            return outcome;
        };
        tracing::warn!(user = %audit.username, "rejecting: the attempt's audit record could not be written: {err}");
        audit.result = Some(AuditResult::Reject);
        audit.reason = Reason::StoreUnavailable.as_str().into();
        self.counters.count(&audit);
        self.queue_audit(audit).await;
        Outcome::Reject(Reason::StoreUnavailable)
    }

    /// Queues a record to be written once the database takes it.
    pub(super) async fn queue_audit(&self, audit: AuditRecord) {
        if let Err(err) = self.store.queue_audit(audit).await {
            tracing::error!("audit record lost: {err}");
        }
    }

    pub(super) async fn decide(
        &self,
        req: &Request,
        audit: &mut AuditRecord,
    ) -> Result<Outcome, StoreError> {
        let now = self.clock.now();
        let answer = req.credentials.answer();
        if let Some(txn) = &req.txn {
            return self
                .answer_challenge(req, txn.as_bytes(), answer, now, audit)
                .await;
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
                    let password = req.credentials.password().unwrap_or(answer);
                    if let Some(reason) = self.directory_password(&req.username, password).await {
                        return Ok(Outcome::Reject(reason));
                    }
                }
                // The credentials go to the target as they came: there is no code to split off.
                FirstFactor::Radius => {
                    match self.upstream(req, req.credentials.password(), None).await {
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
                    }
                }
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
            let split =
                req.credentials
                    .split(req.client.prompt, &req.client.code_separator, code_len);
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
            let split = req
                .credentials
                .split(req.client.prompt, &req.client.code_separator, code_len)
                .unwrap_or_else(|| {
                    first_factor::split(req.client.prompt, &req.client.code_separator, code_len, "")
                });
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
    pub(super) async fn after_first_factor(
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
                PromptMode::Inline => true,
                PromptMode::Challenge => req.client.first_factor != FirstFactor::None,
                PromptMode::Auto => {
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
    pub(super) async fn upstream(
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
    pub(super) async fn upstream_outcome(
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
                let prompt = PromptKind::Upstream { text: prompt };
                Some(self.challenge(user, &req.client.name, kind, prompt).await?)
            }
            Err(reason) => Some(Outcome::Reject(reason)),
        })
    }

    /// The user for a typed name, with their enabled tokens.
    pub(super) async fn resolve(
        &self,
        name: &str,
    ) -> Result<Option<(User, Vec<Token>)>, StoreError> {
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
    pub(super) async fn resolve_alias(
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
    pub(super) async fn names_user(&self, name: &str, user: &User) -> Result<bool, StoreError> {
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
    pub(super) fn unavailable(&self, user: &User, now: i64) -> Option<Reason> {
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

    pub(super) fn cache_key(&self, user: &User, req: &Request) -> Option<String> {
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
    pub(super) async fn accepted(
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
    pub(super) async fn succeeded(
        &self,
        user: &User,
        client: &str,
        now: i64,
        cache_key: Option<String>,
    ) -> Result<Outcome, StoreError> {
        if new_pin_due(user) {
            return self
                .challenge(user, client, ChallengeKind::NewPin, PromptKind::NewPin)
                .await;
        }
        if let Some(key) = cache_key {
            let until = now.saturating_add(self.policy().cache_seconds);
            self.store.put_cached_auth(&key, until).await?;
        }
        Ok(Outcome::Accept)
    }

    /// The first factor of a `directory` client: `None` when the password is right.
    pub(super) async fn directory_password(
        &self,
        username: &str,
        password: &str,
    ) -> Option<Reason> {
        first_factor::check_directory(self.directory.as_deref(), username, password).await
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

fn code_prompt(user: &User) -> PromptKind {
    if user.pin_mode == PinMode::Pin && user.has_pin() {
        PromptKind::EnterPinAndCode
    } else {
        PromptKind::EnterCode
    }
}

/// Completes an attempt's record with its outcome; false for a pending outcome, which
/// has no record yet.
pub(super) fn finish_record(audit: &mut AuditRecord, outcome: &Outcome) -> bool {
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
pub(super) fn new_pin_due(user: &User) -> bool {
    user.pin_mode == PinMode::Pin && (user.pin_change_required || !user.has_pin())
}
