//! PIN rules, hashing (argon2id) and generation.

use crate::clock::{random_array, random_digits, Random};
use crate::policy::PinRules;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Why a PIN is not acceptable; the text is shown to the user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PinError {
    #[error("the PIN must be digits only")]
    NotDigits,
    #[error("the PIN must have at least {0} digits")]
    TooShort(usize),
    #[error("the PIN must have at most {0} digits")]
    TooLong(usize),
    #[error("the PIN must not repeat a digit three times or use three sequential digits")]
    Pattern,
    #[error("the PIN must not be part of your phone number")]
    InPhone,
    #[error("the PIN must differ from your recent PINs")]
    Reused,
    #[error("the PIN could not be hashed")]
    Hash,
}

/// Checks the rules the seed's product enforced. `history` holds argon2 hashes of
/// recent PINs (NIST SP 800-63B §5.1.1.2 asks verifiers to reject guessable secrets).
pub fn check(pin: &str, rules: &PinRules, phone: &str, history: &[String]) -> Result<(), PinError> {
    if !pin.bytes().all(|b| b.is_ascii_digit()) || pin.is_empty() {
        return Err(PinError::NotDigits);
    }
    if pin.len() < rules.min_length {
        return Err(PinError::TooShort(rules.min_length));
    }
    if pin.len() > rules.max_length {
        return Err(PinError::TooLong(rules.max_length));
    }
    if rules.forbid_patterns && has_pattern(pin.as_bytes()) {
        return Err(PinError::Pattern);
    }
    let phone_digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    if rules.forbid_phone && !phone_digits.is_empty() && phone_digits.contains(pin) {
        return Err(PinError::InPhone);
    }
    if history.iter().take(rules.history).any(|h| verify(h, pin)) {
        return Err(PinError::Reused);
    }
    Ok(())
}

/// Three equal digits in a row ("555") or a run up or down ("345", "987").
fn has_pattern(pin: &[u8]) -> bool {
    pin.windows(3).any(|w| match *w {
        [a, b, c] => {
            let (a, b, c) = (i16::from(a), i16::from(b), i16::from(c));
            (a == b && b == c) || (b - a == c - b && (b - a).abs() == 1)
        }
        _ => false,
    })
}

/// An argon2id PHC string (RFC 9106 parameters as the argon2 crate defaults them:
/// 19 MiB, 2 passes, one lane, which OWASP recommends for interactive logins).
pub fn hash(pin: &str, rng: &dyn Random) -> Result<String, PinError> {
    let salt = SaltString::encode_b64(&random_array::<16>(rng)).map_err(|_| PinError::Hash)?;
    Argon2::default()
        .hash_password(pin.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| PinError::Hash)
}

/// Constant-time verification of a PIN against its PHC string; false on a malformed hash.
pub fn verify(hash: &str, pin: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(pin.as_bytes(), &h)
            .is_ok()
    })
}

/// A random PIN of `rules.min_length` (at least 4) digits that passes [`check`].
pub fn generate(rng: &dyn Random, rules: &PinRules, phone: &str) -> String {
    let len = rules.min_length.max(4);
    loop {
        let pin = random_digits(rng, len);
        if check(&pin, rules, phone, &[]).is_ok() {
            return pin;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::testing::CountingRandom;

    #[test]
    fn the_seed_products_rules_hold() {
        let rules = PinRules::default();
        let ok = |p: &str| check(p, &rules, "+1 425 555 0100", &[]);
        assert_eq!(ok("1357"), Ok(()));
        assert_eq!(ok("135"), Err(PinError::TooShort(4)));
        assert_eq!(ok("12a4"), Err(PinError::NotDigits));
        assert_eq!(ok("1112"), Err(PinError::Pattern));
        assert_eq!(ok("9123"), Err(PinError::Pattern));
        assert_eq!(ok("8654"), Err(PinError::Pattern));
        assert_eq!(ok("4255"), Err(PinError::InPhone));
        assert_eq!(ok("13579135791357913"), Err(PinError::TooLong(16)));
    }

    #[test]
    fn a_recent_pin_cannot_be_reused_and_hashes_verify() {
        let rng = CountingRandom::default();
        let h = hash("2468", &rng).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&h, "2468"));
        assert!(!verify(&h, "2469"));
        assert!(!verify("garbage", "2468"));
        let rules = PinRules::default();
        assert_eq!(
            check("2468", &rules, "", std::slice::from_ref(&h)),
            Err(PinError::Reused)
        );
        assert_eq!(check("1357", &rules, "", &[h]), Ok(()));
    }

    #[test]
    fn generated_pins_follow_the_rules() {
        let rng = CountingRandom::default();
        let rules = PinRules::default();
        for _ in 0..50 {
            let pin = generate(&rng, &rules, "5550100");
            assert_eq!(check(&pin, &rules, "5550100", &[]), Ok(()));
        }
    }
}
