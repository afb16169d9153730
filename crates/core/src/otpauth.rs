//! `otpauth://` enrolment URIs (the Google Authenticator Key Uri Format) and the
//! base32 secrets people type or paste.
//!
//! The URI format is not an RFC; it is the de facto format every authenticator app reads
//! from a QR code: `otpauth://TYPE/LABEL?PARAMETERS`, with the secret in RFC 4648 §6
//! base32 without padding.

use crate::otp::{Algorithm, OtpKind};
use std::fmt;
use std::fmt::Write as _;

/// RFC 4226 §4 (R6): "The length of the shared secret MUST be at least 128 bits."
pub const MIN_SECRET_BYTES: usize = 16;

/// Everything an authenticator app needs to enrol a token.
///
/// `Debug` never prints the secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct OtpAuthUri<'a> {
    pub kind: OtpKind,
    /// Shown by apps as the account's provider; empty means none.
    pub issuer: &'a str,
    /// Usually the user name or e-mail address.
    pub account: &'a str,
    pub secret: &'a [u8],
    pub algorithm: Algorithm,
    pub digits: u32,
    /// TOTP step in seconds (RFC 6238 §4.1 X); not written for HOTP.
    pub period: u64,
    /// HOTP counter the app starts from; not written for TOTP.
    pub counter: u64,
}

impl OtpAuthUri<'_> {
    /// `otpauth://totp/Issuer:account?secret=…&issuer=Issuer&algorithm=SHA1&digits=6&period=30`
    /// (HOTP carries `counter=` in place of `period=`).
    pub fn to_uri(&self) -> String {
        let mut uri = format!("otpauth://{}/", self.kind);
        // The issuer prefix and its ':' separator stay literal so apps can split the label;
        // a ':' inside either part is escaped and so cannot be mistaken for the separator.
        if !self.issuer.is_empty() {
            uri.push_str(&percent_encode(self.issuer));
            uri.push(':');
        }
        uri.push_str(&percent_encode(self.account));
        uri.push_str("?secret=");
        uri.push_str(&encode_base32(self.secret));
        if !self.issuer.is_empty() {
            // The key URI format recommends the parameter as well as the label prefix:
            // older apps read only one of them.
            uri.push_str("&issuer=");
            uri.push_str(&percent_encode(self.issuer));
        }
        // `write!` into a String cannot fail.
        let _ = write!(uri, "&algorithm={}&digits={}", self.algorithm, self.digits);
        let _ = match self.kind {
            OtpKind::Totp => write!(uri, "&period={}", self.period),
            OtpKind::Hotp => write!(uri, "&counter={}", self.counter),
        };
        uri
    }
}

impl fmt::Debug for OtpAuthUri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtpAuthUri")
            .field("kind", &self.kind)
            .field("issuer", &self.issuer)
            .field("account", &self.account)
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

/// RFC 3986 §2.1/§2.3: every byte of the UTF-8 form except the unreserved characters
/// becomes `%XX`. Escaping more than a component strictly needs is always safe, and
/// `+` is escaped because some apps decode it as a space.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// RFC 4648 §6 base32 without the `=` padding, as the key URI format requires.
pub fn encode_base32(bytes: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(bytes)
}

/// Decodes a base32 secret as people type it: any case, spaces and `-` between groups,
/// `=` padding optional. Rejects secrets shorter than 128 bits (RFC 4226 §4, R6).
pub fn parse_base32_secret(s: &str) -> Result<Vec<u8>, String> {
    let mut bits: u64 = 0;
    let mut nbits = 0u32;
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let mut symbols = 0usize;
    let mut padding = false;
    for (pos, c) in s.chars().enumerate() {
        let value = match c.to_ascii_uppercase() {
            ' ' | '-' | '\t' => continue,
            '=' => {
                padding = true;
                continue;
            }
            u @ 'A'..='Z' if !padding => u32::from(u) - u32::from('A'),
            d @ '2'..='7' if !padding => u32::from(d) - u32::from('2') + 26,
            _ if padding => {
                return Err(format!(
                "the secret has '{c}' after '=' padding at position {}; padding may only end it",
                pos + 1
            ))
            }
            _ => {
                return Err(format!(
                    "the secret has '{c}' at position {}, which is not base32 \
                     (letters A-Z and digits 2-7; 0, 1, 8 and 9 never occur)",
                    pos + 1
                ))
            }
        };
        symbols += 1;
        bits = (bits << 5) | u64::from(value);
        nbits += 5;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    // RFC 4648 §6: a final quantum has 2, 4, 5 or 7 symbols; 1, 3 or 6 leave a partial
    // byte, which means a symbol was lost when copying. Nonzero leftover bits are accepted,
    // as authenticator apps do.
    if matches!(symbols % 8, 1 | 3 | 6) {
        return Err(format!(
            "the secret has {symbols} base32 characters, which cannot be a whole number of bytes; \
             a character is probably missing"
        ));
    }
    if out.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "the secret is {} bits; RFC 4226 §4 requires at least 128 bits \
             ({} base32 characters)",
            out.len() * 8,
            (MIN_SECRET_BYTES * 8).div_ceil(5)
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_KEY: &[u8] = b"12345678901234567890";

    fn totp<'a>(issuer: &'a str, account: &'a str) -> OtpAuthUri<'a> {
        OtpAuthUri {
            kind: OtpKind::Totp,
            issuer,
            account,
            secret: RFC_KEY,
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
            counter: 0,
        }
    }

    #[test]
    fn totp_uri_has_label_secret_and_every_parameter() {
        assert_eq!(
            totp("Example", "alice@example.com").to_uri(),
            "otpauth://totp/Example:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Example&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn hotp_uri_carries_counter_instead_of_period() {
        let uri = OtpAuthUri {
            kind: OtpKind::Hotp,
            algorithm: Algorithm::Sha256,
            digits: 8,
            counter: 42,
            ..totp("Example", "bob")
        }
        .to_uri();
        assert_eq!(
            uri,
            "otpauth://hotp/Example:bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Example&algorithm=SHA256&digits=8&counter=42"
        );
    }

    #[test]
    fn label_and_issuer_escape_everything_but_unreserved_characters() {
        let uri = totp("ACME Co: VPN", "jo+doe/ü").to_uri();
        assert!(uri.starts_with("otpauth://totp/ACME%20Co%3A%20VPN:jo%2Bdoe%2F%C3%BC?"));
        assert!(uri.contains("&issuer=ACME%20Co%3A%20VPN&"));
        // Exactly one literal ':' in the label: the issuer separator.
        let label = uri
            .trim_start_matches("otpauth://totp/")
            .split('?')
            .next()
            .unwrap();
        assert_eq!(label.matches(':').count(), 1);
        assert_eq!(percent_encode("aZ09-._~"), "aZ09-._~");
    }

    #[test]
    fn empty_issuer_leaves_a_bare_account_label() {
        let uri = totp("", "alice").to_uri();
        assert!(uri.starts_with("otpauth://totp/alice?secret="));
        assert!(!uri.contains("issuer="));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let shown = format!("{:?}", totp("Example", "alice"));
        assert!(!shown.contains("secret"), "{shown}");
        assert!(!shown.contains("49, 50"), "{shown}");
    }

    #[test]
    fn base32_round_trips_without_padding() {
        assert_eq!(encode_base32(RFC_KEY), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        // RFC 4648 §10 vector "foobar", padding dropped.
        assert_eq!(encode_base32(b"foobar"), "MZXW6YTBOI");
        for len in 16..=40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(parse_base32_secret(&encode_base32(&bytes)).unwrap(), bytes);
        }
    }

    #[test]
    fn base32_ignores_case_spaces_dashes_and_padding() {
        let want = RFC_KEY.to_vec();
        for typed in [
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            "gezd gnbv gy3t qojq gezd gnbv gy3t qojq",
            "gezd-gnbv-gy3t-qojq-gezd-gnbv-gy3t-qojq",
            " GezdGnbvGy3tQojqGezdGnbvGy3tQojq ",
        ] {
            assert_eq!(parse_base32_secret(typed).unwrap(), want, "{typed}");
        }
        // 17 bytes need padding to a whole quantum; with or without it is the same secret.
        let seventeen = [7u8; 17];
        let padded = data_encoding::BASE32.encode(&seventeen);
        assert!(padded.ends_with('='));
        assert_eq!(parse_base32_secret(&padded).unwrap(), seventeen);
        assert_eq!(
            parse_base32_secret(padded.trim_end_matches('=')).unwrap(),
            seventeen
        );
    }

    #[test]
    fn base32_rejects_foreign_characters_with_their_position() {
        let err = parse_base32_secret("GEZDGNBVGY3TQOJ1GEZDGNBVGY3TQOJQ").unwrap_err();
        assert!(err.contains("'1' at position 16"), "{err}");
        assert!(err.contains("A-Z and digits 2-7"), "{err}");
        let err = parse_base32_secret("GEZDGNBVGY3TQOJQ==GEZDGNBVGY3TQOJQ").unwrap_err();
        assert!(err.contains("after '=' padding"), "{err}");
    }

    #[test]
    fn base32_rejects_a_truncated_quantum() {
        // 33 symbols: one too many for 20 bytes, a partial byte left over.
        let err = parse_base32_secret("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQG").unwrap_err();
        assert!(err.contains("33 base32 characters"), "{err}");
    }

    #[test]
    fn secrets_below_128_bits_are_rejected_citing_rfc_4226() {
        // 80 bits: the classic Google Authenticator demo key.
        let err = parse_base32_secret("JBSWY3DPEHPK3PXP").unwrap_err();
        assert!(err.contains("80 bits"), "{err}");
        assert!(err.contains("RFC 4226 §4"), "{err}");
        assert!(err.contains("at least 128 bits"), "{err}");
        assert!(parse_base32_secret("").is_err());
        assert_eq!(
            parse_base32_secret(&encode_base32(&[0u8; 16])).unwrap(),
            [0u8; 16]
        );
    }
}
