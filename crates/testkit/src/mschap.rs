//! The client side of MS-CHAPv2 (RFC 2759): the MS-CHAP-Challenge and MS-CHAP2-Response attributes (RFC 2548 §2.3.2) a VPN sends, for radclient.

use des::cipher::generic_array::GenericArray;
use des::cipher::{BlockEncrypt, KeyInit};
use md4::{Digest, Md4};
use sha1::Sha1;

/// What a VPN puts in an Access-Request for an MS-CHAPv2 login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsChapV2 {
    /// MS-CHAP-Challenge: the authenticator challenge.
    pub challenge: [u8; 16],
    /// MS-CHAP2-Response: Ident, Flags, Peer-Challenge, 8 reserved octets, NT-Response.
    pub response: [u8; 50],
}

impl MsChapV2 {
    /// The response of `username` with `password` to `challenge` (RFC 2759 §8.1).
    pub fn new(
        username: &str,
        password: &str,
        challenge: [u8; 16],
        peer_challenge: [u8; 16],
    ) -> MsChapV2 {
        let nt = nt_response(username, password, &challenge, &peer_challenge);
        let mut response = [0u8; 50];
        response[0] = 1; // Ident
        response[2..18].copy_from_slice(&peer_challenge);
        response[26..].copy_from_slice(&nt);
        MsChapV2 {
            challenge,
            response,
        }
    }

    /// The MPPE keys the server derives from this login (RFC 3079 §3.4, 128-bit keys):
    /// what it sends as MS-MPPE-Send-Key and MS-MPPE-Recv-Key, as radclient prints them.
    pub fn server_keys(&self, password: &str) -> (String, String) {
        let mut nt = [0u8; 24];
        nt.copy_from_slice(&self.response[26..]);
        let master = master_key(&Md4::digest(nt_password_hash(password)).into(), &nt);
        (
            hex(&start_key(&master, MAGIC3)),
            hex(&start_key(&master, MAGIC2)),
        )
    }

    /// The two attributes as radclient input.
    pub fn attributes(&self) -> [(&'static str, String); 2] {
        [
            ("MS-CHAP-Challenge", hex(&self.challenge)),
            ("MS-CHAP2-Response", hex(&self.response)),
        ]
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::from("0x");
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// RFC 2759 §8.3: MD4 of the password in UTF-16LE.
fn nt_password_hash(password: &str) -> [u8; 16] {
    let unicode: Vec<u8> = password.encode_utf16().flat_map(u16::to_le_bytes).collect();
    Md4::digest(unicode).into()
}

/// RFC 2759 §8.2: the first 8 octets of SHA-1 over both challenges and the user name.
fn challenge_hash(peer: &[u8; 16], authenticator: &[u8; 16], username: &str) -> [u8; 8] {
    let digest = Sha1::new()
        .chain_update(peer)
        .chain_update(authenticator)
        .chain_update(username.as_bytes())
        .finalize();
    digest[..8].try_into().unwrap()
}

/// RFC 2759 §8.6: 7 key octets spread over 8, the low bit of each (parity) unused.
fn des_key(k: &[u8]) -> [u8; 8] {
    [
        k[0],
        k[0] << 7 | k[1] >> 1,
        k[1] << 6 | k[2] >> 2,
        k[2] << 5 | k[3] >> 3,
        k[3] << 4 | k[4] >> 4,
        k[4] << 3 | k[5] >> 5,
        k[5] << 2 | k[6] >> 6,
        k[6] << 1,
    ]
}

/// RFC 2759 §8.5: the challenge hash encrypted under three DES keys cut from the
/// password hash padded to 21 octets.
fn nt_response(
    username: &str,
    password: &str,
    authenticator: &[u8; 16],
    peer: &[u8; 16],
) -> [u8; 24] {
    let challenge = challenge_hash(peer, authenticator, username);
    let mut z = [0u8; 21];
    z[..16].copy_from_slice(&nt_password_hash(password));
    let mut out = [0u8; 24];
    for (i, key) in z.chunks(7).enumerate() {
        let cipher = des::Des::new_from_slice(&des_key(key)).unwrap();
        let mut block = GenericArray::clone_from_slice(&challenge);
        cipher.encrypt_block(&mut block);
        out[i * 8..i * 8 + 8].copy_from_slice(&block);
    }
    out
}

/// RFC 3079 §3.4 GetMasterKey's Magic1.
const MAGIC1: &[u8] = b"This is the MPPE Master Key";
/// RFC 3079 §3.4: the server's receive key.
const MAGIC2: &[u8] =
    b"On the client side, this is the send key; on the server side, it is the receive key.";
/// RFC 3079 §3.4: the server's send key.
const MAGIC3: &[u8] =
    b"On the client side, this is the receive key; on the server side, it is the send key.";

/// RFC 3079 §3.4 GetMasterKey: SHA-1 of the password hash hash, the NT-Response and Magic1.
fn master_key(password_hash_hash: &[u8; 16], nt_response: &[u8; 24]) -> [u8; 16] {
    let digest = Sha1::new()
        .chain_update(password_hash_hash)
        .chain_update(nt_response)
        .chain_update(MAGIC1)
        .finalize();
    digest[..16].try_into().unwrap()
}

/// RFC 3079 §3.4 GetAsymmetricStartKey for a 16-octet key.
fn start_key(master: &[u8; 16], magic: &[u8]) -> [u8; 16] {
    let digest = Sha1::new()
        .chain_update(master)
        .chain_update([0u8; 40])
        .chain_update(magic)
        .chain_update([0xf2u8; 40])
        .finalize();
    digest[..16].try_into().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    /// RFC 2759 §9.2 "Sample MS-CHAPv2 Values", and RFC 3079 §3.5.3 for the keys.
    #[test]
    fn rfc_2759_section_9_2_and_rfc_3079_section_3_5_3_sample_values() {
        let authenticator: [u8; 16] = bytes("5B 5D 7C 7D 7B 3F 2F 3E 3C 2C 60 21 32 26 26 28")
            .try_into()
            .unwrap();
        let peer: [u8; 16] = bytes("21 40 23 24 25 5E 26 2A 28 29 5F 2B 3A 33 7C 7E")
            .try_into()
            .unwrap();
        assert_eq!(
            challenge_hash(&peer, &authenticator, "User").to_vec(),
            bytes("D0 2E 43 86 BC E9 12 26")
        );
        assert_eq!(
            nt_password_hash("clientPass").to_vec(),
            bytes("44 EB BA 8D 53 12 B8 D6 11 47 44 11 F5 69 89 AE")
        );
        let want = bytes("82 30 9E CD 8D 70 8B 5E A0 8F AA 39 81 CD 83 54 42 33 11 4A 3D 85 D6 DF");
        assert_eq!(
            nt_response("User", "clientPass", &authenticator, &peer).to_vec(),
            want
        );
        // RFC 3079 §3.5.3 "Sample Key Derivations" continues with the same login.
        let nt: [u8; 24] = want.clone().try_into().unwrap();
        let hash_hash: [u8; 16] = Md4::digest(nt_password_hash("clientPass")).into();
        assert_eq!(
            hash_hash.to_vec(),
            bytes("41 C0 0C 58 4B D2 D9 1C 40 17 A2 A1 2F A5 9F 3F")
        );
        let master = master_key(&hash_hash, &nt);
        assert_eq!(
            master.to_vec(),
            bytes("FD EC E3 71 7A 8C 83 8C B3 88 E5 27 AE 3C DD 31")
        );
        assert_eq!(
            start_key(&master, MAGIC2).to_vec(),
            bytes("D5 F0 E9 52 1E 3E A9 58 96 45 E8 60 51 C8 22 26"),
            "SendStartKey128, the client's send key"
        );
        let attrs = MsChapV2::new("User", "clientPass", authenticator, peer);
        assert_eq!(attrs.response[26..].to_vec(), want);
        assert_eq!(attrs.response[2..18], peer);
    }
}
