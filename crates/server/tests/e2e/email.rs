//! End to end: the `mfad` binary mailing users through a real SMTP server (aiosmtpd).

// Tests report failures by panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mfad_testkit::{
    free_tcp_port, oathtool_hotp, Mfad, Radclient, ReservedTcpPort, SmtpMode, SmtpServer, TestCa,
};
use std::path::Path;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);
const PASSWORD: &str = "smtp pass 8c1f";
const SECRET: &str = "a-shared-secret-of-28-bytes!";
/// RFC 4226 Appendix D's key "12345678901234567890" in base32.
const SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

fn mfad() -> Mfad {
    Mfad::new(Path::new(env!("CARGO_BIN_EXE_mfad")))
}

/// `[smtp]`, `[email]` and `[portal]` for a server on `port` over STARTTLS with AUTH.
fn mail_config(node: &Mfad, port: u16, ca: &TestCa, extra_email: &str) -> String {
    let password_file = node.dir().join("smtp-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    format!(
        "[smtp]\nhost = \"localhost\"\nport = {port}\nsecurity = \"starttls\"\n\
         user = \"mfa-sender\"\npassword_file = {:?}\nfrom = \"MFA <mfa@example.org>\"\n\
         ca_file = {:?}\nconnect_timeout_seconds = 5\nsend_timeout_seconds = 10\n\n\
         [email]\nsend_to_users = true\npoll_seconds = 1\n{extra_email}\n\n\
         [portal]\nurl = \"https://mfa.example.org/portal\"\n",
        password_file.display().to_string(),
        ca.ca_pem().display().to_string(),
    )
}

/// A STARTTLS mail server with AUTH, and a node that mails through it (`extra_email`
/// added to `[email]`).
fn node_mailing(extra_email: &str) -> (TestCa, SmtpServer, Mfad) {
    let ca = TestCa::new();
    let server = SmtpServer::start(
        SmtpMode::Starttls,
        Some(&ca),
        Some(("mfa-sender", PASSWORD)),
    );
    let node = mfad();
    let config = mail_config(&node, server.port(), &ca, extra_email);
    (ca, server, node.with_config(&config))
}

/// The initial PIN a welcome mail carries.
fn pin_in(body: &str) -> String {
    let at = body
        .find("Your initial PIN is ")
        .expect("the mail carries a PIN");
    body[at + "Your initial PIN is ".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

#[test]
fn a_new_user_gets_the_welcome_mail_for_their_method_with_a_generated_pin() {
    let (_ca, server, node) = node_mailing("");
    let out = node.cli_ok([
        "user",
        "add",
        "carol",
        "--given-name",
        "Carol",
        "--email",
        "carol@example.org",
        "--method",
        "sms",
        "--phone",
        "(425) 555-0100",
        "--pin-mode",
        "pin",
        "--generate-pin",
    ]);
    assert!(
        out.contains("sent the welcome e-mail to carol@example.org"),
        "{out}"
    );
    let mails = server.wait_for_messages(1, WAIT);
    let mail = &mails[0];
    assert!(mail.tls && mail.auth);
    assert_eq!(mail.to, ["carol@example.org"]);
    let body = mail.body();
    assert!(body.contains("Hello Carol,"), "{body}");
    assert!(
        body.contains("+14255550100"),
        "the phone is stored as E.164: {body}"
    );
    let pin = pin_in(&body);
    assert!(pin.len() >= 4, "{body}");
    assert!(!out.contains(&pin), "a mailed PIN is not printed: {out}");
    let shown = node.cli_ok(["user", "show", "carol", "--format", "json"]);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["user"]["pin_change_required"], true);
    assert_eq!(shown["user"]["method"], "sms");
    assert_eq!(shown["user"]["phone"], "+14255550100");

    // `mfad email send` sends the welcome mail again, on request.
    let again = node.cli_ok(["email", "send", "carol"]);
    assert!(again.contains("sent the welcome e-mail"), "{again}");
    let mails = server.wait_for_messages(2, WAIT);
    assert!(
        !mails[1].body().contains("initial PIN"),
        "no PIN unless one was generated"
    );

    let status = node.cli_ok(["email", "status", "--format", "json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let rows = status.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|r| r["status"] == "sent" && r["attempts"] == 1),
        "{status}"
    );
    assert_eq!(server.messages().len(), 2);
}

#[test]
fn a_changed_phone_or_method_sends_an_update_mail_when_asked_to() {
    let (_ca, server, node) = node_mailing("send_updates = true");
    node.cli_ok(["user", "add", "gus", "--email", "gus@example.org"]);
    server.wait_for_messages(1, WAIT);
    node.cli_ok(["user", "update", "gus", "--given-name", "Gus"]);
    node.cli_ok([
        "user",
        "update",
        "gus",
        "--method",
        "sms",
        "--phone",
        "+44 20 7946 0018",
    ]);
    let mails = server.wait_for_messages(2, WAIT);
    let update = &mails[1];
    assert_eq!(
        update.header("Subject").as_deref(),
        Some("Your sign-in settings have changed")
    );
    let body = update.body();
    assert!(body.contains("Method: text message (SMS)"), "{body}");
    assert!(body.contains("Phone: +442079460018"), "{body}");
    let status = node.cli_ok(["email", "status", "--format", "json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        status.as_array().unwrap().len(),
        2,
        "a change of name alone sends nothing: {status}"
    );
}

#[test]
fn set_pin_generate_mails_the_pin_and_requires_a_change() {
    let (_ca, server, node) = node_mailing("");
    node.cli_ok([
        "user",
        "add",
        "dave",
        "--email",
        "dave@example.org",
        "--method",
        "token",
    ]);
    let welcome = server.wait_for_messages(1, WAIT);
    assert!(welcome[0].body().contains("hardware token"));
    let out = node.cli_ok(["user", "set-pin", "dave", "--generate"]);
    assert!(out.contains("sent the welcome e-mail"), "{out}");
    let mails = server.wait_for_messages(2, WAIT);
    let pin = pin_in(&mails[1].body());
    assert!(!out.contains(&pin));
    let shown = node.cli_ok(["user", "show", "dave", "--format", "json"]);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["user"]["pin_change_required"], true);
}

#[test]
fn a_mail_to_a_down_server_is_retried_by_serve_and_delivered_once() {
    let ca = TestCa::new();
    // Held, refusing connections, until the mail server starts on it.
    let port = ReservedTcpPort::new();
    let node = mfad();
    let config = mail_config(
        &node,
        port.port(),
        &ca,
        "\n[email.retry]\ninitial_seconds = 1\nmax_seconds = 2\nmax_attempts = 50\n",
    );
    let node = node.with_config(&config);
    let out = node.cli_ok(["user", "add", "erin", "--email", "erin@example.org"]);
    assert!(out.contains("created user erin"), "{out}");
    assert!(out.contains("delivery failed"), "{out}");
    let status = node.cli_ok(["email", "status", "--format", "json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status[0]["status"], "queued", "{status}");
    assert!(!status[0]["last_error"]
        .as_str()
        .unwrap_or_default()
        .is_empty());
    // Authentication is not held up by mail: the server starts and answers meanwhile.
    node.add_client("vpn", "127.0.0.1", SECRET);
    node.cli_ok(["user", "add", "frank"]);
    node.cli_ok([
        "token", "add", "frank", "--type", "hotp", "--secret", SEED, "--serial", "hw-1",
    ]);
    let running = node.start();
    let reply = Radclient::new(running.radius_addr(), SECRET).send(
        "auth",
        &[
            ("User-Name", "frank"),
            ("User-Password", &oathtool_hotp(SEED, 0, 6)),
        ],
    );
    assert!(
        reply.is("Access-Accept"),
        "answered while the mail server is down: {}",
        reply.output
    );
    assert!(
        running.wait_for_log("e-mail not delivered, will retry", WAIT),
        "serve retried the mail meanwhile:\n{}",
        running.logs()
    );

    let server = SmtpServer::start_on(
        port,
        SmtpMode::Starttls,
        Some(&ca),
        Some(("mfa-sender", PASSWORD)),
    );
    let mails = server.wait_for_messages(1, WAIT);
    assert_eq!(mails[0].to, ["erin@example.org"]);
    let deadline = Instant::now() + WAIT;
    loop {
        let status = node.cli_ok(["email", "status", "--format", "json"]);
        let status: serde_json::Value = serde_json::from_str(&status).unwrap();
        if status[0]["status"] == "sent" {
            break;
        }
        assert!(Instant::now() < deadline, "not marked sent: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(running.wait_for_log("e-mail sent", WAIT));
    // Past the longest retry interval (max_seconds = 2) and a poll (poll_seconds = 1),
    // twice over: a mail not marked sent would have gone out again by now.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(server.messages().len(), 1, "delivered once");
    running.stop();
}

#[test]
fn a_broken_operator_template_stops_serve_naming_the_template_and_line() {
    let ca = TestCa::new();
    let node = mfad();
    let templates = node.dir().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(
        templates.join("welcome-app.en.txt"),
        "Subject: Welcome\n\nHello {{ given_name }}\n{% if pin %}PIN {{ pin }}\n",
    )
    .unwrap();
    let config = mail_config(
        &node,
        free_tcp_port(),
        &ca,
        &format!("templates_dir = {:?}", templates.display().to_string()),
    );
    let node = node.with_config(&config);
    let err = node.cli_err(["serve"]);
    assert!(err.contains("welcome-app.en.txt"), "{err}");
    assert!(err.contains("line 4"), "{err}");
    assert_eq!(
        err.trim()
            .lines()
            .filter(|l| l.starts_with("error"))
            .count(),
        1,
        "{err}"
    );
}

#[test]
fn a_phone_number_that_is_not_a_number_is_refused_with_a_reason() {
    let node = mfad();
    let err = node.cli_err(["user", "add", "fay", "--phone", "call me maybe"]);
    assert!(err.contains("phone number 'call me maybe'"), "{err}");
    let err = node.cli_err(["user", "add", "fay", "--method", "sms"]);
    assert!(err.contains("needs a phone number"), "{err}");
}

#[test]
fn a_stored_template_is_used_for_the_welcome_mail() {
    let (_ca, server, node) = node_mailing("");
    let file = node.dir().join("welcome-app.txt");
    std::fs::write(
        &file,
        "Subject: Your sign-in app, {{ given_name }}\n\nStored template for {{ username }}.\n",
    )
    .unwrap();
    node.cli_ok([
        "template".as_ref(),
        "set".as_ref(),
        "welcome-app.en.txt".as_ref(),
        "--file".as_ref(),
        file.as_os_str(),
    ]);
    node.cli_ok([
        "user",
        "add",
        "erin",
        "--given-name",
        "Erin",
        "--email",
        "erin@example.org",
    ]);
    let mails = server.wait_for_messages(1, WAIT);
    assert_eq!(
        mails[0].header("Subject").as_deref(),
        Some("Your sign-in app, Erin")
    );
    assert!(
        mails[0].body().contains("Stored template for erin."),
        "{}",
        mails[0].body()
    );
}
