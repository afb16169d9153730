//! End to end with a real FreeRADIUS as the target of `first_factor = "radius"` clients:
//! PAP and MS-CHAPv2 forwarded through mfad before the code, the target's MPPE keys
//! passed on, the target's own challenge relayed, and failover when targets are down.

// Tests report failures by panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mfad_testkit::{
    attribute_types, oathtool_hotp, FreeRadius, Mfad, MsChapV2, RadReply, Radclient, Running,
    UdpTap,
};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

/// Between the VPN and mfad.
const SECRET: &str = "a-shared-secret-of-28-bytes!";
/// Between mfad and the target: another one, so a reply passed on unchanged would fail.
const TARGET_SECRET: &str = "the-target-secret-of-29-bytes";
/// RFC 4226 Appendix D's key in base32.
const SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

fn hotp(counter: u64) -> String {
    oathtool_hotp(SEED, counter, 6)
}

/// A `[[radius.targets]]` entry. Debian bookworm's FreeRADIUS 3.2.1 predates the
/// BlastRADIUS releases and signs no reply with Message-Authenticator, so the tests do
/// not require it (one test shows what requiring it does).
fn target(name: &str, addr: SocketAddr, timeout_ms: u64) -> String {
    format!(
        "\n[[radius.targets]]\nname = \"{name}\"\naddress = \"{addr}\"\nsecret = \"{TARGET_SECRET}\"\n\
         timeout_ms = {timeout_ms}\nretries = 0\nrequire_message_authenticator = false\n"
    )
}

/// Client flags: the password and the code in one field, split at a comma.
const SEPARATED: &[&str] = &["--code-separator", ","];

/// A node forwarding client `vpn` to `targets`, with alice holding an HOTP token.
fn node(targets: &str, client_flags: &[&str]) -> Mfad {
    let node = Mfad::new(Path::new(env!("CARGO_BIN_EXE_mfad")))
        .with_config(&format!("reject_delay_ms = 0\n{targets}"));
    let mut options = vec!["--first-factor", "radius"];
    options.extend_from_slice(client_flags);
    node.add_client_with("vpn", "127.0.0.1", SECRET, &options);
    node.cli_ok(["user", "add", "alice"]);
    node.cli_ok([
        "token", "add", "alice", "--type", "hotp", "--secret", SEED, "--serial", "hw-1",
    ]);
    node
}

fn send(server: &Running, attrs: &[(&str, &str)]) -> RadReply {
    Radclient::new(server.radius_addr(), SECRET).send("auth", attrs)
}

fn pap(server: &Running, password: &str, state: Option<&str>) -> RadReply {
    let mut attrs = vec![("User-Name", "alice"), ("User-Password", password)];
    if let Some(state) = state {
        attrs.push(("State", state));
    }
    send(server, &attrs)
}

fn last_reason(node: &Mfad) -> String {
    let log = node.cli_ok(["log", "--user", "alice", "--limit", "1", "--format", "json"]);
    let records: serde_json::Value = serde_json::from_str(&log).unwrap();
    records[0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A UDP port on which nothing answers: bound and kept, so no one else takes it.
fn silent_target() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// A FreeRADIUS target that knows alice, password `pw-alice`.
fn freeradius_with_alice() -> FreeRadius {
    FreeRadius::builder(TARGET_SECRET)
        .user("alice", "pw-alice")
        .start()
}

#[test]
fn pap_password_goes_to_the_target_and_the_code_stays_with_mfad() {
    let freeradius = freeradius_with_alice();
    let node = node(&target("freeradius", freeradius.addr(), 2000), SEPARATED);
    let server = node.start();

    let accept = pap(&server, &format!("pw-alice,{}", hotp(0)), None);
    assert!(
        accept.is("Access-Accept"),
        "{}\n{}\n{}",
        accept.output,
        server.logs(),
        freeradius.logs()
    );
    assert!(
        !server.logs().contains("pw-alice"),
        "mfad logs no password: {}",
        server.logs()
    );

    // RFC 2865 §5.33: the client's Proxy-State comes back once, unchanged; mfad's own
    // toward the target is taken out.
    let code = format!("pw-alice,{}", hotp(1));
    let with_proxy_state = send(
        &server,
        &[
            ("User-Name", "alice"),
            ("User-Password", &code),
            ("Proxy-State", "0x6e61732d70726f7879"),
        ],
    );
    assert!(
        with_proxy_state.is("Access-Accept"),
        "{}",
        with_proxy_state.output
    );
    assert_eq!(
        with_proxy_state.get_all("Proxy-State"),
        ["0x6e61732d70726f7879"]
    );

    let wrong_password = pap(&server, &format!("pw-bob,{}", hotp(2)), None);
    assert!(
        wrong_password.is("Access-Reject"),
        "{}",
        wrong_password.output
    );
    assert_eq!(last_reason(&node), "wrong_password");

    let wrong_code = pap(&server, "pw-alice,000000", None);
    assert!(wrong_code.is("Access-Reject"), "{}", wrong_code.output);
    assert_eq!(last_reason(&node), "wrong_code");

    // Without a code in the field the code is asked for after the target accepted.
    let challenge = pap(&server, "pw-alice", None);
    assert!(challenge.is("Access-Challenge"), "{}", challenge.output);
    let state = challenge.get("State").unwrap().to_string();
    let accept = pap(&server, &hotp(2), Some(&state));
    assert!(accept.is("Access-Accept"), "{}", accept.output);
    server.stop();
}

#[test]
fn mschapv2_login_is_challenged_for_the_code_and_gets_the_targets_mppe_keys() {
    let freeradius = freeradius_with_alice();
    let node = node(&target("freeradius", freeradius.addr(), 2000), &[]);
    let server = node.start();
    let mschap = MsChapV2::new("alice", "pw-alice", [0x11; 16], [0x22; 16]);
    let [challenge_attr, response_attr] = mschap.attributes();
    let attrs = [
        ("User-Name", "alice"),
        (challenge_attr.0, challenge_attr.1.as_str()),
        (response_attr.0, response_attr.1.as_str()),
    ];

    // What the target itself gives the same MS-CHAPv2 response (the keys follow from the
    // password and the response, RFC 3079 §3.4).
    let direct = Radclient::new(freeradius.addr(), TARGET_SECRET).send("auth", &attrs);
    assert!(direct.is("Access-Accept"), "{}", direct.output);
    let send_key = direct.get("MS-MPPE-Send-Key").unwrap().to_string();
    let recv_key = direct.get("MS-MPPE-Recv-Key").unwrap().to_string();
    assert_eq!(
        (send_key.clone(), recv_key.clone()),
        mschap.server_keys("pw-alice"),
        "FreeRADIUS derives the keys as RFC 3079 §3.4 says"
    );

    let challenge = send(&server, &attrs);
    assert!(challenge.is("Access-Challenge"), "{}", challenge.output);
    assert!(
        challenge.get("MS-MPPE-Send-Key").is_none(),
        "no keys before the second factor"
    );
    let state = challenge.get("State").unwrap().to_string();
    let accept = pap(&server, &hotp(0), Some(&state));
    assert!(accept.is("Access-Accept"), "{}", accept.output);
    // radclient reveals them with the client's secret and its own request's
    // authenticator: equal keys prove mfad hid them again for this client and request.
    assert_eq!(
        accept.get("MS-MPPE-Send-Key"),
        Some(send_key.as_str()),
        "{}",
        accept.output
    );
    assert_eq!(
        accept.get("MS-MPPE-Recv-Key"),
        Some(recv_key.as_str()),
        "{}",
        accept.output
    );
    assert_eq!(
        accept.get("MS-CHAP2-Success"),
        direct.get("MS-CHAP2-Success"),
        "the target's authenticator response reaches the client"
    );

    let wrong = MsChapV2::new("alice", "not-her-password", [0x33; 16], [0x44; 16]);
    let [c, r] = wrong.attributes();
    let reject = send(
        &server,
        &[
            ("User-Name", "alice"),
            (c.0, c.1.as_str()),
            (r.0, r.1.as_str()),
        ],
    );
    assert!(reject.is("Access-Reject"), "{}", reject.output);
    assert_eq!(last_reason(&node), "wrong_password");
    server.stop();
}

#[test]
fn a_challenge_of_the_target_is_relayed_and_answered_there_before_the_code() {
    let freeradius = FreeRadius::builder(TARGET_SECRET)
        .challenge_user("alice", "pw-alice", "Target PIN?", "4711")
        .start();
    let node = node(&target("freeradius", freeradius.addr(), 2000), &[]);
    let server = node.start();

    let relayed = pap(&server, "pw-alice", None);
    assert!(relayed.is("Access-Challenge"), "{}", relayed.output);
    assert_eq!(relayed.get("Reply-Message"), Some("Target PIN?"));
    let state = relayed.get("State").unwrap().to_string();
    // The State the client sees is mfad's, not the target's.
    assert_ne!(state, "0x6d6661642d74657374");

    let code_challenge = pap(&server, "4711", Some(&state));
    assert!(
        code_challenge.is("Access-Challenge"),
        "{}",
        code_challenge.output
    );
    let code_state = code_challenge.get("State").unwrap().to_string();
    assert_ne!(code_state, state);
    let accept = pap(&server, &hotp(0), Some(&code_state));
    assert!(accept.is("Access-Accept"), "{}", accept.output);

    // A wrong answer to the target's challenge is the target's reject.
    let relayed = pap(&server, "pw-alice", None);
    let state = relayed.get("State").unwrap().to_string();
    let reject = pap(&server, "0000", Some(&state));
    assert!(reject.is("Access-Reject"), "{}", reject.output);
    assert_eq!(last_reason(&node), "wrong_password");
    server.stop();
}

#[test]
fn a_target_that_does_not_answer_fails_over_to_the_next() {
    let freeradius = freeradius_with_alice();
    let (_silent, down) = silent_target();
    let targets = format!(
        "{}{}",
        target("down", down, 300),
        target("up", freeradius.addr(), 2000)
    );
    let node = node(&targets, &["--code-separator", ",", "--targets", "down,up"]);
    let server = node.start();

    let accept = pap(&server, &format!("pw-alice,{}", hotp(0)), None);
    assert!(
        accept.is("Access-Accept"),
        "{}\n{}\n{}",
        accept.output,
        server.logs(),
        last_reason(&node)
    );
    assert!(
        server.logs().contains("target failed, trying the next one"),
        "{}",
        server.logs()
    );
    // The wrong password is the answer of the target that is up, not a failover.
    let reject = pap(&server, &format!("pw-bob,{}", hotp(1)), None);
    assert!(reject.is("Access-Reject"), "{}", reject.output);
    assert_eq!(last_reason(&node), "wrong_password");
    server.stop();
}

#[test]
fn every_target_down_is_a_reject_within_the_clients_timeout() {
    let (_silent, down) = silent_target();
    let (_silent2, down2) = silent_target();
    let targets = format!(
        "{}{}",
        target("down", down, 300),
        target("down-too", down2, 300)
    );
    let node = node(&targets, SEPARATED);
    let server = node.start();

    // A client whose timeout is above the targets' 2 × 300 ms, as the docs ask, with
    // room to spare for a loaded machine: it hears a Reject, not silence, once both
    // targets have timed out.
    let password = format!("pw-alice,{}", hotp(0));
    let reply = Radclient::new(server.radius_addr(), SECRET)
        .with_timeout(Duration::from_secs(10))
        .send(
            "auth",
            &[("User-Name", "alice"), ("User-Password", &password)],
        );
    assert!(
        reply.is("Access-Reject"),
        "a Reject within the client's timeout, never an accept: {}",
        reply.output
    );
    assert!(
        server.logs().contains("no target answered"),
        "{}",
        server.logs()
    );
    assert_eq!(last_reason(&node), "upstream_unavailable");
    server.stop();
}

#[test]
fn client_add_refuses_unknown_targets() {
    let node = Mfad::new(Path::new(env!("CARGO_BIN_EXE_mfad"))).with_config(&target(
        "nps-1",
        "127.0.0.1:1812".parse().unwrap(),
        1000,
    ));
    let err = node.cli_err([
        "client",
        "add",
        "vpn",
        "--address",
        "127.0.0.1",
        "--secret",
        SECRET,
        "--first-factor",
        "radius",
        "--targets",
        "nps-1,nps-9",
    ]);
    assert!(err.contains("target 'nps-9' is not configured"), "{err}");
    let err = node.cli_err([
        "client",
        "add",
        "vpn",
        "--address",
        "127.0.0.1",
        "--secret",
        SECRET,
        "--targets",
        "nps-1",
    ]);
    assert!(
        err.contains("--targets applies only with --first-factor radius"),
        "{err}"
    );
    let list = node.cli_ok(["client", "list", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(
        list,
        serde_json::json!([]),
        "neither refused client was added"
    );
    node.add_client_with(
        "vpn",
        "127.0.0.1",
        SECRET,
        &["--first-factor", "radius", "--targets", "nps-1"],
    );
    let list = node.cli_ok(["client", "list", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["name"], "vpn", "{list}");
    assert_eq!(list[0]["targets"], serde_json::json!(["nps-1"]), "{list}");
}

#[test]
fn wrong_passwords_at_the_target_lock_the_user_out() {
    let freeradius = freeradius_with_alice();
    let config = format!(
        "{}\n[policy]\nmax_failures = 2\n",
        target("freeradius", freeradius.addr(), 2000)
    );
    let node = node(&config, SEPARATED);
    let server = node.start();
    for _ in 0..2 {
        let reject = pap(&server, &format!("pw-bob,{}", hotp(0)), None);
        assert!(reject.is("Access-Reject"), "{}", reject.output);
        assert_eq!(last_reason(&node), "wrong_password");
    }
    // Locked: rejected before the target is asked, so the right password and code
    // cannot be told apart from wrong ones.
    let locked = pap(&server, &format!("pw-alice,{}", hotp(0)), None);
    assert!(locked.is("Access-Reject"), "{}", locked.output);
    assert_eq!(last_reason(&node), "locked");
    server.stop();
}

#[test]
fn a_lost_request_is_sent_again_unchanged_and_signed_on_the_wire() {
    let freeradius = freeradius_with_alice();
    let tap = UdpTap::dropping(freeradius.addr(), 1);
    let config = target("freeradius", tap.addr(), 500).replace("retries = 0", "retries = 1");
    let node = node(&config, SEPARATED);
    let server = node.start();

    let accept = pap(&server, &format!("pw-alice,{}", hotp(0)), None);
    assert!(accept.is("Access-Accept"), "{}", accept.output);
    let sent = tap.requests();
    assert_eq!(sent.len(), 2, "the lost request and its retransmission");
    // RFC 5080 §2.2.1: a retransmission keeps Identifier and Request Authenticator.
    assert_eq!(sent[0], sent[1]);
    let types = attribute_types(&sent[0]);
    assert_eq!(
        types.first(),
        Some(&80),
        "Message-Authenticator first: {types:?}"
    );
    assert_eq!(
        types.last(),
        Some(&33),
        "mfad's Proxy-State last: {types:?}"
    );
    assert!(
        !types.contains(&24),
        "no State of mfad's goes to the target"
    );
    assert!(
        !sent[0].windows(8).any(|w| w == b"pw-alice"),
        "the password is hidden"
    );
    server.stop();
}

#[test]
fn users_mfad_does_not_know_pass_on_the_targets_answer_alone_when_the_client_allows_it() {
    let freeradius = FreeRadius::builder(TARGET_SECRET)
        .user("alice", "pw-alice")
        .user("bob", "pw-bob")
        .start();
    let node = node(
        &target("freeradius", freeradius.addr(), 2000),
        &["--require-user-match", "false"],
    );
    let server = node.start();
    let bob = |password: &str| {
        send(
            &server,
            &[("User-Name", "bob"), ("User-Password", password)],
        )
    };

    let accept = bob("pw-bob");
    assert!(accept.is("Access-Accept"), "{}", accept.output);
    let reject = bob("pw-alice");
    assert!(reject.is("Access-Reject"), "{}", reject.output);
    // A user mfad knows still needs the code.
    let challenge = pap(&server, "pw-alice", None);
    assert!(challenge.is("Access-Challenge"), "{}", challenge.output);
    server.stop();
}

#[test]
fn concurrent_logins_through_one_target_each_get_their_own_answer() {
    let freeradius = (0..16)
        .fold(FreeRadius::builder(TARGET_SECRET), |b, i| {
            b.user(&format!("user{i}"), &format!("pw-{i}"))
        })
        .start();
    let node = node(
        &target("freeradius", freeradius.addr(), 2000),
        &["--require-user-match", "false"],
    );
    let server = node.start();
    // Even users send their own password, odd ones a wrong one: each reply must match
    // its own request, whatever Identifiers the concurrent requests to the target got.
    let replies: Vec<(usize, RadReply)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let server = &server;
                scope.spawn(move || {
                    let password = if i % 2 == 0 {
                        format!("pw-{i}")
                    } else {
                        "wrong".to_string()
                    };
                    let name = format!("user{i}");
                    (
                        i,
                        send(
                            server,
                            &[("User-Name", &name), ("User-Password", &password)],
                        ),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, reply) in replies {
        let want = if i % 2 == 0 {
            "Access-Accept"
        } else {
            "Access-Reject"
        };
        assert!(reply.is(want), "user{i}: {}", reply.output);
    }
    server.stop();
}

/// The target node's token of alice: its codes are her "password" at the front node.
const TARGET_SEED: &str = "ORUGKLLUMFZGOZLUFVXG6ZDFFVZWKZLE";

/// A `[[radius.targets]]` entry that leaves `require_message_authenticator` at its
/// default.
fn signing_required(name: &str, addr: SocketAddr, timeout_ms: u64) -> String {
    let entry =
        target(name, addr, timeout_ms).replace("require_message_authenticator = false\n", "");
    assert!(!entry.contains("require_message_authenticator"), "{entry}");
    entry
}

#[test]
fn a_target_that_signs_its_replies_passes_the_default_message_authenticator_check() {
    // A second mfad as the target: it adds Message-Authenticator to every reply. It
    // checks alice's "password" as the code of a token of her own there.
    let target_node = Mfad::new(Path::new(env!("CARGO_BIN_EXE_mfad")))
        .with_name("target-node")
        .with_config("reject_delay_ms = 0");
    target_node.add_client("front", "127.0.0.1", TARGET_SECRET);
    target_node.cli_ok(["user", "add", "alice"]);
    target_node.cli_ok([
        "token",
        "add",
        "alice",
        "--type",
        "hotp",
        "--secret",
        TARGET_SEED,
        "--serial",
        "hw-t",
    ]);
    let target_server = target_node.start();
    let target_password = |counter| oathtool_hotp(TARGET_SEED, counter, 6);

    let node = node(
        &signing_required("mfad-target", target_server.radius_addr(), 2000),
        SEPARATED,
    );
    let server = node.start();

    // Password and code in one field: the password to the target, the code here.
    let accept = pap(
        &server,
        &format!("{},{}", target_password(0), hotp(0)),
        None,
    );
    assert!(
        accept.is("Access-Accept"),
        "{}\n{}\n{}",
        accept.output,
        server.logs(),
        target_server.logs()
    );
    assert!(
        !server.logs().contains("discarding a reply"),
        "{}",
        server.logs()
    );

    // The password first, the code in a second prompt once the target accepted.
    let challenge = pap(&server, &target_password(1), None);
    assert!(challenge.is("Access-Challenge"), "{}", challenge.output);
    let state = challenge.get("State").unwrap().to_string();
    let accept = pap(&server, &hotp(1), Some(&state));
    assert!(accept.is("Access-Accept"), "{}", accept.output);

    // The target's own reject, signed too, is a wrong password, not a failed target.
    let reject = pap(&server, &format!("000000,{}", hotp(2)), None);
    assert!(reject.is("Access-Reject"), "{}", reject.output);
    assert_eq!(last_reason(&node), "wrong_password");
    server.stop();
    target_server.stop();
}

#[test]
fn a_target_that_does_not_sign_its_replies_is_refused_by_default() {
    let freeradius = freeradius_with_alice();
    let node = node(
        &signing_required("freeradius", freeradius.addr(), 300),
        SEPARATED,
    );
    let server = node.start();
    let reply = pap(&server, &format!("pw-alice,{}", hotp(0)), None);
    assert!(reply.is("Access-Reject"), "{}", reply.output);
    assert_eq!(last_reason(&node), "upstream_unavailable");
    assert!(
        server
            .logs()
            .contains("no Message-Authenticator, which this target must send"),
        "{}",
        server.logs()
    );
    server.stop();
}

/// How many requests reached `socket` so far (it never answers them).
fn requests_received(socket: &UdpSocket) -> usize {
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    let mut count = 0;
    while socket.recv(&mut buf).is_ok() {
        count += 1;
    }
    count
}

#[test]
fn a_target_that_did_not_answer_is_skipped_on_the_next_login() {
    const TIMEOUT_MS: u64 = 1500;
    let timeout = Duration::from_millis(TIMEOUT_MS);
    let freeradius = freeradius_with_alice();
    let (silent, down) = silent_target();
    let targets = format!(
        "{}{}",
        target("down", down, TIMEOUT_MS),
        target("up", freeradius.addr(), 2000)
    );
    let node = node(&targets, &["--code-separator", ",", "--targets", "down,up"]);
    let server = node.start();

    // The first login waits out the first target's timeout, then the second accepts.
    let started = std::time::Instant::now();
    let accept = pap(&server, &format!("pw-alice,{}", hotp(0)), None);
    let first = started.elapsed();
    assert!(
        accept.is("Access-Accept"),
        "{}\n{}",
        accept.output,
        server.logs()
    );
    assert!(
        first >= timeout,
        "the first login waited for the timeout: {first:?}"
    );
    assert_eq!(
        requests_received(&silent),
        1,
        "the first login asked the silent target"
    );

    // Right after, the silent target is held down: the login goes to the second
    // target first, which answers, so the silent one is not asked at all.
    let started = std::time::Instant::now();
    let accept = pap(&server, &format!("pw-alice,{}", hotp(1)), None);
    let second = started.elapsed();
    assert!(
        accept.is("Access-Accept"),
        "{}\n{}",
        accept.output,
        server.logs()
    );
    assert_eq!(
        requests_received(&silent),
        0,
        "the held-down target got no request on the second login"
    );
    assert!(
        second < timeout / 2,
        "the second login did not wait for the silent target: {second:?}"
    );
    assert_eq!(
        server
            .logs()
            .matches("target failed, trying the next one")
            .count(),
        1,
        "{}",
        server.logs()
    );
    server.stop();
}

#[test]
fn a_held_down_target_is_tried_first_again_once_its_hold_down_ms_passed() {
    const TIMEOUT_MS: u64 = 1000;
    const HOLD_DOWN_MS: u64 = 2500;
    let freeradius = freeradius_with_alice();
    let (silent, down) = silent_target();
    let targets = format!(
        "{}hold_down_ms = {HOLD_DOWN_MS}\n{}",
        target("down", down, TIMEOUT_MS),
        target("up", freeradius.addr(), 2000)
    );
    let node = node(&targets, &["--code-separator", ",", "--targets", "down,up"]);
    let server = node.start();

    let accept = pap(&server, &format!("pw-alice,{}", hotp(0)), None);
    // The target was marked down before this reply left mfad.
    let failed_by = std::time::Instant::now();
    assert!(accept.is("Access-Accept"), "{}", accept.output);
    assert_eq!(requests_received(&silent), 1);

    let accept = pap(&server, &format!("pw-alice,{}", hotp(1)), None);
    assert!(accept.is("Access-Accept"), "{}", accept.output);
    assert!(
        failed_by.elapsed() < Duration::from_millis(HOLD_DOWN_MS),
        "the second login came within the hold-down"
    );
    assert_eq!(requests_received(&silent), 0, "held down");

    // Once the hold-down has surely passed, the first target is asked first again.
    std::thread::sleep(Duration::from_millis(HOLD_DOWN_MS).saturating_sub(failed_by.elapsed()));
    let started = std::time::Instant::now();
    let accept = pap(&server, &format!("pw-alice,{}", hotp(2)), None);
    assert!(accept.is("Access-Accept"), "{}", accept.output);
    assert!(
        started.elapsed() >= Duration::from_millis(TIMEOUT_MS),
        "the login waited for the first target again"
    );
    assert_eq!(
        requests_received(&silent),
        1,
        "the first target is tried again after its hold-down"
    );
    server.stop();
}
