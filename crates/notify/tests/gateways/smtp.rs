//! SMTP delivery against a real server (aiosmtpd): TLS modes, authentication, rendering
//! of every welcome mail, and the outbox's retries while the server is down.

// Tests report failures by panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mfad_core::clock::testing::FixedClock;
use mfad_core::model::{Method, NewUser, User};
use mfad_core::outbox::{EmailKind, EmailStatus, RetryPolicy};
use mfad_core::store::Store;
use mfad_notify::compose::MailSettings;
use mfad_notify::{compose, Mailer, Outbox, Security, SmtpConfig, Templates};
use mfad_testkit::{ReservedTcpPort, SmtpMode, SmtpServer, TestCa};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
const NOW: i64 = 1_700_000_000;

fn config(port: u16, security: Security, ca: Option<&TestCa>) -> SmtpConfig {
    SmtpConfig {
        host: "localhost".into(),
        port,
        security,
        from: "MFA Server <mfa@example.org>".into(),
        ca_file: ca.map(TestCa::ca_pem).unwrap_or_default(),
        connect_timeout_seconds: 5,
        send_timeout_seconds: 10,
        ..SmtpConfig::default()
    }
}

fn with_login(mut config: SmtpConfig, dir: &tempfile::TempDir, password: &str) -> SmtpConfig {
    let file = dir.path().join("smtp-password");
    std::fs::write(&file, format!("{password}\n")).unwrap();
    config.user = "mfa-sender".into();
    config.password_file = file;
    config
}

fn user(method: Method) -> User {
    User {
        id: 7,
        username: format!("user-{method}"),
        given_name: "Grace".into(),
        surname: "Hopper".into(),
        email: format!("{method}@example.org"),
        phone: "+14255550100".into(),
        enabled: true,
        blocked_until: None,
        block_reason: None,
        locked_until: None,
        failures: 0,
        pin_mode: Default::default(),
        method,
        backup_phone: String::new(),
        pin_hash: None,
        pin_change_required: false,
        pin_history: Vec::new(),
        bypass_until: None,
        created_at: NOW,
        mobile: String::new(),
        extension: String::new(),
        language: String::new(),
        directory_id: None,
        sync_item: None,
    }
}

fn settings() -> MailSettings {
    MailSettings {
        language: "en".into(),
        portal_url: "https://mfa.example.org/portal".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn welcome_mails_for_every_method_arrive_rendered_over_starttls_with_auth() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let server = SmtpServer::start(
        SmtpMode::Starttls,
        Some(&ca),
        Some(("mfa-sender", "s3cret pass")),
    );
    let mailer = Mailer::new(&with_login(
        config(server.port(), Security::Starttls, Some(&ca)),
        &dir,
        "s3cret pass",
    ))
    .unwrap();
    let templates = Templates::shipped().unwrap();
    for method in Method::ALL {
        let mail = compose(
            &templates,
            &settings(),
            &user(method),
            EmailKind::Welcome,
            Some("8642"),
            false,
        )
        .unwrap();
        mailer
            .send(&mail.recipient, &mail.subject, &mail.body)
            .await
            .unwrap();
    }
    let received = server.wait_for_messages(Method::ALL.len(), WAIT);
    for (method, mail) in Method::ALL.iter().zip(&received) {
        assert!(mail.tls, "{method}: sent after STARTTLS");
        assert!(mail.auth, "{method}: sent after AUTH");
        assert_eq!(mail.to, [format!("{method}@example.org")]);
        assert_eq!(mail.from, "mfa@example.org");
        let body = mail.body();
        assert!(body.contains("Hello Grace,"), "{method}: {body}");
        assert!(body.contains(&format!("user-{method}")), "{method}: {body}");
        assert!(
            body.contains("Your initial PIN is 8642"),
            "{method}: {body}"
        );
        assert!(
            !body.contains("{{") && !body.contains("{%"),
            "{method}: {body}"
        );
        let subject = mail.header("Subject").unwrap();
        let expected = Templates::shipped()
            .unwrap()
            .render(
                EmailKind::Welcome,
                *method,
                "en",
                &mfad_notify::MailContext::default(),
            )
            .unwrap()
            .subject;
        assert_eq!(subject, expected, "{method}");
    }
    let by_method = |m: Method| received[Method::ALL.iter().position(|x| *x == m).unwrap()].body();
    assert!(by_method(Method::App).contains("https://mfa.example.org/portal"));
    assert!(by_method(Method::Sms).contains("+14255550100"));
    assert!(by_method(Method::Call).contains("0#"));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_delivers() {
    let ca = TestCa::new();
    let server = SmtpServer::start(SmtpMode::Tls, Some(&ca), None);
    let mailer = Mailer::new(&config(server.port(), Security::Tls, Some(&ca))).unwrap();
    mailer
        .send("bob@example.org", "Hello", "over TLS\n")
        .await
        .unwrap();
    let received = server.wait_for_messages(1, WAIT);
    assert!(received[0].tls);
    assert_eq!(received[0].body().trim_end(), "over TLS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_and_nothing_is_delivered() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let server = SmtpServer::start(SmtpMode::Starttls, Some(&ca), Some(("mfa-sender", "right")));
    let mailer = Mailer::new(&with_login(
        config(server.port(), Security::Starttls, Some(&ca)),
        &dir,
        "wrong",
    ))
    .unwrap();
    let err = mailer
        .send("bob@example.org", "Hello", "x\n")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("SMTP delivery failed"), "{err}");
    assert!(
        !err.contains("wrong"),
        "the password is not in the error: {err}"
    );
    assert!(server.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_an_untrusted_ca_is_refused() {
    let ca = TestCa::new();
    let server = SmtpServer::start(SmtpMode::Starttls, Some(&ca), None);
    let mailer = Mailer::new(&config(server.port(), Security::Starttls, None)).unwrap();
    let err = mailer
        .send("bob@example.org", "Hello", "x\n")
        .await
        .expect_err("an unverified server gets no mail")
        .to_string();
    assert!(
        err.contains("invalid peer certificate") && err.contains("UnknownIssuer"),
        "the certificate is what was refused: {err}"
    );
    assert!(server.messages().is_empty());
    // The same server, its CA trusted, gets the mail: the issuer was the only fault.
    let trusting = Mailer::new(&config(server.port(), Security::Starttls, Some(&ca))).unwrap();
    trusting
        .send("bob@example.org", "Hello", "x\n")
        .await
        .unwrap();
    assert_eq!(server.wait_for_messages(1, WAIT).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_is_required_when_configured() {
    // A server that offers no STARTTLS must not get the mail in clear text.
    let server = SmtpServer::start(SmtpMode::Plain, None, None);
    let mailer = Mailer::new(&config(server.port(), Security::Starttls, None)).unwrap();
    assert!(mailer
        .send("bob@example.org", "Hello", "x\n")
        .await
        .is_err());
    assert!(server.messages().is_empty());
    // The same server is fine for plain SMTP on loopback.
    let plain = Mailer::new(&config(server.port(), Security::None, None)).unwrap();
    plain.send("bob@example.org", "Hello", "x\n").await.unwrap();
    assert_eq!(server.wait_for_messages(1, WAIT).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_retries_while_the_server_is_down_and_delivers_once_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        mfad_store::SqliteStore::open(
            &dir.path().join("mfad.db"),
            mfad_store::Cipher::from_key(&[7; 32]),
            Default::default(),
        )
        .unwrap(),
    );
    let created = store
        .create_user(
            &NewUser {
                username: "ada".into(),
                given_name: "Ada".into(),
                email: "ada@example.org".into(),
                method: Method::Token,
                ..NewUser::default()
            },
            NOW,
        )
        .await
        .unwrap();
    let mail = compose(
        &Templates::shipped().unwrap(),
        &settings(),
        &created,
        EmailKind::Welcome,
        None,
        true,
    )
    .unwrap();
    store.queue_email(&mail, NOW).await.unwrap().unwrap();

    // Held, refusing connections, until the mail server starts on it.
    let port = ReservedTcpPort::new();
    let clock = Arc::new(FixedClock::at(NOW));
    let retry = RetryPolicy {
        initial_seconds: 30,
        max_seconds: 300,
        max_attempts: 5,
    };
    let outbox = Outbox::new(
        store.clone(),
        Mailer::new(&config(port.port(), Security::None, None)).unwrap(),
        clock.clone(),
        retry,
    );
    let report = outbox.deliver_due().await.unwrap();
    assert_eq!(
        (report.sent, report.retried),
        (0, 1),
        "server down: retried"
    );
    let status = store.list_emails(10).await.unwrap();
    assert_eq!(status[0].status, EmailStatus::Queued);
    assert!(status[0].last_error.is_some());
    assert_eq!(status[0].next_attempt_at, NOW + 30);

    let server = SmtpServer::start_on(port, SmtpMode::Plain, None, None);
    assert_eq!(
        outbox.deliver_due().await.unwrap().sent,
        0,
        "not before the retry time"
    );
    clock.advance(30);
    assert_eq!(outbox.deliver_due().await.unwrap().sent, 1);
    clock.advance(3600);
    assert_eq!(outbox.deliver_due().await.unwrap().sent, 0, "sent once");
    let received = server.wait_for_messages(1, WAIT);
    assert_eq!(received.len(), 1);
    assert!(received[0].body().contains("hardware token"));
    let status = store.list_emails(10).await.unwrap();
    assert_eq!(status[0].status, EmailStatus::Sent);
    assert_eq!(status[0].attempts, 2);
}
