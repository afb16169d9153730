//! OATH seed CSV files: one token a line, as token vendors ship them.
//!
//! Without a header the columns are positional:
//!
//! ```text
//! # serial, base32 secret, interval[, digits[, algorithm]]
//! TK-0001, GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ, 30
//! TK-0002, GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJR, 60, 8, SHA256
//! HK-0001, GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJS, 0
//! ```
//!
//! - secret: base32 (RFC 4648 §6) in any case, spaces and `-` allowed, at least 128 bits
//!   (RFC 4226 §4); hex seeds must be converted first;
//! - interval: the TOTP step in seconds, 10 to 600 (tokens use 30 or 60); empty or 0
//!   makes an HOTP token starting at counter 0;
//! - digits: 6 (default), 7 or 8; algorithm: SHA1 (default), SHA256 or SHA512.
//!
//! A first line that names a serial and a secret column is a header instead, and columns
//! are then matched by name in any order (case, `_` and `-` ignored): `serial` /
//! `serial number` / `serialno`, `secret` / `secret key` / `seed` / `key`, `interval` /
//! `time interval` / `period` / `time step`, `digits` / `otp length`, `algorithm` /
//! `hash`, `counter` (HOTP start), and `type` (`hotp` or `totp`, else decided by the
//! interval). Other columns are ignored, so Microsoft Entra ID hardware token files
//! (`upn,serial number,secret key,time interval,manufacturer,model`) import as they are;
//! their `upn` is not used, tokens are assigned to users afterwards.
//!
//! Fields are comma-separated with CSV quoting, trimmed; blank lines and lines starting
//! with `#` are skipped.

use super::{check_digits, check_period, check_serial, ImportError, Located, Location};
use crate::model::{NewToken, Secret};
use crate::otp::{Algorithm, OtpKind};
use crate::otpauth::parse_base32_secret;

/// What a column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Column {
    Serial,
    Secret,
    Interval,
    Digits,
    Algorithm,
    Counter,
    Type,
}

/// The order of the columns without a header.
const POSITIONAL: [Column; 5] = [
    Column::Serial,
    Column::Secret,
    Column::Interval,
    Column::Digits,
    Column::Algorithm,
];

impl Column {
    fn from_header(name: &str) -> Option<Self> {
        let name: String = name
            .trim()
            .to_ascii_lowercase()
            .chars()
            .filter(|c| !matches!(c, ' ' | '_' | '-'))
            .collect();
        Some(match name.as_str() {
            "serial" | "serialnumber" | "serialno" | "sn" => Self::Serial,
            "secret" | "secretkey" | "seed" | "key" | "otpkey" => Self::Secret,
            "interval" | "timeinterval" | "period" | "timestep" | "step" => Self::Interval,
            "digits" | "otplength" | "otplen" | "length" => Self::Digits,
            "algorithm" | "hash" | "hashalgorithm" | "hashlib" => Self::Algorithm,
            "counter" => Self::Counter,
            "type" | "tokentype" => Self::Type,
            _ => return None,
        })
    }
}

/// Reads every line; the first bad one fails the file.
pub(super) fn parse(text: &str) -> Result<Vec<Located>, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let mut layout: Option<Vec<Option<Column>>> = None;
    let mut tokens = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut last_line = 0;
    loop {
        let more = reader
            .read_record(&mut record)
            .map_err(|e| ImportError::Invalid {
                at: Location::Line(e.position().map_or(last_line + 1, |p| p.line())),
                reason: format!("it is not valid CSV ({e})"),
            })?;
        if !more {
            break;
        }
        let at = Location::Line(record.position().map_or(last_line + 1, |p| p.line()));
        last_line = record.position().map_or(last_line + 1, |p| p.line());
        // The reader only knows comments that start in column 1, and `   ,  ,` is as
        // empty as a blank line.
        if record.get(0).is_some_and(|f| f.starts_with('#')) || record.iter().all(str::is_empty) {
            continue;
        }
        let columns = match layout.take() {
            Some(columns) => columns,
            None => {
                let header: Vec<Option<Column>> = record.iter().map(Column::from_header).collect();
                if header.contains(&Some(Column::Serial)) && header.contains(&Some(Column::Secret))
                {
                    layout = Some(header);
                    continue;
                }
                POSITIONAL.iter().copied().map(Some).collect()
            }
        };
        let token = line(&record, &columns);
        layout = Some(columns);
        let token = token.map_err(|reason| ImportError::Invalid { at, reason })?;
        tokens.push((at, token));
    }
    Ok(tokens)
}

fn line(record: &csv::StringRecord, columns: &[Option<Column>]) -> Result<NewToken, String> {
    if record.len() > columns.len() {
        return Err(format!(
            "it has {} fields, more than the {} columns expected; a comma inside a field needs \
             double quotes",
            record.len(),
            columns.len()
        ));
    }
    let field = |wanted: Column| {
        columns
            .iter()
            .position(|c| *c == Some(wanted))
            .and_then(|i| record.get(i))
            .unwrap_or("")
    };

    let serial = field(Column::Serial).to_owned();
    check_serial(&serial)?;
    let secret = field(Column::Secret);
    if secret.is_empty() {
        return Err(format!("token {serial} has no secret"));
    }
    let secret = parse_base32_secret(secret).map_err(|e| {
        // Hex seeds are the usual mix-up; say so rather than only naming a bad character.
        if secret.len() % 2 == 0 && secret.bytes().all(|b| b.is_ascii_hexdigit()) {
            format!("token {serial}: {e}; it looks like hex, and this format takes base32")
        } else {
            format!("token {serial}: {e}")
        }
    })?;

    let interval = match field(Column::Interval) {
        "" => 0,
        s => s.parse::<u64>().map_err(|_| {
            format!("the interval '{s}' is not a number of seconds; use 30 or 60, or 0 for HOTP")
        })?,
    };
    let kind = match field(Column::Type) {
        "" if interval == 0 => OtpKind::Hotp,
        "" => OtpKind::Totp,
        s => s.parse()?,
    };
    let period = match kind {
        // RFC 6238 §5.2 recommends 30 seconds; HOTP has no period, 30 is a harmless value.
        OtpKind::Hotp => 30,
        OtpKind::Totp if interval == 0 => 30,
        OtpKind::Totp => check_period(interval)?,
    };
    let digits = match field(Column::Digits) {
        "" => 6,
        s => check_digits(
            s.parse()
                .map_err(|_| format!("the digits '{s}' are not a number; use 6, 7 or 8"))?,
        )?,
    };
    let algorithm = match field(Column::Algorithm) {
        "" => Algorithm::Sha1,
        s => s.parse()?,
    };
    let next = match (kind, field(Column::Counter)) {
        (OtpKind::Hotp, s) if !s.is_empty() => s
            .parse()
            .map_err(|_| format!("the counter '{s}' is not a non-negative integer"))?,
        _ => 0,
    };
    Ok(NewToken {
        serial,
        user_id: None,
        kind,
        algorithm,
        digits,
        period,
        secret: Secret::new(secret),
        next,
    })
}

#[cfg(test)]
mod tests {
    use crate::import::{parse, Format, ImportError, ImportKeys, Location};
    use crate::model::NewToken;
    use crate::otp::{Algorithm, OtpKind};

    /// "12345678901234567890", the RFC 4226 Appendix D key, in base32.
    const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    fn csv(text: &str) -> Result<Vec<NewToken>, ImportError> {
        parse(text.as_bytes(), Format::Csv, &ImportKeys::default())
    }

    #[test]
    fn positional_lines_with_comments_and_blank_lines() {
        let text = format!(
            "# serial, secret, interval, digits, algorithm\n\
             TK-1, {SECRET}, 30\n\
             \n\
             TK-2,{}, 60, 8, sha256\n\
             \x20  # an indented comment\n\
             HK-1, {SECRET}, 0\n\
             HK-2, {SECRET},\n\
             \"TK,3\",\"{SECRET}\", 30, 7, SHA512\n",
            SECRET.to_lowercase()
        );
        let tokens = csv(&text).unwrap();
        let summary: Vec<_> = tokens
            .iter()
            .map(|t| {
                (
                    t.serial.as_str(),
                    t.kind,
                    t.period,
                    t.digits,
                    t.algorithm,
                    t.next,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("TK-1", OtpKind::Totp, 30, 6, Algorithm::Sha1, 0),
                ("TK-2", OtpKind::Totp, 60, 8, Algorithm::Sha256, 0),
                ("HK-1", OtpKind::Hotp, 30, 6, Algorithm::Sha1, 0),
                ("HK-2", OtpKind::Hotp, 30, 6, Algorithm::Sha1, 0),
                ("TK,3", OtpKind::Totp, 30, 7, Algorithm::Sha512, 0),
            ]
        );
        assert!(tokens
            .iter()
            .all(|t| t.secret.expose() == b"12345678901234567890"));
        assert!(tokens.iter().all(|t| t.user_id.is_none()));
    }

    #[test]
    fn header_maps_columns_by_name_as_in_entra_id_files() {
        let text = format!(
            "upn,serial number,secret key,time interval,manufacturer,model\n\
             alice@example.com,1234567,{SECRET},60,Contoso,HardwareKey\n\
             bob@example.com,1234568,{SECRET},30,Contoso,HardwareKey\n"
        );
        let tokens = csv(&text).unwrap();
        assert_eq!(tokens.len(), 2);
        assert_eq!(
            (tokens[0].serial.as_str(), tokens[0].period),
            ("1234567", 60)
        );
        assert_eq!(
            (tokens[1].serial.as_str(), tokens[1].period),
            ("1234568", 30)
        );
        assert!(tokens
            .iter()
            .all(|t| t.kind == OtpKind::Totp && t.digits == 6));
    }

    #[test]
    fn header_may_name_type_counter_and_reorder_columns() {
        let text = format!(
            "Type;Counter,Seed,Serial_No,OTP-Length,Hash\n\
             hotp,41,{SECRET},H-1,8,sha1\n\
             totp,,{SECRET},T-1,,SHA256\n"
        )
        .replace("Type;Counter", "Type,Counter");
        let tokens = csv(&text).unwrap();
        assert_eq!(tokens[0].serial, "H-1");
        assert_eq!(
            (tokens[0].kind, tokens[0].next, tokens[0].digits),
            (OtpKind::Hotp, 41, 8)
        );
        assert_eq!(tokens[1].serial, "T-1");
        assert_eq!((tokens[1].kind, tokens[1].period), (OtpKind::Totp, 30));
        assert_eq!(tokens[1].algorithm, Algorithm::Sha256);
    }

    #[test]
    fn one_bad_line_imports_nothing_and_names_the_line() {
        let text = format!(
            "serial,secret,interval\n\
             TK-1,{SECRET},30\n\
             TK-2,{SECRET},30\n\
             TK-3,GEZDGNBVGY3TQOJ1GEZDGNBVGY3TQOJQ,30\n\
             TK-4,{SECRET},30\n"
        );
        let err = csv(&text).unwrap_err();
        assert!(
            matches!(
                &err,
                ImportError::Invalid {
                    at: Location::Line(4),
                    ..
                }
            ),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.starts_with("line 4: token TK-3: the secret has '1'"),
            "{message}"
        );
    }

    #[test]
    fn duplicate_serials_name_both_lines() {
        let text = format!("TK-1,{SECRET},30\n# spare\nTK-2,{SECRET},30\nTK-1,{SECRET},60\n");
        let err = csv(&text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "serial 'TK-1' appears at line 1 and again at line 4; every token needs its own \
             serial, so remove or rename one of them"
        );
    }

    #[test]
    fn bad_fields_are_explained() {
        let cases = [
            (format!("TK-1,{SECRET},5"), "outside 10 to 600 seconds"),
            (format!("TK-1,{SECRET},30s"), "not a number of seconds"),
            (
                format!("TK-1,{SECRET},30,5"),
                "5-digit codes are not supported",
            ),
            (format!("TK-1,{SECRET},30,6,MD5"), "unknown algorithm 'MD5'"),
            (format!("TK-1,{SECRET},30,6,SHA1,extra"), "it has 6 fields"),
            (
                "TK-1,3132333435363738393031323334353637383930,30".to_owned(),
                "it looks like hex",
            ),
            (format!(",{SECRET},30"), "the serial number is empty"),
            ("TK-1,,30".to_owned(), "token TK-1 has no secret"),
            (
                "TK-1,JBSWY3DPEHPK3PXP,30".to_owned(),
                "RFC 4226 §4 requires at least 128 bits",
            ),
        ];
        for (line, expected) in cases {
            let err = csv(&format!("{line}\n")).unwrap_err().to_string();
            assert!(err.starts_with("line 1: "), "{line}: {err}");
            assert!(err.contains(expected), "{line}: {err}");
        }
    }

    #[test]
    fn a_file_of_comments_or_only_a_header_holds_no_tokens() {
        assert!(matches!(csv("# nothing yet\n\n"), Err(ImportError::Empty)));
        assert!(matches!(
            csv("serial,secret,interval\n"),
            Err(ImportError::Empty)
        ));
        assert!(matches!(csv(""), Err(ImportError::Empty)));
    }

    #[test]
    fn byte_order_mark_of_spreadsheet_exports_is_ignored() {
        let text = format!("\u{feff}serial,secret,interval\nTK-1,{SECRET},30\n");
        assert_eq!(csv(&text).unwrap()[0].serial, "TK-1");
    }
}
