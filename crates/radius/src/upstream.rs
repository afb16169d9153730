//! The upstream RADIUS client: forwards the Access-Requests of `first_factor = radius` clients to target servers, in order, with failover.
//!
//! Each target has its own socket, connected to its address so that only its datagrams
//! are read, and its own table of the 256 Identifiers (RFC 2865 §3: the Identifier
//! matches a reply to its request, per source and destination). A request is sent with
//! a fresh random Request Authenticator, a Message-Authenticator first (RFC 3579 §3.2,
//! BlastRADIUS) and this proxy's Proxy-State last (RFC 2865 §5.33); it is retransmitted
//! unchanged after each timeout, and a reply counts only when its Response Authenticator,
//! Message-Authenticator and Proxy-State check out. A target that did not answer is
//! tried after the others for a while.
//!
//! A target's Access-Accept becomes a [`Relay`] for the client's Access-Accept; its MPPE
//! keys are revealed here with the target's secret (RFC 2548 §2.4.2 and §2.4.3).

use crate::relay::Relay;
use mfad_core::upstream::{Resume, Upstream, UpstreamAnswer, UpstreamError};
use mfad_radius_proto::{
    add_proxy_state, attr, check_message_authenticator, decrypt_user_password, encode_request,
    encrypt_user_password, take_mppe_keys, take_proxy_state, Code, MessageAuthenticator, MppeKey,
    Packet, MAX_PACKET_LEN,
};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

/// One target server as the operator configured it.
#[derive(Clone)]
pub struct TargetConfig {
    pub name: String,
    pub address: SocketAddr,
    pub secret: Zeroizing<Vec<u8>>,
    /// How long to wait for a reply before retransmitting or giving up.
    pub timeout: Duration,
    /// Retransmissions after the first send, each after `timeout`.
    pub retries: u32,
    /// Replies without Message-Authenticator are discarded (BlastRADIUS, CVE-2024-3596).
    pub require_message_authenticator: bool,
    /// How long this target, once it did not answer, is tried after the others.
    pub hold_down: Duration,
}

impl std::fmt::Debug for TargetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetConfig")
            .field("name", &self.name)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Requests waiting for a reply, by Identifier.
type Waiting = Mutex<Vec<Option<mpsc::Sender<Vec<u8>>>>>;

struct Target {
    config: TargetConfig,
    socket: Arc<UdpSocket>,
    waiting: Arc<Waiting>,
    /// Where the search for a free Identifier starts, so that Identifiers rotate.
    next_id: Mutex<u8>,
    down_until: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Frees an Identifier when the exchange ends, however it ends.
struct IdGuard<'a> {
    waiting: &'a Waiting,
    id: u8,
}

impl Drop for IdGuard<'_> {
    fn drop(&mut self) {
        if let Some(slot) = lock(self.waiting).get_mut(usize::from(self.id)) {
            *slot = None;
        }
    }
}

/// A reply that checked out, with this proxy's Proxy-State and the MPPE keys taken out.
pub(crate) struct Answer {
    pub packet: Packet,
    pub keys: Vec<MppeKey>,
}

/// Why one exchange with one target failed; for the log.
#[derive(Debug)]
enum ExchangeError {
    Timeout,
    Busy,
    Io(io::Error),
    Build(String),
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("no valid reply in time"),
            Self::Busy => f.write_str("all 256 RADIUS Identifiers are waiting for replies"),
            Self::Io(e) => write!(f, "{e}"),
            Self::Build(e) => f.write_str(e),
        }
    }
}

impl Target {
    fn is_down(&self, now: Instant) -> bool {
        lock(&self.down_until).is_some_and(|t| t > now)
    }

    fn allocate(&self, sender: mpsc::Sender<Vec<u8>>) -> Option<IdGuard<'_>> {
        let mut waiting = lock(&self.waiting);
        let mut next = lock(&self.next_id);
        for step in 0..=255u8 {
            let id = next.wrapping_add(step);
            if let Some(slot @ None) = waiting.get_mut(usize::from(id)) {
                *slot = Some(sender);
                *next = id.wrapping_add(1);
                return Some(IdGuard {
                    waiting: &self.waiting,
                    id,
                });
            }
        }
        None
    }

    /// Sends `request` (its Identifier and authenticator are set here) and waits for a
    /// reply that verifies, retransmitting the same octets after each timeout
    /// (RFC 5080 §2.2.1: a retransmission keeps Identifier and authenticator).
    async fn exchange(&self, mut request: Packet) -> Result<Answer, ExchangeError> {
        let (tx, mut rx) = mpsc::channel(4);
        let guard = self.allocate(tx).ok_or(ExchangeError::Busy)?;
        request.identifier = guard.id;
        let own_state = random::<8>().map_err(ExchangeError::Build)?;
        add_proxy_state(&mut request, &own_state);
        let secret = &self.config.secret;
        let bytes = encode_request(&request, secret, true)
            .map_err(|e| ExchangeError::Build(e.to_string()))?;
        for _ in 0..=self.config.retries {
            self.socket.send(&bytes).await.map_err(ExchangeError::Io)?;
            let deadline = tokio::time::Instant::now() + self.config.timeout;
            while let Ok(Some(raw)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                match self.verify(&raw, &request.authenticator, &own_state) {
                    Ok(answer) => return Ok(answer),
                    Err(why) => {
                        tracing::warn!(target = %self.config.name, "discarding a reply: {why}")
                    }
                }
            }
        }
        Err(ExchangeError::Timeout)
    }

    fn verify(&self, raw: &[u8], auth: &[u8; 16], own_state: &[u8]) -> Result<Answer, String> {
        let secret = &self.config.secret;
        // RFC 2865 §3: a reply with a wrong Response Authenticator is silently
        // discarded; verify_response also checks any Message-Authenticator.
        if !mfad_radius_proto::verify_response(raw, auth, secret) {
            return Err(
                "wrong Response Authenticator or Message-Authenticator; check the target's secret"
                    .into(),
            );
        }
        if self.config.require_message_authenticator
            && check_message_authenticator(raw, secret, Some(auth)) != MessageAuthenticator::Valid
        {
            return Err("no Message-Authenticator, which this target must send (BlastRADIUS); enable it on the target or set require_message_authenticator = false".into());
        }
        let mut packet = Packet::decode(raw).map_err(|e| e.to_string())?;
        if !matches!(
            packet.code,
            Code::AccessAccept | Code::AccessReject | Code::AccessChallenge
        ) {
            return Err(format!("{} does not answer an Access-Request", packet.code));
        }
        if !take_proxy_state(&mut packet, own_state) {
            return Err("the Proxy-State of the request is not echoed (RFC 2865 §5.33)".into());
        }
        let keys = take_mppe_keys(&mut packet, secret, auth).map_err(|e| e.to_string())?;
        Ok(Answer { packet, keys })
    }
}

/// The target servers, each with its socket and the task that reads it.
pub struct Targets {
    targets: Vec<Arc<Target>>,
    readers: Vec<JoinHandle<()>>,
}

impl Drop for Targets {
    fn drop(&mut self) {
        for reader in &self.readers {
            reader.abort();
        }
    }
}

impl std::fmt::Debug for Targets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self
            .targets
            .iter()
            .map(|t| t.config.name.as_str())
            .collect();
        f.debug_struct("Targets").field("names", &names).finish()
    }
}

impl Targets {
    /// Binds one socket per target (an ephemeral port of the matching address family)
    /// and starts reading replies.
    pub async fn bind(configs: Vec<TargetConfig>) -> io::Result<Arc<Targets>> {
        let mut targets = Vec::with_capacity(configs.len());
        let mut readers = Vec::with_capacity(configs.len());
        for config in configs {
            let local: SocketAddr = if config.address.is_ipv4() {
                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let socket = UdpSocket::bind(local).await?;
            // Connected: the kernel hands us only the target's datagrams.
            socket.connect(config.address).await?;
            let socket = Arc::new(socket);
            let waiting: Arc<Waiting> = Arc::new(Mutex::new(vec![None; 256]));
            readers.push(tokio::spawn(read_replies(
                Arc::clone(&socket),
                Arc::clone(&waiting),
                config.name.clone(),
            )));
            targets.push(Arc::new(Target {
                config,
                socket,
                waiting,
                next_id: Mutex::new(random::<1>().map_or(0, |[b]| b)),
                down_until: Mutex::new(None),
            }));
        }
        Ok(Arc::new(Targets { targets, readers }))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.targets.iter().map(|t| t.config.name.as_str())
    }

    /// The targets a client forwards to: those it names, in its order, or all of them.
    fn select(&self, names: &[String]) -> Vec<Arc<Target>> {
        if names.is_empty() {
            return self.targets.clone();
        }
        names
            .iter()
            .filter_map(|n| self.targets.iter().find(|t| t.config.name == *n).cloned())
            .collect()
    }
}

/// Hands replies to the request waiting on their Identifier.
async fn read_replies(socket: Arc<UdpSocket>, waiting: Arc<Waiting>, name: String) {
    let mut buf = vec![0u8; MAX_PACKET_LEN];
    loop {
        let len = match socket.recv(&mut buf).await {
            Ok(len) => len,
            Err(err) => {
                // E.g. ICMP port unreachable for a target that is down: the waiting
                // request times out and fails over.
                tracing::debug!(target = %name, "receive error: {err}");
                continue;
            }
        };
        let Some(datagram) = buf.get(..len) else {
            continue;
        };
        let Some(&id) = datagram.get(1) else {
            continue;
        };
        let sender = lock(&waiting).get(usize::from(id)).and_then(Option::clone);
        if let Some(sender) = sender {
            let _ = sender.try_send(datagram.to_vec());
        }
    }
}

pub(crate) fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut out = [0u8; N];
    getrandom::getrandom(&mut out).map_err(|e| format!("no random numbers: {e}"))?;
    Ok(out)
}

/// A request for the targets, and the password to hide in it for each.
type Outgoing = (Packet, Option<Zeroizing<Vec<u8>>>);

/// The first factor of one Access-Request of a `first_factor = radius` client: what
/// the engine calls through [`Upstream`].
pub(crate) struct Forward {
    targets: Vec<Arc<Target>>,
    request: Packet,
    client_secret: Zeroizing<Vec<u8>>,
    /// The target's Access-Accept, once there is one.
    accepted: Mutex<Option<Relay>>,
}

impl Forward {
    pub fn new(all: &Targets, names: &[String], request: &Packet, client_secret: &[u8]) -> Forward {
        Forward {
            targets: all.select(names),
            request: request.clone(),
            client_secret: Zeroizing::new(client_secret.to_vec()),
            accepted: Mutex::new(None),
        }
    }

    /// The target's Access-Accept, if the engine's check got one.
    pub fn take_accepted(&self) -> Option<Relay> {
        lock(&self.accepted).take()
    }

    /// The client's request, as received.
    pub fn request(&self) -> &Packet {
        &self.request
    }

    pub fn client_secret(&self) -> &[u8] {
        &self.client_secret
    }

    /// The request for a target: every attribute of the client's request except those
    /// that belong to the hop (Message-Authenticator, recomputed) or to mfad (its State),
    /// and the password to hide for each target in place of User-Password.
    fn outgoing(&self, password: Option<&str>, state: Option<&[u8]>) -> Result<Outgoing, String> {
        // The relay carries a prompt and a State, not the EAP-Message of a target's
        // challenge (RFC 3579 §3.1), so an EAP conversation could not complete.
        if self.request.get(attr::EAP_MESSAGE).is_some() {
            return Err("the client sent EAP, which is not forwarded to targets; configure it for PAP or MS-CHAPv2".into());
        }
        let authenticator = random::<16>()?;
        let mut out = Packet::new(Code::AccessRequest, 0, authenticator);
        for a in &self.request.attributes {
            if !matches!(
                a.typ,
                attr::MESSAGE_AUTHENTICATOR | attr::USER_PASSWORD | attr::STATE
            ) {
                out.attributes.push(a.clone());
            }
        }
        let clear: Option<Zeroizing<Vec<u8>>> =
            match (password, self.request.get(attr::USER_PASSWORD)) {
                (Some(p), _) => Some(Zeroizing::new(p.as_bytes().to_vec())),
                (None, Some(hidden)) => Some(Zeroizing::new(
                    decrypt_user_password(hidden, &self.client_secret, &self.request.authenticator)
                        .map_err(|e| e.to_string())?,
                )),
                (None, None) => None,
            };
        // RFC 2865 §5.3: without CHAP-Challenge the Request Authenticator is the
        // challenge, and the target sees another one.
        if self.request.get(attr::CHAP_PASSWORD).is_some()
            && self.request.get(attr::CHAP_CHALLENGE).is_none()
        {
            out.add(attr::CHAP_CHALLENGE, self.request.authenticator);
        }
        if let Some(state) = state {
            out.add(attr::STATE, state);
        }
        Ok((out, clear))
    }

    async fn ask(
        &self,
        target: &Target,
        request: &Packet,
        password: Option<&[u8]>,
    ) -> Result<UpstreamAnswer, ExchangeError> {
        let mut request = request.clone();
        // A fresh authenticator per target: each has its own secret and exchange.
        request.authenticator = random::<16>().map_err(ExchangeError::Build)?;
        if let Some(password) = password {
            // RFC 2865 §5.2: hidden with this target's secret and this request's
            // authenticator.
            let hidden =
                encrypt_user_password(password, &target.config.secret, &request.authenticator)
                    .map_err(|e| ExchangeError::Build(e.to_string()))?;
            request.add(attr::USER_PASSWORD, hidden);
        }
        let answer = target.exchange(request).await?;
        Ok(match answer.packet.code {
            Code::AccessAccept => {
                *lock(&self.accepted) = Some(Relay::from_accept(answer));
                UpstreamAnswer::Accept
            }
            Code::AccessChallenge => {
                let Some(state) = answer.packet.get(attr::STATE) else {
                    return Err(ExchangeError::Build(
                        "Access-Challenge without State (RFC 2865 §4.4); the answer could not be tied to it".into(),
                    ));
                };
                let prompt = answer
                    .packet
                    .get_concat(attr::REPLY_MESSAGE)
                    .map(|m| String::from_utf8_lossy(&m).into_owned())
                    .unwrap_or_default();
                UpstreamAnswer::Challenge {
                    target: target.config.name.clone(),
                    state: state.to_vec(),
                    prompt,
                }
            }
            _ => UpstreamAnswer::Reject,
        })
    }
}

#[async_trait::async_trait]
impl Upstream for Forward {
    async fn check(
        &self,
        password: Option<&str>,
        resume: Option<&Resume>,
    ) -> Result<UpstreamAnswer, UpstreamError> {
        let (request, password) = self
            .outgoing(password, resume.map(|r| r.state.as_slice()))
            .map_err(UpstreamError::Unavailable)?;
        // The answer to a target's challenge goes to that target: its State means
        // nothing to the others.
        let candidates: Vec<&Arc<Target>> = match resume {
            Some(r) => self
                .targets
                .iter()
                .filter(|t| t.config.name == r.target)
                .collect(),
            None => {
                let now = Instant::now();
                let (up, down): (Vec<_>, Vec<_>) =
                    self.targets.iter().partition(|t| !t.is_down(now));
                up.into_iter().chain(down).collect()
            }
        };
        if candidates.is_empty() {
            return Err(UpstreamError::Unavailable(
                "the client names no configured target; check its --targets and [[radius.targets]]"
                    .into(),
            ));
        }
        let mut failures = Vec::new();
        for target in candidates {
            match self
                .ask(target, &request, password.as_deref().map(Vec::as_slice))
                .await
            {
                Ok(answer) => {
                    *lock(&target.down_until) = None;
                    return Ok(answer);
                }
                Err(err) => {
                    tracing::warn!(target = %target.config.name, address = %target.config.address,
                        "target failed, trying the next one: {err}");
                    if matches!(err, ExchangeError::Timeout | ExchangeError::Io(_)) {
                        *lock(&target.down_until) = Some(Instant::now() + target.config.hold_down);
                    }
                    failures.push(format!("{}: {err}", target.config.name));
                }
            }
        }
        Err(UpstreamError::Unavailable(format!(
            "no target answered ({})",
            failures.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forwarded_request_keeps_the_clients_attributes_but_not_the_hops() {
        let secret = b"client-secret";
        let auth = [7u8; 16];
        let mut req = Packet::new(Code::AccessRequest, 9, auth);
        req.add(attr::MESSAGE_AUTHENTICATOR, [0u8; 16]);
        req.add(attr::USER_NAME, "alice");
        let hidden = encrypt_user_password(b"pw,123456", secret, &auth).unwrap();
        req.add(attr::USER_PASSWORD, hidden);
        req.add(attr::STATE, "mfad's state");
        req.add(attr::PROXY_STATE, "nas-proxy");
        req.add(attr::CHAP_PASSWORD, [1u8; 17]);
        let none = Targets {
            targets: Vec::new(),
            readers: Vec::new(),
        };
        let forward = Forward::new(&none, &[], &req, secret);

        let (out, password) = forward.outgoing(None, Some(b"target state")).unwrap();
        let types: Vec<u8> = out.attributes.iter().map(|a| a.typ).collect();
        // User-Password is added per target, hidden with its secret; the
        // Message-Authenticator is computed when the request is encoded.
        assert_eq!(
            types,
            [
                attr::USER_NAME,
                attr::PROXY_STATE,
                attr::CHAP_PASSWORD,
                attr::CHAP_CHALLENGE,
                attr::STATE
            ]
        );
        assert_eq!(out.get(attr::STATE), Some(&b"target state"[..]));
        // RFC 2865 §5.3: the client's Request Authenticator was the CHAP challenge.
        assert_eq!(out.get(attr::CHAP_CHALLENGE), Some(&auth[..]));
        assert_eq!(
            password.as_deref().map(Vec::as_slice),
            Some(&b"pw,123456"[..])
        );

        let (out, password) = forward.outgoing(Some("pw"), None).unwrap();
        assert_eq!(out.get(attr::STATE), None, "mfad's State stays with mfad");
        assert_eq!(password.as_deref().map(Vec::as_slice), Some(&b"pw"[..]));

        req.add(attr::EAP_MESSAGE, [2, 0, 0, 5, 1]);
        let eap = Forward::new(&none, &[], &req, secret);
        let err = eap.outgoing(None, None).unwrap_err();
        assert!(err.contains("EAP"), "{err}");
    }
}
