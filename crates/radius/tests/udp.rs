//! The RADIUS front-end over real UDP on 127.0.0.1, with the real engine and SQLite store.
//!
//! The NAS is never mfad's own codec, so a codec bug cannot hide itself by being on
//! both ends: FreeRADIUS' `radclient` where a plain exchange will do, and testkit's
//! [`nas`] client, written from the RFCs, where a test needs byte-level control
//! (retransmissions with the same Identifier and authenticator, forged or unsigned
//! packets, other source addresses).
// The harness helpers below are test code too: let them unwrap like tests.
#![cfg(test)]

use mfad_core::audit::AuditQuery;
use mfad_core::clock::testing::{CountingRandom, FixedClock};
use mfad_core::engine::{Engine, ServerInfo};
use mfad_core::model::{FirstFactor, NewClient, NewToken, NewUser, Prompt, Secret};
use mfad_core::otp::{format_code, hotp, Algorithm, OtpKind};
use mfad_core::policy::Policy;
use mfad_core::store::Store;
use mfad_radius::{RadiusOptions, RadiusServer, Stats, StatsSnapshot};
use mfad_testkit::nas::{self, Reply, Request};
use mfad_testkit::{RadReply, Radclient};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const SECRET: &[u8] = b"a-shared-secret-of-28-bytes!";
/// RFC 4226 Appendix D.
const KEY: &[u8] = b"12345678901234567890";
const T0: i64 = 1_795_564_800;
/// Long enough for a reply on a loaded machine, short enough for "no reply".
const NO_REPLY: Duration = Duration::from_millis(400);
const REPLY: Duration = Duration::from_secs(5);

fn code(counter: u64) -> String {
    format_code(hotp(Algorithm::Sha1, KEY, counter, 6), 6)
}

fn new_client(name: &str, address: &str, prompt: Prompt, require_ma: bool) -> NewClient {
    NewClient {
        name: name.into(),
        address: address.parse().unwrap(),
        secret: String::from_utf8(SECRET.to_vec()).unwrap(),
        first_factor: FirstFactor::None,
        prompt,
        require_message_authenticator: require_ma,
        require_user_match: true,
        code_separator: String::new(),
        targets: Vec::new(),
    }
}

struct Harness {
    addr: SocketAddr,
    stats: Arc<Stats>,
    store: Arc<dyn Store>,
    stop: Option<oneshot::Sender<()>>,
    running: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// A server with `alice` (HOTP, counter 0) and the given clients.
    async fn start(clients: &[NewClient], options: RadiusOptions) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("m.db").display());
        let store = mfad_store::open(&url, &dir.path().join("key"), Default::default())
            .await
            .unwrap();
        let user = store
            .create_user(
                &NewUser {
                    username: "alice".into(),
                    ..Default::default()
                },
                T0,
            )
            .await
            .unwrap();
        let token = NewToken {
            serial: "hw-1".into(),
            user_id: Some(user.id),
            kind: OtpKind::Hotp,
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
            secret: Secret::new(KEY.to_vec()),
            next: 0,
        };
        store.create_tokens(&[token], T0).await.unwrap();
        for c in clients {
            store.create_client(c, T0).await.unwrap();
        }
        let engine = Arc::new(Engine::new(
            store.clone(),
            Arc::new(FixedClock::at(T0)),
            Arc::new(CountingRandom::default()),
            Policy::default(),
            ServerInfo::default(),
        ));
        let server = RadiusServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            engine,
            store.clone(),
            options,
        )
        .await
        .unwrap();
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);
        let stats = server.stats();
        let (stop, stopped) = oneshot::channel::<()>();
        let running = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Harness {
            addr,
            stats,
            store,
            stop: Some(stop),
            running: Some(running),
            _dir: dir,
        }
    }

    async fn default_with(clients: &[NewClient]) -> Harness {
        Harness::start(
            clients,
            RadiusOptions::default().with_reject_delay(Duration::ZERO),
        )
        .await
    }

    fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Polls the counters until `done` holds; panics after [`REPLY`].
    async fn wait_for(&self, done: impl Fn(&StatsSnapshot) -> bool) {
        let deadline = tokio::time::Instant::now() + REPLY;
        loop {
            let s = self.stats();
            if done(&s) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "still {s:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn audit_records(&self) -> usize {
        self.store.flush().await.unwrap();
        self.store
            .query_audit(&AuditQuery::default())
            .await
            .unwrap()
            .len()
    }

    /// Stops the server and proves `run` returns.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).unwrap();
        }
        let running = self.running.take().unwrap();
        tokio::time::timeout(Duration::from_secs(10), running)
            .await
            .expect("run returns after shutdown")
            .unwrap();
    }
}

/// A NAS: one UDP socket on a chosen loopback address.
struct Nas {
    socket: UdpSocket,
    server: SocketAddr,
}

impl Nas {
    async fn on(ip: &str, server: SocketAddr) -> Nas {
        let socket = UdpSocket::bind(format!("{ip}:0")).await.unwrap();
        Nas { socket, server }
    }

    async fn send(&self, bytes: &[u8]) {
        self.socket.send_to(bytes, self.server).await.unwrap();
    }

    async fn recv(&self, wait: Duration) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(wait, self.socket.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) => {
                assert_eq!(from, self.server);
                buf.truncate(n);
                Some(buf)
            }
            Ok(Err(err)) => panic!("receive failed: {err}"),
            Err(_) => None,
        }
    }

    async fn exchange(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        self.send_and_recv(bytes, REPLY).await
    }

    async fn send_and_recv(&self, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
        self.send(bytes).await;
        self.recv(wait).await
    }

    /// Sends and waits briefly: for requests that must get no answer.
    async fn unanswered(&self, bytes: &[u8]) -> bool {
        self.send(bytes).await;
        self.recv(NO_REPLY).await.is_none()
    }
}

/// An Access-Request for `user` with the attributes given, Message-Authenticator
/// included when `sign`.
fn access_request(
    id: u8,
    authenticator: [u8; 16],
    user: &str,
    password: Option<&str>,
    extra: &[(u8, &[u8])],
    sign: bool,
) -> Vec<u8> {
    let mut r = Request::access(id, authenticator, SECRET, user, password);
    for (typ, value) in extra {
        r.add(*typ, value);
    }
    r.sign = sign;
    r.encode(SECRET)
}

/// The reply checked by the RFC client: Response Authenticator, and a
/// Message-Authenticator that verifies and comes first (BlastRADIUS).
fn decode_verified(reply: &[u8], request_authenticator: &[u8; 16]) -> Reply {
    nas::verify_reply(reply, request_authenticator, SECRET)
        .unwrap_or_else(|why| panic!("the reply does not verify: {why}"))
}

/// One exchange with FreeRADIUS' radclient (which verifies the reply itself), off the
/// runtime's threads.
async fn radclient(server: SocketAddr, attrs: &[(&str, &str)]) -> RadReply {
    let attrs: Vec<(String, String)> = attrs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    let secret = String::from_utf8(SECRET.to_vec()).unwrap();
    tokio::task::spawn_blocking(move || {
        let attrs: Vec<(&str, &str)> = attrs
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        Radclient::new(server, &secret).send("auth", &attrs)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_code_is_accepted_and_its_replay_rejected_without_a_reason() {
    let h = Harness::default_with(&[new_client("vpn", "127.0.0.1/32", Prompt::Auto, true)]).await;
    let code = code(0);
    let login = [("User-Name", "alice"), ("User-Password", code.as_str())];

    let accept = radclient(h.addr, &login).await;
    assert!(accept.is("Access-Accept"), "{}", accept.output);
    let reject = radclient(h.addr, &login).await;
    assert!(reject.is("Access-Reject"), "{}", reject.output);
    assert!(
        reject
            .attrs
            .iter()
            .all(|(name, _)| name == "Message-Authenticator"),
        "nothing but Message-Authenticator: {}",
        reject.output
    );

    let s = h.stats();
    assert_eq!((s.received, s.accepted, s.rejected), (2, 1, 1));
    assert_eq!(h.audit_records().await, 2);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retransmissions_are_never_decided_twice() {
    // The reject delay keeps the first copy in progress, from its arrival, long
    // enough to retransmit during it.
    let options = RadiusOptions::default().with_reject_delay(Duration::from_secs(3));
    let h = Harness::start(
        &[new_client("vpn", "127.0.0.1/32", Prompt::Auto, true)],
        options,
    )
    .await;
    let client = Nas::on("127.0.0.1", h.addr).await;

    let auth = [0x21; 16];
    let wrong = access_request(7, auth, "alice", Some("000000"), &[], true);
    client.send(&wrong).await;
    // Once the server has read the first copy, it is in progress for the reject delay.
    h.wait_for(|s| s.received == 1).await;
    client.send(&wrong).await; // while the first is in progress: dropped
    let first = client.recv(REPLY).await.expect("the first reply");
    assert_eq!(decode_verified(&first, &auth).code, nas::ACCESS_REJECT);
    assert_eq!(
        client.recv(NO_REPLY).await,
        None,
        "one reply for two copies"
    );

    // RFC 5080 §2.2.2: after the reply, a retransmission gets the same octets.
    let again = client.exchange(&wrong).await.expect("the cached reply");
    assert_eq!(again, first);

    // Same for an accept: the cached Accept, not a replay Reject.
    let auth = [0x22; 16];
    let right = access_request(8, auth, "alice", Some(&code(0)), &[], true);
    let accept = client.exchange(&right).await.unwrap();
    assert_eq!(decode_verified(&accept, &auth).code, nas::ACCESS_ACCEPT);
    assert_eq!(client.exchange(&right).await.unwrap(), accept);

    let s = h.stats();
    assert_eq!(s.duplicates, 3);
    assert_eq!((s.accepted, s.rejected), (1, 1));
    assert_eq!(
        h.audit_records().await,
        2,
        "the engine decided each request once"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_carries_state_and_prompt_and_proxy_state_is_echoed() {
    let h =
        Harness::default_with(&[new_client("vpn", "127.0.0.1/32", Prompt::Challenge, true)]).await;

    let challenge = radclient(
        h.addr,
        &[
            ("User-Name", "alice"),
            ("User-Password", "directory-password"),
            ("Proxy-State", "0x686f702d31"),
            ("Proxy-State", "0x686f702d32"),
        ],
    )
    .await;
    assert!(challenge.is("Access-Challenge"), "{}", challenge.output);
    let state = challenge.get("State").expect("State").to_owned();
    let prompt = challenge.get("Reply-Message").expect("Reply-Message");
    assert!(prompt.contains("code"), "{prompt}");
    assert_eq!(
        challenge.get_all("Proxy-State"),
        ["0x686f702d31", "0x686f702d32"],
        "RFC 2865 §5.33: in order"
    );

    let code = code(0);
    let answer = radclient(
        h.addr,
        &[
            ("User-Name", "alice"),
            ("User-Password", &code),
            ("State", &state),
        ],
    )
    .await;
    assert!(answer.is("Access-Accept"), "{}", answer.output);

    let s = h.stats();
    assert_eq!((s.challenged, s.accepted), (1, 1));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_authenticator_is_required_unless_the_client_opts_out() {
    let h = Harness::default_with(&[
        new_client("strict", "127.0.0.1/32", Prompt::Auto, true),
        new_client("lenient", "127.0.0.2/32", Prompt::Auto, false),
    ])
    .await;
    let strict = Nas::on("127.0.0.1", h.addr).await;
    let lenient = Nas::on("127.0.0.2", h.addr).await;

    let unsigned = access_request(1, [0x41; 16], "alice", Some(&code(0)), &[], false);
    assert!(strict.unanswered(&unsigned).await, "dropped without MA");
    assert_eq!(h.stats().dropped_bad_authenticator, 1);

    // A wrong Message-Authenticator is dropped even where MA is optional.
    let mut forged = access_request(2, [0x42; 16], "alice", Some(&code(0)), &[], true);
    forged[22] ^= 1;
    assert!(lenient.unanswered(&forged).await);
    assert_eq!(h.stats().dropped_bad_authenticator, 2);

    // The dropped requests did not use the code.
    let auth = [0x43; 16];
    let reply = lenient
        .exchange(&access_request(
            3,
            auth,
            "alice",
            Some(&code(0)),
            &[],
            false,
        ))
        .await
        .expect("answered without MA");
    assert_eq!(decode_verified(&reply, &auth).code, nas::ACCESS_ACCEPT);
    assert_eq!(h.audit_records().await, 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secrets_and_unknown_sources_get_no_answer() {
    let h = Harness::default_with(&[new_client("vpn", "127.0.0.1/32", Prompt::Auto, true)]).await;
    let known = Nas::on("127.0.0.1", h.addr).await;
    let unknown = Nas::on("127.0.0.3", h.addr).await;

    let request = access_request(1, [0x51; 16], "alice", Some(&code(0)), &[], true);
    for _ in 0..3 {
        assert!(unknown.unanswered(&request).await);
    }
    assert_eq!(h.stats().dropped_unknown_client, 3);

    let mut p = Request::new(nas::ACCESS_REQUEST, 2, [0x52; 16]);
    p.add(nas::USER_NAME, b"alice");
    let other_secret = p.encode(b"not-the-shared-secret");
    assert!(known.unanswered(&other_secret).await);
    assert_eq!(h.stats().dropped_bad_authenticator, 1);
    assert_eq!(h.audit_records().await, 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_server_and_accounting_are_answered() {
    let h = Harness::default_with(&[new_client("vpn", "127.0.0.1/32", Prompt::Auto, true)]).await;
    let client = Nas::on("127.0.0.1", h.addr).await;

    // RFC 5997 §3: Access-Accept, Message-Authenticator required.
    let auth = [0x61; 16];
    let status = Request::new(nas::STATUS_SERVER, 1, auth).encode(SECRET);
    let reply = client.exchange(&status).await.expect("a reply");
    assert_eq!(decode_verified(&reply, &auth).code, nas::ACCESS_ACCEPT);
    let mut unsigned = status.clone();
    unsigned.truncate(20);
    unsigned[3] = 20;
    assert!(client.unanswered(&unsigned).await);

    // RFC 2866 §4.2.
    let mut acct = Request::new(nas::ACCOUNTING_REQUEST, 2, [0; 16]).unsigned();
    acct.add(nas::ACCT_STATUS_TYPE, &1u32.to_be_bytes())
        .add(nas::ACCT_SESSION_ID, b"s1")
        .add(nas::PROXY_STATE, b"p");
    let raw = acct.encode(SECRET);
    let request_auth = nas::request_authenticator(&raw);
    let reply = client.exchange(&raw).await.expect("a reply");
    let response = nas::verify_reply(&reply, &request_auth, SECRET).unwrap();
    assert_eq!(response.code, nas::ACCOUNTING_RESPONSE);
    assert_eq!(response.get(nas::PROXY_STATE), Some(&b"p"[..]));
    let mut tampered = raw.clone();
    *tampered.last_mut().unwrap() ^= 1;
    assert!(client.unanswered(&tampered).await);

    let s = h.stats();
    assert_eq!((s.status_server, s.accounting), (1, 1));
    assert_eq!(s.dropped_bad_authenticator, 2);
    assert_eq!(s.accepted, 0, "Status-Server is not an authentication");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_datagrams_are_dropped_and_the_server_keeps_answering() {
    let h = Harness::default_with(&[new_client("vpn", "127.0.0.1/32", Prompt::Auto, true)]).await;
    let client = Nas::on("127.0.0.1", h.addr).await;
    let good = access_request(9, [0x71; 16], "alice", Some(&code(0)), &[], true);
    let mut accept_sent_to_us = good.clone();
    accept_sent_to_us[0] = 2;
    let bad: Vec<Vec<u8>> = vec![
        vec![],
        vec![1, 2, 3],
        good[..good.len() - 5].to_vec(),
        {
            let mut b = good.clone();
            b[3] = 0xff;
            b
        },
        {
            let mut b = good.clone();
            b[21] = 1;
            b
        },
        vec![1u8; 5000],
        accept_sent_to_us,
    ];
    let count = bad.len() as u64;
    for b in &bad {
        client.send(b).await;
    }
    assert_eq!(client.recv(NO_REPLY).await, None);
    // A reply code sent to the server is no request: dropped before any
    // authenticator is checked.
    assert_eq!(h.stats().dropped_malformed, count);
    let reply = client.exchange(&good).await.expect("still answering");
    assert_eq!(
        decode_verified(&reply, &[0x71; 16]).code,
        nas::ACCESS_ACCEPT
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_added_to_the_store_are_served_without_restart() {
    let options = RadiusOptions::default()
        .with_reject_delay(Duration::ZERO)
        .with_client_refresh(Duration::from_millis(100));
    let h = Harness::start(&[], options).await;
    let client = Nas::on("127.0.0.1", h.addr).await;
    let request = access_request(1, [0x81; 16], "alice", Some(&code(0)), &[], true);
    assert!(client.unanswered(&request).await);

    h.store
        .create_client(&new_client("vpn", "127.0.0.0/8", Prompt::Auto, true), T0)
        .await
        .unwrap();
    // Served after the next reload: asked again, each time with a new identifier (a
    // dropped copy never reaches the duplicate cache), until answered.
    let deadline = tokio::time::Instant::now() + REPLY;
    let mut id = 2;
    let reply = loop {
        let auth = [0x80 + id; 16];
        let request = access_request(id, auth, "alice", Some(&code(0)), &[], true);
        if let Some(reply) = client.send_and_recv(&request, NO_REPLY).await {
            break decode_verified(&reply, &auth);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not served within {REPLY:?} of being added"
        );
        id += 1;
    };
    assert_eq!(reply.code, nas::ACCESS_ACCEPT);

    // Removed: dropped again after the next reload. Status-Server asks without
    // using a code or counting a failure.
    h.store.delete_client("vpn").await.unwrap();
    let deadline = tokio::time::Instant::now() + REPLY;
    for n in 0u32.. {
        // A new identifier and authenticator each time: never a duplicate.
        let auth: [u8; 16] = [n.to_be_bytes(), [0x90; 4], [0x90; 4], [0x90; 4]]
            .concat()
            .try_into()
            .unwrap();
        let status = Request::new(nas::STATUS_SERVER, n as u8, auth).encode(SECRET);
        if client.unanswered(&status).await {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still answered {REPLY:?} after removal"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(h.stats().dropped_unknown_client >= 2);
    h.stop().await;
}
