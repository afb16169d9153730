//! A minimal RADIUS client written from the RFCs, for tests that need byte-level control
//! (retransmissions with the same Identifier and Request Authenticator, forged or
//! unsigned packets, chosen source addresses) that `radclient` does not give.
//!
//! It shares no code with mfad's codec (`mfad-radius-proto`), so a bug there cannot
//! hide itself by being on both ends: packets are laid out by hand after RFC 2865 §3
//! and §5, User-Password hidden per §5.2, Message-Authenticator is HMAC-MD5 per RFC
//! 3579 §3.2 (HMAC written out from RFC 2104), Accounting-Request authenticators per
//! RFC 2866 §3, and replies are checked per RFC 2865 §3 before anything is read.

use md5::{Digest, Md5};

pub const ACCESS_REQUEST: u8 = 1;
pub const ACCESS_ACCEPT: u8 = 2;
pub const ACCESS_REJECT: u8 = 3;
pub const ACCOUNTING_REQUEST: u8 = 4;
pub const ACCOUNTING_RESPONSE: u8 = 5;
pub const ACCESS_CHALLENGE: u8 = 11;
pub const STATUS_SERVER: u8 = 12;

pub const USER_NAME: u8 = 1;
pub const USER_PASSWORD: u8 = 2;
pub const REPLY_MESSAGE: u8 = 18;
pub const STATE: u8 = 24;
pub const PROXY_STATE: u8 = 33;
pub const ACCT_STATUS_TYPE: u8 = 40;
pub const ACCT_SESSION_ID: u8 = 44;
pub const MESSAGE_AUTHENTICATOR: u8 = 80;

/// RFC 2865 §3: Code, Identifier, Length, Authenticator.
const HEADER_LEN: usize = 20;

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// RFC 2104 with MD5 (B = 64): H(K ^ opad, H(K ^ ipad, text)).
pub fn hmac_md5(key: &[u8], text: &[u8]) -> [u8; 16] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..16].copy_from_slice(&md5(&[key]));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = md5(&[&ipad, text]);
    md5(&[&opad, &inner])
}

/// RFC 2865 §5.2: the password padded with NULs to a multiple of 16, each block XORed
/// with MD5(secret + previous block), the first keyed by the Request Authenticator.
pub fn hide_password(password: &[u8], secret: &[u8], authenticator: &[u8; 16]) -> Vec<u8> {
    let mut padded = password.to_vec();
    let len = padded.len().max(1).div_ceil(16) * 16;
    padded.resize(len, 0);
    let mut out = Vec::with_capacity(len);
    let mut previous: Vec<u8> = authenticator.to_vec();
    for chunk in padded.chunks(16) {
        let b = md5(&[secret, &previous]);
        let c: Vec<u8> = chunk.iter().zip(b).map(|(p, k)| p ^ k).collect();
        out.extend_from_slice(&c);
        previous = c;
    }
    out
}

/// A request as the NAS builds it.
#[derive(Clone, Debug)]
pub struct Request {
    pub code: u8,
    pub id: u8,
    /// For Access-Request and Status-Server, the random Request Authenticator;
    /// Accounting-Request computes its own (RFC 2866 §3).
    pub authenticator: [u8; 16],
    pub attributes: Vec<(u8, Vec<u8>)>,
    /// Add a Message-Authenticator (first, as the BlastRADIUS fixes ask).
    pub sign: bool,
}

impl Request {
    pub fn new(code: u8, id: u8, authenticator: [u8; 16]) -> Request {
        Request {
            code,
            id,
            authenticator,
            attributes: Vec::new(),
            sign: true,
        }
    }

    /// An Access-Request for `user`, its password hidden per RFC 2865 §5.2, signed.
    pub fn access(
        id: u8,
        authenticator: [u8; 16],
        secret: &[u8],
        user: &str,
        password: Option<&str>,
    ) -> Request {
        let mut r = Request::new(ACCESS_REQUEST, id, authenticator);
        r.add(USER_NAME, user.as_bytes());
        if let Some(password) = password {
            r.add(
                USER_PASSWORD,
                &hide_password(password.as_bytes(), secret, &authenticator),
            );
        }
        r
    }

    pub fn add(&mut self, typ: u8, value: &[u8]) -> &mut Request {
        self.attributes.push((typ, value.to_vec()));
        self
    }

    pub fn unsigned(mut self) -> Request {
        self.sign = false;
        self
    }

    /// The datagram. Panics on an attribute over 253 octets: tests build small ones.
    pub fn encode(&self, secret: &[u8]) -> Vec<u8> {
        let mut attrs = Vec::new();
        let mut ma_at = None;
        if self.sign {
            ma_at = Some(HEADER_LEN + 2);
            attrs.extend_from_slice(&[MESSAGE_AUTHENTICATOR, 18]);
            attrs.extend_from_slice(&[0; 16]);
        }
        for (typ, value) in &self.attributes {
            let len = u8::try_from(value.len() + 2).expect("attribute of at most 253 octets");
            attrs.push(*typ);
            attrs.push(len);
            attrs.extend_from_slice(value);
        }
        let length = u16::try_from(HEADER_LEN + attrs.len()).expect("packet of at most 4096");
        let mut raw = vec![self.code, self.id];
        raw.extend_from_slice(&length.to_be_bytes());
        let computed = self.code == ACCOUNTING_REQUEST;
        // RFC 2866 §3 and RFC 5176 §3.5: with a computed authenticator, the HMAC is
        // taken over 16 zero octets in its place.
        raw.extend_from_slice(if computed {
            &[0; 16]
        } else {
            &self.authenticator
        });
        raw.extend_from_slice(&attrs);
        if let Some(at) = ma_at {
            let mac = hmac_md5(secret, &raw);
            raw[at..at + 16].copy_from_slice(&mac);
        }
        if computed {
            let auth = md5(&[&raw, secret]);
            raw[4..HEADER_LEN].copy_from_slice(&auth);
        }
        raw
    }
}

/// The Request Authenticator of an encoded request (the one a reply is checked with).
pub fn request_authenticator(raw: &[u8]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a.copy_from_slice(&raw[4..HEADER_LEN]);
    a
}

/// A reply that passed the checks of [`verify_reply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u8,
    pub id: u8,
    /// In order, Message-Authenticator included.
    pub attributes: Vec<(u8, Vec<u8>)>,
}

impl Reply {
    pub fn get(&self, typ: u8) -> Option<&[u8]> {
        self.attributes
            .iter()
            .find(|(t, _)| *t == typ)
            .map(|(_, v)| v.as_slice())
    }

    pub fn get_all(&self, typ: u8) -> Vec<&[u8]> {
        self.attributes
            .iter()
            .filter(|(t, _)| *t == typ)
            .map(|(_, v)| v.as_slice())
            .collect()
    }
}

/// Checks a reply to the request whose Request Authenticator was `request_auth`:
/// the framing (RFC 2865 §3 Length, §5 attribute lengths), the Response Authenticator
/// MD5(Code+ID+Length+RequestAuth+Attributes+Secret), and the Message-Authenticator,
/// which must be present (RFC 3579 §3.2, and BlastRADIUS: first) unless the reply is
/// an Accounting-Response. Says what failed.
pub fn verify_reply(raw: &[u8], request_auth: &[u8; 16], secret: &[u8]) -> Result<Reply, String> {
    if raw.len() < HEADER_LEN {
        return Err(format!("{} octets: shorter than a header", raw.len()));
    }
    let length = usize::from(u16::from_be_bytes([raw[2], raw[3]]));
    if length != raw.len() {
        return Err(format!("Length {length} but {} octets", raw.len()));
    }
    let mut attributes = Vec::new();
    let mut at = HEADER_LEN;
    let mut ma_at = None;
    while at < raw.len() {
        let (Some(&typ), Some(&len)) = (raw.get(at), raw.get(at + 1)) else {
            return Err(format!("attribute header cut at octet {at}"));
        };
        let len = usize::from(len);
        if len < 2 || at + len > raw.len() {
            return Err(format!("attribute {typ} of length {len} at octet {at}"));
        }
        if typ == MESSAGE_AUTHENTICATOR {
            if len != 18 {
                return Err(format!("Message-Authenticator of length {len}"));
            }
            ma_at = Some(at + 2);
        }
        attributes.push((typ, raw[at + 2..at + len].to_vec()));
        at += len;
    }
    let expected = md5(&[&raw[..4], request_auth, &raw[HEADER_LEN..], secret]);
    if expected[..] != raw[4..HEADER_LEN] {
        return Err("the Response Authenticator does not verify".into());
    }
    match ma_at {
        Some(ma) => {
            let mut copy = raw.to_vec();
            copy[4..HEADER_LEN].copy_from_slice(request_auth);
            copy[ma..ma + 16].fill(0);
            if hmac_md5(secret, &copy)[..] != raw[ma..ma + 16] {
                return Err("the Message-Authenticator does not verify".into());
            }
            if ma != HEADER_LEN + 2 {
                return Err("Message-Authenticator is not the first attribute".into());
            }
        }
        None if raw[0] != ACCOUNTING_RESPONSE => {
            return Err("no Message-Authenticator".into());
        }
        None => {}
    }
    Ok(Reply {
        code: raw[0],
        id: raw[1],
        attributes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn hmac_md5_matches_rfc_2202() {
        // RFC 2202 §2, test cases 1, 2 and 6 (an 80-octet key, hashed first).
        assert_eq!(
            hmac_md5(&[0x0b; 16], b"Hi There").to_vec(),
            hex("9294727a3638bb1c13f48ef8158bfc9d")
        );
        assert_eq!(
            hmac_md5(b"Jefe", b"what do ya want for nothing?").to_vec(),
            hex("750c783e6ab0b503eaa86e310a5db738")
        );
        assert_eq!(
            hmac_md5(
                &[0xaa; 80],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )
            .to_vec(),
            hex("6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd")
        );
    }

    #[test]
    fn rfc_2865_section_7_1_access_request_and_accept() {
        // RFC 2865 §7.1: user "nemo", password "arctangent", secret "xyzzy5461".
        let secret = b"xyzzy5461";
        let auth: [u8; 16] = hex("0f403f9473978057bd83d5cb98f4227a").try_into().unwrap();
        let mut r = Request::access(0, auth, secret, "nemo", Some("arctangent")).unsigned();
        r.add(4, &[192, 168, 1, 16]).add(5, &[0, 0, 0, 3]);
        let request = hex(
            "010000380f403f9473978057bd83d5cb98f4227a01066e656d6f02120dbe708d93d413ce3196e43f782a0aee0406c0a80110050600000003",
        );
        assert_eq!(r.encode(secret), request);
        let accept =
            hex("0200002686fe220e7624ba2a1005f6bf9b55e0b20606000000010f06000000000e06c0a80103");
        // RFC 2865's example reply has no Message-Authenticator (it predates RFC 3579).
        assert_eq!(
            verify_reply(&accept, &auth, secret),
            Err("no Message-Authenticator".into())
        );
        let mut wrong = accept.clone();
        wrong[30] ^= 1;
        assert_eq!(
            verify_reply(&wrong, &auth, secret),
            Err("the Response Authenticator does not verify".into())
        );
    }
}
