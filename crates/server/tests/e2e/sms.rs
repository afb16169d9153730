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
use std::time::Duration;

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
    with_vpn_and_sam(node)
}

/// Adds the RADIUS client `vpn` and `sam`, an SMS user, to `node`.
fn with_vpn_and_sam(node: Mfad) -> Mfad {
    node.add_client("vpn", "127.0.0.1", SECRET);
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

/// The salted hashes of SMS codes in the challenges of `node`'s database, read as anyone
/// who can read the file (a copy, a backup) would: read-only, beside the running server.
fn stored_code_hashes(node: &Mfad) -> Vec<(String, String)> {
    let db = rusqlite::Connection::open_with_flags(
        node.dir().join("mfad.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut rows = db.prepare("SELECT kind FROM challenges").unwrap();
    let kinds: Vec<String> = rows
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    kinds
        .iter()
        .map(|k| serde_json::from_str::<serde_json::Value>(k).unwrap())
        .filter_map(|k| Some((k["salt"].as_str()?.into(), k["code_hash"].as_str()?.into())))
        .collect()
}

/// Every 6-digit code whose unkeyed hash SHA-256(salt, 0, code) is `hash`.
fn codes_with_unkeyed_hash(salt: &str, hash: &str) -> Vec<String> {
    use sha2::Digest;
    let prefix = sha2::Sha256::new().chain_update(salt).chain_update(b"\0");
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .filter(|code| {
            let digest = prefix.clone().chain_update(code).finalize();
            data_encoding::HEXLOWER.encode(&digest) == hash
        })
        .collect()
}

#[test]
fn a_copy_of_the_database_does_not_reveal_a_live_sms_code() {
    let fake = FakeTwilio::start(SID, TOKEN);
    let node = node(&fake, "");
    let server = node.start();
    let state = start_login(&server);
    let code = fake.wait_for_messages(1, WAIT)[0].code(6).unwrap();
    let stored = stored_code_hashes(&node);
    assert_eq!(stored.len(), 1, "the pending login's challenge: {stored:?}");
    let (salt, hash) = &stored[0];
    assert!(!hash.contains(&code));
    assert_eq!(
        codes_with_unkeyed_hash(salt, hash),
        Vec::<String>::new(),
        "trying every code against the stored hash finds the one sent"
    );
    assert!(answer(&server, &state, &code).is("Access-Accept"));
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
    // The code was sent in this second or before, so it expires (whole seconds, as the
    // server counts) by this second + code_seconds: wait until the clock is past that.
    let unix = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let past_expiry = unix() + 1 + 1;
    while unix() < past_expiry {
        std::thread::sleep(Duration::from_millis(20));
    }
    let late = answer(&server, &state, &code);
    assert!(late.is("Access-Reject"), "{}", late.output);
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
fn the_backup_phone_gets_the_code_when_the_phone_cannot_be_texted() {
    let fake = FakeTwilio::start(SID, TOKEN);
    let node = node(&fake, "");
    node.cli_ok(["user", "update", "sam", "--backup-phone", "425 555 0199"]);
    let server = node.start();
    fake.fail_next(1);
    let state = start_login(&server);
    let sms = fake.wait_for_messages(1, WAIT);
    assert_eq!(sms.len(), 1, "the refused message is not delivered");
    assert_eq!(sms[0].to, "+14255550199", "the backup phone gets the code");
    let code = sms[0].code(6).unwrap();
    assert!(answer(&server, &state, &code).is("Access-Accept"));
    assert!(server.wait_for_log("texting the backup phone", WAIT));
    server.stop();
}

/// A node in two-way mode serving, with its provider: logins wait `timeout` seconds for
/// the reply, which comes on the inbound webhook (the HTTP listener serving `webhooks`).
struct TwoWay {
    fake: FakeTwilio,
    node: Mfad,
    server: Running,
    /// The inbound webhook's URL, as Twilio would be configured with it.
    url: String,
}

/// The user's phone, as the provider writes it.
const SAMS_PHONE: &str = "+14255550142";
/// The number the node texts from.
const FROM: &str = "+15005550006";

impl TwoWay {
    fn start(timeout: u64) -> Self {
        Self::start_after(timeout, |_| {})
    }

    /// As [`TwoWay::start`], with `prepare` run on the node before it serves.
    fn start_after(timeout: u64, prepare: impl FnOnce(&Mfad)) -> Self {
        let fake = FakeTwilio::start(SID, TOKEN);
        let node = node(&fake, "mode = \"two-way\"").with_config(&format!(
            "[policy]\nout_of_band_timeout_seconds = {timeout}\n"
        ));
        prepare(&node);
        let server = node.start();
        let url = format!("{}/hooks/sms/inbound", server.http_url("webhooks"));
        Self {
            fake,
            node,
            server,
            url,
        }
    }

    fn login(&self) -> std::thread::JoinHandle<RadReply> {
        pending_login(&self.server)
    }

    /// The code of the `n`th SMS (from 1), once it was sent.
    fn code(&self, n: usize) -> String {
        self.fake.wait_for_messages(n, WAIT)[n - 1].code(6).unwrap()
    }

    /// Replies `body` from `from`, signed as Twilio signs; the webhook's HTTP status.
    fn reply_from(&self, from: &str, body: &str) -> u16 {
        self.fake.reply_sms(&self.url, from, FROM, body)
    }

    fn reply(&self, body: &str) -> u16 {
        self.reply_from(SAMS_PHONE, body)
    }

    fn audit(&self) -> Vec<serde_json::Value> {
        let log = self
            .node
            .cli_ok(["log", "--user", "sam", "--format", "json"]);
        let log: serde_json::Value = serde_json::from_str(&log).unwrap();
        log.as_array().unwrap().clone()
    }
}

/// Starts a login that waits for the reply; join the handle for the RADIUS answer.
fn pending_login(server: &Running) -> std::thread::JoinHandle<RadReply> {
    let client = Radclient::new(server.radius_addr(), SECRET).with_timeout(Duration::from_secs(15));
    std::thread::spawn(move || {
        client.send(
            "auth",
            &[("User-Name", "sam"), ("User-Password", "vpn-password")],
        )
    })
}

#[test]
fn two_way_a_reply_with_the_code_accepts() {
    let t = TwoWay::start(15);
    let login = t.login();
    let sms = t.fake.wait_for_messages(1, WAIT);
    assert_eq!(sms[0].to, SAMS_PHONE);
    let code = sms[0].code(6).unwrap();
    assert_eq!(
        sms[0].body,
        format!("To sign in to vpn, reply to this message with {code}")
    );
    assert_eq!(t.reply(&format!(" {code}\n")), 200);
    let reply = login.join().unwrap();
    assert!(
        reply.is("Access-Accept"),
        "{}\n{}",
        reply.output,
        t.server.logs()
    );
    let log = t.audit();
    assert_eq!(log.len(), 1, "one audit record per attempt: {log:?}");
    assert_eq!(log[0]["result"], "accept");
    assert_eq!(log[0]["method"], "sms");
    assert!(!log[0].to_string().contains(&code), "codes are not logged");
    t.server.stop();
}

#[test]
fn two_way_a_wrong_reply_rejects_and_counts_a_failure() {
    let t = TwoWay::start(15);
    let login = t.login();
    let code = t.code(1);
    t.reply(wrong(&code));
    let reply = login.join().unwrap();
    assert!(reply.is("Access-Reject"), "{}", reply.output);
    let log = t.audit();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["reason"], "wrong_code");
    let shown = t.node.cli_ok(["user", "show", "sam", "--format", "json"]);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["user"]["failures"], 1, "{shown}");
    // The reply was the login's one answer: the right code now decides nothing.
    t.reply(&code);
    assert!(t.server.wait_for_log("no pending sign-in ignored", WAIT));
    assert_eq!(t.audit().len(), 1);
    t.server.stop();
}

#[test]
fn two_way_no_reply_times_out_with_a_reject() {
    let t = TwoWay::start(2);
    let login = t.login();
    t.code(1);
    let reply = login.join().unwrap();
    assert!(reply.is("Access-Reject"), "{}", reply.output);
    let log = t.audit();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["reason"], "sms_no_reply");
    t.server.stop();
}

#[test]
fn two_way_a_reply_from_another_number_is_ignored() {
    let t = TwoWay::start(15);
    let login = t.login();
    let code = t.code(1);
    // Someone else sends the right code: not a reply from the user's phone.
    assert_eq!(t.reply_from("+14255550199", &code), 200);
    assert!(
        t.server.wait_for_log("no pending sign-in ignored", WAIT),
        "{}",
        t.server.logs()
    );
    assert!(
        !login.is_finished(),
        "the login still waits for the user's reply"
    );
    t.reply(&code);
    let reply = login.join().unwrap();
    assert!(reply.is("Access-Accept"), "{}", reply.output);
    t.server.stop();
}

#[test]
fn two_way_an_unsigned_reply_is_refused() {
    let t = TwoWay::start(2);
    let login = t.login();
    let code = t.code(1);
    let forged = FakeTwilio::start(SID, "not-the-auth-token");
    assert_eq!(forged.reply_sms(&t.url, SAMS_PHONE, FROM, &code), 403);
    let reply = login.join().unwrap();
    assert!(reply.is("Access-Reject"), "{}", reply.output);
    assert_eq!(t.audit()[0]["reason"], "sms_no_reply");
    t.server.stop();
}

#[test]
fn two_way_pin_users_reply_with_pin_and_code() {
    let t = TwoWay::start_after(15, |node| {
        node.cli_ok(["user", "update", "sam", "--pin-mode", "pin"]);
        node.cli_ok(["user", "set-pin", "sam", "--pin", "2580"]);
    });

    let login = t.login();
    let sms = t.fake.wait_for_messages(1, WAIT);
    let code = sms[0].code(6).unwrap();
    assert_eq!(
        sms[0].body,
        format!("To sign in to vpn, reply to this message with your PIN followed by {code}")
    );
    t.reply(&format!("1357{code}"));
    assert!(login.join().unwrap().is("Access-Reject"));
    assert_eq!(t.audit()[0]["reason"], "wrong_pin");

    let login = t.login();
    t.reply(&format!("2580 {}", t.code(2)));
    let reply = login.join().unwrap();
    assert!(reply.is("Access-Accept"), "{}", reply.output);
    t.server.stop();
}

#[test]
fn two_way_the_backup_phone_is_texted_and_its_reply_accepts() {
    const BACKUP: &str = "+14255550199";
    let t = TwoWay::start_after(15, |node| {
        node.cli_ok(["user", "update", "sam", "--backup-phone", BACKUP]);
    });
    t.fake.fail_next(1);
    let login = t.login();
    let sms = t.fake.wait_for_messages(1, WAIT);
    assert_eq!(sms[0].to, BACKUP);
    let code = sms[0].code(6).unwrap();
    // The phone that was not texted has no login waiting for it.
    t.reply(&code);
    assert!(t.server.wait_for_log("no pending sign-in ignored", WAIT));
    assert_eq!(t.reply_from(BACKUP, &code), 200);
    let reply = login.join().unwrap();
    assert!(reply.is("Access-Accept"), "{}", reply.output);
    t.server.stop();
}

#[test]
fn two_way_the_users_reply_never_approves_a_second_login_on_their_phone() {
    let t = TwoWay::start(15);
    let users_login = t.login();
    t.code(1);
    // Someone who knows the password signs in right after the user.
    let second_login = t.login();
    let refused = t.server.wait_for_log(
        "two sign-ins wait for an SMS reply from one phone",
        Duration::from_secs(3),
    );
    // The user answers the newest text on their phone.
    let newest = t.fake.messages().last().unwrap().code(6).unwrap();
    t.reply(&newest);
    let (users_login, second_login) = (users_login.join().unwrap(), second_login.join().unwrap());
    assert!(
        !second_login.is("Access-Accept"),
        "the user's reply approved the second login"
    );
    assert!(second_login.is("Access-Reject"), "{}", second_login.output);
    assert!(
        users_login.is("Access-Reject"),
        "a reply cannot tell the two apart, so the first is refused as well: {}",
        users_login.output
    );
    assert!(refused, "{}", t.server.logs());
    assert_eq!(t.fake.messages().len(), 1, "no text for the second login");
    let log = t.audit();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(
        log.iter().all(|r| r["reason"] == "sms_reply_pending"),
        "{log:?}"
    );
    // Once both ended, the phone takes a login again.
    let login = t.login();
    let code = t.code(2);
    assert_eq!(t.reply(&code), 200);
    assert!(login.join().unwrap().is("Access-Accept"));
    t.server.stop();
}

#[test]
fn two_way_retransmissions_during_a_pending_reply_send_one_sms() {
    use mfad_radius_proto::{attr, encode_request, encrypt_user_password, Code, Packet};
    let t = TwoWay::start(15);
    let authenticator = [0x5a; 16];
    let mut packet = Packet::new(Code::AccessRequest, 11, authenticator);
    packet.add(attr::USER_NAME, "sam");
    packet.add(
        attr::USER_PASSWORD,
        encrypt_user_password(b"vpn-password", SECRET.as_bytes(), &authenticator).unwrap(),
    );
    let request = encode_request(&packet, SECRET.as_bytes(), true).unwrap();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    socket.send_to(&request, t.server.radius_addr()).unwrap();
    let code = t.code(1);
    // The NAS retransmits while the user types the reply (RFC 5080 §2.2.2).
    socket.send_to(&request, t.server.radius_addr()).unwrap();
    socket.send_to(&request, t.server.radius_addr()).unwrap();
    t.reply(&code);
    let mut buf = [0u8; 4096];
    socket
        .recv_from(&mut buf)
        .expect("a reply once the SMS is answered");
    assert_eq!((buf[0], buf[1]), (2, 11), "Access-Accept to request 11");
    assert_eq!(t.fake.messages().len(), 1, "one SMS for one request");
    assert_eq!(t.audit().len(), 1, "one audit record for one request");
    t.server.stop();
}

#[test]
fn two_way_replies_through_the_http_gateway_need_its_shared_secret() {
    const INBOUND: &str = "inbound-secret-of-32-characters!";
    let fake = FakeTwilio::start(SID, TOKEN);
    let node = Mfad::new(Path::new(env!("CARGO_BIN_EXE_mfad")));
    let secret_file = node.dir().join("inbound-secret");
    std::fs::write(&secret_file, INBOUND).unwrap();
    let node = node.with_config(&format!(
        "reject_delay_ms = 0\n\n[policy]\nout_of_band_timeout_seconds = 15\n\n\
         [policy.sms]\nmode = \"two-way\"\n\n\
         [sms]\ngateway = \"http\"\n\n\
         [sms.http]\nurl = \"{}/generic/send\"\ninbound_secret_file = {:?}\n",
        fake.url(),
        secret_file.display().to_string()
    ));
    let node = with_vpn_and_sam(node);
    let server = node.start();
    let url = format!("{}/hooks/sms/inbound/http", server.http_url("webhooks"));
    let login = pending_login(&server);
    let sent = fake.wait_for_generic(1, WAIT).remove(0);
    // "to=...&text=To%20sign%20in%2C%20reply%20to%20this%20message%20with%20123456"
    let code = sent.body[sent.body.len() - 6..].to_owned();
    assert!(code.bytes().all(|b| b.is_ascii_digit()), "{}", sent.body);
    assert_eq!(
        fake.reply_http_sms(&url, "not-the-secret", SAMS_PHONE, &code),
        403,
        "a reply without the shared secret is refused"
    );
    assert_eq!(fake.reply_http_sms(&url, INBOUND, SAMS_PHONE, &code), 204);
    let reply = login.join().unwrap();
    assert!(
        reply.is("Access-Accept"),
        "{}\n{}",
        reply.output,
        server.logs()
    );
    assert_eq!(fake.generic_requests().len(), 1);
    server.stop();
}

#[test]
fn a_stored_auth_token_replaces_the_file_on_a_running_server() {
    let fake = FakeTwilio::start(SID, TOKEN);
    let node = node(&fake, "");
    // The file now holds a token the provider refuses.
    std::fs::write(node.dir().join("twilio-token"), "an-old-revoked-token").unwrap();
    let server = node.start();
    node.set_secret("sms.twilio.auth_token", TOKEN);
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

/// The server's peak resident memory so far, in MiB (`VmHWM`).
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        / 1024
}

/// 48 PIN guesses at once for an SMS user in PIN mode: each takes its slot before its
/// argon2id hash (19 MiB each, run at most one per core), so no more PINs are checked
/// than the lockout allows, nothing is texted, and the server's memory stays small.
#[test]
fn a_burst_of_pin_guesses_checks_no_more_pins_than_the_lockout_allows() {
    let fake = FakeTwilio::start(SID, TOKEN);
    let node = node(&fake, "");
    node.cli_ok(["user", "update", "sam", "--pin-mode", "pin"]);
    node.cli_ok_with_input(["user", "set-pin", "sam", "--pin-file", "-"], b"2580\n");
    let server = node.start();
    let guesses: Vec<String> = (0..48).map(|i| format!("{}", 1000 + i)).collect();
    let requests: Vec<Vec<(&str, &str)>> = guesses
        .iter()
        .map(|pin| vec![("User-Name", "sam"), ("User-Password", pin.as_str())])
        .collect();
    let replies = Radclient::new(server.radius_addr(), SECRET).burst("auth", &requests);
    let peak = peak_rss_mib(server.pid());
    server.stop();
    eprintln!("peak RSS of mfad serve after 48 parallel PIN guesses: {peak} MiB");
    assert_eq!(
        replies,
        vec![("Access-Reject".to_string(), 48)],
        "every guess rejected"
    );
    let log = node.cli_ok(["log", "--user", "sam", "--limit", "100", "--format", "json"]);
    let records: Vec<serde_json::Value> = serde_json::from_str(&log).unwrap();
    let count = |reason: &str| records.iter().filter(|r| r["reason"] == reason).count();
    assert_eq!(count("wrong_pin"), 10, "PINs checked: {log}");
    assert_eq!(count("locked"), 38, "{log}");
    assert!(fake.messages().is_empty(), "no SMS for a wrong PIN");
    assert!(
        peak < 150,
        "peak RSS {peak} MiB under a burst of PIN guesses"
    );
}
