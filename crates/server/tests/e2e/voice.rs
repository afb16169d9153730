//! End to end: verification calls through RADIUS (Debian's radclient) and the local
//! Twilio-shaped provider, which plays each call as scripted and signs its webhooks.

// Tests report failures by panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mfad_radius_proto::{attr, encode_request, encrypt_user_password, Code, Packet};
use mfad_testkit::{
    CallScript, FakeTwilio, Mfad, RadReply, Radclient, Running, SmtpMode, SmtpServer,
};
use std::io::{Read, Write};
use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

const SECRET: &str = "a-shared-secret-of-28-bytes!";
const SID: &str = "AC00000000000000000000000000000002";
const TOKEN: &str = "twilio-voice-token";
const WAIT: Duration = Duration::from_secs(20);

/// A node calling through `fake`, with user `vic` (method call) in `pin_mode`;
/// `timeout`: how long a login waits for the call (`policy.out_of_band_timeout_seconds`).
fn node(fake: &FakeTwilio, timeout: u64, pin_mode: &str) -> Mfad {
    let node = Mfad::new(Path::new(env!("CARGO_BIN_EXE_mfad")));
    let token_file = node.dir().join("twilio-token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let node = node.with_config(&format!(
        "reject_delay_ms = 0\n\n\
         [policy]\nout_of_band_timeout_seconds = {timeout}\n\n\
         [voice]\ngateway = \"twilio\"\n\n\
         [voice.twilio]\napi_url = \"{}\"\naccount_sid = \"{SID}\"\nauth_token_file = {:?}\nfrom = \"+15005550006\"\n",
        fake.url(),
        token_file.display().to_string()
    ));
    node.add_client("vpn", "127.0.0.1", SECRET);
    node.cli_ok([
        "user",
        "add",
        "vic",
        "--method",
        "call",
        "--phone",
        "+1 425 555 0199 x42",
        "--pin-mode",
        pin_mode,
    ]);
    node
}

/// radclient waits longer than any call in these tests lasts.
fn radclient(server: &Running) -> Radclient {
    Radclient::new(server.radius_addr(), SECRET).with_timeout(Duration::from_secs(15))
}

fn login(server: &Running) -> RadReply {
    radclient(server).send(
        "auth",
        &[("User-Name", "vic"), ("User-Password", "vpn-password")],
    )
}

fn audit_records(node: &Mfad) -> Vec<serde_json::Value> {
    let log = node.cli_ok(["log", "--user", "vic", "--format", "json"]);
    let log: serde_json::Value = serde_json::from_str(&log).unwrap();
    log.as_array().unwrap().clone()
}

fn last_reason(node: &Mfad) -> String {
    let log = node.cli_ok(["log", "--user", "vic", "--limit", "1", "--format", "json"]);
    let log: serde_json::Value = serde_json::from_str(&log).unwrap();
    log[0]["reason"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn answering_and_pressing_pound_accepts() {
    let fake = FakeTwilio::start(SID, TOKEN);
    let node = node(&fake, 45, "standard");
    let server = node.start();
    fake.script_calls([CallScript::Press("#".into())]);
    let reply = login(&server);
    assert!(
        reply.is("Access-Accept"),
        "{}\n{}",
        reply.output,
        server.logs()
    );
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].to, "+14255550199");
    assert_eq!(
        calls[0].send_digits, "wwww42",
        "the extension is dialled after the answer"
    );
    server.stop();
}

#[test]
fn pin_mode_accepts_the_pin_and_rejects_a_wrong_one_or_none() {
    let fake = FakeTwilio::start(SID, TOKEN);
    let node = node(&fake, 45, "pin");
    node.cli_ok(["user", "set-pin", "vic", "--pin", "2580"]);
    let server = node.start();
    fake.script_calls([
        CallScript::Press("2580#".into()),
        CallScript::Press("1357#".into()),
        CallScript::Press("#".into()),
    ]);
    assert!(login(&server).is("Access-Accept"));
    assert!(login(&server).is("Access-Reject"));
    assert_eq!(last_reason(&node), "wrong_pin");
    // # alone is no PIN: Twilio goes on without requesting the action (or sends empty
    // Digits, which the engine rejects as answered_without_pin), and the call ends.
    assert!(login(&server).is("Access-Reject"));
    assert_eq!(last_reason(&node), "call_hung_up");
    server.stop();
}

#[test]
fn hang_up_voicemail_no_answer_and_invalid_number_reject_with_their_reason() {
    let fake = FakeTwilio::start(SID, TOKEN);
    let node = node(&fake, 45, "standard");
    let server = node.start();
    fake.script_calls([
        CallScript::HangUp,
        // Answered, no key (a voicemail): the Gather times out, never "# alone".
        CallScript::Silent,
        CallScript::NoAnswer,
        CallScript::Busy,
        CallScript::InvalidNumber,
    ]);
    for reason in [
        "call_hung_up",
        "call_hung_up",
        "call_no_answer",
        "call_no_answer",
        "invalid_number",
    ] {
        let reply = login(&server);
        assert!(reply.is("Access-Reject"), "{}", reply.output);
        assert_eq!(last_reason(&node), reason);
    }
    server.stop();
}

#[test]
fn the_backup_phone_is_called_when_the_phone_does_not_answer() {
    let fake = FakeTwilio::start(SID, TOKEN);
    let node = node(&fake, 45, "standard");
    node.cli_ok(["user", "update", "vic", "--backup-phone", "020 7946 0018"]);
    let server = node.start();
    fake.script_calls([CallScript::NoAnswer, CallScript::Press("#".into())]);
    let reply = login(&server);
    assert!(reply.is("Access-Accept"), "{}", reply.output);
    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].to, "+14255550199");
    assert_eq!(
        calls[1].to, "+12079460018",
        "the backup phone, E.164 with the default country"
    );
    let log = node.cli_ok(["log", "--user", "vic", "--limit", "1", "--format", "json"]);
    let log: serde_json::Value = serde_json::from_str(&log).unwrap();
    assert_eq!(
        log[0]["device"], "+12079460018",
        "the audit log names the phone that answered"
    );
    server.stop();
}

#[test]
fn the_fraud_code_rejects_blocks_the_user_and_is_in_the_fraud_log() {
    let fake = FakeTwilio::start(SID, TOKEN);
    let smtp = SmtpServer::start(SmtpMode::Plain, None, None);
    let node = node(&fake, 45, "standard").with_config(&format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\n\
         from = \"MFA <mfa@example.org>\"\n\n\
         [email]\npoll_seconds = 1\nfraud_alerts_to = [\"security@example.org\"]\n",
        smtp.port()
    ));
    let server = node.start();
    fake.script_calls([
        CallScript::Press("0#".into()),
        CallScript::Press("#".into()),
    ]);
    assert!(login(&server).is("Access-Reject"));
    let shown = node.cli_ok(["user", "show", "vic", "--format", "json"]);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["state"], "blocked", "{shown}");
    let blocked_for = shown["user"]["blocked_until"].as_i64().unwrap()
        - shown["user"]["created_at"].as_i64().unwrap();
    assert!(
        (89 * 86_400..=91 * 86_400).contains(&blocked_for),
        "90 days"
    );

    // Blocked: rejected without a call.
    assert!(login(&server).is("Access-Reject"));
    assert_eq!(fake.calls().len(), 1);
    let fraud = node.cli_ok(["log", "--fraud", "--format", "json"]);
    let fraud: serde_json::Value = serde_json::from_str(&fraud).unwrap();
    assert_eq!(fraud.as_array().unwrap().len(), 1, "{fraud}");
    assert_eq!(fraud[0]["reason"], "fraud_reported");
    assert_eq!(fraud[0]["method"], "call");
    // The operators hear of it by e-mail.
    let alert = smtp.wait_for_messages(1, WAIT).remove(0);
    assert_eq!(alert.to, ["security@example.org"]);
    assert_eq!(
        alert.header("Subject").as_deref(),
        Some("Fraud reported by vic")
    );
    assert!(
        alert.body().contains("mfad user unblock vic"),
        "{}",
        alert.body()
    );

    node.cli_ok(["user", "unblock", "vic"]);
    assert!(
        login(&server).is("Access-Accept"),
        "unblocked by the operator"
    );
    server.stop();
}

#[test]
fn a_call_that_never_ends_times_out_with_a_reject() {
    let fake = FakeTwilio::start(SID, TOKEN);
    let node = node(&fake, 2, "standard");
    let server = node.start();
    fake.script_calls([CallScript::Ignore]);
    assert!(login(&server).is("Access-Reject"));
    assert_eq!(last_reason(&node), "call_timeout");
    assert_eq!(
        audit_records(&node).len(),
        1,
        "one audit record for the attempt, with its final result"
    );
    server.stop();
}

#[test]
fn a_call_answered_after_the_timeout_decides_nothing() {
    let fake = FakeTwilio::start(SID, TOKEN);
    let node = node(&fake, 1, "standard");
    let server = node.start();
    fake.set_ring(Duration::from_millis(2500));
    fake.script_calls([CallScript::Press("#".into())]);
    assert!(login(&server).is("Access-Reject"));
    assert_eq!(last_reason(&node), "call_timeout");
    // The late # finds the login ended: no second record, no accept.
    let answers = fake.wait_for_gather_answers(1, WAIT);
    assert!(answers[0].contains("This sign-in has ended"), "{answers:?}");
    let log = audit_records(&node);
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["result"], "reject");
    server.stop();
}

#[test]
fn a_forged_webhook_cannot_approve_a_call() {
    let fake = FakeTwilio::start(SID, TOKEN);
    let node = node(&fake, 3, "standard");
    let server = node.start();
    fake.script_calls([CallScript::Ignore]);
    let client = radclient(&server);
    let attempt = std::thread::spawn(move || {
        client.send("auth", &[("User-Name", "vic"), ("User-Password", "x")])
    });
    let call = fake.wait_for_calls(1, WAIT).remove(0);
    // "# pressed", posted by someone without the auth token.
    let action = call.url.replace("/voice/answer", "/voice/gather");
    let rest = action.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let body = "CallStatus=in-progress&Digits=";
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nX-Twilio-Signature: bm90IGEgc2lnbmF0dXJl\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    let reply = attempt.join().unwrap();
    assert!(reply.is("Access-Reject"), "{}", reply.output);
    assert_eq!(last_reason(&node), "call_timeout");
    server.stop();
}

#[test]
fn retransmissions_during_a_pending_call_place_one_call() {
    let fake = FakeTwilio::start(SID, TOKEN);
    let node = node(&fake, 45, "standard");
    let server = node.start();
    fake.set_ring(Duration::from_millis(1500));
    fake.script_calls([CallScript::Press("#".into())]);

    let authenticator = [0x3c; 16];
    let mut packet = Packet::new(Code::AccessRequest, 9, authenticator);
    packet.add(attr::USER_NAME, "vic");
    packet.add(
        attr::USER_PASSWORD,
        encrypt_user_password(b"vpn-password", SECRET.as_bytes(), &authenticator).unwrap(),
    );
    let request = encode_request(&packet, SECRET.as_bytes(), true).unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    socket.send_to(&request, server.radius_addr()).unwrap();
    fake.wait_for_calls(1, WAIT);
    // The NAS retransmits while the phone rings (RFC 5080 §2.2.2).
    socket.send_to(&request, server.radius_addr()).unwrap();
    socket.send_to(&request, server.radius_addr()).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = socket
        .recv_from(&mut buf)
        .expect("a reply once the call ends");
    assert_eq!(buf[0], 2, "Access-Accept");
    assert_eq!(buf[1], 9);
    assert!(n > 20);
    assert_eq!(fake.calls().len(), 1, "one call for one request");
    let log = audit_records(&node);
    assert_eq!(log.len(), 1, "one audit record for one request: {log:?}");
    assert_eq!(log[0]["result"], "accept");
    server.stop();
}

#[test]
fn a_stored_auth_token_replaces_the_file_on_a_running_server() {
    let fake = FakeTwilio::start(SID, TOKEN);
    let node = node(&fake, 45, "standard");
    // The file now holds a token the provider refuses, and that cannot check the
    // provider's webhook signatures either.
    std::fs::write(node.dir().join("twilio-token"), "an-old-revoked-token").unwrap();
    let server = node.start();
    node.set_secret("voice.twilio.auth_token", TOKEN);
    assert!(
        server.wait_for_log("changed=voice", Duration::from_secs(5)),
        "the stored token is in force within 5 s: {}",
        server.logs()
    );
    fake.script_calls([CallScript::Press("#".into())]);
    let reply = login(&server);
    assert!(
        reply.is("Access-Accept"),
        "the call is placed and its signed webhooks are checked with the stored token: {}\n{}",
        reply.output,
        server.logs()
    );
    assert_eq!(fake.calls().len(), 1);
    let listed = node.cli_ok(["setting", "list"]);
    assert!(!listed.contains(TOKEN), "{listed}");
    assert!(
        !server.logs().contains(TOKEN),
        "the credential is never logged"
    );
    server.stop();
}
