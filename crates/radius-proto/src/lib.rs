//! Pure RADIUS codec: bytes <-> packets, authenticators and User-Password hiding, with no sockets, clock or RNG.
//!
//! Covers RFC 2865 (packet format, User-Password, Response Authenticator),
//! RFC 2866 (accounting authenticators), RFC 2869 §5.14 / RFC 3579 §3.2
//! (Message-Authenticator), RFC 5997 (Status-Server), RFC 2548 (Microsoft
//! attributes and MPPE keys, for proxying MS-CHAPv2) and the BlastRADIUS
//! mitigation (CVE-2024-3596: Message-Authenticator first).
//!
//! Every function is total: malformed input yields an error or `false`, never a
//! panic. Randomness is the caller's: request authenticators are passed in.
//!
//! ```
//! use mfad_radius_proto::{attr, encode_response, verify_response, Code, Packet};
//!
//! let request_auth = [7u8; 16];
//! let mut reply = Packet::new(Code::AccessAccept, 42, [0; 16]);
//! reply.add(attr::REPLY_MESSAGE, "welcome");
//! let raw = encode_response(&reply, &request_auth, b"secret").unwrap();
//! assert!(verify_response(&raw, &request_auth, b"secret"));
//! ```

pub mod attr;
mod authenticator;
mod code;
mod exchange;
mod mppe;
mod packet;
mod password;
mod proxy;
mod vendor;

pub use authenticator::{
    check_message_authenticator, verify_accounting_request, MessageAuthenticator,
};
pub use code::Code;
pub use exchange::{encode_request, encode_response, verify_response};
pub use mppe::{
    add_mppe_key, decrypt_mppe_key, encrypt_mppe_key, mppe_salts, take_mppe_keys, MppeError,
    MppeKey,
};
pub use packet::{
    Attribute, DecodeError, EncodeError, Packet, HEADER_LEN, MAX_ATTRIBUTE_VALUE_LEN,
    MAX_PACKET_LEN,
};
pub use password::{decrypt_user_password, encrypt_user_password, PasswordError, MAX_PASSWORD_LEN};
pub use proxy::{add_proxy_state, take_proxy_state};
pub use vendor::{vendor_attributes, VendorAttribute};
