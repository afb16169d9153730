//! End to end: the real `mfad` binary answering Debian's `radclient`, `pam_radius_auth`
//! and raw RADIUS datagrams.

// Tests report failures by panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mfad_core::audit::AuditRecord;
use mfad_core::engine::{Prompt, PromptKind};
use mfad_core::store::PendingTxn;
use mfad_radius_proto::{
    attr, encode_request, encrypt_user_password, verify_response, Code, Packet,
};
use mfad_testkit::{
    accepts_until_killed, assert_every_accept_recorded, assert_lockout_held, audit_reasons,
    hotp_burst, nas, oathtool_hotp, pam_login, Mfad, Radclient, Running,
};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

const SECRET: &str = "a-shared-secret-of-28-bytes!";
/// RFC 4226 Appendix D's key "12345678901234567890" in base32.
const SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

fn mfad() -> Mfad {
    Mfad::new(Path::new(env!("CARGO_BIN_EXE_mfad")))
}

fn hotp(counter: u64) -> String {
    oathtool_hotp(SEED, counter, 6)
}

/// A node with one client (127.0.0.1) and a user `alice` holding an HOTP token.
fn node_with_alice(extra_client_flags: &[&str]) -> Mfad {
    let node = mfad();
    node.add_client_with("vpn", "127.0.0.1", SECRET, extra_client_flags);
    node.cli_ok([
        "user",
        "add",
        "alice",
        "--email",
        "alice@example.org",
        "--given-name",
        "Alice",
    ]);
    node.cli_ok([
        "token", "add", "alice", "--type", "hotp", "--secret", SEED, "--serial", "hw-1",
    ]);
    node
}

fn login(server: &Running, user: &str, password: &str) -> mfad_testkit::RadReply {
    Radclient::new(server.radius_addr(), SECRET)
        .send("auth", &[("User-Name", user), ("User-Password", password)])
}

#[test]
fn inline_code_is_accepted_once_and_a_replay_is_rejected() {
    let node = node_with_alice(&[]);
    let server = node.start();
    let first = login(&server, "alice", &hotp(0));
    assert!(first.is("Access-Accept"), "{}", first.output);
    assert!(
        first.get("Message-Authenticator").is_some(),
        "replies carry Message-Authenticator"
    );
    let replay = login(&server, "alice", &hotp(0));
    assert!(replay.is("Access-Reject"), "{}", replay.output);
    assert!(
        replay.get("Reply-Message").is_none(),
        "a reject says nothing about why"
    );
    let next = login(&server, "ALICE", &hotp(1));
    assert!(
        next.is("Access-Accept"),
        "usernames are case-insensitive: {}",
        next.output
    );
    server.stop();

    let log = node.cli_ok(["log", "--user", "alice", "--format", "json"]);
    let records: serde_json::Value = serde_json::from_str(&log).unwrap();
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 3, "{log}");
    assert_eq!(records[1]["result"], "reject");
    assert_eq!(records[1]["reason"], "replayed_code");
    assert_eq!(records[2]["result"], "accept");
    assert_eq!(records[2]["device"], "hw-1");
    assert_eq!(records[2]["method"], "hotp");
    assert_eq!(records[2]["given_name"], "Alice");
    assert_eq!(records[2]["email"], "alice@example.org");
    assert_eq!(records[2]["client_name"], "vpn");
    assert_eq!(records[2]["client_ip"], "127.0.0.1");
    assert_eq!(records[2]["server_name"], "test-node");
    assert_eq!(records[2]["server_ip"], "127.0.0.1");
}

#[test]
fn wrong_codes_and_unknown_users_are_rejected() {
    let node = node_with_alice(&[]);
    let server = node.start();
    assert!(login(&server, "alice", "000000").is("Access-Reject"));
    assert!(
        login(&server, "alice", &hotp(50)).is("Access-Reject"),
        "beyond the look-ahead window"
    );
    assert!(login(&server, "mallory", &hotp(0)).is("Access-Reject"));
    // The look-ahead window (10) accepts a code a few presses ahead.
    assert!(login(&server, "alice", &hotp(5)).is("Access-Accept"));
    assert!(
        login(&server, "alice", &hotp(3)).is("Access-Reject"),
        "counters only move forward"
    );
    server.stop();
}

#[test]
fn challenge_flow_asks_for_the_code_and_the_state_is_single_use() {
    let node = node_with_alice(&[]);
    let server = node.start();
    let client = Radclient::new(server.radius_addr(), SECRET);
    let challenge = client.send(
        "auth",
        &[
            ("User-Name", "alice"),
            ("User-Password", "my-directory-password"),
        ],
    );
    assert!(challenge.is("Access-Challenge"), "{}", challenge.output);
    assert!(
        challenge.get("Reply-Message").unwrap().contains("code"),
        "{}",
        challenge.output
    );
    let state = challenge.get("State").unwrap().to_string();
    let code = hotp(0);
    let answer = [
        ("User-Name", "alice"),
        ("User-Password", code.as_str()),
        ("State", state.as_str()),
    ];
    assert!(client.send("auth", &answer).is("Access-Accept"));
    let code = hotp(1);
    let again = [
        ("User-Name", "alice"),
        ("User-Password", code.as_str()),
        ("State", state.as_str()),
    ];
    assert!(
        client.send("auth", &again).is("Access-Reject"),
        "a State is single-use"
    );
    server.stop();
}

#[test]
fn challenge_prompt_mode_always_challenges() {
    let node = node_with_alice(&["--prompt", "challenge"]);
    let server = node.start();
    let reply = login(&server, "alice", &hotp(0));
    assert!(reply.is("Access-Challenge"), "{}", reply.output);
    server.stop();
}

/// Adds `user` with an HOTP token and `language` (`None`: no `--language`).
fn add_user_in(node: &Mfad, user: &str, language: Option<&str>) {
    let mut args = vec!["user", "add", user];
    if let Some(language) = language {
        args.extend(["--language", language]);
    }
    node.cli_ok(args);
    let serial = format!("hw-{user}");
    node.cli_ok([
        "token", "add", user, "--type", "hotp", "--secret", SEED, "--serial", &serial,
    ]);
}

/// The Reply-Message of the challenge that asks `user` for the code.
fn code_prompt(server: &Running, user: &str) -> String {
    let reply = login(server, user, &hotp(0));
    assert!(reply.is("Access-Challenge"), "{}", reply.output);
    reply.get("Reply-Message").unwrap().to_string()
}

const ENTER_CODE_EN: &str = "Enter the code from your authenticator";
const ENTER_CODE_DE: &str = "Geben Sie den Code aus Ihrer Authenticator-App ein";

#[test]
fn a_german_user_gets_the_german_reply_message() {
    let node = node_with_alice(&["--prompt", "challenge"]);
    add_user_in(&node, "bernd", Some("de-DE"));
    let server = node.start();
    assert_eq!(code_prompt(&server, "bernd"), ENTER_CODE_DE);
    assert_eq!(
        code_prompt(&server, "alice"),
        ENTER_CODE_EN,
        "a user without a language keeps the server's (English)"
    );
    server.stop();
}

#[test]
fn a_language_without_texts_falls_back_to_english() {
    let node = node_with_alice(&["--prompt", "challenge"]);
    add_user_in(&node, "amelie", Some("fr"));
    let server = node.start();
    assert_eq!(code_prompt(&server, "amelie"), ENTER_CODE_EN);
    server.stop();
}

#[test]
fn the_server_language_applies_to_users_without_one() {
    let node = node_with_alice(&["--prompt", "challenge"]).with_language("de");
    add_user_in(&node, "emma", Some("en"));
    let server = node.start();
    assert_eq!(code_prompt(&server, "alice"), ENTER_CODE_DE);
    assert_eq!(
        code_prompt(&server, "emma"),
        ENTER_CODE_EN,
        "a user's own language comes first"
    );
    server.stop();
}

#[test]
fn pin_plus_code_and_pin_change() {
    let node = node_with_alice(&[]);
    node.cli_ok(["user", "update", "alice", "--pin-mode", "pin"]);
    let weak = node.cli_err(["user", "set-pin", "alice", "--pin", "1234"]);
    assert!(weak.contains("sequential"), "{weak}");
    node.cli_ok([
        "user",
        "set-pin",
        "alice",
        "--pin",
        "2580",
        "--change-required",
    ]);
    let server = node.start();
    let client = Radclient::new(server.radius_addr(), SECRET);

    assert!(
        login(&server, "alice", &format!("9999{}", hotp(0))).is("Access-Reject"),
        "wrong PIN"
    );
    let no_pin = login(&server, "alice", &hotp(0));
    assert!(
        no_pin.is("Access-Challenge"),
        "a code without the PIN is asked for PIN and code"
    );
    assert!(no_pin
        .get("Reply-Message")
        .unwrap()
        .contains("PIN followed by the code"));

    let prompt = login(&server, "alice", &format!("2580{}", hotp(0)));
    assert!(
        prompt.is("Access-Challenge"),
        "PIN change required: {}",
        prompt.output
    );
    assert!(prompt.get("Reply-Message").unwrap().contains("new PIN"));
    let state = prompt.get("State").unwrap().to_string();
    let weak = client.send(
        "auth",
        &[
            ("User-Name", "alice"),
            ("User-Password", "1111"),
            ("State", &state),
        ],
    );
    assert!(
        weak.is("Access-Challenge"),
        "a weak PIN is refused and asked again"
    );
    assert!(
        weak.get("Reply-Message")
            .unwrap()
            .contains("PIN not accepted"),
        "{}",
        weak.output
    );
    let state = weak.get("State").unwrap().to_string();
    let confirm = client.send(
        "auth",
        &[
            ("User-Name", "alice"),
            ("User-Password", "3197"),
            ("State", &state),
        ],
    );
    assert!(confirm.is("Access-Challenge"), "{}", confirm.output);
    let state = confirm.get("State").unwrap().to_string();
    let done = client.send(
        "auth",
        &[
            ("User-Name", "alice"),
            ("User-Password", "3197"),
            ("State", &state),
        ],
    );
    assert!(done.is("Access-Accept"), "{}", done.output);

    assert!(
        login(&server, "alice", &format!("2580{}", hotp(1))).is("Access-Reject"),
        "old PIN"
    );
    assert!(
        login(&server, "alice", &format!("3197{}", hotp(2))).is("Access-Accept"),
        "new PIN"
    );
    server.stop();
}

#[test]
fn lockout_rejects_even_the_right_code_until_unlocked() {
    let node = node_with_alice(&[]).with_config("[policy]\nmax_failures = 3\n");
    let server = node.start();
    for _ in 0..3 {
        assert!(login(&server, "alice", "000000").is("Access-Reject"));
    }
    assert!(
        login(&server, "alice", &hotp(0)).is("Access-Reject"),
        "locked: right code rejected too"
    );
    let show = node.cli_ok(["user", "show", "alice"]);
    assert!(show.contains("locked"), "{show}");
    node.cli_ok(["user", "unlock", "alice"]);
    assert!(login(&server, "alice", &hotp(1)).is("Access-Accept"));
    server.stop();
    let log = node.cli_ok(["log", "--user", "alice", "--format", "csv"]);
    assert!(log.contains(",locked,"), "{log}");
}

/// 200 wrong codes in flight at once: each attempt takes its slot in the store before its
/// code decides anything, so no more codes are checked than the lockout allows, and the
/// right code after them is refused.
#[test]
fn a_burst_of_guesses_checks_no_more_codes_than_the_lockout_allows() {
    let node =
        node_with_alice(&[]).with_config("reject_delay_ms = 0\n[policy]\nmax_failures = 10\n");
    let server = node.start();
    let burst = hotp_burst(&[server.radius_addr()], SECRET, "alice", SEED, 200);
    server.stop();
    assert_lockout_held(&node, "alice", &burst, 200, 10);
}

/// Twenty users log in as fast as they can; the server is killed (SIGKILL) in the middle
/// of it. After a restart, every Accept the clients received has its audit record: the
/// record is committed before the reply leaves, with the code it used.
#[test]
fn every_accept_a_client_saw_has_its_audit_record_after_sigkill() {
    let node = mfad().with_config("reject_delay_ms = 0\n");
    node.add_client("vpn", "127.0.0.1", SECRET);
    let users: Vec<String> = (0..20).map(|i| format!("u{i}")).collect();
    for user in &users {
        node.cli_ok(["user", "add", user]);
        node.cli_ok(["token", "add", user, "--type", "hotp", "--secret", SEED]);
    }
    let seen = accepts_until_killed(node.start(), SECRET, SEED, &users, 300);
    node.start().stop();
    assert_every_accept_recorded(&node, &users, &seen);
}

#[test]
fn bypass_lets_the_user_in_once() {
    let node = node_with_alice(&[]);
    let server = node.start();
    node.cli_ok(["bypass", "alice", "--seconds", "300"]);
    assert!(login(&server, "alice", "anything").is("Access-Accept"));
    assert!(
        login(&server, "alice", "anything").is("Access-Challenge"),
        "a bypass is used once"
    );
    server.stop();
}

#[test]
fn disabled_and_blocked_users_are_rejected() {
    let node = node_with_alice(&[]);
    let server = node.start();
    node.cli_ok(["user", "disable", "alice"]);
    assert!(login(&server, "alice", &hotp(0)).is("Access-Reject"));
    node.cli_ok(["user", "enable", "alice"]);
    node.cli_ok(["user", "block", "alice", "--reason", "lost phone"]);
    assert!(login(&server, "alice", &hotp(1)).is("Access-Reject"));
    node.cli_ok(["user", "unblock", "alice"]);
    assert!(login(&server, "alice", &hotp(2)).is("Access-Accept"));
    server.stop();
}

#[test]
fn unknown_users_pass_on_the_first_factor_when_the_client_allows_it() {
    let node = node_with_alice(&["--require-user-match", "false"]);
    let server = node.start();
    assert!(login(&server, "contractor", "whatever").is("Access-Accept"));
    assert!(
        login(&server, "alice", "000000").is("Access-Reject"),
        "known users still need a code"
    );
    server.stop();
}

#[test]
fn requests_without_message_authenticator_are_dropped_unless_the_client_allows_them() {
    let node = node_with_alice(&[]);
    let server = node.start();
    let bare = Radclient::new(server.radius_addr(), SECRET).with_message_authenticator(false);
    let reply = bare.send(
        "auth",
        &[("User-Name", "alice"), ("User-Password", &hotp(0))],
    );
    assert!(reply.is_silence(), "dropped: {}", reply.output);
    assert!(
        login(&server, "alice", &hotp(0)).is("Access-Accept"),
        "the dropped code was not used"
    );
    server.stop();

    let lenient = node_with_alice(&["--require-message-authenticator", "false"]);
    let server = lenient.start();
    let bare = Radclient::new(server.radius_addr(), SECRET).with_message_authenticator(false);
    let reply = bare.send(
        "auth",
        &[("User-Name", "alice"), ("User-Password", &hotp(0))],
    );
    assert!(reply.is("Access-Accept"), "{}", reply.output);
    server.stop();
}

#[test]
fn wrong_secrets_and_unknown_sources_get_no_answer() {
    let node = mfad();
    node.add_client("far", "10.9.0.0/16", SECRET);
    node.cli_ok(["user", "add", "alice"]);
    let server = node.start();
    let reply = login(&server, "alice", "123456");
    assert!(reply.is_silence(), "unknown source: {}", reply.output);
    server.stop();

    let node = node_with_alice(&[]);
    let server = node.start();
    let wrong = Radclient::new(server.radius_addr(), "not-the-shared-secret-at-all");
    let reply = wrong.send(
        "auth",
        &[("User-Name", "alice"), ("User-Password", &hotp(0))],
    );
    assert!(reply.is_silence(), "wrong secret: {}", reply.output);
    assert!(login(&server, "alice", &hotp(0)).is("Access-Accept"));
    server.stop();
}

/// An Access-Request as raw bytes, with Message-Authenticator.
fn raw_request(id: u8, authenticator: [u8; 16], user: &str, password: &str) -> Vec<u8> {
    let mut packet = Packet::new(Code::AccessRequest, id, authenticator);
    packet.add(attr::USER_NAME, user);
    packet.add(
        attr::USER_PASSWORD,
        encrypt_user_password(password.as_bytes(), SECRET.as_bytes(), &authenticator).unwrap(),
    );
    encode_request(&packet, SECRET.as_bytes(), true).unwrap()
}

fn exchange(socket: &UdpSocket, to: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    socket.send_to(bytes, to).unwrap();
    let mut buf = [0u8; 4096];
    match socket.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

#[test]
fn replies_carry_message_authenticator_first_and_retransmissions_get_the_cached_reply() {
    let node = node_with_alice(&[]);
    let server = node.start();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let auth = [0x5a; 16];
    let request = raw_request(7, auth, "alice", &hotp(0));

    let reply = exchange(&socket, server.radius_addr(), &request).expect("a reply");
    assert_eq!(reply[0], 2, "Access-Accept");
    assert_eq!(reply[1], 7, "identifier echoed");
    assert_eq!(
        reply[20],
        attr::MESSAGE_AUTHENTICATOR,
        "Message-Authenticator is the first attribute"
    );
    assert_eq!(reply[21], 18);
    assert!(
        verify_response(&reply, &auth, SECRET.as_bytes()),
        "Response Authenticator and MA are valid"
    );

    // RFC 5080 §2.2.2: the same source, identifier and authenticator is a retransmission.
    let again = exchange(&socket, server.radius_addr(), &request).expect("a reply");
    assert_eq!(
        again, reply,
        "the cached reply, not a second decision (which would be a replay reject)"
    );
    server.stop();
    let log = node.cli_ok(["log", "--format", "json"]);
    let records: serde_json::Value = serde_json::from_str(&log).unwrap();
    assert_eq!(
        records.as_array().unwrap().len(),
        1,
        "one attempt, one audit record: {log}"
    );
}

#[test]
fn status_server_and_accounting_are_answered() {
    let node = node_with_alice(&[]);
    let server = node.start();
    let client = Radclient::new(server.radius_addr(), SECRET);
    let status = client.send("status", &[]);
    assert!(status.is("Access-Accept"), "{}", status.output);
    let acct = client.send(
        "acct",
        &[
            ("User-Name", "alice"),
            ("Acct-Status-Type", "Start"),
            ("Acct-Session-Id", "s1"),
        ],
    );
    assert!(acct.is("Accounting-Response"), "{}", acct.output);
    server.stop();
}

#[test]
fn an_accepted_code_stays_used_after_sigkill_and_restart() {
    let node = node_with_alice(&[]);
    let server = node.start();
    assert!(login(&server, "alice", &hotp(0)).is("Access-Accept"));
    server.kill9();
    let server = node.start();
    assert!(login(&server, "alice", &hotp(0)).is("Access-Reject"));
    assert!(login(&server, "alice", &hotp(1)).is("Access-Accept"));
    server.stop();
}

#[test]
fn clients_added_while_serving_are_answered_without_restart() {
    let node = mfad();
    node.cli_ok(["user", "add", "alice"]);
    node.cli_ok(["token", "add", "alice", "--type", "hotp", "--secret", SEED]);
    let server = node.start();
    node.add_client("vpn", "127.0.0.0/8", SECRET);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut counter = 0;
    loop {
        let reply = Radclient::new(server.radius_addr(), SECRET)
            .with_timeout(Duration::from_secs(1))
            .send("status", &[]);
        if reply.is("Access-Accept") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "client not picked up within 15 s"
        );
        counter += 1;
    }
    assert!(counter < 15);
    assert!(login(&server, "alice", &hotp(0)).is("Access-Accept"));
    server.stop();
}

#[test]
fn pam_radius_auth_login_with_pin_and_code() {
    // pam_radius_auth does not send Message-Authenticator, so its client needs the flag.
    let node = node_with_alice(&["--require-message-authenticator", "false"]);
    let server = node.start();
    let ok = pam_login(server.radius_addr(), SECRET, "alice", &[&hotp(0)]);
    assert!(ok.success, "{}", ok.output);
    let bad = pam_login(server.radius_addr(), SECRET, "alice", &["000000"]);
    assert!(!bad.success, "{}", bad.output);
    // Challenge through PAM: a non-code password, then the code at the prompt.
    let challenged = pam_login(
        server.radius_addr(),
        SECRET,
        "alice",
        &["directory-password", &hotp(1)],
    );
    assert!(challenged.success, "{}", challenged.output);
    server.stop();
}

/// The secret of the second client, `wifi` at 127.0.0.2.
const WIFI_SECRET: &str = "another-secret-for-the-wifi!";

/// [`node_with_alice`] with a second client, `wifi`, at 127.0.0.2 and `config` appended.
fn node_with_two_clients(config: &str) -> Mfad {
    let node = node_with_alice(&[]).with_config(config);
    node.add_client("wifi", "127.0.0.2", WIFI_SECRET);
    node
}

/// An Access-Request from `source` (a loopback address: all of 127/8 is local) through
/// the RFC client, with `secret`; the reply's code, or `None` for no answer.
fn login_from(
    server: &Running,
    source: &str,
    secret: &str,
    user: &str,
    password: &str,
) -> Option<u8> {
    let socket = UdpSocket::bind((source, 0)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let authenticator: [u8; 16] = fresh_authenticator();
    let request = nas::Request::access(1, authenticator, secret.as_bytes(), user, Some(password))
        .encode(secret.as_bytes());
    let reply = exchange(&socket, server.radius_addr(), &request)?;
    let reply = nas::verify_reply(&reply, &authenticator, secret.as_bytes()).unwrap();
    Some(reply.code)
}

/// A Request Authenticator unique to this process's requests: the retransmission cache
/// must never take one for another.
fn fresh_authenticator() -> [u8; 16] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let mut a = [0x3c; 16];
    a[..8].copy_from_slice(&NEXT.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    a[8..12].copy_from_slice(&std::process::id().to_be_bytes());
    a
}

#[test]
fn user_cache_accepts_a_wrong_code_from_any_client_after_one_accept() {
    let node = node_with_two_clients(
        "reject_delay_ms = 0\n[policy]\ncache = \"user\"\ncache_seconds = 300\n",
    );
    let server = node.start();
    assert_eq!(
        login_from(&server, "127.0.0.2", WIFI_SECRET, "alice", "000000"),
        Some(nas::ACCESS_REJECT),
        "nothing cached before the first Accept"
    );
    assert!(login(&server, "alice", &hotp(0)).is("Access-Accept"));
    assert!(
        login(&server, "alice", "000000").is("Access-Accept"),
        "cached for the same client"
    );
    assert_eq!(
        login_from(&server, "127.0.0.2", WIFI_SECRET, "alice", "000000"),
        Some(nas::ACCESS_ACCEPT),
        "cached for the user, whichever client asks"
    );
    server.stop();
    let reasons = audit_reasons(&node, "alice");
    assert_eq!(reasons.get("cached"), Some(&2), "{reasons:?}");
    assert_eq!(reasons.get("accepted"), Some(&1), "{reasons:?}");
}

#[test]
fn user_client_cache_accepts_a_wrong_code_only_from_the_same_client() {
    let node = node_with_two_clients(
        "reject_delay_ms = 0\n[policy]\ncache = \"user_client\"\ncache_seconds = 300\n",
    );
    let server = node.start();
    assert!(login(&server, "alice", &hotp(0)).is("Access-Accept"));
    assert!(
        login(&server, "alice", "000000").is("Access-Accept"),
        "cached for the same user and client"
    );
    assert_eq!(
        login_from(&server, "127.0.0.2", WIFI_SECRET, "alice", "000000"),
        Some(nas::ACCESS_REJECT),
        "another client is not covered by the cache"
    );
    assert_eq!(
        login_from(&server, "127.0.0.2", WIFI_SECRET, "alice", &hotp(1)),
        Some(nas::ACCESS_ACCEPT),
        "the other client takes the right code"
    );
    assert_eq!(
        login_from(&server, "127.0.0.2", WIFI_SECRET, "alice", "000000"),
        Some(nas::ACCESS_ACCEPT),
        "and is cached on its own from then on"
    );
    server.stop();
    let reasons = audit_reasons(&node, "alice");
    assert_eq!(reasons.get("cached"), Some(&2), "{reasons:?}");
    assert_eq!(reasons.get("wrong_code"), Some(&1), "{reasons:?}");
}

/// Polls `attempt` every 200 ms until it returns true; fails after `deadline`.
fn poll_until(what: &str, deadline: Duration, mut attempt: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !attempt() {
        assert!(Instant::now() < end, "{what}: not within {deadline:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_lockout_ends_by_itself_after_lockout_seconds() {
    let node = node_with_alice(&[])
        .with_config("reject_delay_ms = 0\n[policy]\nmax_failures = 2\nlockout_seconds = 2\n");
    let server = node.start();
    assert!(login(&server, "alice", "000000").is("Access-Reject"));
    assert!(login(&server, "alice", "111111").is("Access-Reject"));
    let locked_at = Instant::now();
    assert!(
        login(&server, "alice", &hotp(0)).is("Access-Reject"),
        "locked: the right code is rejected too"
    );
    // A locked attempt checks no code, so the same code is still unused when it ends.
    poll_until("the lockout ends", Duration::from_secs(15), || {
        login(&server, "alice", &hotp(0)).is("Access-Accept")
    });
    let held = locked_at.elapsed();
    server.stop();
    // Lockouts are counted in whole seconds: 2 s from a moment within the first second.
    assert!(held >= Duration::from_secs(1), "lifted after {held:?}");
    let reasons = audit_reasons(&node, "alice");
    assert_eq!(reasons.get("wrong_code"), Some(&2), "{reasons:?}");
    assert!(
        reasons.get("locked").is_some_and(|&n| n >= 1),
        "{reasons:?}"
    );
    assert_eq!(reasons.get("accepted"), Some(&1), "{reasons:?}");
}

#[test]
fn an_unused_bypass_expires() {
    let node = node_with_alice(&[]);
    let server = node.start();
    node.cli_ok(["bypass", "alice", "--seconds", "2"]);
    let bypass_until = |node: &Mfad| {
        let show = node.cli_ok(["user", "show", "alice"]);
        let line = show
            .lines()
            .find(|l| l.starts_with("bypass until"))
            .unwrap_or_else(|| panic!("no bypass line: {show}"))
            .to_owned();
        line.trim_start_matches("bypass until").trim().to_owned()
    };
    assert_ne!(bypass_until(&node), "-", "the bypass was granted");
    poll_until("the bypass expires", Duration::from_secs(15), || {
        bypass_until(&node) == "-"
    });
    let reply = login(&server, "alice", "anything");
    assert!(
        reply.is("Access-Challenge"),
        "an expired bypass lets no one in; the code is asked for: {}",
        reply.output
    );
    server.stop();
    let reasons = audit_reasons(&node, "alice");
    assert_eq!(reasons.get("bypass"), None, "{reasons:?}");
}

#[test]
fn rejects_wait_for_reject_delay_and_accepts_do_not() {
    let node = node_with_alice(&[]).with_config("reject_delay_ms = 600\n");
    let server = node.start();
    let timed = |password: &str| {
        let start = Instant::now();
        let reply = login(&server, "alice", password);
        (reply, start.elapsed())
    };
    let (reply, took) = timed("000000");
    assert!(reply.is("Access-Reject"), "{}", reply.output);
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_millis(1500),
        "the Reject came after {took:?}"
    );
    let (reply, took) = timed(&hotp(0));
    assert!(reply.is("Access-Accept"), "{}", reply.output);
    assert!(
        took < Duration::from_millis(500),
        "the Accept came after {took:?}"
    );
    server.stop();
}

/// A login waiting for a call or SMS that no node finished before it expired (its node
/// died while it waited) gets its audit record from the sweep `mfad serve` runs when it
/// starts (and hourly after).
#[test]
fn serve_records_the_pending_logins_that_expired_unfinished() {
    let node = node_with_alice(&[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let now = i64::try_from(now).unwrap();
    let pending = PendingTxn {
        txn: b"its-node-died".to_vec(),
        draft: AuditRecord {
            id: "0123456789abcdef0123456789abcdef".into(),
            time_ms: (now - 600) * 1000,
            username: "alice".into(),
            method: "call".into(),
            channel: "radius".into(),
            ..AuditRecord::default()
        },
        prompt: Prompt {
            kind: PromptKind::AnswerCall,
            language: "en".into(),
        },
        decision: None,
        expires_at: now - 60,
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let key = node.dir().join("mfad.key");
        let store = mfad_store::open(node.store_url(), &key, Default::default())
            .await
            .unwrap();
        store.put_pending(&pending, now - 600).await.unwrap();
    });
    assert!(audit_reasons(&node, "alice").is_empty(), "no record yet");

    let server = node.start();
    assert!(
        server.wait_for_log("recorded 1 expired logins", Duration::from_secs(30)),
        "{}",
        server.logs()
    );
    server.stop();
    assert_eq!(
        audit_reasons(&node, "alice")
            .into_iter()
            .collect::<Vec<_>>(),
        [("challenge_expired".to_owned(), 1)]
    );
}

/// `[audit] retention_days = 0` keeps nothing from before the purge `mfad serve` runs when
/// it starts (and hourly after): the records of an earlier run are gone from `mfad log`.
#[test]
fn serve_purges_audit_records_older_than_the_retention_period() {
    let node = node_with_alice(&[]).with_config("reject_delay_ms = 0\n");
    let server = node.start();
    assert!(login(&server, "alice", &hotp(0)).is("Access-Accept"));
    assert!(login(&server, "alice", "000000").is("Access-Reject"));
    server.stop();
    assert_eq!(audit_reasons(&node, "alice").values().sum::<usize>(), 2);

    let node = node.with_config("[audit]\nretention_days = 0\n");
    let server = node.start();
    assert!(
        server.wait_for_log("purged 2 audit records", Duration::from_secs(30)),
        "{}",
        server.logs()
    );
    assert!(login(&server, "alice", &hotp(1)).is("Access-Accept"));
    server.stop();
    let reasons = audit_reasons(&node, "alice");
    assert_eq!(
        reasons.into_iter().collect::<Vec<_>>(),
        [("accepted".to_owned(), 1)],
        "only the login after the purge is left"
    );
}
