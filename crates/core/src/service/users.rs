//! Users: adding, finding, changing, enabling and deleting them, and the state an
//! operator sees.

use super::{Error, Result};
use crate::clock::Clock;
use crate::model::{Method, NewUser, PinMode, Token, User};
use crate::phone;
use crate::policy::Policy;
use crate::store::{Store, StoreError, UserUpdate};
use crate::username;
use std::sync::Arc;

/// The operator-editable fields of a user as given (phone numbers as typed); `None`
/// leaves a field as it is (or at its default for a new user).
#[derive(Clone, Debug, Default)]
pub struct UserFields {
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub email: Option<String>,
    /// As typed; normalised to E.164. Empty clears it.
    pub phone: Option<String>,
    /// As typed; normalised to E.164. Empty clears it.
    pub backup_phone: Option<String>,
    /// As typed: `standard` or `pin`.
    pub pin_mode: Option<String>,
    /// As typed: `app`, `sms`, `call`, ...
    pub method: Option<String>,
}

/// A user before and after an update.
#[derive(Clone, Debug)]
pub struct Updated {
    pub before: User,
    pub after: User,
}

impl Updated {
    /// Whether what the user answers with changed (their phone or their method), which
    /// is what an update mail tells them about.
    pub fn second_factor_changed(&self) -> bool {
        self.after.phone != self.before.phone || self.after.method != self.before.method
    }
}

/// Where a user stands, as listings show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserState {
    Active,
    Disabled,
    Blocked,
    Locked,
}

impl UserState {
    /// `user`'s state at `now`: disabled before blocked before locked.
    pub fn of(user: &User, now: i64) -> Self {
        if !user.enabled {
            Self::Disabled
        } else if user.is_blocked(now) {
            Self::Blocked
        } else if user.is_locked(now) {
            Self::Locked
        } else {
            Self::Active
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
            Self::Blocked => "blocked",
            Self::Locked => "locked",
        }
    }
}

impl std::fmt::Display for UserState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The user service.
pub struct Users {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// For phone numbers typed without one (`[policy] default_country_code`).
    default_country_code: String,
}

impl Users {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, policy: &Policy) -> Self {
        Self {
            store,
            clock,
            default_country_code: policy.default_country_code.clone(),
        }
    }

    /// The stored user for a typed name, normalised as at a login prompt.
    pub async fn find(&self, name: &str) -> Result<User> {
        find(&*self.store, name).await
    }

    /// Adds a user: a valid, unused name; phone numbers in E.164; a phone for the
    /// methods that call or text it.
    pub async fn add(&self, name: &str, fields: UserFields) -> Result<User> {
        let username =
            username::for_new_user(name).ok_or_else(|| Error::InvalidUsername(name.into()))?;
        let pin_mode = parse_pin_mode(fields.pin_mode.as_deref())?.unwrap_or_default();
        let method = parse_method(fields.method.as_deref())?.unwrap_or_default();
        let phone = self.phone(fields.phone.as_deref())?.unwrap_or_default();
        if matches!(method, Method::Sms | Method::Call) && phone.is_empty() {
            return Err(Error::PhoneRequired(method));
        }
        let new = NewUser {
            username,
            given_name: fields.given_name.unwrap_or_default(),
            surname: fields.surname.unwrap_or_default(),
            email: fields.email.unwrap_or_default(),
            phone,
            pin_mode,
            method,
            backup_phone: self
                .phone(fields.backup_phone.as_deref())?
                .unwrap_or_default(),
            ..NewUser::default()
        };
        match self.store.create_user(&new, self.clock.now()).await {
            Err(StoreError::Duplicate(_)) => Err(Error::UserExists(new.username)),
            other => Ok(other?),
        }
    }

    /// Changes the fields given of a user [`Users::find`] found; returns the user before
    /// and after.
    pub async fn update(&self, before: User, fields: UserFields) -> Result<Updated> {
        let update = UserUpdate {
            pin_mode: parse_pin_mode(fields.pin_mode.as_deref())?,
            method: parse_method(fields.method.as_deref())?,
            phone: self.phone(fields.phone.as_deref())?,
            backup_phone: self.phone(fields.backup_phone.as_deref())?,
            given_name: fields.given_name,
            surname: fields.surname,
            email: fields.email,
            enabled: None,
        };
        let after = self.store.update_user(before.id, &update).await?;
        Ok(Updated { before, after })
    }

    /// Enables or disables a user; a disabled user is rejected whatever they send.
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<User> {
        let user = self.find(name).await?;
        let update = UserUpdate {
            enabled: Some(enabled),
            ..UserUpdate::default()
        };
        Ok(self.store.update_user(user.id, &update).await?)
    }

    /// Deletes a user with their tokens; returns who was deleted.
    pub async fn delete(&self, name: &str) -> Result<User> {
        let user = self.find(name).await?;
        self.store.delete_user(user.id).await?;
        Ok(user)
    }

    /// Every user, ordered by username.
    pub async fn list(&self) -> Result<Vec<User>> {
        Ok(self.store.list_users().await?)
    }

    /// A user and their tokens.
    pub async fn show(&self, name: &str) -> Result<(User, Vec<Token>)> {
        let user = self.find(name).await?;
        let tokens = self.store.tokens_for_user(user.id).await?;
        Ok((user, tokens))
    }

    /// E.164 with the default country code; an empty value clears the phone.
    fn phone(&self, value: Option<&str>) -> Result<Option<String>> {
        match value.map(str::trim) {
            None => Ok(None),
            Some("") => Ok(Some(String::new())),
            Some(v) => {
                let phone = phone::normalise(v, &self.default_country_code)?;
                Ok(Some(phone::stored(&phone)))
            }
        }
    }
}

fn parse_pin_mode(value: Option<&str>) -> Result<Option<PinMode>> {
    value
        .map(|v| v.parse::<PinMode>().map_err(Error::InvalidPinMode))
        .transpose()
}

fn parse_method(value: Option<&str>) -> Result<Option<Method>> {
    value
        .map(|v| v.parse::<Method>().map_err(Error::InvalidMethod))
        .transpose()
}

/// The stored user for a typed name (same normalisation as logins), for every service.
pub(crate) async fn find(store: &dyn Store, name: &str) -> Result<User> {
    for candidate in username::candidates(name) {
        if let Some(user) = store.user_by_name(&candidate).await? {
            return Ok(user);
        }
    }
    Err(Error::UserNotFound(name.into()))
}
