//! Tokens: software tokens with their otpauth:// URI, hardware token imports,
//! assignment, deletion and HOTP resynchronisation.

use super::{Error, Result};
use crate::clock::{random_array, Clock, Random};
use crate::model::{NewToken, Secret, Token, User};
use crate::otp::{find_hotp, Algorithm, OtpKind};
use crate::otpauth::{parse_base32_secret, OtpAuthUri};
use crate::store::{Store, StoreError};
use std::sync::Arc;
use zeroize::Zeroizing;

/// How far past a token's counter two consecutive codes are looked for by a resync.
const RESYNC_SEARCH: u64 = 10_000;

/// A software token to create.
#[derive(Clone, Debug)]
pub struct TokenSpec<'a> {
    pub kind: OtpKind,
    pub algorithm: Algorithm,
    /// 6 or 8: what authenticator apps support.
    pub digits: u32,
    /// TOTP step: 30 or 60 seconds.
    pub period: u64,
    /// The key in base32, as an operator copies it; `None` makes a random one.
    pub secret: Option<&'a str>,
    /// `None` makes one from the kind and random hex (`totp-1a2b3c4d`).
    pub serial: Option<String>,
}

/// A software token just created, with what the user's app needs. Its key is here once.
pub struct CreatedToken {
    pub serial: String,
    pub kind: OtpKind,
    pub secret: Zeroizing<Vec<u8>>,
    /// The otpauth:// URI the authenticator app reads (from a QR code).
    pub uri: String,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key (and the URI, which carries it) stays out of logs.
        f.debug_struct("CreatedToken")
            .field("serial", &self.serial)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The token service.
pub struct Tokens {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn Random>,
    /// The issuer authenticator apps show (`[server] issuer`).
    issuer: String,
}

impl Tokens {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn Random>,
        issuer: &str,
    ) -> Self {
        Self {
            store,
            clock,
            rng,
            issuer: issuer.into(),
        }
    }

    /// Creates a software token for `user` and the URI their app enrols it from (the
    /// account shown is the user's e-mail address, else their username).
    pub async fn add(&self, user: &User, spec: TokenSpec<'_>) -> Result<CreatedToken> {
        if !matches!(spec.digits, 6 | 8) {
            return Err(Error::InvalidDigits);
        }
        if spec.kind == OtpKind::Totp && !matches!(spec.period, 30 | 60) {
            return Err(Error::InvalidPeriod);
        }
        let secret = Zeroizing::new(match spec.secret {
            Some(b32) => parse_base32_secret(b32).map_err(Error::InvalidSecret)?,
            // 160 bits, the length RFC 4226 §4 (R6) recommends.
            None => random_array::<20>(&*self.rng).to_vec(),
        });
        let serial = spec
            .serial
            .unwrap_or_else(|| new_serial(spec.kind, &*self.rng));
        let new = NewToken {
            serial: serial.clone(),
            user_id: Some(user.id),
            kind: spec.kind,
            algorithm: spec.algorithm,
            digits: spec.digits,
            period: spec.period,
            secret: Secret::new(secret.to_vec()),
            next: 0,
        };
        match self
            .store
            .create_tokens(std::slice::from_ref(&new), self.clock.now())
            .await
        {
            Err(StoreError::Duplicate(_)) => return Err(Error::TokenExists(serial)),
            other => other?,
        };
        let account = if user.email.is_empty() {
            &user.username
        } else {
            &user.email
        };
        let uri = OtpAuthUri {
            kind: spec.kind,
            issuer: &self.issuer,
            account,
            secret: &secret,
            algorithm: spec.algorithm,
            digits: spec.digits,
            period: spec.period,
            counter: 0,
        }
        .to_uri();
        Ok(CreatedToken {
            serial,
            kind: spec.kind,
            secret,
            uri,
        })
    }

    /// Stores imported (hardware) tokens, all or none; returns how many.
    pub async fn import(&self, tokens: &[NewToken]) -> Result<usize> {
        match self.store.create_tokens(tokens, self.clock.now()).await {
            Err(StoreError::Duplicate(what)) => Err(Error::ImportDuplicate(what)),
            other => Ok(other?.len()),
        }
    }

    /// The token with this serial.
    pub async fn find(&self, serial: &str) -> Result<Token> {
        self.store
            .token_by_serial(serial)
            .await?
            .ok_or_else(|| Error::TokenNotFound(serial.into()))
    }

    /// Gives the token `serial` to `user`; returns the token.
    pub async fn assign(&self, serial: &str, user: &User) -> Result<Token> {
        let token = self.find(serial).await?;
        self.store.assign_token(token.id, Some(user.id)).await?;
        Ok(token)
    }

    /// Deletes the token `serial`; returns it.
    pub async fn delete(&self, serial: &str) -> Result<Token> {
        let token = self.find(serial).await?;
        self.store.delete_token(token.id).await?;
        Ok(token)
    }

    /// The tokens of `user`, or every token ordered by serial.
    pub async fn list(&self, user: Option<&User>) -> Result<Vec<Token>> {
        Ok(match user {
            Some(user) => self.store.tokens_for_user(user.id).await?,
            None => self.store.list_tokens().await?,
        })
    }

    /// Finds two consecutive HOTP codes within a wide window and moves the counter past
    /// them. Returns the token's serial and the number of the next code it expects.
    pub async fn resync(&self, user: &User, code1: &str, code2: &str) -> Result<(String, u64)> {
        for token in self.store.tokens_for_user(user.id).await? {
            if token.kind != OtpKind::Hotp {
                continue;
            }
            let key = token.secret.expose();
            let mut from = token.next;
            let end = token.next.saturating_add(RESYNC_SEARCH);
            while let Some(c) =
                find_hotp(token.algorithm, key, token.digits, code1, from, end - from)
            {
                if find_hotp(token.algorithm, key, token.digits, code2, c + 1, 1).is_some() {
                    if self.store.advance_token(token.id, c + 1).await? {
                        return Ok((token.serial, c + 2));
                    }
                    return Err(Error::ResyncCodesUsed);
                }
                from = c + 1;
            }
        }
        Err(Error::ResyncNoMatch(user.username.clone()))
    }
}

/// `totp-` or `hotp-` and 32 random bits in hex.
fn new_serial(kind: OtpKind, rng: &dyn Random) -> String {
    let bytes = random_array::<4>(rng);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{kind}-{hex}")
}
