//! The operator services against the real SQLite store, with a fixed clock: every rule
//! they apply and every error code they can give.

// Tests report failures by panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mfad_core::clock::testing::{CountingRandom, FixedClock};
use mfad_core::model::{FirstFactor, Method, NewClient, NewToken, PinMode, Prompt, Secret, User};
use mfad_core::otp::{format_code, hotp, Algorithm, OtpKind};
use mfad_core::outbox::{EmailKind, NewEmail};
use mfad_core::phone::PhoneError;
use mfad_core::pin::{self, PinError};
use mfad_core::policy::Policy;
use mfad_core::service::clients::{parse_address, ClientNotice};
use mfad_core::service::pins::PinNotice;
use mfad_core::service::tokens::TokenSpec;
use mfad_core::service::users::{UserFields, UserState};
use mfad_core::service::{Access, Clients, Composer, Error, MailRules, Mails, Pins, Tokens, Users};
use mfad_core::store::{DirectorySync, PendingPhone, Store, StoreError};
use std::sync::Arc;
use zeroize::Zeroizing;

const T0: i64 = 1_795_564_800;
const KEY: &[u8] = b"12345678901234567890";

struct World {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    clock: Arc<FixedClock>,
    rng: Arc<CountingRandom>,
    policy: Policy,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let store = mfad_store::open(&url, &dir.path().join("k"), Default::default())
        .await
        .unwrap();
    World {
        _dir: dir,
        store,
        clock: Arc::new(FixedClock::at(T0)),
        rng: Arc::new(CountingRandom::default()),
        policy: Policy {
            default_country_code: "1".into(),
            ..Policy::default()
        },
    }
}

impl World {
    fn users(&self) -> Users {
        Users::new(self.store.clone(), self.clock.clone(), &self.policy)
    }
    fn access(&self) -> Access {
        Access::new(self.store.clone(), self.clock.clone(), &self.policy)
    }
    fn pins(&self) -> Pins {
        Pins::new(self.store.clone(), self.rng.clone(), &self.policy)
    }
    fn tokens(&self) -> Tokens {
        Tokens::new(
            self.store.clone(),
            self.clock.clone(),
            self.rng.clone(),
            "mfad",
        )
    }
    fn clients(&self, targets: &[&str], directory: bool) -> Clients {
        let targets = targets.iter().map(|t| t.to_string()).collect();
        Clients::new(self.store.clone(), self.clock.clone(), targets, directory)
    }
    fn mails(&self, rules: MailRules) -> Mails {
        Mails::new(self.store.clone(), self.clock.clone(), rules)
    }
    async fn add(&self, name: &str) -> User {
        self.add_with(name, |_| {}).await
    }
    /// Adds `name` with the fields `set` fills in.
    async fn add_with(&self, name: &str, set: impl FnOnce(&mut UserFields)) -> User {
        self.users().add(name, fields(set), "").await.unwrap()
    }
}

fn fields(f: impl FnOnce(&mut UserFields)) -> UserFields {
    let mut fields = UserFields::default();
    f(&mut fields);
    fields
}

#[track_caller]
fn code_of<T: std::fmt::Debug>(result: Result<T, Error>) -> &'static str {
    result.unwrap_err().code()
}

#[tokio::test]
async fn users_are_added_once_under_their_normalised_name() {
    let w = world().await;
    let user = w
        .users()
        .add(
            " Carol ",
            fields(|f| {
                f.phone = Some("(425) 555-0100".into());
                f.method = Some("sms".into());
                f.pin_mode = Some("pin".into());
            }),
            "",
        )
        .await
        .unwrap();
    assert_eq!(user.username, "carol");
    assert_eq!(user.phone, "+14255550100", "stored in E.164");
    assert_eq!((user.method, user.pin_mode), (Method::Sms, PinMode::Pin));
    // Found the way a login finds them: any case, DOMAIN\user, UPN.
    for typed in ["CAROL", "CORP\\carol", "carol@corp.example"] {
        assert_eq!(w.users().find(typed).await.unwrap().id, user.id, "{typed}");
    }
    let err = w
        .users()
        .add("CAROL", UserFields::default(), "")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "user.exists");
    assert_eq!(
        err.to_string(),
        "user 'carol' already exists; use 'mfad user update' to change it"
    );
    let err = w.users().find("nobody").await.unwrap_err();
    assert_eq!(err.code(), "user.not_found");
    assert_eq!(
        err.to_string(),
        "user 'nobody' does not exist; see 'mfad user list'"
    );
}

#[tokio::test]
async fn a_user_that_cannot_work_is_not_added() {
    let w = world().await;
    let users = w.users();
    let add = |name: &'static str, f: UserFields| {
        let users = &users;
        async move { users.add(name, f, "").await }
    };
    for name in ["", "   ", "carol smith", "carol\u{7}"] {
        let err = add(name, UserFields::default()).await.unwrap_err();
        assert_eq!(err.code(), "user.invalid_name", "{name:?}");
    }
    let err = add("carol", fields(|f| f.pin_mode = Some("sometimes".into())))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "user.invalid_pin_mode");
    let err = add("carol", fields(|f| f.method = Some("pigeon".into())))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "user.invalid_method");
    let err = add("carol", fields(|f| f.method = Some("call".into())))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "user.phone_required");
    assert_eq!(
        err.to_string(),
        "method call needs a phone number; add --phone NUMBER"
    );
    let err = add("carol", fields(|f| f.phone = Some("12ab".into())))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Phone(PhoneError::Characters(_))));
    assert_eq!(err.code(), "phone.invalid");
    assert!(w.users().list().await.unwrap().is_empty(), "nothing stored");
}

#[tokio::test]
async fn an_update_says_whether_the_second_factor_changed() {
    let w = world().await;
    let carol = w.add("carol").await;
    let updated = w
        .users()
        .update(
            carol.clone(),
            fields(|f| f.given_name = Some("Carol".into())),
        )
        .await
        .unwrap();
    assert_eq!(updated.after.given_name, "Carol");
    assert!(!updated.second_factor_changed());
    let updated = w
        .users()
        .update(
            updated.after,
            fields(|f| {
                f.phone = Some("+44 20 7946 0018".into());
                f.email = Some("carol@example.org".into());
            }),
        )
        .await
        .unwrap();
    assert_eq!(updated.after.phone, "+442079460018");
    assert!(updated.second_factor_changed());
    let rules = MailRules {
        smtp: true,
        send_updates: true,
        ..MailRules::default()
    };
    assert!(rules.tells_update(&updated));
    let off = MailRules {
        send_updates: false,
        ..rules
    };
    assert!(!off.tells_update(&updated));
    let err = w
        .users()
        .update(carol, fields(|f| f.method = Some("pigeon".into())))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "user.invalid_method");
}

#[tokio::test]
async fn disabled_deleted_and_stateful_users() {
    let w = world().await;
    let carol = w.add("carol").await;
    assert_eq!(UserState::of(&carol, T0), UserState::Active);
    let disabled = w.users().set_enabled("Carol", false).await.unwrap();
    assert_eq!(UserState::of(&disabled, T0).as_str(), "disabled");
    w.users().set_enabled("carol", true).await.unwrap();
    let deleted = w.users().delete("carol").await.unwrap();
    assert_eq!(deleted.id, carol.id);
    assert_eq!(code_of(w.users().delete("carol").await), "user.not_found");
}

#[tokio::test]
async fn bypass_lasts_the_seconds_given_within_a_day() {
    let w = world().await;
    w.add("carol").await;
    for seconds in [0, -1, 86_401] {
        let err = w.access().bypass("carol", seconds).await.unwrap_err();
        assert_eq!(err.code(), "bypass.invalid_seconds");
        assert_eq!(err.to_string(), "--seconds must be between 1 and 86400");
    }
    // The length is checked before the user: the same answer for any name.
    assert_eq!(
        code_of(w.access().bypass("nobody", 0).await),
        "bypass.invalid_seconds"
    );
    let (user, until) = w.access().bypass("carol", 600).await.unwrap();
    assert_eq!(until, T0 + 600);
    let stored = w.store.user_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(stored.bypass_until, Some(T0 + 600));
    assert!(w.store.consume_bypass(user.id, T0 + 599).await.unwrap());
}

#[tokio::test]
async fn blocks_last_the_policys_days_unless_told_and_end_on_unblock() {
    let w = world().await;
    let carol = w.add("carol").await;
    let (_, until) = w.access().block("carol", "lost phone", None).await.unwrap();
    assert_eq!(until, T0 + w.policy.block_days * 86_400);
    let (_, until) = w
        .access()
        .block("carol", "lost phone", Some(2))
        .await
        .unwrap();
    assert_eq!(until, T0 + 2 * 86_400);
    let stored = w.store.user_by_id(carol.id).await.unwrap().unwrap();
    assert_eq!(UserState::of(&stored, T0), UserState::Blocked);
    assert_eq!(stored.block_reason.as_deref(), Some("lost phone"));
    let err = w.access().block("carol", "x", Some(0)).await.unwrap_err();
    assert_eq!(err.code(), "block.invalid_days");
    assert_eq!(err.to_string(), "--days must be positive");
    w.access().unblock("carol").await.unwrap();
    let stored = w.store.user_by_id(carol.id).await.unwrap().unwrap();
    assert_eq!(UserState::of(&stored, T0), UserState::Active);
    assert_eq!(
        code_of(w.access().unblock("nobody").await),
        "user.not_found"
    );
}

#[tokio::test]
async fn unlock_clears_a_lockout() {
    let w = world().await;
    let carol = w.add("carol").await;
    for _ in 0..3 {
        w.store.take_attempt(carol.id, T0, 3, 300).await.unwrap();
    }
    w.store.flush().await.unwrap();
    let locked = w.store.user_by_id(carol.id).await.unwrap().unwrap();
    assert_eq!(UserState::of(&locked, T0), UserState::Locked);
    w.access().unlock("CAROL").await.unwrap();
    // SQLite group-commits the lockout counters: read them once they are written.
    w.store.flush().await.unwrap();
    let stored = w.store.user_by_id(carol.id).await.unwrap().unwrap();
    assert_eq!(UserState::of(&stored, T0), UserState::Active);
    assert_eq!(stored.failures, 0);
}

#[tokio::test]
async fn pins_follow_the_rules_and_are_stored_hashed() {
    let w = world().await;
    let carol = w
        .add_with("carol", |f| f.phone = Some("+1 425 555 0100".into()))
        .await;
    let pins = w.pins();
    let cases: [(&str, &str); 6] = [
        ("12a4", "pin.not_digits"),
        ("135", "pin.too_short"),
        ("13579135791357913", "pin.too_long"),
        ("1112", "pin.pattern"),
        ("4255", "pin.in_phone"),
        ("2468", ""),
    ];
    for (pin, code) in cases {
        match pins.set(&carol, pin, false).await {
            Ok(()) => assert_eq!(code, "", "{pin}"),
            Err(err) => assert_eq!(err.code(), code, "{pin}"),
        }
    }
    let stored = w.store.user_by_id(carol.id).await.unwrap().unwrap();
    let hash = stored.pin_hash.clone().unwrap();
    assert!(pin::verify(&hash, "2468"));
    assert!(!stored.pin_change_required);
    let err = pins.set(&stored, "2468", false).await.unwrap_err();
    assert_eq!(err.code(), "pin.reused");
    assert_eq!(err.to_string(), "the PIN must differ from your recent PINs");
}

#[tokio::test]
async fn a_generated_pin_must_be_changed_and_a_code_only_user_is_told() {
    let w = world().await;
    let carol = w.add("carol").await;
    let pins = w.pins();
    let notice = pins.notice(&carol).unwrap();
    assert_eq!(notice.code(), "pin.not_asked");
    assert_eq!(
        notice,
        PinNotice::NotAsked {
            username: "carol".into(),
            pin_mode: PinMode::Standard
        }
    );
    assert!(notice
        .to_string()
        .contains("run 'mfad user update carol --pin-mode pin'"));
    let pin = pins.generate(&carol, true).await.unwrap();
    assert!(pin::check(&pin, &w.policy.pin, &carol.phone, &[]).is_ok());
    let stored = w.store.user_by_id(carol.id).await.unwrap().unwrap();
    assert!(pin::verify(stored.pin_hash.as_deref().unwrap(), &pin));
    assert!(stored.pin_change_required);
    let dave = w
        .users()
        .add("dave", fields(|f| f.pin_mode = Some("pin".into())), "")
        .await
        .unwrap();
    assert_eq!(pins.notice(&dave), None);
}

fn spec(kind: OtpKind) -> TokenSpec<'static> {
    TokenSpec {
        kind,
        algorithm: Algorithm::Sha1,
        digits: 6,
        period: 30,
        secret: None,
        serial: None,
    }
}

#[tokio::test]
async fn a_software_token_comes_with_its_uri_and_a_fresh_serial() {
    let w = world().await;
    let carol = w.add("carol").await;
    let tokens = w.tokens();
    let created = tokens.add(&carol, spec(OtpKind::Totp)).await.unwrap();
    assert!(created.serial.starts_with("totp-"), "{}", created.serial);
    assert_eq!(created.secret.len(), 20, "160 bits");
    assert!(
        created.uri.starts_with("otpauth://totp/"),
        "{}",
        created.uri
    );
    assert!(created.uri.contains("issuer=mfad"), "{}", created.uri);
    let stored = tokens.find(&created.serial).await.unwrap();
    assert_eq!(stored.user_id, Some(carol.id));
    assert_eq!(stored.secret.expose(), &created.secret[..]);
    let given = TokenSpec {
        secret: Some("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
        serial: Some("t1".into()),
        ..spec(OtpKind::Hotp)
    };
    let created = tokens.add(&carol, given.clone()).await.unwrap();
    assert_eq!(&created.secret[..], KEY);
    let err = tokens.add(&carol, given).await.unwrap_err();
    assert_eq!(err.code(), "token.exists");
    assert_eq!(
        err.to_string(),
        "token 't1' already exists; choose another --serial"
    );
    assert_eq!(tokens.list(Some(&carol)).await.unwrap().len(), 2);
}

#[tokio::test]
async fn token_parameters_apps_cannot_use_are_refused() {
    let w = world().await;
    let carol = w.add("carol").await;
    let tokens = w.tokens();
    let digits = TokenSpec {
        digits: 7,
        ..spec(OtpKind::Totp)
    };
    assert_eq!(
        code_of(tokens.add(&carol, digits).await),
        "token.invalid_digits"
    );
    let period = TokenSpec {
        period: 45,
        ..spec(OtpKind::Totp)
    };
    assert_eq!(
        code_of(tokens.add(&carol, period).await),
        "token.invalid_period"
    );
    // HOTP has no period.
    let hotp_period = TokenSpec {
        period: 45,
        ..spec(OtpKind::Hotp)
    };
    tokens.add(&carol, hotp_period).await.unwrap();
    let short = TokenSpec {
        secret: Some("JBSWY3DPEHPK3PXP"),
        ..spec(OtpKind::Totp)
    };
    let err = tokens.add(&carol, short).await.unwrap_err();
    assert_eq!(err.code(), "token.invalid_secret");
    assert!(err.to_string().starts_with("--secret: "), "{err}");
    assert!(err.to_string().contains("128 bits"), "{err}");
}

fn hardware(serial: &str) -> NewToken {
    NewToken {
        serial: serial.into(),
        user_id: None,
        kind: OtpKind::Hotp,
        algorithm: Algorithm::Sha1,
        digits: 6,
        period: 30,
        secret: Secret::new(KEY.to_vec()),
        next: 0,
    }
}

#[tokio::test]
async fn imports_are_all_or_nothing_and_tokens_are_assigned_and_deleted() {
    let w = world().await;
    let carol = w.add("carol").await;
    let tokens = w.tokens();
    let batch = [hardware("hw-1"), hardware("hw-2")];
    assert_eq!(tokens.import(&batch).await.unwrap(), 2);
    let again = [hardware("hw-3"), hardware("hw-1")];
    let err = tokens.import(&again).await.unwrap_err();
    assert_eq!(err.code(), "token.import_duplicate");
    assert!(err.to_string().ends_with("already exists"), "{err}");
    assert_eq!(code_of(tokens.find("hw-3").await), "token.not_found");
    let assigned = tokens.assign("hw-1", &carol).await.unwrap();
    assert_eq!(assigned.serial, "hw-1");
    assert_eq!(tokens.find("hw-1").await.unwrap().user_id, Some(carol.id));
    tokens.delete("hw-2").await.unwrap();
    let err = tokens.delete("hw-2").await.unwrap_err();
    assert_eq!(err.code(), "token.not_found");
    assert_eq!(
        err.to_string(),
        "token 'hw-2' does not exist; see 'mfad token list'"
    );
    assert_eq!(
        code_of(tokens.assign("ghost", &carol).await),
        "token.not_found"
    );
    assert_eq!(tokens.list(None).await.unwrap().len(), 1);
}

fn code(counter: u64) -> String {
    format_code(hotp(Algorithm::Sha1, KEY, counter, 6), 6)
}

#[tokio::test]
async fn resync_moves_the_counter_past_two_consecutive_codes_once() {
    let w = world().await;
    let carol = w.add("carol").await;
    let tokens = w.tokens();
    let token = NewToken {
        user_id: Some(carol.id),
        ..hardware("hw-1")
    };
    w.store.create_tokens(&[token], T0).await.unwrap();
    // Far beyond the login look-ahead window.
    let (serial, next) = tokens.resync(&carol, &code(500), &code(501)).await.unwrap();
    assert_eq!((serial.as_str(), next), ("hw-1", 502));
    assert_eq!(tokens.find("hw-1").await.unwrap().next, 502);
    let err = tokens
        .resync(&carol, &code(500), &code(501))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "token.resync_no_match");
    assert!(
        err.to_string().contains("no HOTP token of 'carol'"),
        "{err}"
    );
    // Codes the counter has passed: found nowhere ahead of it.
    let err = tokens
        .resync(&carol, &code(10), &code(12))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "token.resync_no_match");
}

fn client(name: &str, secret: &str, first_factor: FirstFactor, targets: &[&str]) -> NewClient {
    NewClient {
        name: name.into(),
        address: parse_address("10.0.0.0/24").unwrap(),
        secret: secret.into(),
        first_factor,
        prompt: Prompt::Auto,
        require_message_authenticator: true,
        require_user_match: true,
        code_separator: String::new(),
        targets: targets.iter().map(|t| t.to_string()).collect(),
    }
}

const SECRET: &str = "0123456789abcdef";

#[tokio::test]
async fn clients_are_added_once_and_removed() {
    let w = world().await;
    let clients = w.clients(&[], false);
    let vpn = client("vpn", SECRET, FirstFactor::None, &[]);
    assert_eq!(clients.check(&vpn).unwrap(), []);
    let added = clients.add(&vpn).await.unwrap();
    assert_eq!(added.address.to_string(), "10.0.0.0/24");
    let err = clients.add(&vpn).await.unwrap_err();
    assert_eq!(err.code(), "client.exists");
    assert_eq!(
        err.to_string(),
        "client 'vpn' already exists; remove it first with 'mfad client remove vpn'"
    );
    assert_eq!(clients.list().await.unwrap().len(), 1);
    clients.remove("vpn").await.unwrap();
    let err = clients.remove("vpn").await.unwrap_err();
    assert_eq!(err.code(), "client.not_found");
    assert_eq!(
        err.to_string(),
        "client 'vpn' does not exist; see 'mfad client list'"
    );
}

#[tokio::test]
async fn a_client_address_is_an_ip_or_a_network() {
    assert_eq!(
        parse_address("10.0.0.7").unwrap().to_string(),
        "10.0.0.7/32"
    );
    assert_eq!(parse_address("::1").unwrap().to_string(), "::1/128");
    let err = parse_address("not-an-ip").unwrap_err();
    assert_eq!(err.code(), "client.invalid_address");
    assert!(
        err.to_string()
            .starts_with("--address 'not-an-ip' is not an IP address or CIDR network"),
        "{err}"
    );
}

#[tokio::test]
async fn client_rules_refuse_what_cannot_work_and_warn_of_what_may_not() {
    let w = world().await;
    let none = w.clients(&[], false);
    let empty = client("vpn", "", FirstFactor::None, &[]);
    assert_eq!(code_of(none.add(&empty).await), "client.empty_secret");
    let stray = client("vpn", SECRET, FirstFactor::None, &["rad1"]);
    assert_eq!(
        code_of(none.add(&stray).await),
        "client.targets_without_radius"
    );
    let configured = w.clients(&["rad1"], false);
    let unknown = client("vpn", SECRET, FirstFactor::Radius, &["rad2"]);
    let err = configured.add(&unknown).await.unwrap_err();
    assert_eq!(err.code(), "client.unknown_target");
    assert!(err.to_string().contains("name = \"rad2\""), "{err}");
    assert!(none.list().await.unwrap().is_empty(), "nothing stored");

    let short = client("short", "short", FirstFactor::None, &[]);
    let notices = none.check(&short).unwrap();
    assert_eq!(
        notices,
        [ClientNotice::ShortSecret {
            client: "short".into(),
            len: 5
        }]
    );
    assert_eq!(notices[0].code(), "client.short_secret");
    assert!(notices[0].to_string().contains("at least 16"));
    let radius = client("proxy", SECRET, FirstFactor::Radius, &[]);
    let notices = none.check(&radius).unwrap();
    assert_eq!(
        notices.iter().map(ClientNotice::code).collect::<Vec<_>>(),
        ["client.no_targets"]
    );
    assert_eq!(configured.check(&radius).unwrap(), []);
    let directory = client("ldap", SECRET, FirstFactor::Directory, &[]);
    let notices = none.check(&directory).unwrap();
    assert_eq!(
        notices.iter().map(ClientNotice::code).collect::<Vec<_>>(),
        ["client.no_directory"]
    );
    assert_eq!(w.clients(&[], true).check(&directory).unwrap(), []);
    // A warning does not stop the client.
    none.add(&short).await.unwrap();
}

/// Renders a one-line mail, or fails as a broken template does.
struct TestComposer {
    broken: bool,
}

impl Composer for TestComposer {
    fn compose(
        &self,
        user: &User,
        kind: EmailKind,
        pin: Option<&str>,
        once: bool,
    ) -> Result<NewEmail, Box<dyn std::error::Error + Send + Sync>> {
        if self.broken {
            return Err("welcome-app.en.txt line 3: unexpected end of input".into());
        }
        Ok(NewEmail {
            user_id: Some(user.id),
            recipient: user.email.clone(),
            kind,
            subject: format!("{kind}"),
            body: Zeroizing::new(format!("pin={}", pin.unwrap_or("-"))),
            once_key: once.then(|| format!("{kind}:{}", user.id)),
        })
    }

    fn phone_change(
        &self,
        user: &User,
        change: &PendingPhone,
    ) -> Result<NewEmail, Box<dyn std::error::Error + Send + Sync>> {
        if self.broken {
            return Err("phone-change.en.txt line 1: unknown filter".into());
        }
        Ok(NewEmail {
            user_id: Some(user.id),
            recipient: change.email.clone(),
            kind: EmailKind::PhoneChange,
            subject: "phone change".into(),
            body: Zeroizing::new(change.new_phone.clone()),
            once_key: Some(format!("phone_change:{}:{}", user.id, change.new_phone)),
        })
    }
}

const ON: MailRules = MailRules {
    smtp: true,
    send_to_users: true,
    send_updates: true,
    generate_pins: true,
};

#[tokio::test]
async fn mails_are_queued_once_when_asked_and_only_with_smtp() {
    let w = world().await;
    let carol = w
        .add_with("carol", |f| f.email = Some("carol@example.org".into()))
        .await;
    let mails = w.mails(ON);
    let composer = TestComposer { broken: false };
    let (mail, queued) = mails
        .queue(&composer, &carol, EmailKind::Welcome, Some("2468"), true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mail.recipient, "carol@example.org");
    assert_eq!(queued.kind, EmailKind::Welcome);
    let again = mails
        .queue(&composer, &carol, EmailKind::Welcome, None, true)
        .await
        .unwrap();
    assert!(again.is_none(), "a welcome mail is queued once");
    // Asked again by the operator: queued again.
    assert!(mails
        .queue(&composer, &carol, EmailKind::Welcome, None, false)
        .await
        .unwrap()
        .is_some());
    let broken = TestComposer { broken: true };
    let err = mails
        .queue(&broken, &carol, EmailKind::Update, None, false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "email.compose_failed");
    assert!(
        err.to_string().contains("welcome-app.en.txt line 3"),
        "{err}"
    );
    let off = w.mails(MailRules { smtp: false, ..ON });
    let err = off
        .queue(&composer, &carol, EmailKind::Welcome, None, false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "email.not_configured");
    assert_eq!(
        err.to_string(),
        "e-mail is not configured; set smtp.host and smtp.from in the [smtp] section"
    );
    assert_eq!(w.store.list_emails(10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn only_users_with_an_address_are_welcomed_by_mail() {
    let w = world().await;
    let carol = w
        .add_with("carol", |f| f.email = Some("carol@example.org".into()))
        .await;
    let dave = w.add("dave").await;
    assert!(ON.welcomes(&carol));
    assert!(!ON.welcomes(&dave));
    let off = MailRules {
        send_to_users: false,
        ..ON
    };
    assert!(!off.welcomes(&carol));
}

/// Users as a directory sync adds them: a directory ID, a PIN mode, maybe an address.
async fn synced(w: &World, users: &[(&str, &str, PinMode)]) -> Vec<String> {
    let add = users
        .iter()
        .map(|(name, email, pin_mode)| mfad_core::model::NewUser {
            username: name.to_string(),
            email: email.to_string(),
            pin_mode: *pin_mode,
            directory_id: Some(format!("id-{name}")),
            sync_item: Some(String::new()),
            ..Default::default()
        })
        .collect();
    let sync = DirectorySync {
        add,
        ..Default::default()
    };
    w.store.apply_directory_sync(&sync, T0).await.unwrap();
    users
        .iter()
        .map(|(name, ..)| format!("id-{name}"))
        .collect()
}

#[tokio::test]
async fn users_a_sync_added_are_welcomed_with_a_pin_only_where_it_reaches_them() {
    let w = world().await;
    let ids = synced(
        &w,
        &[
            ("erin", "erin@example.org", PinMode::Pin),
            ("frank", "", PinMode::Pin),
            ("gina", "gina@example.org", PinMode::Standard),
        ],
    )
    .await;
    let composer = TestComposer { broken: false };
    let welcomed = w
        .mails(ON)
        .welcome_added(&ids, &w.pins(), Some(&composer))
        .await
        .unwrap();
    assert_eq!((welcomed.queued, welcomed.pins), (2, 1));
    assert_eq!(welcomed.withheld, ["frank: no e-mail address"]);
    assert!(welcomed
        .to_string()
        .contains("queued the welcome e-mail for 2 new users (1 with an initial PIN)"));
    let erin = w.users().find("erin").await.unwrap();
    assert!(erin.has_pin() && erin.pin_change_required);
    assert!(
        !w.users().find("frank").await.unwrap().has_pin(),
        "a PIN nobody receives is not made"
    );
    // Once: a second pass queues nothing and makes no new PIN.
    let again = w
        .mails(ON)
        .welcome_added(&ids, &w.pins(), Some(&composer))
        .await
        .unwrap();
    assert_eq!(again.queued, 0);
}

#[tokio::test]
async fn without_welcome_mails_a_sync_makes_no_pins() {
    let w = world().await;
    let ids = synced(&w, &[("erin", "erin@example.org", PinMode::Pin)]).await;
    let rules = MailRules {
        send_to_users: false,
        ..ON
    };
    let welcomed = w
        .mails(rules)
        .welcome_added(&ids, &w.pins(), None)
        .await
        .unwrap();
    assert!(welcomed.queued == 0 && welcomed.pins == 0);
    assert_eq!(welcomed.withheld, ["erin: [email] send_to_users is off"]);
    assert!(!w.users().find("erin").await.unwrap().has_pin());
    assert!(w.store.list_emails(10).await.unwrap().is_empty());
    let nothing = MailRules {
        send_to_users: false,
        generate_pins: false,
        ..ON
    };
    assert!(w
        .mails(nothing)
        .welcome_added(&ids, &w.pins(), None)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn held_phone_changes_are_told_once_whenever_mail_can_be_sent() {
    let w = world().await;
    let carol = w
        .add_with("carol", |f| f.email = Some("carol@example.org".into()))
        .await;
    let change = PendingPhone {
        user_id: carol.id,
        username: carol.username.clone(),
        email: carol.email.clone(),
        old_phone: "+14255550100".into(),
        new_phone: "+14255550199".into(),
        since: T0,
    };
    let gone = PendingPhone {
        user_id: carol.id + 100,
        ..change.clone()
    };
    let held = [change, gone];
    // Not a welcome: it goes whether or not users are sent welcome mails.
    let security_only = MailRules {
        smtp: true,
        ..MailRules::default()
    };
    let composer = TestComposer { broken: false };
    let mails = w.mails(security_only);
    // A notice that cannot be rendered is left out, and tried by the next sync.
    let broken = TestComposer { broken: true };
    assert_eq!(mails.notify_phone_changes(&held, &broken).await.unwrap(), 0);
    assert_eq!(
        mails.notify_phone_changes(&held, &composer).await.unwrap(),
        1
    );
    assert_eq!(
        mails.notify_phone_changes(&held, &composer).await.unwrap(),
        0
    );
    let sent = mails.list(10).await.unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        mails.status(sent[0].id).await.unwrap().unwrap().recipient,
        "carol@example.org"
    );
}

/// Errors no store-backed test can bring about on purpose (a database that fails, a
/// hash that cannot be made, a counter moved by a login between a resync's read and its
/// write) still carry their codes; and no two variants share one.
#[test]
fn every_error_has_its_own_stable_code() {
    let errors = [
        (
            Error::Store(StoreError::NotFound("x".into())),
            "store.not_found",
        ),
        (
            Error::Store(StoreError::Duplicate("x".into())),
            "store.duplicate",
        ),
        (
            Error::Store(StoreError::Unavailable("x".into())),
            "store.unavailable",
        ),
        (
            Error::Store(StoreError::Corrupt("x".into())),
            "store.corrupt",
        ),
        (Error::Pin(PinError::Hash), "pin.hash_failed"),
        (Error::ResyncCodesUsed, "token.resync_codes_used"),
    ];
    for (err, code) in &errors {
        assert_eq!(err.code(), *code, "{err}");
    }
    let all = [
        Error::UserNotFound(String::new()),
        Error::UserExists(String::new()),
        Error::InvalidUsername(String::new()),
        Error::InvalidPinMode(String::new()),
        Error::InvalidMethod(String::new()),
        Error::PhoneRequired(Method::Sms),
        Error::Phone(PhoneError::TooShort(String::new())),
        Error::Pin(PinError::NotDigits),
        Error::Pin(PinError::TooShort(4)),
        Error::Pin(PinError::TooLong(16)),
        Error::Pin(PinError::Pattern),
        Error::Pin(PinError::InPhone),
        Error::Pin(PinError::Reused),
        Error::InvalidBlockDays,
        Error::InvalidBypassSeconds,
        Error::TokenNotFound(String::new()),
        Error::TokenExists(String::new()),
        Error::ImportDuplicate(String::new()),
        Error::InvalidDigits,
        Error::InvalidPeriod,
        Error::InvalidSecret(String::new()),
        Error::ResyncNoMatch(String::new()),
        Error::ClientExists(String::new()),
        Error::ClientNotFound(String::new()),
        Error::InvalidAddress {
            address: String::new(),
            reason: String::new(),
        },
        Error::EmptySecret,
        Error::TargetsWithoutRadius,
        Error::UnknownTarget(String::new()),
        Error::MailNotConfigured,
        Error::Compose("x".into()),
    ];
    let mut codes: Vec<&str> = errors
        .iter()
        .map(|(e, _)| e)
        .chain(all.iter())
        .map(Error::code)
        .collect();
    let count = codes.len();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), count, "a code is shared: {codes:?}");
    assert!(codes.iter().all(|c| c
        .split_once('.')
        .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())));
}
