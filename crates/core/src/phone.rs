//! Phone numbers in E.164 form (ITU-T E.164: `+`, country code, subscriber number, at most 15 digits).
//!
//! Operators type numbers as people write them: `(425) 555-0100`, `0044 20 7946 0018`,
//! `+1 425 555 0100 x123`. Gateways want `+14255550100`; calls want the extension apart.

/// Why a number cannot be normalised; the text is shown to the operator.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number '{0}' has characters other than digits, spaces, '-', '.', '(', ')' and a leading '+'")]
    Characters(String),
    #[error("phone number '{0}' has too few digits to be a full number")]
    TooShort(String),
    #[error("phone number '{0}' has more than 15 digits, the E.164 maximum")]
    TooLong(String),
    #[error("phone number '{0}' has no country code and no default country code is configured; write it as +<country code><number>")]
    NoCountry(String),
    #[error("default country code '{0}' must be 1 to 3 digits, e.g. 1 or 44")]
    BadCountryCode(String),
}

/// A number with its optional extension (dialled after the call is answered).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phone {
    /// `+` and 8 to 15 digits.
    pub e164: String,
    pub extension: Option<String>,
}

/// Fewest digits (country code included) of a full number; the shortest national
/// numbers in use have 7 digits after a one-digit country code.
const MIN_DIGITS: usize = 8;
const MAX_DIGITS: usize = 15;

/// Normalises `input` to E.164. A number without `+` or an international prefix `00`
/// gets `default_country` (digits only, e.g. `"1"`), after dropping one national trunk
/// prefix `0` (as in `020 7946 0018` for +44).
pub fn normalise(input: &str, default_country: &str) -> Result<Phone, PhoneError> {
    let lower = input.trim().to_ascii_lowercase();
    let (number, extension) = split_extension(&lower);
    let extension = extension.map(str::to_owned);
    if let Some(ext) = &extension {
        if ext.is_empty() || !ext.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PhoneError::Characters(input.to_owned()));
        }
    }
    let number = number.trim();
    let international = number.starts_with('+');
    let body = number.strip_prefix('+').unwrap_or(number);
    let mut digits = String::with_capacity(body.len());
    for c in body.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' | '/' => {}
            _ => return Err(PhoneError::Characters(input.to_owned())),
        }
    }
    let full = if international {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_owned()
    } else {
        if default_country.is_empty() {
            return Err(PhoneError::NoCountry(input.to_owned()));
        }
        if default_country.len() > 3 || !default_country.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PhoneError::BadCountryCode(default_country.to_owned()));
        }
        let national = digits.strip_prefix('0').unwrap_or(&digits);
        format!("{default_country}{national}")
    };
    if full.starts_with('0') || full.len() < MIN_DIGITS {
        return Err(PhoneError::TooShort(input.to_owned()));
    }
    if full.len() > MAX_DIGITS {
        return Err(PhoneError::TooLong(input.to_owned()));
    }
    Ok(Phone {
        e164: format!("+{full}"),
        extension,
    })
}

/// `... x123`, `... ext. 123`, `... ext 123`, `...;ext=123` (RFC 3966 §5.1.5).
fn split_extension(lower: &str) -> (&str, Option<&str>) {
    for marker in [";ext=", "ext.", "ext", "x", "#"] {
        if let Some(at) = lower.find(marker) {
            let (number, rest) = lower.split_at(at);
            let ext = rest.get(marker.len()..).unwrap_or_default().trim();
            return (number, Some(ext));
        }
    }
    (lower, None)
}

/// The stored form of a number: E.164 with `x` and the extension when there is one.
pub fn stored(phone: &Phone) -> String {
    match &phone.extension {
        Some(ext) => format!("{}x{ext}", phone.e164),
        None => phone.e164.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_people_write_them_become_e164() {
        let cases = [
            ("+1 425 555 0100", "1", "+14255550100", None),
            ("(425) 555-0100", "1", "+14255550100", None),
            ("425.555.0100", "1", "+14255550100", None),
            ("0044 20 7946 0018", "1", "+442079460018", None),
            ("020 7946 0018", "44", "+442079460018", None),
            ("+49 30 901820", "1", "+4930901820", None),
            ("+1 425 555 0100 x123", "1", "+14255550100", Some("123")),
            ("+1 425 555 0100 ext. 7", "1", "+14255550100", Some("7")),
            ("+14255550100;ext=55", "1", "+14255550100", Some("55")),
        ];
        for (input, cc, e164, ext) in cases {
            let phone = normalise(input, cc).unwrap();
            assert_eq!(phone.e164, e164, "{input}");
            assert_eq!(phone.extension.as_deref(), ext, "{input}");
        }
    }

    #[test]
    fn malformed_numbers_say_what_is_wrong() {
        assert!(matches!(
            normalise("425-CALL-NOW", "1"),
            Err(PhoneError::Characters(_))
        ));
        assert!(matches!(
            normalise("+1 555", "1"),
            Err(PhoneError::TooShort(_))
        ));
        assert!(matches!(
            normalise("+1234567890123456", "1"),
            Err(PhoneError::TooLong(_))
        ));
        assert!(matches!(
            normalise("4255550100", ""),
            Err(PhoneError::NoCountry(_))
        ));
        assert!(matches!(
            normalise("4255550100", "+1"),
            Err(PhoneError::BadCountryCode(_))
        ));
        assert!(matches!(
            normalise("+1 425 555 0100 x", "1"),
            Err(PhoneError::Characters(_))
        ));
    }

    #[test]
    fn the_stored_form_keeps_the_extension() {
        let phone = normalise("+1 425 555 0100 x123", "1").unwrap();
        assert_eq!(stored(&phone), "+14255550100x123");
        assert_eq!(normalise(&stored(&phone), "1").unwrap(), phone);
    }
}
