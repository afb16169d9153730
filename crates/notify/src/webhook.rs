//! Checking that a webhook request really comes from Twilio: `X-Twilio-Signature` is
//! base64(HMAC-SHA1(auth token, URL + the POST parameters sorted by name, each name
//! followed by its value)), as Twilio's webhook security guide describes. Shared by the
//! voice webhooks and the inbound SMS webhook.

use axum::http::{HeaderMap, StatusCode, Uri};
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

/// The URL Twilio reaches a listener at: configured, or learnt once the listener is bound.
#[derive(Debug, Default)]
pub(crate) struct PublicUrl(RwLock<String>);

impl PublicUrl {
    pub(crate) fn new(configured: &str) -> Self {
        Self(RwLock::new(configured.trim_end_matches('/').to_owned()))
    }

    /// Sets `http://<addr>` unless a URL was configured.
    pub(crate) fn listening_on(&self, addr: std::net::SocketAddr) {
        let mut url = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if url.is_empty() {
            *url = format!("http://{addr}");
        }
    }

    pub(crate) fn get(&self) -> String {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Whether a webhook request to `uri` (path and query as received) carries the signature
/// Twilio makes with `token` for `public_url` + that path.
pub(crate) fn twilio_verified(
    token: &str,
    public_url: &str,
    uri: &Uri,
    headers: &HeaderMap,
    form: &BTreeMap<String, String>,
) -> bool {
    let Some(given) = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let path = uri.path_and_query().map_or("", |p| p.as_str());
    let url = format!("{public_url}{path}");
    let expected = twilio_signature(token, &url, form);
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// Refuses (403, logged as `{what} webhook ...`) a request that does not carry Twilio's
/// signature; see [`twilio_verified`].
pub(crate) fn require_twilio_signature(
    what: &str,
    token: &str,
    public_url: &str,
    uri: &Uri,
    headers: &HeaderMap,
    form: &BTreeMap<String, String>,
) -> Result<(), StatusCode> {
    if twilio_verified(token, public_url, uri, headers, form) {
        return Ok(());
    }
    tracing::warn!("{what} webhook with a missing or wrong X-Twilio-Signature ignored");
    Err(StatusCode::FORBIDDEN)
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
        let uri: Uri = "/sms/inbound".parse().unwrap();
        let good = twilio_signature("t", "https://mfa.example.org/sms/inbound", &form);
        let mut headers = HeaderMap::new();
        headers.insert("x-twilio-signature", good.parse().unwrap());
        assert!(twilio_verified(
            "t",
            "https://mfa.example.org",
            &uri,
            &headers,
            &form
        ));
        assert!(!twilio_verified(
            "u",
            "https://mfa.example.org",
            &uri,
            &headers,
            &form
        ));
        assert!(!twilio_verified(
            "t",
            "https://mfa.example.org",
            &uri,
            &HeaderMap::new(),
            &form
        ));
    }
}
