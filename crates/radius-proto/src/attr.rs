//! Attribute type numbers used by mfad (RFC 2865 §5, RFC 2866 §5, RFC 2869 §5, RFC 3162 §2).

/// RFC 2865 §5.1.
pub const USER_NAME: u8 = 1;
/// RFC 2865 §5.2; hidden with [`crate::encrypt_user_password`].
pub const USER_PASSWORD: u8 = 2;
/// RFC 2865 §5.3.
pub const CHAP_PASSWORD: u8 = 3;
/// RFC 2865 §5.4.
pub const NAS_IP_ADDRESS: u8 = 4;
/// RFC 2865 §5.5.
pub const NAS_PORT: u8 = 5;
/// RFC 2865 §5.6.
pub const SERVICE_TYPE: u8 = 6;
/// RFC 2865 §5.7.
pub const FRAMED_PROTOCOL: u8 = 7;
/// RFC 2865 §5.8.
pub const FRAMED_IP_ADDRESS: u8 = 8;
/// RFC 2865 §5.18.
pub const REPLY_MESSAGE: u8 = 18;
/// RFC 2865 §5.24.
pub const STATE: u8 = 24;
/// RFC 2865 §5.25.
pub const CLASS: u8 = 25;
/// RFC 2865 §5.26.
pub const VENDOR_SPECIFIC: u8 = 26;
/// RFC 2865 §5.27.
pub const SESSION_TIMEOUT: u8 = 27;
/// RFC 2865 §5.30.
pub const CALLED_STATION_ID: u8 = 30;
/// RFC 2865 §5.31.
pub const CALLING_STATION_ID: u8 = 31;
/// RFC 2865 §5.32.
pub const NAS_IDENTIFIER: u8 = 32;
/// RFC 2865 §5.33; must be echoed unmodified in replies.
pub const PROXY_STATE: u8 = 33;
/// RFC 2865 §5.40 / RFC 2866 §5.1.
pub const ACCT_STATUS_TYPE: u8 = 40;
/// RFC 2866 §5.5.
pub const ACCT_SESSION_ID: u8 = 44;
/// RFC 2869 §5.3.
pub const EVENT_TIMESTAMP: u8 = 55;
/// RFC 2865 §5.41.
pub const NAS_PORT_TYPE: u8 = 61;
/// RFC 2869 §5.13 / RFC 3579 §3.1; split with [`crate::Packet::add_string_split`].
pub const EAP_MESSAGE: u8 = 79;
/// RFC 2869 §5.14 / RFC 3579 §3.2; always 16 octets of HMAC-MD5.
pub const MESSAGE_AUTHENTICATOR: u8 = 80;
/// RFC 3162 §2.1.
pub const NAS_IPV6_ADDRESS: u8 = 95;
