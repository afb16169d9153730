//! HOTP (RFC 4226) and TOTP (RFC 6238) code generation and window search.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use subtle::ConstantTimeEq;

/// The HMAC hash of an OATH token (RFC 6238 §1.2 allows SHA-1, SHA-256 and SHA-512).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Algorithm {
    #[default]
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The name used in `otpauth://` URIs and PSKC files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Ok(Self::Sha1),
            "SHA256" => Ok(Self::Sha256),
            "SHA512" => Ok(Self::Sha512),
            _ => Err(format!(
                "unknown algorithm '{s}'; use sha1, sha256 or sha512"
            )),
        }
    }
}

/// Counter-based or time-based.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtpKind {
    Hotp,
    #[default]
    Totp,
}

impl OtpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hotp => "hotp",
            Self::Totp => "totp",
        }
    }
}

impl fmt::Display for OtpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OtpKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "hotp" => Ok(Self::Hotp),
            "totp" => Ok(Self::Totp),
            _ => Err(format!("unknown token type '{s}'; use totp or hotp")),
        }
    }
}

fn hmac_digest<M: Mac + hmac::digest::KeyInit>(key: &[u8], counter: u64) -> Vec<u8> {
    // HMAC accepts keys of any length, so new_from_slice cannot fail here.
    match <M as hmac::digest::KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(&counter.to_be_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// RFC 4226 §5.3: HMAC over the 8-byte counter, dynamic truncation, modulo 10^digits.
pub fn hotp(algorithm: Algorithm, key: &[u8], counter: u64, digits: u32) -> u32 {
    let digest = match algorithm {
        Algorithm::Sha1 => hmac_digest::<Hmac<sha1::Sha1>>(key, counter),
        Algorithm::Sha256 => hmac_digest::<Hmac<sha2::Sha256>>(key, counter),
        Algorithm::Sha512 => hmac_digest::<Hmac<sha2::Sha512>>(key, counter),
    };
    let offset = digest.last().map_or(0, |b| usize::from(b & 0x0f));
    let word = match digest.get(offset..offset + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a & 0x7f, b, c, d]),
        _ => 0,
    };
    word % 10u32.pow(digits.min(9))
}

/// A code as the user types it: zero-padded to `digits`.
pub fn format_code(code: u32, digits: u32) -> String {
    format!("{code:0width$}", width = digits as usize)
}

/// RFC 6238 §4.2: the time step T = floor((now - T0) / X), with T0 = 0.
pub fn totp_step(now: i64, period: u64) -> u64 {
    u64::try_from(now).unwrap_or(0) / period.max(1)
}

/// Whether `code` is a well-formed code of `digits` digits.
fn parse_code(code: &str, digits: u32) -> Option<u32> {
    (code.len() == digits as usize && code.bytes().all(|b| b.is_ascii_digit()))
        .then(|| code.parse().ok())
        .flatten()
}

/// The first counter in `from..from + window` whose HOTP code equals `code`
/// (RFC 4226 §7.4 look-ahead). Comparison is constant-time per candidate.
pub fn find_hotp(
    algorithm: Algorithm,
    key: &[u8],
    digits: u32,
    code: &str,
    from: u64,
    window: u64,
) -> Option<u64> {
    let wanted = parse_code(code, digits)?;
    (from..from.saturating_add(window)).find(|&c| {
        bool::from(
            hotp(algorithm, key, c, digits)
                .to_be_bytes()
                .ct_eq(&wanted.to_be_bytes()),
        )
    })
}

/// The time step within `skew` steps of now whose TOTP code equals `code`, never below
/// `min_step` (steps already used: RFC 6238 §5.2 "MUST NOT accept the second attempt").
/// Checks the current step first, then the nearer neighbours.
#[allow(clippy::too_many_arguments)] // each is a distinct RFC 6238 parameter
pub fn find_totp(
    algorithm: Algorithm,
    key: &[u8],
    digits: u32,
    period: u64,
    code: &str,
    now: i64,
    skew: u64,
    min_step: u64,
) -> Option<u64> {
    let wanted = parse_code(code, digits)?;
    let current = totp_step(now, period);
    let mut candidates = vec![current];
    for d in 1..=skew {
        candidates.push(current.saturating_sub(d));
        candidates.push(current.saturating_add(d));
    }
    candidates
        .into_iter()
        .filter(|&s| s >= min_step)
        .find(|&s| {
            bool::from(
                hotp(algorithm, key, s, digits)
                    .to_be_bytes()
                    .ct_eq(&wanted.to_be_bytes()),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4226_appendix_d_first_values() {
        let key = b"12345678901234567890";
        let expected = [755224, 287082, 359152, 969429, 338314];
        for (c, want) in expected.iter().enumerate() {
            assert_eq!(hotp(Algorithm::Sha1, key, c as u64, 6), *want);
        }
    }

    #[test]
    fn totp_never_accepts_a_step_below_min_step() {
        let key = b"12345678901234567890";
        let now = 59;
        let step = totp_step(now, 30);
        let code = format_code(hotp(Algorithm::Sha1, key, step, 6), 6);
        assert_eq!(
            find_totp(Algorithm::Sha1, key, 6, 30, &code, now, 1, 0),
            Some(step)
        );
        assert_eq!(
            find_totp(Algorithm::Sha1, key, 6, 30, &code, now, 1, step + 1),
            None
        );
    }

    #[test]
    fn malformed_codes_never_match() {
        let key = b"12345678901234567890";
        assert_eq!(find_hotp(Algorithm::Sha1, key, 6, "75522", 0, 10), None);
        assert_eq!(find_hotp(Algorithm::Sha1, key, 6, "+55224", 0, 10), None);
        assert_eq!(find_hotp(Algorithm::Sha1, key, 6, "755224", 0, 10), Some(0));
    }
}
