//! End to end: SMS one-time codes through RADIUS (Debian's radclient) and the local
//! Twilio-shaped provider, which is the only simulated part.

// Tests report failures by panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mfad_testkit::{FakeTwilio, Mfad, RadReply, Radclient, Running};
use std::path::Path;
use std::time::{Duration, Instant};

const SECRET: &str = "a-shared-secret-of-28-bytes!";
const SID: &str = "AC00000000000000000000000000000001";
const TOKEN: &str = "twilio-token-e2e";
const WAIT: Duration = Duration::from_secs(20);

/// A node whose SMS goes to `fake`, with user `sam` (method sms, phone written loosely).
fn node(fake: &FakeTwilio, policy_sms: &str) -> Mfad {
    let node = Mfad::new(Path::new(env!("CARGO_BIN_EXE_mfad")));
    let token_file = node.dir().join("twilio-token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let node = node.with_config(&format!(
        "reject_delay_ms = 0\n\n[policy.sms]\n{policy_sms}\n\n\
         [sms]\ngateway = \"twilio\"\nmessage = \"mfad code: {{{{ code }}}}\"\n\n\
         [sms.twilio]\napi_url = \"{}\"\naccount_sid = \"{SID}\"\nauth_token_file = {:?}\nfrom = \"+15005550006\"\n",
        fake.url(),
        token_file.display().to_string()
    ));
    node.cli_ok([
        "client",
        "add",
        "vpn",
        "--address",
        "127.0.0.1",
        "--secret",
        SECRET,
    ]);
    node.cli_ok([
        "user",
        "add",
        "sam",
        "--method",
        "sms",
        "--phone",
        "425 555 0142",
    ]);
    node
}

fn send(server: &Running, attrs: &[(&str, &str)]) -> RadReply {
    Radclient::new(server.radius_addr(), SECRET).send("auth", attrs)
}

fn start_login(server: &Running) -> String {
    let reply = send(
        server,
        &[("User-Name", "sam"), ("User-Password", "vpn-password")],
    );
    assert!(reply.is("Access-Challenge"), "{}", reply.output);
    assert_eq!(
        reply.get("Reply-Message"),
        Some("Enter the code sent to your phone"),
        "{}",
        reply.output
    );
    reply.get("State").unwrap().to_string()
}

fn answer(server: &Running, state: &str, text: &str) -> RadReply {
    send(
        server,
        &[
            ("User-Name", "sam"),
            ("User-Password", text),
            ("State", state),
        ],
    )
}

fn wrong(code: &str) -> &'static str {
    if code == "000000" {
        "111111"
    } else {
        "000000"
    }
}

#[test]
fn the_code_texted_to_the_phone_is_accepted_once() {
    let fake = FakeTwilio::start(SID, TOKEN);
    let node = node(&fake, "");
    let server = node.start();
    let state = start_login(&server);
    let sms = fake.wait_for_messages(1, WAIT);
    assert_eq!(sms[0].to, "+14255550142", "the number is E.164");
    assert_eq!(sms[0].from, "+15005550006");
    let code = sms[0].code(6).unwrap();
    assert_eq!(sms[0].body, format!("mfad code: {code}"));
    assert!(answer(&server, &state, &code).is("Access-Accept"));
    assert!(
        answer(&server, &state, &code).is("Access-Reject"),
        "the code and its State are single-use"
    );
    let log = node.cli_ok(["log", "--user", "sam", "--format", "json"]);
    let log: serde_json::Value = serde_json::from_str(&log).unwrap();
    let accepted = log
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["result"] == "accept")
        .expect("an accept in the audit log");
    assert_eq!(accepted["method"], "sms");
    assert!(!log.to_string().contains(&code), "codes are not logged");
    server.stop();
}

#[test]
fn a_wrong_code_is_challenged_again_and_the_last_attempt_rejects() {
    let fake = FakeTwilio::start(SID, TOKEN);
    let node = node(&fake, "max_attempts = 2");
    let server = node.start();
    let state = start_login(&server);
    let code = fake.wait_for_messages(1, WAIT)[0].code(6).unwrap();
    let again = answer(&server, &state, wrong(&code));
    assert!(again.is("Access-Challenge"), "{}", again.output);
    assert!(again
        .get("Reply-Message")
        .unwrap()
        .starts_with("Wrong code."));
    let state = again.get("State").unwrap().to_string();
    assert!(answer(&server, &state, wrong(&code)).is("Access-Reject"));
    server.stop();
}

#[test]
fn an_expired_code_is_rejected() {
    let fake = FakeTwilio::start(SID, TOKEN);
    let node = node(&fake, "code_seconds = 1");
    let server = node.start();
    let state = start_login(&server);
    let code = fake.wait_for_messages(1, WAIT)[0].code(6).unwrap();
    // Expiry is a matter of time: wait until the code's second has surely passed.
    let expired = Instant::now() + Duration::from_millis(2100);
    while Instant::now() < expired {
        std::thread::sleep(expired - Instant::now());
    }
    assert!(answer(&server, &state, &code).is("Access-Reject"));
    server.stop();
}

#[test]
fn a_resent_code_replaces_the_old_one() {
    let fake = FakeTwilio::start(SID, TOKEN);
    let node = node(&fake, "");
    let server = node.start();
    let state = start_login(&server);
    let old = fake.wait_for_messages(1, WAIT)[0].code(6).unwrap();
    let resent = answer(&server, &state, "resend");
    assert!(resent.is("Access-Challenge"), "{}", resent.output);
    assert!(resent
        .get("Reply-Message")
        .unwrap()
        .starts_with("A new code was sent."));
    let new = fake.wait_for_messages(2, WAIT)[1].code(6).unwrap();
    let state = resent.get("State").unwrap().to_string();
    if new != old {
        let stale = answer(&server, &state, &old);
        assert!(
            stale.is("Access-Challenge"),
            "the old code is a wrong code: {}",
            stale.output
        );
        let state = stale.get("State").unwrap().to_string();
        assert!(answer(&server, &state, &new).is("Access-Accept"));
    } else {
        assert!(answer(&server, &state, &new).is("Access-Accept"));
    }
    server.stop();
}

#[test]
fn a_gateway_outage_rejects_the_login() {
    let fake = FakeTwilio::start(SID, TOKEN);
    let node = node(&fake, "");
    let server = node.start();
    fake.fail_next(1);
    let reply = send(&server, &[("User-Name", "sam"), ("User-Password", "x")]);
    assert!(reply.is("Access-Reject"), "{}", reply.output);
    assert!(
        server.wait_for_log("SMS not sent", WAIT),
        "{}",
        server.logs()
    );
    // The next login works again.
    start_login(&server);
    server.stop();
}

#[test]
fn a_stored_auth_token_replaces_the_file_on_a_running_server() {
    let fake = FakeTwilio::start(SID, TOKEN);
    let node = node(&fake, "");
    // The file now holds a token the provider refuses.
    std::fs::write(node.dir().join("twilio-token"), "an-old-revoked-token").unwrap();
    let server = node.start();
    let out = node.cli_with_input(
        ["setting", "set", "sms.twilio.auth_token", "--secret"],
        TOKEN.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        server.wait_for_log("changed=sms", Duration::from_secs(5)),
        "the stored token is in force within 5 s: {}",
        server.logs()
    );
    let state = start_login(&server);
    // The fake records only messages sent with the account SID and the right token.
    let sms = fake.wait_for_messages(1, WAIT);
    let code = sms[0].code(6).unwrap();
    assert!(answer(&server, &state, &code).is("Access-Accept"));
    assert!(
        !server.logs().contains(TOKEN),
        "the credential is never logged"
    );
    server.stop();
}
