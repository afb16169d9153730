//! Checking that a webhook request really comes from Twilio: `X-Twilio-Signature` is
//! base64(HMAC-SHA1(auth token, URL + the POST parameters sorted by name, each name
//! followed by its value)), as Twilio's webhook security guide describes. Shared by the
//! voice webhooks and the inbound SMS webhook.

use hmac::{Hmac, Mac};
use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};
use subtle::ConstantTimeEq;

type HmacSha1 = Hmac<sha1::Sha1>;

/// Twilio's request signature: base64(HMAC-SHA1(token, url + sorted name+value pairs)).
pub fn twilio_signature(token: &str, url: &str, params: &BTreeMap<String, String>) -> String {
    let mut data = url.to_owned();
    for (name, value) in params {
        data.push_str(name);
        data.push_str(value);
    }
    let Ok(mut mac) = HmacSha1::new_from_slice(token.as_bytes()) else {
        return String::new();
    };
    mac.update(data.as_bytes());
    data_encoding::BASE64.encode(&mac.finalize().into_bytes())
}

/// The URL Twilio reaches the webhooks at (`[http] public_url`, else the listener that
/// serves them), learnt once the HTTP listeners are bound.
#[derive(Debug, Default)]
pub(crate) struct PublicUrl(RwLock<String>);

impl PublicUrl {
    pub(crate) fn set(&self, url: &str) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) =
            url.trim_end_matches('/').to_owned();
    }

    pub(crate) fn get(&self) -> String {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Whether a webhook request to `path_and_query` (as received) carries the signature
/// (`X-Twilio-Signature`) Twilio makes with `token` for `public_url` + that path.
pub fn twilio_verified(
    token: &str,
    public_url: &str,
    path_and_query: &str,
    signature: Option<&str>,
    form: &BTreeMap<String, String>,
) -> bool {
    let Some(given) = signature else {
        return false;
    };
    let url = format!("{public_url}{path_and_query}");
    let expected = twilio_signature(token, &url, form);
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// [`twilio_verified`], logging (as `{what} webhook ...`) a request that is not.
pub(crate) fn check_twilio_signature(
    what: &str,
    token: &str,
    public_url: &str,
    path_and_query: &str,
    signature: Option<&str>,
    form: &BTreeMap<String, String>,
) -> bool {
    if twilio_verified(token, public_url, path_and_query, signature, form) {
        return true;
    }
    tracing::warn!("{what} webhook with a missing or wrong X-Twilio-Signature ignored");
    false
}

/// A TwiML document holding `body` (the verbs inside `<Response>`).
pub fn twiml(body: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{body}</Response>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_twilios_published_example() {
        // The worked example of Twilio's webhook security guide (docs/usage/security).
        let params: BTreeMap<String, String> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(
            twilio_signature(
                "12345",
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                &params
            ),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    #[test]
    fn a_request_is_verified_only_with_the_right_signature() {
        let form: BTreeMap<String, String> =
            [("From".to_owned(), "+14255550142".to_owned())].into();
        let path = "/hooks/sms/inbound";
        let good = twilio_signature("t", "https://mfa.example.org/hooks/sms/inbound", &form);
        let url = "https://mfa.example.org";
        assert!(twilio_verified("t", url, path, Some(&good), &form));
        assert!(!twilio_verified("u", url, path, Some(&good), &form));
        assert!(!twilio_verified("t", url, path, None, &form));
        assert!(!twilio_verified(
            "t",
            url,
            "/hooks/sms/other",
            Some(&good),
            &form
        ));
    }
}
