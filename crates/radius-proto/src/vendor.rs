//! Vendor-Specific attributes (RFC 2865 §5.26): the Vendor-Id and the sub-attributes in the recommended format.

use crate::attr;
use crate::packet::{Attribute, MAX_ATTRIBUTE_VALUE_LEN};

/// One sub-attribute of a Vendor-Specific attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VendorAttribute {
    pub vendor: u32,
    pub typ: u8,
    pub value: Vec<u8>,
}

impl VendorAttribute {
    /// The Vendor-Specific attribute carrying this one sub-attribute. `None` when the
    /// value does not fit (RFC 2865 §5.26: 4 octets of Vendor-Id and 2 of Type and Length
    /// leave 247 for it).
    pub fn to_attribute(&self) -> Option<Attribute> {
        if self.value.len() + 6 > MAX_ATTRIBUTE_VALUE_LEN {
            return None;
        }
        let mut value = Vec::with_capacity(self.value.len() + 6);
        value.extend_from_slice(&self.vendor.to_be_bytes());
        value.push(self.typ);
        // Bounded above, so it fits in one octet.
        value.push((self.value.len() + 2) as u8);
        value.extend_from_slice(&self.value);
        Some(Attribute {
            typ: attr::VENDOR_SPECIFIC,
            value,
        })
    }
}

/// Splits the value of a Vendor-Specific attribute into its sub-attributes, in the
/// format RFC 2865 §5.26 recommends (Type, Length, Value; Length covers both octets).
/// `None` when the value does not follow that format: a proxy then passes it on as it
/// is, without looking inside.
pub fn vendor_attributes(value: &[u8]) -> Option<Vec<VendorAttribute>> {
    let (id, mut rest) = value.split_first_chunk::<4>()?;
    let vendor = u32::from_be_bytes(*id);
    let mut out = Vec::new();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let (&[typ, length], tail) = rest.split_first_chunk::<2>()?;
        let length = usize::from(length);
        let value = tail.get(..length.checked_sub(2)?)?;
        out.push(VendorAttribute {
            vendor,
            typ,
            value: value.to_vec(),
        });
        rest = tail.get(length - 2..)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_microsoft_attribute_round_trips() {
        // RFC 2548 §2: Vendor-Id 311, then MS-CHAP-Error (2) with Ident 1 and "E=691".
        let ms = VendorAttribute {
            vendor: 311,
            typ: 2,
            value: b"\x01E=691".to_vec(),
        };
        let a = ms.to_attribute().unwrap();
        assert_eq!(a.typ, attr::VENDOR_SPECIFIC);
        assert_eq!(a.value, b"\x00\x00\x01\x37\x02\x08\x01E=691");
        assert_eq!(vendor_attributes(&a.value), Some(vec![ms]));
    }

    #[test]
    fn several_sub_attributes_and_malformed_values() {
        let two = b"\x00\x00\x01\x37\x07\x06\x00\x00\x00\x01\x08\x06\x00\x00\x00\x06";
        let parsed = vendor_attributes(two).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!((parsed[0].typ, parsed[1].typ), (7, 8));
        for bad in [
            &b"\x00\x00\x01"[..],
            b"\x00\x00\x01\x37",
            b"\x00\x00\x01\x37\x07",
            b"\x00\x00\x01\x37\x07\x01",
            b"\x00\x00\x01\x37\x07\x09\x00",
        ] {
            assert_eq!(vendor_attributes(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn sub_attributes_round_trip(vendor in any::<u32>(), typ in any::<u8>(), value in proptest::collection::vec(any::<u8>(), 0..=247)) {
            let v = VendorAttribute { vendor, typ, value };
            let a = v.to_attribute().unwrap();
            prop_assert_eq!(vendor_attributes(&a.value), Some(vec![v]));
        }

        #[test]
        fn parsing_never_panics(value in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = vendor_attributes(&value);
        }
    }
}
