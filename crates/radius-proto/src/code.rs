//! RADIUS packet codes (RFC 2865 §3, RFC 2866 §3, RFC 5997 §2).

use std::fmt;

/// The Code field of a RADIUS packet.
///
/// `From<u8>` maps known values to their variant, so `Other` only ever holds
/// codes this crate has no name for (e.g. 40 Disconnect-Request, RFC 5176).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// 1, RFC 2865 §4.1.
    AccessRequest,
    /// 2, RFC 2865 §4.2.
    AccessAccept,
    /// 3, RFC 2865 §4.3.
    AccessReject,
    /// 4, RFC 2866 §4.1.
    AccountingRequest,
    /// 5, RFC 2866 §4.2.
    AccountingResponse,
    /// 11, RFC 2865 §4.4.
    AccessChallenge,
    /// 12, RFC 5997 §2.
    StatusServer,
    /// 13, RFC 2865 §3 (reserved, experimental).
    StatusClient,
    /// Any other code, kept so it can be logged and dropped by the caller.
    Other(u8),
}

impl Code {
    /// The wire value of this code.
    pub const fn as_u8(self) -> u8 {
        match self {
            Code::AccessRequest => 1,
            Code::AccessAccept => 2,
            Code::AccessReject => 3,
            Code::AccountingRequest => 4,
            Code::AccountingResponse => 5,
            Code::AccessChallenge => 11,
            Code::StatusServer => 12,
            Code::StatusClient => 13,
            Code::Other(c) => c,
        }
    }

    /// Whether the Request Authenticator of this request is an MD5 over the
    /// packet (RFC 2866 §3 for accounting, RFC 5176 §2.3 for Disconnect-Request
    /// 40 and CoA-Request 43) rather than a random nonce (RFC 2865 §3).
    pub const fn has_computed_request_authenticator(self) -> bool {
        matches!(
            self,
            Code::AccountingRequest | Code::Other(40) | Code::Other(43)
        )
    }
}

impl From<u8> for Code {
    fn from(value: u8) -> Self {
        match value {
            1 => Code::AccessRequest,
            2 => Code::AccessAccept,
            3 => Code::AccessReject,
            4 => Code::AccountingRequest,
            5 => Code::AccountingResponse,
            11 => Code::AccessChallenge,
            12 => Code::StatusServer,
            13 => Code::StatusClient,
            other => Code::Other(other),
        }
    }
}

impl From<Code> for u8 {
    fn from(code: Code) -> Self {
        code.as_u8()
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Code::AccessRequest => f.write_str("Access-Request"),
            Code::AccessAccept => f.write_str("Access-Accept"),
            Code::AccessReject => f.write_str("Access-Reject"),
            Code::AccountingRequest => f.write_str("Accounting-Request"),
            Code::AccountingResponse => f.write_str("Accounting-Response"),
            Code::AccessChallenge => f.write_str("Access-Challenge"),
            Code::StatusServer => f.write_str("Status-Server"),
            Code::StatusClient => f.write_str("Status-Client"),
            Code::Other(c) => write!(f, "code {c}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_round_trips_through_code() {
        for b in 0..=u8::MAX {
            assert_eq!(Code::from(b).as_u8(), b);
            assert_eq!(u8::from(Code::from(b)), b);
        }
    }

    #[test]
    fn known_codes_never_map_to_other() {
        // RFC 2865 §3, RFC 2866 §3, RFC 5997 §2.
        let table = [
            (1, Code::AccessRequest),
            (2, Code::AccessAccept),
            (3, Code::AccessReject),
            (4, Code::AccountingRequest),
            (5, Code::AccountingResponse),
            (11, Code::AccessChallenge),
            (12, Code::StatusServer),
            (13, Code::StatusClient),
        ];
        for (b, code) in table {
            assert_eq!(Code::from(b), code);
        }
        assert_eq!(Code::from(40), Code::Other(40));
    }
}
