//! SMS gateways against the local provider double: the Twilio Messages API shape and a
//! generic HTTP gateway.

// Tests report failures by panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mfad_core::delivery::SmsSender;
use mfad_notify::sms::{HttpSmsConfig, TwilioConfig};
use mfad_notify::{GatewayKind, SmsConfig, SmsGateway};
use mfad_testkit::FakeTwilio;
use std::collections::BTreeMap;
use std::time::Duration;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "auth-token-5f2e";
const WAIT: Duration = Duration::from_secs(10);

fn twilio_config(fake: &FakeTwilio, dir: &tempfile::TempDir, token: &str) -> SmsConfig {
    let token_file = dir.path().join("twilio-token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    SmsConfig {
        gateway: GatewayKind::Twilio,
        twilio: TwilioConfig {
            api_url: fake.url(),
            account_sid: SID.into(),
            auth_token_file: token_file,
            from: "+15005550006".into(),
            ..TwilioConfig::default()
        },
        ..SmsConfig::default()
    }
}

#[tokio::test]
async fn twilio_gateway_delivers_the_code_to_the_number() {
    let fake = FakeTwilio::start(SID, TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let gateway = SmsGateway::new(&twilio_config(&fake, &dir, TOKEN))
        .unwrap()
        .unwrap();
    gateway.send_code("+14255550100", "482913").await.unwrap();
    let sms = fake.wait_for_messages(1, WAIT);
    assert_eq!(sms[0].to, "+14255550100");
    assert_eq!(sms[0].from, "+15005550006");
    assert_eq!(sms[0].body, "Your sign-in code is 482913");
    assert_eq!(sms[0].code(6).as_deref(), Some("482913"));
}

#[tokio::test]
async fn twilio_errors_carry_the_provider_code_but_never_the_token() {
    let fake = FakeTwilio::start(SID, TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let gateway = SmsGateway::new(&twilio_config(&fake, &dir, "wrong-token"))
        .unwrap()
        .unwrap();
    let err = gateway
        .send_code("+14255550100", "482913")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("401") && err.contains("20003"), "{err}");
    assert!(
        !err.contains("wrong-token") && !err.contains("482913"),
        "{err}"
    );

    let gateway = SmsGateway::new(&twilio_config(&fake, &dir, TOKEN))
        .unwrap()
        .unwrap();
    fake.fail_next(1);
    let err = gateway.send_code("+14255550100", "1").await.unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn generic_gateway_renders_the_request_and_checks_the_answer() {
    let fake = FakeTwilio::start(SID, TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("api-key");
    std::fs::write(&secret, "key-77aa\n").unwrap();
    let mut config = SmsConfig {
        gateway: GatewayKind::Http,
        message: "Code {{ code }} for \"mfad\"".into(),
        http: HttpSmsConfig {
            url: format!("{}/generic/send", fake.url()),
            headers: BTreeMap::from([("X-Api-Key".to_owned(), "{{ secret }}".to_owned())]),
            content_type: "application/json".into(),
            body: r#"{"to": {{ to|tojson }}, "text": {{ message|tojson }}}"#.into(),
            secret_file: secret,
            success_contains: "accepted".into(),
            ..HttpSmsConfig::default()
        },
        ..SmsConfig::default()
    };
    let gateway = SmsGateway::new(&config).unwrap().unwrap();
    gateway.send_code("+442079460018", "004211").await.unwrap();
    let requests = fake.wait_for_generic(1, WAIT);
    let body: serde_json::Value = serde_json::from_str(&requests[0].body).unwrap();
    assert_eq!(body["to"], "+442079460018");
    assert_eq!(body["text"], "Code 004211 for \"mfad\"");
    assert_eq!(requests[0].headers["x-api-key"], "key-77aa");
    assert_eq!(requests[0].headers["content-type"], "application/json");

    // A success condition that the answer does not meet is a failure.
    config.http.success_contains = "queued".into();
    let gateway = SmsGateway::new(&config).unwrap().unwrap();
    let err = gateway.send_code("+442079460018", "1").await.unwrap_err();
    assert!(err.to_string().contains("without 'queued'"), "{err}");
}

#[tokio::test]
async fn replies_are_taken_only_with_the_auth_token_that_checks_their_signatures() {
    let fake = FakeTwilio::start(SID, TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let config = twilio_config(&fake, &dir, TOKEN);
    let gateway = SmsGateway::new(&config).unwrap().unwrap();
    assert!(mfad_notify::LiveSms::new(gateway).receives_replies());
    // An API key sends messages, but Twilio signs webhooks with the auth token.
    let mut with_key = config;
    with_key.twilio.api_key_sid = "SK00000000000000000000000000000001".into();
    let gateway = SmsGateway::new(&with_key).unwrap().unwrap();
    assert!(!mfad_notify::LiveSms::new(gateway).receives_replies());
}
