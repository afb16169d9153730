//! The harness against the real peers: FreeRADIUS, radclient, pam_radius_auth, oathtool.

use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

use mfad_testkit::{
    attribute_types, oathtool_hotp, oathtool_totp, pam_login, require_tool, FreeRadius, Radclient,
    UdpTap,
};

const SECRET: &str = "testing123";
/// RFC 2869 §5.14.
const MESSAGE_AUTHENTICATOR: u8 = 80;

fn alice_and_bob() -> FreeRadius {
    FreeRadius::builder(SECRET)
        .user("alice", "wonderland")
        .challenge_user("bob", "builder", "Enter your code", "123456")
        .start()
}

fn pap(password: &str) -> [(&'static str, &str); 2] {
    [("User-Name", "alice"), ("User-Password", password)]
}

fn bob(password: &str) -> [(&'static str, &str); 2] {
    [("User-Name", "bob"), ("User-Password", password)]
}

#[test]
fn freeradius_accepts_the_right_password_and_rejects_a_wrong_one() {
    let server = FreeRadius::start(SECRET, &[("alice", "wonderland"), ("q\"uote", "s p\\ace")]);
    let client = Radclient::new(server.addr(), SECRET);
    assert_eq!(
        client.send("auth", &pap("wonderland")).code.as_deref(),
        Some("Access-Accept")
    );
    assert_eq!(
        client.send("auth", &pap("wrong")).code.as_deref(),
        Some("Access-Reject")
    );
    let odd = client.send(
        "auth",
        &[("User-Name", "q\"uote"), ("User-Password", "s p\\ace")],
    );
    assert!(odd.is("Access-Accept"), "{}", odd.output);
}

#[test]
fn freeradius_answers_with_and_without_message_authenticator_and_to_status_server() {
    let server = alice_and_bob();
    let with = Radclient::new(server.addr(), SECRET);
    let without = with.clone().with_message_authenticator(false);
    assert!(with.send("auth", &pap("wonderland")).is("Access-Accept"));
    assert!(without.send("auth", &pap("wonderland")).is("Access-Accept"));
    assert!(with.send("status", &[]).is("Access-Accept"));
}

#[test]
fn radclient_sends_message_authenticator_only_when_asked() {
    let server = alice_and_bob();
    let tap = UdpTap::start(server.addr());
    let client = Radclient::new(tap.addr(), SECRET);
    assert!(client.send("auth", &pap("wonderland")).is("Access-Accept"));
    let no_ma = client.with_message_authenticator(false);
    assert!(no_ma.send("auth", &pap("wonderland")).is("Access-Accept"));

    let requests = tap.requests();
    assert_eq!(requests.len(), 2);
    // FreeRADIUS verifies a Message-Authenticator it receives, so the Accept above also
    // proves radclient computed a real one rather than sending the 0x00 placeholder.
    assert!(attribute_types(&requests[0]).contains(&MESSAGE_AUTHENTICATOR));
    assert!(!attribute_types(&requests[1]).contains(&MESSAGE_AUTHENTICATOR));
}

#[test]
fn challenge_carries_prompt_and_state_and_the_code_completes_it() {
    let server = alice_and_bob();
    let client = Radclient::new(server.addr(), SECRET);

    let challenge = client.send("auth", &bob("builder"));
    assert!(challenge.is("Access-Challenge"), "{}", challenge.output);
    assert_eq!(challenge.get("Reply-Message"), Some("Enter your code"));
    let state = challenge.get("State").expect("a challenge carries State");
    assert!(state.starts_with("0x"), "State is printed as hex: {state}");

    let answer = |code: &str| {
        client.send(
            "auth",
            &[
                ("User-Name", "bob"),
                ("User-Password", code),
                ("State", state),
            ],
        )
    };
    assert!(answer("123456").is("Access-Accept"));
    assert!(answer("654321").is("Access-Reject"));
    assert!(client.send("auth", &bob("wrong")).is("Access-Reject"));
}

#[test]
fn silence_and_a_wrong_secret_both_read_as_no_reply() {
    // Bound but never read: no ICMP error, just silence.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to_silence = Radclient::new(silent.local_addr().unwrap(), SECRET)
        .with_timeout(Duration::from_millis(300))
        .send("auth", &pap("wonderland"));
    assert_eq!(to_silence.code, None);
    assert!(
        to_silence.output.contains("No reply"),
        "{}",
        to_silence.output
    );

    // FreeRADIUS answers, but radclient drops a reply it cannot verify.
    let server = alice_and_bob();
    let wrong_secret = Radclient::new(server.addr(), "not-the-secret")
        .with_timeout(Duration::from_millis(500))
        .send("auth", &pap("wonderland"));
    assert_eq!(wrong_secret.code, None, "{}", wrong_secret.output);
}

#[test]
fn freeradius_is_gone_after_drop() {
    let server = alice_and_bob();
    let addr = server.addr();
    let pid = server.pid();
    drop(server);
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    // Nothing answers on its port any more. (Binding the port to show it free would race
    // with other tests that may take it the moment it is released.)
    let silence = Radclient::new(addr, SECRET)
        .with_timeout(Duration::from_millis(300))
        .send("auth", &pap("wonderland"));
    assert_eq!(silence.code, None, "{}", silence.output);
}

/// A user name that has no passwd entry here, to show pam_radius_auth does not need one.
const NOT_LOCAL: &str = "alice";

#[test]
fn pam_login_succeeds_with_the_right_password_and_fails_with_a_wrong_one() {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(
        !passwd
            .lines()
            .any(|l| l.split(':').next() == Some(NOT_LOCAL)),
        "{NOT_LOCAL} must not be a local user for this test"
    );
    let server = alice_and_bob();
    let right = pam_login(server.addr(), SECRET, NOT_LOCAL, &["wonderland"]);
    assert!(right.success, "{}", right.output);
    assert!(right.output.contains("Password: "), "{}", right.output);
    let wrong = pam_login(server.addr(), SECRET, NOT_LOCAL, &["wrong"]);
    assert!(!wrong.success, "{}", wrong.output);
}

#[test]
fn pam_login_answers_a_challenge_with_the_next_response() {
    let server = alice_and_bob();
    let right = pam_login(server.addr(), SECRET, "bob", &["builder", "123456"]);
    assert!(right.success, "{}", right.output);
    assert!(right.output.contains("Enter your code"), "{}", right.output);
    let wrong = pam_login(server.addr(), SECRET, "bob", &["builder", "000000"]);
    assert!(!wrong.success, "{}", wrong.output);
    let unanswered = pam_login(server.addr(), SECRET, "bob", &["builder"]);
    assert!(!unanswered.success, "{}", unanswered.output);
}

#[test]
fn pam_radius_auth_sends_no_message_authenticator() {
    let server = alice_and_bob();
    let tap = UdpTap::start(server.addr());
    assert!(pam_login(tap.addr(), SECRET, "alice", &["wonderland"]).success);
    let requests = tap.requests();
    assert_eq!(requests.len(), 1);
    let types = attribute_types(&requests[0]);
    // User-Name, User-Password, NAS-Identifier (RFC 2865 §5.1, §5.2, §5.32).
    for expected in [1, 2, 32] {
        assert!(
            types.contains(&expected),
            "attribute {expected} in {types:?}"
        );
    }
    assert!(!types.contains(&MESSAGE_AUTHENTICATOR), "{types:?}");
}

/// RFC 4226 Appendix D: HOTP of the ASCII secret "12345678901234567890".
#[test]
fn oathtool_hotp_matches_rfc_4226_vectors() {
    const SECRET_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    let expected = [
        "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
        "520489",
    ];
    for (counter, code) in (0u64..).zip(expected) {
        assert_eq!(
            oathtool_hotp(SECRET_B32, counter, 6),
            code,
            "counter {counter}"
        );
    }
}

/// RFC 6238 Appendix B: 8-digit TOTP, 30 s steps, a seed per algorithm.
#[test]
fn oathtool_totp_matches_rfc_6238_vectors() {
    const SHA1: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    const SHA256: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA";
    const SHA512: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNA";
    let table: [(u64, &str, &str, &str); 6] = [
        (59, "94287082", "46119246", "90693936"),
        (1_111_111_109, "07081804", "68084774", "25091201"),
        (1_111_111_111, "14050471", "67062674", "99943326"),
        (1_234_567_890, "89005924", "91819424", "93441116"),
        (2_000_000_000, "69279037", "90698825", "38618901"),
        (20_000_000_000, "65353130", "77737706", "47863826"),
    ];
    for (time, sha1, sha256, sha512) in table {
        assert_eq!(
            oathtool_totp(SHA1, time, 8, "SHA1", 30),
            sha1,
            "SHA1 at {time}"
        );
        assert_eq!(
            oathtool_totp(SHA256, time, 8, "sha256", 30),
            sha256,
            "SHA256 at {time}"
        );
        assert_eq!(
            oathtool_totp(SHA512, time, 8, "SHA512", 30),
            sha512,
            "SHA512 at {time}"
        );
    }
    // With 60 s steps, 59 is still step 0 and 60 is step 1 (the HOTP counters 0 and 1).
    assert_eq!(oathtool_totp(SHA1, 59, 6, "SHA1", 60), "755224");
    assert_eq!(oathtool_totp(SHA1, 60, 6, "SHA1", 60), "287082");
}

#[test]
fn a_missing_tool_fails_with_the_fix() {
    let message = std::panic::catch_unwind(|| require_tool("mfad-no-such-tool"))
        .expect_err("a missing tool must fail the test")
        .downcast::<String>()
        .unwrap();
    assert_eq!(
        *message,
        "mfad-no-such-tool is missing; run scripts/test.sh, which installs the test dependencies"
    );
}
