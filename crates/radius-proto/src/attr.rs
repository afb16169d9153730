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
/// RFC 2865 §5.34.
pub const CHAP_CHALLENGE: u8 = 60;
/// RFC 2868 §3.5; salt-encrypted like the MPPE keys.
pub const TUNNEL_PASSWORD: u8 = 69;

/// Microsoft vendor-specific attributes (RFC 2548), carried in Vendor-Specific
/// ([`VENDOR_SPECIFIC`]) with [`ms::VENDOR_ID`].
pub mod ms {
    /// RFC 2548 §2: Microsoft's SMI Network Management Private Enterprise Code.
    pub const VENDOR_ID: u32 = 311;
    /// RFC 2548 §2.1.3.
    pub const CHAP_RESPONSE: u8 = 1;
    /// RFC 2548 §2.1.5.
    pub const CHAP_ERROR: u8 = 2;
    /// RFC 2548 §2.2.3.
    pub const MPPE_ENCRYPTION_POLICY: u8 = 7;
    /// RFC 2548 §2.2.4.
    pub const MPPE_ENCRYPTION_TYPES: u8 = 8;
    /// RFC 2548 §2.1.2.
    pub const CHAP_CHALLENGE: u8 = 11;
    /// RFC 2548 §2.4.1; MS-CHAP v1 keys, hidden like User-Password.
    pub const CHAP_MPPE_KEYS: u8 = 12;
    /// RFC 2548 §2.4.2; see [`crate::encrypt_mppe_key`].
    pub const MPPE_SEND_KEY: u8 = 16;
    /// RFC 2548 §2.4.3; see [`crate::encrypt_mppe_key`].
    pub const MPPE_RECV_KEY: u8 = 17;
    /// RFC 2548 §2.3.2.
    pub const CHAP2_RESPONSE: u8 = 25;
    /// RFC 2548 §2.3.3.
    pub const CHAP2_SUCCESS: u8 = 26;
}
