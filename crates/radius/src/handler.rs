//! One datagram in, at most one reply out: check the packet, ask the engine, turn its outcome into a reply.
//!
//! No authentication rule lives here; every decision is the engine's. What
//! this file decides is only whether a datagram is a trustworthy request at
//! all (RFC 2865 §3: anything else is silently discarded).

use crate::clients::RadiusClient;
use crate::dedup::{DedupCache, RequestKey, Seen};
use crate::relay::Relays;
use crate::stats::{Counter, Stats};
use crate::upstream::{Forward, Targets};
use mfad_core::engine::{Channel, Credentials, Engine, Outcome, Request, TxnId};
use mfad_core::model::FirstFactor;
use mfad_core::upstream::UpstreamHandle;
use mfad_radius_proto::{
    attr, check_message_authenticator, decrypt_user_password, encode_response,
    verify_accounting_request, Code, MessageAuthenticator, Packet,
};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// The channel the engine sees; its word is what the audit log and metrics show.
pub const CHANNEL: Channel = Channel::Radius;

/// What the server task does with a handled request.
pub(crate) struct Outgoing {
    pub bytes: Arc<[u8]>,
    /// Wait this long before sending (what is left of the reject delay).
    pub delay: Duration,
    /// Set for a newly decided Access-Request: records the reply for
    /// retransmissions once it is sent.
    pub pending: Option<PendingReply>,
}

/// A request registered in the duplicate cache as in progress. Dropping it
/// without [`PendingReply::finish`] (no reply, an error, a panic) forgets the
/// request so that a retransmission is decided afresh.
pub(crate) struct PendingReply {
    cache: Arc<Mutex<DedupCache>>,
    key: RequestKey,
    finished: bool,
}

impl PendingReply {
    pub fn finish(mut self, reply: Arc<[u8]>) {
        lock(&self.cache).finish(&self.key, reply, Instant::now());
        self.finished = true;
    }
}

impl Drop for PendingReply {
    fn drop(&mut self) {
        if !self.finished {
            lock(&self.cache).abandon(&self.key);
        }
    }
}

/// The cache holds no invariant a panicking holder could break half-way, so a
/// poisoned lock is still usable.
fn lock(cache: &Mutex<DedupCache>) -> std::sync::MutexGuard<'_, DedupCache> {
    cache.lock().unwrap_or_else(PoisonError::into_inner)
}

fn lock_relays(relays: &Mutex<Relays>) -> std::sync::MutexGuard<'_, Relays> {
    relays.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What every request handler needs.
pub(crate) struct Handler {
    pub engine: Arc<Engine>,
    pub stats: Arc<Stats>,
    pub dedup: Arc<Mutex<DedupCache>>,
    pub reject_delay: Duration,
    /// The target servers of `first_factor = radius` clients; `None` when none are configured.
    pub targets: Option<Arc<Targets>>,
    pub relays: Mutex<Relays>,
}

impl Handler {
    /// Handles one datagram from `source`, already matched to `client`.
    pub async fn handle(
        &self,
        raw: &[u8],
        source: SocketAddr,
        client: &RadiusClient,
    ) -> Option<Outgoing> {
        let packet = match Packet::decode(raw) {
            Ok(packet) => packet,
            Err(err) => {
                self.drop_malformed(client, source, &err.to_string());
                return None;
            }
        };
        match packet.code {
            Code::AccessRequest => self.access_request(raw, &packet, source, client).await,
            Code::StatusServer => self.status_server(raw, &packet, source, client),
            Code::AccountingRequest => self.accounting_request(raw, &packet, source, client),
            other => {
                self.drop_malformed(client, source, &format!("{other} is not a request"));
                None
            }
        }
    }

    async fn access_request(
        &self,
        raw: &[u8],
        packet: &Packet,
        source: SocketAddr,
        client: &RadiusClient,
    ) -> Option<Outgoing> {
        match check_message_authenticator(raw, &client.secret, None) {
            MessageAuthenticator::Valid => {}
            MessageAuthenticator::Missing if !client.require_message_authenticator => {}
            MessageAuthenticator::Missing => {
                // BlastRADIUS (CVE-2024-3596): without the attribute a
                // forged reply is possible, so such requests are not answered.
                self.drop_bad_authenticator(
                    client,
                    source,
                    "Access-Request without Message-Authenticator, which this client must send; \
                     enable it on the NAS or run 'mfad client add ... --require-message-authenticator false'",
                );
                return None;
            }
            MessageAuthenticator::Invalid => {
                self.drop_bad_authenticator(
                    client,
                    source,
                    "Access-Request with a wrong Message-Authenticator; check the shared secret",
                );
                return None;
            }
        }
        let key = RequestKey {
            source,
            identifier: packet.identifier,
            authenticator: packet.authenticator,
        };
        let pending = match lock(&self.dedup).begin(key, Instant::now()) {
            Seen::New => PendingReply {
                cache: Arc::clone(&self.dedup),
                key,
                finished: false,
            },
            Seen::InProgress => {
                self.stats.bump(Counter::Duplicates);
                tracing::debug!(client = %client.info.name, %source, id = packet.identifier,
                    "dropping a retransmission of a request still being decided");
                return None;
            }
            Seen::Answered(bytes) => {
                self.stats.bump(Counter::Duplicates);
                tracing::debug!(client = %client.info.name, %source, id = packet.identifier,
                    "answering a retransmission from the duplicate cache");
                return Some(Outgoing {
                    bytes,
                    delay: Duration::ZERO,
                    pending: None,
                });
            }
        };
        let started = Instant::now();
        let mut request = match engine_request(packet, client, source.ip()) {
            Ok(request) => request,
            Err(why) => {
                self.drop_malformed(client, source, why);
                return None;
            }
        };
        let forward = match (&self.targets, client.info.first_factor) {
            (Some(targets), FirstFactor::Radius) => Some(Arc::new(Forward::new(
                targets,
                &client.targets,
                packet,
                &client.secret,
            ))),
            _ => None,
        };
        request.upstream = forward
            .clone()
            .map(|f| UpstreamHandle(f as Arc<dyn mfad_core::upstream::Upstream>));
        let mut outcome = self.engine.authenticate(request).await;
        if let Outcome::Pending { txn, .. } = &outcome {
            // Held until the out-of-band answer; the duplicate cache drops the NAS's
            // retransmissions meanwhile, so they never start a second call or SMS.
            let timeout = Duration::from_secs(self.engine.policy().out_of_band_timeout_seconds);
            outcome = self.engine.wait(txn, timeout).await;
        }
        self.stats.time(&outcome, started.elapsed());
        let (counter, delay) = match outcome {
            Outcome::Accept => (Counter::Accepted, Duration::ZERO),
            Outcome::Reject(_) | Outcome::Pending { .. } => (
                Counter::Rejected,
                reject_pad(self.reject_delay, started.elapsed()),
            ),
            Outcome::Challenge { .. } => (Counter::Challenged, Duration::ZERO),
        };
        let mut reply = reply_for(packet, &outcome);
        if let Some(forward) = &forward {
            let keep_for = Duration::from_secs(
                u64::try_from(self.engine.policy().challenge_seconds).unwrap_or(0),
            );
            lock_relays(&self.relays).settle(forward, &outcome, &mut reply, keep_for);
        }
        let bytes = self.encode(&reply, packet, client)?;
        self.stats.bump(counter);
        Some(Outgoing {
            bytes,
            delay,
            pending: Some(pending),
        })
    }

    /// RFC 5997 §3: answered with Access-Accept on the authentication port,
    /// and only when it carries a valid Message-Authenticator.
    fn status_server(
        &self,
        raw: &[u8],
        packet: &Packet,
        source: SocketAddr,
        client: &RadiusClient,
    ) -> Option<Outgoing> {
        if check_message_authenticator(raw, &client.secret, None) != MessageAuthenticator::Valid {
            self.drop_bad_authenticator(
                client,
                source,
                "Status-Server without a valid Message-Authenticator (RFC 5997 §3 requires one); check the shared secret",
            );
            return None;
        }
        self.answer_now(Code::AccessAccept, packet, client, Counter::StatusServer)
    }

    /// RFC 2866 §4.2: acknowledged once its Request Authenticator checks out;
    /// mfad keeps no accounting, so there is nothing else to do.
    fn accounting_request(
        &self,
        raw: &[u8],
        packet: &Packet,
        source: SocketAddr,
        client: &RadiusClient,
    ) -> Option<Outgoing> {
        if !verify_accounting_request(raw, &client.secret)
            || check_message_authenticator(raw, &client.secret, None)
                == MessageAuthenticator::Invalid
        {
            self.drop_bad_authenticator(
                client,
                source,
                "Accounting-Request with a wrong authenticator; check the shared secret",
            );
            return None;
        }
        self.answer_now(
            Code::AccountingResponse,
            packet,
            client,
            Counter::Accounting,
        )
    }

    /// A reply with no attributes but Proxy-State, sent without delay.
    fn answer_now(
        &self,
        code: Code,
        packet: &Packet,
        client: &RadiusClient,
        counter: Counter,
    ) -> Option<Outgoing> {
        let reply = with_proxy_state(Packet::new(code, packet.identifier, [0; 16]), packet);
        let bytes = self.encode(&reply, packet, client)?;
        self.stats.bump(counter);
        Some(Outgoing {
            bytes,
            delay: Duration::ZERO,
            pending: None,
        })
    }

    fn encode(&self, reply: &Packet, request: &Packet, client: &RadiusClient) -> Option<Arc<[u8]>> {
        match encode_response(reply, &request.authenticator, &client.secret) {
            Ok(bytes) => Some(Arc::from(bytes)),
            Err(err) => {
                // Only possible with a request already near the size limit
                // (many Proxy-State attributes): the NAS gets no answer.
                tracing::warn!(client = %client.info.name, "no reply sent: {err}");
                None
            }
        }
    }

    fn drop_malformed(&self, client: &RadiusClient, source: SocketAddr, why: &str) {
        self.stats.bump(Counter::DroppedMalformed);
        tracing::debug!(client = %client.info.name, %source, "dropping malformed packet: {why}");
    }

    fn drop_bad_authenticator(&self, client: &RadiusClient, source: SocketAddr, why: &str) {
        self.stats.bump(Counter::DroppedBadAuthenticator);
        tracing::debug!(client = %client.info.name, %source, "dropping {why}");
    }
}

/// Maps an Access-Request to the engine's request. Errors name what is
/// missing or broken, for the debug log.
pub(crate) fn engine_request(
    packet: &Packet,
    client: &RadiusClient,
    source: IpAddr,
) -> Result<Request, &'static str> {
    let username = packet
        .get(attr::USER_NAME)
        .ok_or("Access-Request without User-Name")?;
    let username = std::str::from_utf8(username)
        .map_err(|_| "User-Name is not UTF-8 (RFC 2865 §5.1)")?
        .to_owned();
    let credentials = match packet.get(attr::USER_PASSWORD) {
        None => Credentials::None,
        Some(hidden) => {
            let clear = Zeroizing::new(
                decrypt_user_password(hidden, &client.secret, &packet.authenticator).map_err(
                    |_| "User-Password is not a multiple of 16 octets up to 128 (RFC 2865 §5.2)",
                )?,
            );
            // Invalid UTF-8 cannot match a code or PIN; passing it on lets
            // the engine count and audit the failure like any wrong answer.
            Credentials::Inline(Zeroizing::new(String::from_utf8_lossy(&clear).into_owned()))
        }
    };
    Ok(Request {
        username,
        credentials,
        txn: packet
            .get(attr::STATE)
            .map(|state| TxnId::from_bytes(state.to_vec())),
        client: client.info.clone(),
        source_ip: source.to_canonical(),
        channel: CHANNEL,
        calling_station: packet
            .get(attr::CALLING_STATION_ID)
            .map(|v| String::from_utf8_lossy(v).into_owned()),
        upstream: None,
    })
}

/// The reply for an outcome. A reject carries nothing beyond Proxy-State:
/// the reason is for the audit log, never for whoever holds the NAS.
pub(crate) fn reply_for(request: &Packet, outcome: &Outcome) -> Packet {
    let id = request.identifier;
    let reply = match outcome {
        Outcome::Accept => Packet::new(Code::AccessAccept, id, [0; 16]),
        // `wait` always ends a pending outcome; one left over is never an accept.
        Outcome::Reject(_) | Outcome::Pending { .. } => {
            Packet::new(Code::AccessReject, id, [0; 16])
        }
        Outcome::Challenge { txn, prompt } => {
            let mut reply = Packet::new(Code::AccessChallenge, id, [0; 16]);
            // RFC 2865 §5.24 and §5.18: both are at least one octet.
            if !txn.as_bytes().is_empty() {
                reply.add(attr::STATE, txn.as_bytes());
            }
            let text = crate::prompts::reply_message(prompt);
            if !text.is_empty() {
                reply.add_string_split(attr::REPLY_MESSAGE, text.as_bytes());
            }
            reply
        }
    };
    with_proxy_state(reply, request)
}

/// RFC 2865 §5.33: Proxy-State attributes are copied unmodified and in order
/// into the reply.
fn with_proxy_state(mut reply: Packet, request: &Packet) -> Packet {
    for value in request.get_all(attr::PROXY_STATE) {
        reply.add(attr::PROXY_STATE, value);
    }
    reply
}

/// How long a reject waits before it is sent: every reject leaves `delay` after its
/// request arrived, whatever deciding it took (an unknown user, a locked one, a wrong
/// directory password), so that its timing tells nothing about why. Deciding for
/// longer than `delay` sends at once.
fn reject_pad(delay: Duration, spent: Duration) -> Duration {
    delay.saturating_sub(spent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfad_core::engine::{ClientInfo, Prompt, PromptKind, Reason};
    use mfad_core::model::{FirstFactor, Prompt as PromptMode};
    use mfad_radius_proto::encrypt_user_password;

    #[test]
    fn every_reject_leaves_one_fixed_time_after_its_request() {
        let delay = Duration::from_millis(1000);
        // A quick reject (unknown or locked user) and a slow one (a directory bind)
        // are sent at the same time after their requests.
        for spent in [0, 1, 4, 250, 999] {
            let spent = Duration::from_millis(spent);
            assert_eq!(spent + reject_pad(delay, spent), delay);
        }
        assert_eq!(
            reject_pad(delay, Duration::from_secs(3)),
            Duration::ZERO,
            "a reject that took longer than the delay is sent at once"
        );
    }

    fn client(secret: &str) -> RadiusClient {
        RadiusClient {
            network: "127.0.0.1/32".parse().unwrap(),
            secret: Zeroizing::new(secret.as_bytes().to_vec()),
            require_message_authenticator: true,
            targets: Vec::new(),
            info: ClientInfo {
                name: "vpn".into(),
                first_factor: FirstFactor::None,
                prompt: PromptMode::Auto,
                require_user_match: true,
                code_separator: String::new(),
            },
        }
    }

    fn request() -> Packet {
        let mut p = Packet::new(Code::AccessRequest, 42, [7; 16]);
        p.add(attr::PROXY_STATE, b"first");
        p.add(attr::USER_NAME, "alice");
        p.add(attr::PROXY_STATE, b"second");
        p
    }

    #[test]
    fn a_reject_says_nothing_but_echoes_proxy_state_in_order() {
        let reply = reply_for(&request(), &Outcome::Reject(Reason::Locked));
        assert_eq!((reply.code, reply.identifier), (Code::AccessReject, 42));
        let types: Vec<u8> = reply.attributes.iter().map(|a| a.typ).collect();
        assert_eq!(types, [attr::PROXY_STATE, attr::PROXY_STATE]);
        let values: Vec<&[u8]> = reply.get_all(attr::PROXY_STATE).collect();
        assert_eq!(values, [&b"first"[..], &b"second"[..]]);
    }

    #[test]
    fn an_accept_is_an_access_accept() {
        let reply = reply_for(&request(), &Outcome::Accept);
        assert_eq!(reply.code, Code::AccessAccept);
        assert_eq!(reply.get(attr::REPLY_MESSAGE), None);
    }

    #[test]
    fn a_challenge_carries_state_and_prompt() {
        let long_prompt = "x".repeat(300);
        let upstream = |text: &str| Prompt {
            kind: PromptKind::Upstream { text: text.into() },
            language: String::new(),
        };
        let outcome = Outcome::Challenge {
            txn: TxnId::from_bytes(vec![1, 2, 3]),
            prompt: upstream(&long_prompt),
        };
        let reply = reply_for(&request(), &outcome);
        assert_eq!(reply.code, Code::AccessChallenge);
        assert_eq!(reply.get(attr::STATE), Some(&[1u8, 2, 3][..]));
        // RFC 2865 §5.18: a long text goes in several Reply-Message attributes.
        assert_eq!(reply.get_all(attr::REPLY_MESSAGE).count(), 2);
        assert_eq!(
            reply.get_concat(attr::REPLY_MESSAGE),
            Some(long_prompt.into_bytes())
        );
        assert_eq!(reply.get_all(attr::PROXY_STATE).count(), 2);
        let empty = Outcome::Challenge {
            txn: TxnId::from_bytes(vec![9]),
            prompt: upstream(""),
        };
        assert_eq!(reply_for(&request(), &empty).get(attr::REPLY_MESSAGE), None);
    }

    #[test]
    fn an_access_request_maps_to_an_engine_request() {
        let c = client("secret-of-sixteen");
        let mut p = request();
        let hidden =
            encrypt_user_password(b"123456", b"secret-of-sixteen", &p.authenticator).unwrap();
        p.add(attr::USER_PASSWORD, hidden);
        p.add(attr::STATE, [5u8; 16]);
        p.add(attr::CALLING_STATION_ID, "203.0.113.9");
        let r = engine_request(&p, &c, "::ffff:127.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(r.username, "alice");
        assert!(matches!(&r.credentials, Credentials::Inline(p) if p.as_str() == "123456"));
        assert_eq!(r.txn, Some(TxnId::from_bytes(vec![5; 16])));
        assert_eq!(r.calling_station.as_deref(), Some("203.0.113.9"));
        assert_eq!(r.channel, Channel::Radius);
        assert_eq!(r.channel.as_str(), "radius");
        assert_eq!(r.client.name, "vpn");
        assert_eq!(r.source_ip, "127.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_request_without_a_password_maps_to_none() {
        // E.g. CHAP: the engine then asks for the code with a challenge.
        let r = engine_request(&request(), &client("s"), "127.0.0.1".parse().unwrap()).unwrap();
        assert!(matches!(r.credentials, Credentials::None));
        assert!(r.txn.is_none());
    }

    #[test]
    fn unmappable_requests_are_refused() {
        let c = client("s");
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let mut no_name = Packet::new(Code::AccessRequest, 1, [0; 16]);
        no_name.add(attr::NAS_PORT, 1u32.to_be_bytes());
        let mut bad_name = Packet::new(Code::AccessRequest, 1, [0; 16]);
        bad_name.add(attr::USER_NAME, [0xff, 0xfe]);
        let mut bad_password = request();
        bad_password.add(attr::USER_PASSWORD, [0u8; 15]);
        for p in [no_name, bad_name, bad_password] {
            assert!(engine_request(&p, &c, ip).is_err());
        }
    }
}
