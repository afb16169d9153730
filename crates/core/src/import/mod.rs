//! Bulk import of hardware and software OATH tokens from vendor seed files.
//!
//! Two formats: PSKC (RFC 6030, XML; `pskc.rs` says which parts are read) and the OATH
//! seed CSV that token vendors ship (`oath_csv.rs` documents the columns). An import is
//! all or nothing: one bad entry, or two entries with the same serial, fails the whole
//! file so an operator never has to work out which half of a batch made it in.

mod oath_csv;
mod pskc;

use crate::model::NewToken;
use crate::otpauth::MIN_SECRET_BYTES;
use std::collections::HashMap;
use std::fmt;

/// The file formats [`parse`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pskc,
    Csv,
}

/// Keys that unlock encrypted PSKC files (RFC 6030 §6). CSV files are never encrypted.
#[derive(Clone, Default)]
pub struct ImportKeys {
    /// The pre-shared AES key (RFC 6030 §6.1) as raw bytes: 16 for AES-128-CBC.
    pub psk: Option<Vec<u8>>,
    /// The password the PBKDF2 key is derived from (RFC 6030 §6.2).
    pub password: Option<String>,
}

impl fmt::Debug for ImportKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportKeys")
            .field("psk", &self.psk.as_ref().map(|_| ".."))
            .field("password", &self.password.as_ref().map(|_| ".."))
            .finish()
    }
}

/// Where in the file an error was found, in the words the operator sees in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// A 1-based line of a CSV file.
    Line(u64),
    /// The n-th `<KeyPackage>` of a PSKC file, 1-based.
    KeyPackage(usize),
    /// The PSKC `<KeyContainer>` itself (`<EncryptionKey>`, `<MACMethod>`).
    Container,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Line(n) => write!(f, "line {n}"),
            Self::KeyPackage(n) => write!(f, "key package {n}"),
            Self::Container => f.write_str("the key container"),
        }
    }
}

/// Why a file was not imported. Nothing from the file has been imported in any case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    #[error("the file is not UTF-8 text ({0}); save it as UTF-8 and import it again")]
    NotUtf8(String),
    #[error("the file is not well-formed XML: {0}")]
    Xml(String),
    #[error("the file is not a PSKC key container: {0}")]
    NotPskc(String),
    #[error("the file holds no tokens")]
    Empty,
    #[error("{at}: {reason}")]
    Invalid { at: Location, reason: String },
    #[error("{at} is encrypted with a pre-shared key; pass --psk-file")]
    PskRequired { at: Location },
    #[error("{at} is encrypted with a key derived from a password; pass --password-file")]
    PasswordRequired { at: Location },
    #[error(
        "{at} could not be decrypted: the padding is wrong, so the pre-shared key or password \
         does not match the one the file was encrypted with"
    )]
    WrongKey { at: Location },
    #[error(
        "{at}: the ValueMAC does not match the encrypted secret (RFC 6030 §6.1.1); either the \
         pre-shared key or password is wrong or the file was altered; ask the vendor for the \
         right key or a fresh file"
    )]
    MacMismatch { at: Location },
    #[error(
        "serial '{serial}' appears at {first} and again at {second}; every token needs its own \
         serial, so remove or rename one of them"
    )]
    DuplicateSerial {
        serial: String,
        first: Location,
        second: Location,
    },
}

/// Guesses the format: PSKC is XML, so it starts with `<`; anything else is CSV.
pub fn detect(bytes: &[u8]) -> Format {
    let first = strip_bom(bytes)
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .copied();
    if first == Some(b'<') {
        Format::Pskc
    } else {
        Format::Csv
    }
}

/// Reads every token of the file, or none: see [`ImportError`].
pub fn parse(
    bytes: &[u8],
    format: Format,
    keys: &ImportKeys,
) -> Result<Vec<NewToken>, ImportError> {
    // Spreadsheet programs save CSV with a UTF-8 byte order mark; it is not part of the data.
    let text =
        std::str::from_utf8(strip_bom(bytes)).map_err(|e| ImportError::NotUtf8(e.to_string()))?;
    let entries = match format {
        Format::Pskc => pskc::parse(text, keys)?,
        Format::Csv => oath_csv::parse(text)?,
    };
    check(entries)
}

/// A token and where it came from, so shared checks can name the entry.
type Located = (Location, NewToken);

/// The checks every format shares.
fn check(entries: Vec<Located>) -> Result<Vec<NewToken>, ImportError> {
    if entries.is_empty() {
        return Err(ImportError::Empty);
    }
    let mut seen: HashMap<&str, Location> = HashMap::with_capacity(entries.len());
    for (at, token) in &entries {
        // RFC 4226 §4 (R6); a vendor file with short seeds is a reason to call the vendor.
        let len = token.secret.expose().len();
        if len < MIN_SECRET_BYTES {
            return Err(ImportError::Invalid {
                at: *at,
                reason: format!(
                    "the secret is {} bits; RFC 4226 §4 requires at least 128 bits",
                    len * 8
                ),
            });
        }
        if let Some(first) = seen.insert(token.serial.as_str(), *at) {
            return Err(ImportError::DuplicateSerial {
                serial: token.serial.clone(),
                first,
                second: *at,
            });
        }
    }
    Ok(entries.into_iter().map(|(_, token)| token).collect())
}

/// Validates a serial number from any format; the reason is the operator's to read.
fn check_serial(serial: &str) -> Result<(), String> {
    if serial.is_empty() {
        Err("the serial number is empty".into())
    } else if serial.chars().count() > 64 {
        Err(format!("serial '{serial}' is longer than 64 characters"))
    } else if serial.chars().any(char::is_control) {
        Err(format!("serial {serial:?} contains control characters"))
    } else {
        Ok(())
    }
}

/// Validates a code length from any format.
fn check_digits(digits: u32) -> Result<u32, String> {
    // RFC 4226 §5.3: 6 digits at least, 7 and 8 possible; authenticators stop at 8.
    if (6..=8).contains(&digits) {
        Ok(digits)
    } else {
        Err(format!(
            "{digits}-digit codes are not supported; use 6, 7 or 8 digits (RFC 4226 §5.3)"
        ))
    }
}

/// Validates a TOTP step from any format: wide enough for any token, narrow enough that a
/// digits or counter value in the wrong column is caught rather than imported.
fn check_period(period: u64) -> Result<u64, String> {
    if (10..=600).contains(&period) {
        Ok(period)
    } else {
        Err(format!(
            "the TOTP interval {period} is outside 10 to 600 seconds; tokens use 30 or 60"
        ))
    }
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otp::{Algorithm, OtpKind};

    // RFC 6030 figures, verbatim apart from a leading comment.
    const FIGURE2: &str = include_str!("../../tests/fixtures/rfc6030-figure2.xml");
    const FIGURE3: &str = include_str!("../../tests/fixtures/rfc6030-figure3.xml");
    const FIGURE6: &str = include_str!("../../tests/fixtures/rfc6030-figure6.xml");
    const FIGURE7: &str = include_str!("../../tests/fixtures/rfc6030-figure7.xml");
    const FIGURE10: &str = include_str!("../../tests/fixtures/rfc6030-figure10.xml");

    /// The secret of every RFC 6030 example with a full-length key.
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    fn psk(hex: &str) -> ImportKeys {
        ImportKeys {
            psk: Some(
                data_encoding::HEXLOWER_PERMISSIVE
                    .decode(hex.as_bytes())
                    .unwrap(),
            ),
            password: None,
        }
    }

    fn password(password: &str) -> ImportKeys {
        ImportKeys {
            psk: None,
            password: Some(password.into()),
        }
    }

    fn pskc(text: &str, keys: &ImportKeys) -> Result<Vec<NewToken>, ImportError> {
        assert_eq!(detect(text.as_bytes()), Format::Pskc);
        parse(text.as_bytes(), Format::Pskc, keys)
    }

    /// The RFC 6030 §6.1 example's pre-shared key.
    const FIGURE6_PSK: &str = "12345678901234567890123456789012";

    #[test]
    fn rfc6030_figure3_plain_hotp_secret_imports_with_serial_digits_and_counter() {
        let tokens = pskc(FIGURE3, &ImportKeys::default()).unwrap();
        assert_eq!(tokens.len(), 1);
        let token = &tokens[0];
        assert_eq!(
            token.serial, "987654321",
            "DeviceInfo/SerialNo wins over Key Id"
        );
        assert_eq!(token.kind, OtpKind::Hotp);
        assert_eq!(token.algorithm, Algorithm::Sha1);
        assert_eq!(token.digits, 8);
        assert_eq!(token.next, 0);
        assert_eq!(token.user_id, None);
        assert_eq!(token.secret.expose(), RFC_SECRET);
    }

    #[test]
    fn rfc6030_figure6_psk_encrypted_secret_decrypts_to_the_rfc_value() {
        let tokens = pskc(FIGURE6, &psk(FIGURE6_PSK)).unwrap();
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0].serial, "987654321");
        assert_eq!(tokens[0].digits, 8);
        assert_eq!(tokens[0].secret.expose(), RFC_SECRET);
    }

    #[test]
    fn rfc6030_figure7_password_derived_key_decrypts_to_the_rfc_value() {
        let tokens = pskc(FIGURE7, &password("qwerty")).unwrap();
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0].serial, "987654321");
        assert_eq!(tokens[0].kind, OtpKind::Hotp);
        assert_eq!(tokens[0].digits, 8);
        assert_eq!(tokens[0].secret.expose(), RFC_SECRET);
    }

    /// A wrong key either leaves impossible padding on the MAC key or yields a MAC key
    /// that does not verify; both must say the key may be wrong.
    fn assert_wrong_key(result: Result<Vec<NewToken>, ImportError>) {
        let err = result.unwrap_err();
        assert!(
            matches!(
                err,
                ImportError::WrongKey { .. } | ImportError::MacMismatch { .. }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("pre-shared key or password"),
            "{err}"
        );
    }

    #[test]
    fn wrong_pre_shared_key_imports_nothing() {
        assert_wrong_key(pskc(FIGURE6, &psk("12345678901234567890123456789013")));
        assert_wrong_key(pskc(FIGURE6, &psk("00000000000000000000000000000000")));
        assert_wrong_key(pskc(FIGURE6, &psk("ffeeddccbbaa99887766554433221100")));
    }

    #[test]
    fn wrong_password_imports_nothing() {
        assert_wrong_key(pskc(FIGURE7, &password("qwertz")));
        assert_wrong_key(pskc(FIGURE7, &password("")));
        assert_wrong_key(pskc(FIGURE7, &password("QWERTY")));
    }

    #[test]
    fn tampered_value_mac_is_detected() {
        let tampered = FIGURE6.replace(
            "Su+NvtQfmvfJzF6bmQiJqoLRExc=",
            "Su+NvtQfmvfJzF6bmQiKqoLRExc=",
        );
        assert_ne!(tampered, FIGURE6);
        let err = pskc(&tampered, &psk(FIGURE6_PSK)).unwrap_err();
        assert!(
            matches!(
                err,
                ImportError::MacMismatch {
                    at: Location::KeyPackage(1)
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("key package 1: the ValueMAC does not match"),
            "{err}"
        );
    }

    #[test]
    fn tampered_ciphertext_is_detected_before_decryption() {
        let tampered = FIGURE7.replace("oTvo+S22", "oTvo+S23");
        assert_ne!(tampered, FIGURE7);
        let err = pskc(&tampered, &password("qwerty")).unwrap_err();
        assert!(matches!(err, ImportError::MacMismatch { .. }), "{err:?}");
    }

    #[test]
    fn encrypted_file_without_the_key_says_which_option_to_pass() {
        let err = pskc(FIGURE6, &ImportKeys::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "key package 1 is encrypted with a pre-shared key; pass --psk-file"
        );
        // A password does not help with a pre-shared-key file, and vice versa.
        let err = pskc(FIGURE6, &password("qwerty")).unwrap_err();
        assert!(matches!(err, ImportError::PskRequired { .. }), "{err:?}");
        let err = pskc(FIGURE7, &psk(FIGURE6_PSK)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "key package 1 is encrypted with a key derived from a password; pass --password-file"
        );
    }

    #[test]
    fn pre_shared_key_of_the_wrong_size_is_explained() {
        let err = pskc(FIGURE6, &psk(&FIGURE6_PSK.repeat(2))).unwrap_err();
        assert!(
            err.to_string()
                .contains("needs 16: a pre-shared key of 32 hex digits"),
            "{err}"
        );
    }

    #[test]
    fn rfc6030_figure2_secret_below_128_bits_is_refused() {
        let err = pskc(FIGURE2, &ImportKeys::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "key package 1: the secret is 32 bits; RFC 4226 §4 requires at least 128 bits"
        );
    }

    #[test]
    fn rfc6030_figure10_two_keys_for_one_device_serial_import_nothing() {
        let err = pskc(FIGURE10, &ImportKeys::default()).unwrap_err();
        match &err {
            ImportError::DuplicateSerial {
                serial,
                first,
                second,
            } => {
                assert_eq!(serial, "9999999");
                assert_eq!(*first, Location::KeyPackage(3));
                assert_eq!(*second, Location::KeyPackage(4));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            err.to_string()
                .contains("key package 3 and again at key package 4"),
            "{err}"
        );
        // Without the duplicate the same file imports all its tokens.
        let fixed = FIGURE10.replacen(
            "<SerialNo>9999999</SerialNo>",
            "<SerialNo>9999998</SerialNo>",
            1,
        );
        let tokens = pskc(&fixed, &ImportKeys::default()).unwrap();
        let serials: Vec<_> = tokens.iter().map(|t| t.serial.as_str()).collect();
        assert_eq!(serials, ["654321", "123456", "9999998", "9999999"]);
    }

    const TOTP_PACKAGE: &str = r#"
    <KeyPackage>
        <Key Id="TOTP-0001" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp">
            <AlgorithmParameters>
                <Suite>HMAC-SHA256</Suite>
                <ResponseFormat Length="6" Encoding="DECIMAL"/>
            </AlgorithmParameters>
            <Data>
                <Secret><PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=</PlainValue></Secret>
                <Time><PlainValue>0</PlainValue></Time>
                <TimeInterval><PlainValue>60</PlainValue></TimeInterval>
            </Data>
        </Key>
    </KeyPackage>"#;

    fn container(packages: &str) -> String {
        format!(
            r#"<?xml version="1.0"?>
<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">{packages}
</KeyContainer>"#
        )
    }

    #[test]
    fn totp_key_reads_suite_hash_interval_and_falls_back_to_key_id_for_serial() {
        let tokens = pskc(&container(TOTP_PACKAGE), &ImportKeys::default()).unwrap();
        let token = &tokens[0];
        assert_eq!(token.serial, "TOTP-0001");
        assert_eq!(token.kind, OtpKind::Totp);
        assert_eq!(token.algorithm, Algorithm::Sha256);
        assert_eq!(token.digits, 6);
        assert_eq!(token.period, 60);
        assert_eq!(token.next, 0);
        assert_eq!(token.secret.expose(), b"12345678901234567890123456789012");
    }

    #[test]
    fn one_unusable_key_package_fails_the_whole_file() {
        let pin = TOTP_PACKAGE
            .replace("TOTP-0001", "PIN-0001")
            .replace("pskc:totp", "pskc:pin");
        let text = container(&format!("{TOTP_PACKAGE}{pin}"));
        let err = pskc(&text, &ImportKeys::default()).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "key package 2: its algorithm 'urn:ietf:params:xml:ns:keyprov:pskc:pin' is neither"
            ),
            "{err}"
        );
        let ten = TOTP_PACKAGE.replace("Length=\"6\"", "Length=\"10\"");
        let err = pskc(&container(&ten), &ImportKeys::default()).unwrap_err();
        assert!(
            err.to_string().contains("10-digit codes are not supported"),
            "{err}"
        );
        let fast = TOTP_PACKAGE.replace("<PlainValue>60<", "<PlainValue>0<");
        let err = pskc(&container(&fast), &ImportKeys::default()).unwrap_err();
        assert!(err.to_string().contains("interval 0 is outside"), "{err}");
    }

    #[test]
    fn documents_that_are_not_pskc_are_refused() {
        let err = pskc("<KeyContainer Version=\"1.0\"/>", &ImportKeys::default()).unwrap_err();
        assert!(matches!(err, ImportError::NotPskc(_)), "{err:?}");
        let err = pskc("<KeyContainer", &ImportKeys::default()).unwrap_err();
        assert!(matches!(err, ImportError::Xml(_)), "{err:?}");
        let err = pskc(&container(""), &ImportKeys::default()).unwrap_err();
        assert!(matches!(err, ImportError::Empty), "{err:?}");
        let v2 = container("").replace("Version=\"1.0\"", "Version=\"2.0\"");
        assert!(matches!(
            pskc(&v2, &ImportKeys::default()),
            Err(ImportError::NotPskc(_))
        ));
    }

    #[test]
    fn detect_tells_xml_from_csv() {
        assert_eq!(
            detect(b"<?xml version=\"1.0\"?><KeyContainer/>"),
            Format::Pskc
        );
        assert_eq!(detect(b"\xEF\xBB\xBF\n  <KeyContainer/>"), Format::Pskc);
        assert_eq!(detect(b"serial,secret,interval\n"), Format::Csv);
        assert_eq!(
            detect(b"# seeds\nTK1,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,30\n"),
            Format::Csv
        );
        assert_eq!(detect(b""), Format::Csv);
    }

    #[test]
    fn non_utf8_input_is_refused() {
        let err = parse(b"TK1,\xFF\xFE,30\n", Format::Csv, &ImportKeys::default()).unwrap_err();
        assert!(matches!(err, ImportError::NotUtf8(_)), "{err}");
        assert!(err.to_string().contains("save it as UTF-8"), "{err}");
    }

    #[test]
    fn import_keys_debug_hides_the_keys() {
        let keys = ImportKeys {
            psk: Some(vec![0x42; 16]),
            password: Some("qwerty".into()),
        };
        let shown = format!("{keys:?}");
        assert!(
            !shown.contains("qwerty") && !shown.contains("66"),
            "{shown}"
        );
    }
}
