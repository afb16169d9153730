//! PSKC key containers (RFC 6030): the XML seed files hardware token vendors ship.
//!
//! What is read, per `<KeyPackage>`:
//!
//! - the serial from `<DeviceInfo><SerialNo>`, else the `<Key Id>` attribute;
//! - `<Key Algorithm>` ending in `:hotp` / `#hotp` or `:totp` / `#totp`; other algorithms
//!   (OCRA, PIN, vendor ones) fail the import;
//! - `<AlgorithmParameters><ResponseFormat Length>` (default 6, `Encoding` DECIMAL) and the
//!   hash from `<Suite>` text (`HMAC-SHA256`, `sha256`) or a `<Suite>` attribute such as
//!   `hashalgo="sha256"`, as vendors write it; SHA-1 when absent;
//! - `<Data>`: `<Secret>`, `<Counter>` (HOTP, default 0), `<TimeInterval>` (TOTP, default 30).
//!
//! Secrets are `<PlainValue>` (base64) or `<EncryptedValue>` under AES-CBC (RFC 6030
//! §6.1; 128, 192 or 256-bit keys, the IV prefixed to the ciphertext) with the key either
//! pre-shared (§6.1) or derived from a password with PBKDF2 (§6.2). An encrypted secret
//! must carry a `<ValueMAC>` under the container's `<MACMethod>` (§6.1.1), which is checked
//! before anything is decrypted. Keys encrypted to a certificate (§6.3) are not supported.
//! Element names are matched without their namespace, as vendors' files disagree on
//! prefixes; only the root must be a PSKC `<KeyContainer>`.

use super::{check_digits, check_period, check_serial, ImportError, ImportKeys, Located, Location};
use crate::model::{NewToken, Secret};
use crate::otp::{Algorithm, OtpKind};
use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockCipher, BlockDecryptMut, KeyInit, KeyIvInit};
use hmac::{Hmac, Mac};
use roxmltree::{Document, Node};
use zeroize::Zeroizing;

const PSKC_NS: &str = "urn:ietf:params:xml:ns:keyprov:pskc";

/// More PBKDF2 iterations than any vendor uses; a bound so a hostile file cannot stall
/// the server for minutes.
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

/// RFC 6238 §5.2 recommends 30 seconds; RFC 6030 gives no default for `<TimeInterval>`.
const DEFAULT_PERIOD: u64 = 30;

/// Reads every `<KeyPackage>` of a container.
pub(super) fn parse(text: &str, keys: &ImportKeys) -> Result<Vec<Located>, ImportError> {
    let doc = Document::parse(text).map_err(|e| ImportError::Xml(e.to_string()))?;
    let root = doc.root_element();
    let tag = root.tag_name();
    if tag.name() != "KeyContainer" || tag.namespace() != Some(PSKC_NS) {
        return Err(ImportError::NotPskc(format!(
            "the root element is <{}> in namespace '{}', not <KeyContainer> in '{PSKC_NS}'",
            tag.name(),
            tag.namespace().unwrap_or("")
        )));
    }
    if let Some(version) = root.attribute("Version") {
        if version.trim() != "1.0" {
            return Err(ImportError::NotPskc(format!(
                "it is version {version}; RFC 6030 defines version 1.0"
            )));
        }
    }
    let packages: Vec<Node> = children(root, "KeyPackage").collect();
    // Keys are derived and the MAC key decrypted only when something is encrypted, and a
    // missing key is reported against the first package that needs it.
    let crypto = match packages
        .iter()
        .position(|p| p.descendants().any(|n| is(n, "EncryptedValue")))
    {
        Some(i) => Some(Crypto::new(root, keys, Location::KeyPackage(i + 1))?),
        None => None,
    };
    packages
        .iter()
        .enumerate()
        .map(|(i, package)| {
            let at = Location::KeyPackage(i + 1);
            key_package(*package, crypto.as_ref(), at).map(|token| (at, token))
        })
        .collect()
}

fn key_package(
    package: Node,
    crypto: Option<&Crypto>,
    at: Location,
) -> Result<NewToken, ImportError> {
    let invalid = |reason: String| ImportError::Invalid { at, reason };
    let key = child(package, "Key").ok_or_else(|| invalid("it has no <Key>".into()))?;
    let uri = key
        .attribute("Algorithm")
        .ok_or_else(|| invalid("its <Key> has no Algorithm attribute".into()))?;
    let kind = kind_of(uri).ok_or_else(|| {
        invalid(format!(
            "its algorithm '{uri}' is neither HOTP nor TOTP; mfad imports only OATH tokens, \
             so remove this key package"
        ))
    })?;

    let serial = child(package, "DeviceInfo")
        .and_then(|d| child(d, "SerialNo"))
        .map(text)
        .filter(|s| !s.is_empty())
        .or_else(|| key.attribute("Id").map(|id| id.trim().to_owned()))
        .ok_or_else(|| invalid("it has neither <DeviceInfo><SerialNo> nor a <Key Id>".into()))?;
    check_serial(&serial).map_err(invalid)?;

    let params = child(key, "AlgorithmParameters");
    let digits = match params.and_then(|p| child(p, "ResponseFormat")) {
        Some(format) => response_digits(format).map_err(invalid)?,
        None => 6,
    };
    let algorithm = match params.and_then(|p| child(p, "Suite")) {
        Some(suite) => suite_hash(suite).map_err(invalid)?,
        None => Algorithm::Sha1,
    };

    let data = child(key, "Data").ok_or_else(|| invalid("its <Key> has no <Data>".into()))?;
    let secret = child(data, "Secret").ok_or_else(|| {
        invalid(
            "its <Data> has no <Secret>; keys referenced by profile (RFC 6030 §4.4) cannot \
             be imported, ask the vendor for the seeds"
                .into(),
        )
    })?;
    let secret = secret_value(secret, crypto, at)?;

    let (period, next) = match kind {
        OtpKind::Hotp => (
            DEFAULT_PERIOD,
            integer(data, "Counter").map_err(invalid)?.unwrap_or(0),
        ),
        OtpKind::Totp => {
            let period = integer(data, "TimeInterval")
                .map_err(invalid)?
                .unwrap_or(DEFAULT_PERIOD);
            (check_period(period).map_err(invalid)?, 0)
        }
    };
    Ok(NewToken {
        serial,
        user_id: None,
        kind,
        algorithm,
        digits,
        period,
        secret: Secret::new(secret.to_vec()),
        next,
    })
}

/// RFC 6030 §10.1 defines `urn:ietf:params:xml:ns:keyprov:pskc:hotp`; vendors name TOTP
/// `…:totp` after it, and the drafts' `http://www.ietf.org/keyprov/pskc#hotp` forms are
/// still in circulation.
fn kind_of(uri: &str) -> Option<OtpKind> {
    let name = uri.trim().rsplit([':', '#']).next()?;
    name.parse().ok()
}

/// RFC 6030 §4.3.4 `<ResponseFormat Length=".." Encoding="DECIMAL">`.
fn response_digits(format: Node) -> Result<u32, String> {
    if let Some(encoding) = format.attribute("Encoding") {
        if !encoding.trim().eq_ignore_ascii_case("DECIMAL") {
            return Err(format!(
                "its response encoding is {encoding}; only DECIMAL codes are supported"
            ));
        }
    }
    let length = format
        .attribute("Length")
        .ok_or_else(|| "its <ResponseFormat> has no Length".to_owned())?;
    let digits = length
        .trim()
        .parse()
        .map_err(|_| format!("its <ResponseFormat> Length '{length}' is not a number"))?;
    check_digits(digits)
}

/// RFC 6030 §4.3.4: `<Suite>` "could designate the strength of the hash algorithm used"
/// without saying how, so both the text (`HMAC-SHA256`) and attributes (`hashalgo="sha256"`)
/// are read.
fn suite_hash(suite: Node) -> Result<Algorithm, String> {
    let named = |s: &str| {
        let s = s.trim();
        let s = match s.get(..5) {
            Some(prefix) if prefix.eq_ignore_ascii_case("HMAC-") => s.get(5..).unwrap_or(""),
            _ => s,
        };
        s.parse::<Algorithm>().ok()
    };
    let content = text(suite);
    if !content.is_empty() {
        return named(&content).ok_or_else(|| {
            format!("its <Suite> '{content}' is not HMAC-SHA1, HMAC-SHA256 or HMAC-SHA512")
        });
    }
    Ok(suite
        .attributes()
        .find_map(|a| named(a.value()))
        .unwrap_or(Algorithm::Sha1))
}

/// An optional `<Name><PlainValue>n</PlainValue></Name>` integer of `<Data>`.
fn integer(data: Node, name: &str) -> Result<Option<u64>, String> {
    let Some(node) = child(data, name) else {
        return Ok(None);
    };
    let Some(plain) = child(node, "PlainValue") else {
        return Err(format!(
            "its <{name}> has no <PlainValue>; encrypted {name} values are not supported"
        ));
    };
    let value = text(plain);
    value
        .parse()
        .map(Some)
        .map_err(|_| format!("its <{name}> '{value}' is not a non-negative integer"))
}

fn secret_value(
    secret: Node,
    crypto: Option<&Crypto>,
    at: Location,
) -> Result<Zeroizing<Vec<u8>>, ImportError> {
    let invalid = |reason: String| ImportError::Invalid { at, reason };
    if let Some(plain) = child(secret, "PlainValue") {
        return base64(&text(plain))
            .map(Zeroizing::new)
            .map_err(|e| invalid(format!("its secret <PlainValue> is not base64 ({e})")));
    }
    let Some(encrypted) = child(secret, "EncryptedValue") else {
        return Err(invalid(
            "its <Secret> has neither <PlainValue> nor <EncryptedValue>".into(),
        ));
    };
    // `parse` builds the keys whenever any package has an <EncryptedValue>.
    let crypto = crypto.ok_or(ImportError::PskRequired { at })?;
    let mac = child(secret, "ValueMAC").ok_or_else(|| {
        invalid(
            "its encrypted secret has no <ValueMAC>; RFC 6030 §6.1.1 requires one with AES-CBC, \
             and without it a wrong key cannot be told from a right one"
                .into(),
        )
    })?;
    let mac =
        base64(&text(mac)).map_err(|e| invalid(format!("its <ValueMAC> is not base64 ({e})")))?;
    let ciphertext = cipher_value(encrypted).map_err(invalid)?;
    // RFC 6030 §6.1.1: the MAC covers the IV and ciphertext; checking it first means a
    // wrong key or an altered file is reported as such rather than as garbage padding.
    crypto
        .mac
        .verify(&ciphertext, &mac)
        .map_err(|()| ImportError::MacMismatch { at })?;
    decrypt(&crypto.key, encrypted, &ciphertext, at)
}

/// The key material of a container: the encryption key (§6.1 or §6.2) and the MAC key.
struct Crypto {
    key: Zeroizing<Vec<u8>>,
    mac: MacKey,
}

impl Crypto {
    fn new(root: Node, keys: &ImportKeys, first: Location) -> Result<Self, ImportError> {
        let key = encryption_key(root, keys, first)?;
        let at = Location::Container;
        let invalid = |reason: String| ImportError::Invalid { at, reason };
        let method = child(root, "MACMethod").ok_or_else(|| {
            invalid(
                "the file has encrypted secrets but no <MACMethod>; RFC 6030 §6.1.1 requires a \
                 MAC with AES-CBC, ask the vendor for a file with one"
                    .into(),
            )
        })?;
        let uri = method.attribute("Algorithm").unwrap_or("");
        let alg = match uri.rsplit('#').next().unwrap_or("") {
            "hmac-sha1" => Algorithm::Sha1,
            "hmac-sha256" => Algorithm::Sha256,
            "hmac-sha512" => Algorithm::Sha512,
            _ => {
                return Err(invalid(format!(
                    "its <MACMethod> algorithm '{uri}' is not HMAC-SHA1, -SHA256 or -SHA512"
                )))
            }
        };
        let mac_key = child(method, "MACKey").ok_or_else(|| {
            invalid(
                "its <MACMethod> has no <MACKey>; MAC keys agreed out of band are not supported"
                    .into(),
            )
        })?;
        // RFC 6030 §6.1.1: the MAC key "MUST be encrypted with the same encryption key".
        let ciphertext =
            cipher_value(mac_key).map_err(|e| invalid(format!("its <MACKey>: {e}")))?;
        let mac_key = decrypt(&key, mac_key, &ciphertext, at)?;
        Ok(Self {
            key,
            mac: MacKey { alg, key: mac_key },
        })
    }
}

/// Decrypts `data`, the `<CipherValue>` of `node`, per the node's `<EncryptionMethod>`.
fn decrypt(
    key: &[u8],
    node: Node,
    data: &[u8],
    at: Location,
) -> Result<Zeroizing<Vec<u8>>, ImportError> {
    let invalid = |reason: String| ImportError::Invalid { at, reason };
    let uri = child(node, "EncryptionMethod")
        .and_then(|m| m.attribute("Algorithm"))
        .ok_or_else(|| invalid("an encrypted value has no <EncryptionMethod Algorithm>".into()))?;
    let (bytes, cbc): (usize, CbcDecrypt) = match uri.rsplit('#').next().unwrap_or("") {
        "aes128-cbc" => (16, cbc_decrypt::<aes::Aes128>),
        "aes192-cbc" => (24, cbc_decrypt::<aes::Aes192>),
        "aes256-cbc" => (32, cbc_decrypt::<aes::Aes256>),
        _ => {
            return Err(invalid(format!(
                "encryption '{uri}' is not supported; use aes128-cbc (RFC 6030 §6.1)"
            )))
        }
    };
    if key.len() != bytes {
        return Err(invalid(format!(
            "the key is {} bytes but {uri} needs {bytes}: a pre-shared key of {} hex digits",
            key.len(),
            bytes * 2
        )));
    }
    // XML Encryption §5.2: the IV is the first block of the CipherValue.
    let (Some(iv), Some(ciphertext)) = (data.get(..16), data.get(16..)) else {
        return Err(invalid("an encrypted value is shorter than its IV".into()));
    };
    if ciphertext.is_empty() || ciphertext.len() % 16 != 0 {
        return Err(invalid(
            "an encrypted value is not a whole number of AES blocks; the file is damaged".into(),
        ));
    }
    let mut plain = Zeroizing::new(ciphertext.to_vec());
    if !cbc(key, iv, &mut plain) {
        return Err(invalid("AES-CBC decryption failed".into()));
    }
    // RFC 6030 §6.4 recommends PKCS #5 padding; XML Encryption §5.2 only fixes the last
    // byte (the padding length), so only that is checked. An impossible length is the
    // usual sign of a wrong key.
    let pad = plain.last().map_or(0, |&b| usize::from(b));
    if pad == 0 || pad > 16 || pad > plain.len() {
        return Err(ImportError::WrongKey { at });
    }
    let len = plain.len() - pad;
    plain.truncate(len);
    Ok(plain)
}

/// Decrypts in place with (key, IV); false if the key or IV has the wrong size.
type CbcDecrypt = fn(&[u8], &[u8], &mut [u8]) -> bool;

fn cbc_decrypt<C: BlockDecryptMut + BlockCipher + KeyInit>(
    key: &[u8],
    iv: &[u8],
    buf: &mut [u8],
) -> bool {
    cbc::Decryptor::<C>::new_from_slices(key, iv)
        .ok()
        .and_then(|d| d.decrypt_padded_mut::<NoPadding>(buf).ok())
        .is_some()
}

struct MacKey {
    alg: Algorithm,
    key: Zeroizing<Vec<u8>>,
}

impl MacKey {
    /// Constant-time comparison, so the check does not leak how much of a forged MAC matched.
    fn verify(&self, data: &[u8], tag: &[u8]) -> Result<(), ()> {
        fn check<M: Mac + KeyInit>(key: &[u8], data: &[u8], tag: &[u8]) -> Result<(), ()> {
            let mut mac = <M as KeyInit>::new_from_slice(key).map_err(|_| ())?;
            mac.update(data);
            mac.verify_slice(tag).map_err(|_| ())
        }
        match self.alg {
            Algorithm::Sha1 => check::<Hmac<sha1::Sha1>>(&self.key, data, tag),
            Algorithm::Sha256 => check::<Hmac<sha2::Sha256>>(&self.key, data, tag),
            Algorithm::Sha512 => check::<Hmac<sha2::Sha512>>(&self.key, data, tag),
        }
    }
}

/// The container's encryption key: pre-shared (`<ds:KeyName>`, RFC 6030 §6.1) or derived
/// from a password (`<xenc11:DerivedKey>`, §6.2).
fn encryption_key(
    root: Node,
    keys: &ImportKeys,
    first: Location,
) -> Result<Zeroizing<Vec<u8>>, ImportError> {
    let spec = child(root, "EncryptionKey");
    if let Some(derived) = spec.and_then(|s| child(s, "DerivedKey")) {
        let password = keys
            .password
            .as_deref()
            .ok_or(ImportError::PasswordRequired { at: first })?;
        return pbkdf2_key(derived, password);
    }
    if spec.is_some_and(|s| {
        s.descendants()
            .any(|n| n.tag_name().name().starts_with("X509"))
    }) {
        return Err(ImportError::Invalid {
            at: Location::Container,
            reason: "its secrets are encrypted to a certificate (RFC 6030 §6.3), which mfad does \
                     not import; ask the vendor for a file protected by a pre-shared key or password"
                .into(),
        });
    }
    keys.psk
        .as_ref()
        .map(|psk| Zeroizing::new(psk.clone()))
        .ok_or(ImportError::PskRequired { at: first })
}

/// RFC 6030 §6.2 with the PKCS #5 v2.0 XML schema (RFC 8018 Appendix A.2): salt,
/// iteration count, key length and PRF (HMAC-SHA1 unless named).
fn pbkdf2_key(derived: Node, password: &str) -> Result<Zeroizing<Vec<u8>>, ImportError> {
    let invalid = |reason: String| ImportError::Invalid {
        at: Location::Container,
        reason,
    };
    let method = child(derived, "KeyDerivationMethod");
    let uri = method.and_then(|m| m.attribute("Algorithm")).unwrap_or("");
    if !uri.ends_with("#pbkdf2") {
        return Err(invalid(format!(
            "its key derivation '{uri}' is not supported; only PBKDF2 (RFC 6030 §6.2) is"
        )));
    }
    let params = method
        .and_then(|m| child(m, "PBKDF2-params"))
        .ok_or_else(|| invalid("its PBKDF2 key derivation has no <PBKDF2-params>".into()))?;
    let salt = child(params, "Salt")
        .and_then(|s| child(s, "Specified"))
        .ok_or_else(|| invalid("its <PBKDF2-params> has no <Salt><Specified>".into()))?;
    let salt =
        base64(&text(salt)).map_err(|e| invalid(format!("its PBKDF2 salt is not base64 ({e})")))?;
    let number = |name: &str| -> Result<Option<u32>, ImportError> {
        child(params, name)
            .map(|n| {
                let value = text(n);
                value.parse::<u32>().ok().filter(|&v| v > 0).ok_or_else(|| {
                    invalid(format!(
                        "its PBKDF2 <{name}> '{value}' is not a positive number"
                    ))
                })
            })
            .transpose()
    };
    let iterations = number("IterationCount")?
        .ok_or_else(|| invalid("its <PBKDF2-params> has no <IterationCount>".into()))?;
    if iterations > MAX_PBKDF2_ITERATIONS {
        return Err(invalid(format!(
            "its PBKDF2 iteration count {iterations} is above the {MAX_PBKDF2_ITERATIONS} mfad accepts"
        )));
    }
    // The AES key size decides when no length is given; 16 is AES-128, the common case.
    let length = number("KeyLength")?.unwrap_or(16);
    if !matches!(length, 16 | 24 | 32) {
        return Err(invalid(format!(
            "its PBKDF2 <KeyLength> {length} is not an AES key size (16, 24 or 32)"
        )));
    }
    let prf = child(params, "PRF")
        .and_then(|p| p.attribute("Algorithm"))
        .unwrap_or("");
    let mut key = Zeroizing::new(vec![0u8; length as usize]);
    let password = password.as_bytes();
    match prf.rsplit('#').next().unwrap_or("") {
        "" | "hmac-sha1" | "hmacWithSHA1" => {
            pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, &salt, iterations, &mut key)
        }
        "hmac-sha256" | "hmacWithSHA256" => {
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, &salt, iterations, &mut key)
        }
        "hmac-sha512" | "hmacWithSHA512" => {
            pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password, &salt, iterations, &mut key)
        }
        _ => {
            return Err(invalid(format!(
                "its PBKDF2 PRF '{prf}' is not HMAC-SHA1, -SHA256 or -SHA512"
            )))
        }
    }
    Ok(key)
}

/// The decoded `<CipherData><CipherValue>` of an encrypted element.
fn cipher_value(node: Node) -> Result<Vec<u8>, String> {
    let value = child(node, "CipherData")
        .and_then(|d| child(d, "CipherValue"))
        .ok_or_else(|| "an encrypted value has no <CipherData><CipherValue>".to_owned())?;
    base64(&text(value)).map_err(|e| format!("a <CipherValue> is not base64 ({e})"))
}

/// XML Schema base64Binary: whitespace may appear anywhere and is not data.
fn base64(s: &str) -> Result<Vec<u8>, data_encoding::DecodeError> {
    let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    data_encoding::BASE64.decode(compact.as_bytes())
}

fn is(node: Node, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|n| is(*n, name))
}

fn children<'a, 'i: 'a>(
    node: Node<'a, 'i>,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children().filter(move |n| is(*n, name))
}

/// All text inside an element, trimmed: comments may split it into several nodes.
fn text(node: Node) -> String {
    let all: String = node
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect();
    all.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_uris_of_the_rfc_and_its_drafts_are_recognised() {
        assert_eq!(
            kind_of("urn:ietf:params:xml:ns:keyprov:pskc:hotp"),
            Some(OtpKind::Hotp)
        );
        assert_eq!(
            kind_of("urn:ietf:params:xml:ns:keyprov:pskc:totp"),
            Some(OtpKind::Totp)
        );
        assert_eq!(
            kind_of("http://www.ietf.org/keyprov/pskc#totp"),
            Some(OtpKind::Totp)
        );
        assert_eq!(kind_of("urn:ietf:params:xml:ns:keyprov:pskc:pin"), None);
        assert_eq!(kind_of("http://www.yubico.com/#yubikey-aes"), None);
    }

    #[test]
    fn suite_names_the_hash_in_text_or_attribute() {
        let doc = Document::parse(
            r#"<P><Suite>HMAC-SHA256</Suite><Suite hashalgo="sha512"/><Suite/><Suite>OCRA-1</Suite></P>"#,
        )
        .unwrap();
        let suites: Vec<_> = doc.root_element().children().map(suite_hash).collect();
        assert_eq!(suites[0], Ok(Algorithm::Sha256));
        assert_eq!(suites[1], Ok(Algorithm::Sha512));
        assert_eq!(suites[2], Ok(Algorithm::Sha1));
        assert!(suites[3].as_ref().unwrap_err().contains("OCRA-1"));
    }

    #[test]
    fn rfc6030_figure7_password_derives_the_published_key() {
        let doc =
            Document::parse(include_str!("../../tests/fixtures/rfc6030-figure7.xml")).unwrap();
        let derived = doc.descendants().find(|n| is(*n, "DerivedKey")).unwrap();
        let key = pbkdf2_key(derived, "qwerty").unwrap();
        assert_eq!(
            data_encoding::HEXLOWER.encode(&key),
            "651e63cd57008476af1ff6422cd02e41"
        );
    }

    #[test]
    fn rfc6030_figure6_mac_key_decrypts_to_the_published_value() {
        let doc =
            Document::parse(include_str!("../../tests/fixtures/rfc6030-figure6.xml")).unwrap();
        let keys = ImportKeys {
            psk: Some(
                data_encoding::HEXLOWER
                    .decode(b"12345678901234567890123456789012")
                    .unwrap(),
            ),
            password: None,
        };
        let crypto = Crypto::new(doc.root_element(), &keys, Location::KeyPackage(1)).unwrap();
        assert_eq!(crypto.mac.alg, Algorithm::Sha1);
        assert_eq!(
            data_encoding::HEXLOWER.encode(&crypto.mac.key),
            "1122334455667788990011223344556677889900"
        );
    }

    #[test]
    fn base64_ignores_line_breaks() {
        assert_eq!(
            base64("MTIz\n  NDU2\tNzg5MDEy\r\nMzQ1Njc4OTA=\n").unwrap(),
            b"12345678901234567890"
        );
        assert!(base64("MTIz*").is_err());
    }
}
