//! Fuzzes the receive path of a RADIUS server: decode, Message-Authenticator check and User-Password reveal must be total and agree with each other.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfad_radius_proto::{
    attr, check_message_authenticator, decrypt_user_password, encode_response,
    verify_accounting_request, verify_response, Code, MessageAuthenticator, Packet,
    MAX_PASSWORD_LEN,
};

const SECRET: &[u8] = b"fuzzing-secret";

fuzz_target!(|data: &[u8]| {
    let decoded = Packet::decode(data);
    let ma = check_message_authenticator(data, SECRET, None);
    let _ = verify_accounting_request(data, SECRET);
    let _ = verify_response(data, &[0; 16], SECRET);

    // Bad framing must never look like "no Message-Authenticator": a server
    // that accepts unsigned requests would otherwise skip the check.
    match &decoded {
        Err(_) => assert_eq!(ma, MessageAuthenticator::Invalid),
        Ok(p) if ma == MessageAuthenticator::Missing => {
            assert!(p.get(attr::MESSAGE_AUTHENTICATOR).is_none());
        }
        Ok(_) => {}
    }

    // Raw bytes as a hidden password, and every User-Password in the packet.
    if let Ok(clear) = decrypt_user_password(data, SECRET, &[0x5a; 16]) {
        assert!(clear.len() <= MAX_PASSWORD_LEN);
    }
    let Ok(p) = decoded else { return };
    for hidden in p.get_all(attr::USER_PASSWORD) {
        if let Ok(clear) = decrypt_user_password(hidden, SECRET, &p.authenticator) {
            assert!(clear.len() <= hidden.len());
        }
    }

    // What decode accepts re-encodes to the same packet.
    let bytes = p.encode().expect("a decoded packet always encodes");
    assert_eq!(Packet::decode(&bytes).as_ref(), Ok(&p));

    // And a reply built from it verifies, with Message-Authenticator first
    // (Accounting-Response excepted, see encode_response).
    if let Ok(reply) = encode_response(&p, &p.authenticator, SECRET) {
        assert!(verify_response(&reply, &p.authenticator, SECRET));
        if p.code != Code::AccountingResponse {
            assert_eq!(reply.get(20), Some(&attr::MESSAGE_AUTHENTICATOR));
        }
    }
});
