//! The first factor in front of the code: where the password ends and the code starts
//! when a client checks a directory password, and the prompt modes that follow.

use crate::directory::Directory;
use crate::engine::Reason;
use crate::model::Prompt;

/// What a User-Password holds when the client has a first factor.
#[derive(Debug, PartialEq, Eq)]
pub struct Split<'a> {
    pub password: &'a str,
    /// `None`: the code is asked for with an Access-Challenge after the password.
    pub code: Option<&'a str>,
}

/// Splits `typed` for a client with a first factor:
///
/// - a `separator` the password and code are joined with (`secret,123456`): the last
///   occurrence splits, so the password may contain the separator itself;
/// - `inline` without a separator: the code is the last `code_len` characters;
/// - otherwise (`challenge`, or `auto`, which cannot tell a password ending in digits
///   from one followed by a code) the whole field is the password and the code follows
///   in a challenge.
pub fn split<'a>(prompt: Prompt, separator: &str, code_len: usize, typed: &'a str) -> Split<'a> {
    if !separator.is_empty() {
        if let Some((password, code)) = typed.rsplit_once(separator) {
            return Split {
                password,
                code: Some(code),
            };
        }
    }
    if prompt != Prompt::Inline {
        return Split {
            password: typed,
            code: None,
        };
    }
    if separator.is_empty() {
        if let Some(at) = typed.len().checked_sub(code_len) {
            if let (Some(password), Some(code)) = (typed.get(..at), typed.get(at..)) {
                return Split {
                    password,
                    code: Some(code),
                };
            }
        }
    }
    // Inline but nothing that looks like a code: the check fails on the empty code.
    Split {
        password: typed,
        code: Some(""),
    }
}

/// Checks a password against the directory: `None` when it is right, else why not. Any
/// directory trouble rejects (fail closed), and is not the user's failure.
pub async fn check_directory(
    directory: Option<&dyn Directory>,
    username: &str,
    password: &str,
) -> Option<Reason> {
    let Some(directory) = directory else {
        tracing::warn!(
            user = %username,
            "rejecting: the client checks passwords against the directory, but no [directory] is configured"
        );
        return Some(Reason::DirectoryUnavailable);
    };
    // RFC 4513 §5.1.2: a bind with an empty password is unauthenticated and succeeds.
    if password.is_empty() {
        return Some(Reason::WrongPassword);
    }
    let found = match directory.find_user(username).await {
        Ok(Some(found)) => found,
        Ok(None) => return Some(Reason::WrongPassword),
        Err(err) => {
            tracing::warn!(user = %username, "rejecting: {err}");
            return Some(Reason::DirectoryUnavailable);
        }
    };
    match directory.check_password(&found.dn, password).await {
        Ok(true) => None,
        Ok(false) => Some(Reason::WrongPassword),
        Err(err) => {
            tracing::warn!(user = %username, "rejecting: {err}");
            Some(Reason::DirectoryUnavailable)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_and_auto_take_the_whole_field_as_the_password() {
        for prompt in [Prompt::Challenge, Prompt::Auto] {
            assert_eq!(
                split(prompt, "", 6, "pass123456"),
                Split {
                    password: "pass123456",
                    code: None
                }
            );
        }
    }

    #[test]
    fn inline_takes_the_last_digits_as_the_code() {
        assert_eq!(
            split(Prompt::Inline, "", 6, "s3cret!123456"),
            Split {
                password: "s3cret!",
                code: Some("123456")
            }
        );
        assert_eq!(split(Prompt::Inline, "", 6, "12345").code, Some(""));
    }

    #[test]
    fn a_separator_splits_at_its_last_occurrence_in_any_mode() {
        for prompt in [Prompt::Inline, Prompt::Auto, Prompt::Challenge] {
            assert_eq!(
                split(prompt, ",", 6, "a,b,123456"),
                Split {
                    password: "a,b",
                    code: Some("123456")
                }
            );
        }
        // Without the separator, auto asks for the code in a challenge.
        assert_eq!(split(Prompt::Auto, ",", 6, "secret").code, None);
        assert_eq!(split(Prompt::Inline, ",", 6, "secret123456").code, Some(""));
    }
}
