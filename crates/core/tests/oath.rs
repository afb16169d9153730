//! HOTP and TOTP against their RFCs' test vectors and against the reference
//! implementation, OATH Toolkit's `oathtool`, which must be installed
//! (`apt-get install oathtool`): a missing binary fails the test, it never skips.

use hmac::{Hmac, Mac};
use mfad_core::otp::{find_hotp, find_totp, format_code, hotp, totp_step, Algorithm};
use proptest::prelude::*;
use std::process::Command;

/// RFC 4226 Appendix D and RFC 6238 Appendix B: the 20-byte ASCII secret.
const SHA1_KEY: &[u8] = b"12345678901234567890";
/// RFC 6238 Appendix B, SHA-256 rows: the prose names only the 20-byte secret, but the
/// values come from the Appendix A reference code's 32-byte seed.
const SHA256_KEY: &[u8] = b"12345678901234567890123456789012";
/// RFC 6238 Appendix B, SHA-512 rows: Appendix A's 64-byte seed.
const SHA512_KEY: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

/// RFC 4226 Appendix D: count, HMAC-SHA-1(secret, count), the 31-bit dynamic truncation
/// (Snum, "Decimal" column) and the 6-digit HOTP value.
const RFC4226_APPENDIX_D: [(u64, &str, u32, u32); 10] = [
    (
        0,
        "cc93cf18508d94934c64b65d8ba7667fb7cde4b0",
        1284755224,
        755224,
    ),
    (
        1,
        "75a48a19d4cbe100644e8ac1397eea747a2d33ab",
        1094287082,
        287082,
    ),
    (
        2,
        "0bacb7fa082fef30782211938bc1c5e70416ff44",
        137359152,
        359152,
    ),
    (
        3,
        "66c28227d03a2d5529262ff016a1e6ef76557ece",
        1726969429,
        969429,
    ),
    (
        4,
        "a904c900a64b35909874b33e61c5938a8e15ed1c",
        1640338314,
        338314,
    ),
    (
        5,
        "a37e783d7b7233c083d4f62926c7a25f238d0316",
        868254676,
        254676,
    ),
    (
        6,
        "bc9cd28561042c83f219324d3c607256c03272ae",
        1918287922,
        287922,
    ),
    (
        7,
        "a4fb960c0bc06e1eabb804e5b397cdc4b45596fa",
        82162583,
        162583,
    ),
    (
        8,
        "1b3c89f65e6c9e883012052823443f048b4332db",
        673399871,
        399871,
    ),
    (
        9,
        "1637409809a679dc698207310c8c7fc07290d9e5",
        645520489,
        520489,
    ),
];

/// RFC 6238 Appendix B: time, T = floor(time / 30) with T0 = 0, the 8-digit TOTP and mode.
const RFC6238_APPENDIX_B: [(i64, u64, &str, Algorithm); 18] = [
    (59, 0x1, "94287082", Algorithm::Sha1),
    (59, 0x1, "46119246", Algorithm::Sha256),
    (59, 0x1, "90693936", Algorithm::Sha512),
    (1111111109, 0x23523EC, "07081804", Algorithm::Sha1),
    (1111111109, 0x23523EC, "68084774", Algorithm::Sha256),
    (1111111109, 0x23523EC, "25091201", Algorithm::Sha512),
    (1111111111, 0x23523ED, "14050471", Algorithm::Sha1),
    (1111111111, 0x23523ED, "67062674", Algorithm::Sha256),
    (1111111111, 0x23523ED, "99943326", Algorithm::Sha512),
    (1234567890, 0x273EF07, "89005924", Algorithm::Sha1),
    (1234567890, 0x273EF07, "91819424", Algorithm::Sha256),
    (1234567890, 0x273EF07, "93441116", Algorithm::Sha512),
    (2000000000, 0x3F940AA, "69279037", Algorithm::Sha1),
    (2000000000, 0x3F940AA, "90698825", Algorithm::Sha256),
    (2000000000, 0x3F940AA, "38618901", Algorithm::Sha512),
    (20000000000, 0x27BC86AA, "65353130", Algorithm::Sha1),
    (20000000000, 0x27BC86AA, "77737706", Algorithm::Sha256),
    (20000000000, 0x27BC86AA, "47863826", Algorithm::Sha512),
];

fn rfc6238_key(algorithm: Algorithm) -> &'static [u8] {
    match algorithm {
        Algorithm::Sha1 => SHA1_KEY,
        Algorithm::Sha256 => SHA256_KEY,
        Algorithm::Sha512 => SHA512_KEY,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn rfc4226_appendix_d_hmac_truncation_and_hotp_values() {
    for (count, hmac_hex, snum, code) in RFC4226_APPENDIX_D {
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(SHA1_KEY).unwrap();
        mac.update(&count.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        assert_eq!(hex(&digest), hmac_hex, "HMAC at count {count}");
        // RFC 4226 §5.3: offset from the low nibble of the last byte, 31 bits from there.
        let offset = usize::from(digest[19] & 0x0f);
        let truncated =
            u32::from_be_bytes(digest[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff;
        assert_eq!(truncated, snum, "dynamic truncation at count {count}");
        assert_eq!(snum % 1_000_000, code);

        assert_eq!(
            hotp(Algorithm::Sha1, SHA1_KEY, count, 6),
            code,
            "HOTP at count {count}"
        );
        assert_eq!(
            hotp(Algorithm::Sha1, SHA1_KEY, count, 8),
            snum % 100_000_000
        );
        assert_eq!(
            hotp(Algorithm::Sha1, SHA1_KEY, count, 9),
            snum % 1_000_000_000
        );
    }
}

#[test]
fn rfc6238_appendix_b_totp_values_for_every_mode() {
    for (time, step, code, algorithm) in RFC6238_APPENDIX_B {
        assert_eq!(totp_step(time, 30), step, "T at {time}");
        let got = format_code(hotp(algorithm, rfc6238_key(algorithm), step, 8), 8);
        assert_eq!(got, code, "{algorithm} TOTP at {time}");
        // And through the verifier, exactly at the current step with no skew.
        let found = find_totp(algorithm, rfc6238_key(algorithm), 8, 30, code, time, 0, 0);
        assert_eq!(found, Some(step), "{algorithm} verify at {time}");
    }
}

#[test]
fn hotp_look_ahead_window_covers_from_to_from_plus_window_minus_one() {
    let code_at = |c| format_code(hotp(Algorithm::Sha1, SHA1_KEY, c, 6), 6);
    // RFC 4226 §7.4: the server tries the next `window` counters, starting at `from`.
    assert_eq!(
        find_hotp(Algorithm::Sha1, SHA1_KEY, 6, &code_at(5), 3, 3),
        Some(5)
    );
    assert_eq!(
        find_hotp(Algorithm::Sha1, SHA1_KEY, 6, &code_at(6), 3, 3),
        None
    );
    assert_eq!(
        find_hotp(Algorithm::Sha1, SHA1_KEY, 6, &code_at(2), 3, 3),
        None,
        "used"
    );
    assert_eq!(
        find_hotp(Algorithm::Sha1, SHA1_KEY, 6, &code_at(3), 3, 1),
        Some(3)
    );
    assert_eq!(
        find_hotp(Algorithm::Sha1, SHA1_KEY, 6, &code_at(3), 3, 0),
        None
    );
    // Every Appendix D value is found from 0 with a window of 10.
    for (count, _, _, code) in RFC4226_APPENDIX_D {
        let code = format_code(code, 6);
        assert_eq!(
            find_hotp(Algorithm::Sha1, SHA1_KEY, 6, &code, 0, 10),
            Some(count)
        );
    }
}

#[test]
fn hotp_codes_must_have_exactly_the_configured_digits() {
    let eight = format_code(hotp(Algorithm::Sha1, SHA1_KEY, 0, 8), 8);
    assert_eq!(eight, "84755224");
    assert_eq!(find_hotp(Algorithm::Sha1, SHA1_KEY, 6, &eight, 0, 10), None);
    assert_eq!(
        find_hotp(Algorithm::Sha1, SHA1_KEY, 8, &eight, 0, 10),
        Some(0)
    );
    assert_eq!(
        find_hotp(Algorithm::Sha1, SHA1_KEY, 6, " 755224", 0, 10),
        None
    );
    assert_eq!(find_hotp(Algorithm::Sha1, SHA1_KEY, 6, "", 0, 10), None);
}

#[test]
fn totp_skew_accepts_neighbouring_steps_only() {
    let now = 1_111_111_111;
    let step = totp_step(now, 30);
    let code_at = |s| format_code(hotp(Algorithm::Sha1, SHA1_KEY, s, 6), 6);
    let find = |s, skew, min_step| {
        find_totp(
            Algorithm::Sha1,
            SHA1_KEY,
            6,
            30,
            &code_at(s),
            now,
            skew,
            min_step,
        )
    };
    // RFC 6238 §5.2: at most one step of network delay / drift is the recommendation.
    assert_eq!(find(step, 1, 0), Some(step));
    assert_eq!(find(step - 1, 1, 0), Some(step - 1));
    assert_eq!(find(step + 1, 1, 0), Some(step + 1));
    assert_eq!(find(step - 2, 1, 0), None);
    assert_eq!(find(step + 2, 1, 0), None);
    assert_eq!(find(step + 2, 2, 0), Some(step + 2));
    assert_eq!(
        find(step - 1, 0, 0),
        None,
        "no skew means the current step only"
    );
    // RFC 6238 §5.2: a step already accepted may not be accepted again.
    assert_eq!(find(step - 1, 1, step), None);
    assert_eq!(find(step, 1, step), Some(step));
    assert_eq!(find(step, 1, step + 1), None);
}

#[test]
fn totp_steps_change_exactly_on_period_boundaries() {
    assert_eq!(totp_step(0, 30), 0);
    assert_eq!(totp_step(29, 30), 0);
    assert_eq!(totp_step(30, 30), 1);
    assert_eq!(totp_step(59, 60), 0);
    assert_eq!(totp_step(60, 60), 1);
    // A code of the step that just ended is current-minus-one a second later.
    let code = format_code(hotp(Algorithm::Sha1, SHA1_KEY, 2, 6), 6);
    assert_eq!(
        find_totp(Algorithm::Sha1, SHA1_KEY, 6, 30, &code, 89, 0, 0),
        Some(2)
    );
    assert_eq!(
        find_totp(Algorithm::Sha1, SHA1_KEY, 6, 30, &code, 90, 0, 0),
        None
    );
    assert_eq!(
        find_totp(Algorithm::Sha1, SHA1_KEY, 6, 30, &code, 90, 1, 0),
        Some(2)
    );
    // With a 60-second period the same instant is a different step.
    let code = format_code(hotp(Algorithm::Sha1, SHA1_KEY, 1, 6), 6);
    assert_eq!(
        find_totp(Algorithm::Sha1, SHA1_KEY, 6, 60, &code, 119, 0, 0),
        Some(1)
    );
}

/// Runs `oathtool`; a missing binary is an error that says how to install it.
fn oathtool(args: &[String]) -> Result<String, String> {
    let output = Command::new("oathtool").args(args).output().map_err(|e| {
        format!(
            "cannot run oathtool ({e}); these tests compare against OATH Toolkit's reference \
             implementation, install it with `apt-get install oathtool`"
        )
    })?;
    if !output.status.success() {
        return Err(format!(
            "oathtool {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn mode(algorithm: Algorithm) -> String {
    format!("--totp={algorithm}")
}

#[test]
fn oathtool_is_installed_and_agrees_on_the_rfc_vectors() -> Result<(), String> {
    // The property tests below fail too without oathtool; this one says why most plainly.
    let got = oathtool(&[
        "--hotp".into(),
        "-c".into(),
        "9".into(),
        "-d".into(),
        "6".into(),
        hex(SHA1_KEY),
    ])?;
    assert_eq!(got, "520489");
    for (time, _, code, algorithm) in RFC6238_APPENDIX_B {
        let got = oathtool(&[
            mode(algorithm),
            format!("--now=@{time}"),
            "--time-step-size=30s".into(),
            "-d".into(),
            "8".into(),
            hex(rfc6238_key(algorithm)),
        ])?;
        assert_eq!(got, code, "oathtool {algorithm} at {time}");
    }
    Ok(())
}

fn algorithms() -> impl Strategy<Value = Algorithm> {
    prop_oneof![
        Just(Algorithm::Sha1),
        Just(Algorithm::Sha256),
        Just(Algorithm::Sha512)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn hotp_sha1_matches_oathtool(
        key in prop::collection::vec(any::<u8>(), 16..=64),
        counter in any::<u64>(),
        digits in 6u32..=8,
    ) {
        let want = oathtool(&[
            "--hotp".into(),
            format!("--counter={counter}"),
            format!("--digits={digits}"),
            hex(&key),
        ])
        .map_err(TestCaseError::fail)?;
        prop_assert_eq!(format_code(hotp(Algorithm::Sha1, &key, counter, digits), digits), want);
    }

    /// `oathtool --hotp` is SHA-1 only; TOTP with a one-second step at time c is HOTP at
    /// counter c (RFC 6238 §4.2 with X = 1), which covers HOTP with SHA-256 and SHA-512.
    #[test]
    fn hotp_with_every_hash_matches_oathtool(
        key in prop::collection::vec(any::<u8>(), 16..=64),
        counter in 0u64..=100_000_000_000,
        digits in 6u32..=8,
        algorithm in algorithms(),
    ) {
        let want = oathtool(&[
            mode(algorithm),
            "--time-step-size=1s".into(),
            format!("--now=@{counter}"),
            format!("--digits={digits}"),
            hex(&key),
        ])
        .map_err(TestCaseError::fail)?;
        prop_assert_eq!(format_code(hotp(algorithm, &key, counter, digits), digits), want);
    }

    #[test]
    fn totp_matches_oathtool(
        key in prop::collection::vec(any::<u8>(), 16..=64),
        now in 0i64..=20_000_000_000,
        digits in 6u32..=8,
        algorithm in algorithms(),
        period in prop_oneof![Just(30u64), Just(60u64)],
    ) {
        let want = oathtool(&[
            mode(algorithm),
            format!("--now=@{now}"),
            format!("--time-step-size={period}s"),
            format!("--digits={digits}"),
            hex(&key),
        ])
        .map_err(TestCaseError::fail)?;
        let step = totp_step(now, period);
        prop_assert_eq!(format_code(hotp(algorithm, &key, step, digits), digits), want.clone());
        prop_assert_eq!(
            find_totp(algorithm, &key, digits, period, &want, now, 1, 0),
            Some(step)
        );
    }
}
