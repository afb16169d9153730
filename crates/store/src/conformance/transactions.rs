//! Conformance cases for challenges: single use among concurrent takes, expiry, and the
//! kind and binding each one keeps.

use super::{ensure, ensure_eq, given_user, CaseResult, NOW};
use mfad_core::model::{Challenge, ChallengeKind};
use mfad_core::store::{Store, StoreError};
use std::sync::Arc;

fn challenge(state: &[u8], user_id: i64, kind: ChallengeKind, expires_at: i64) -> Challenge {
    Challenge {
        state: state.to_vec(),
        user_id,
        client: "vpn".into(),
        kind,
        expires_at,
    }
}

pub async fn challenge_is_taken_once_among_concurrent_calls(store: Arc<dyn Store>) -> CaseResult {
    let user = given_user(&*store, "wendy").await?;
    let put = challenge(b"\x00\x01state\xff", user.id, ChallengeKind::Otp, NOW + 120);
    store.put_challenge(&put).await?;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.take_challenge(b"\x00\x01state\xff", NOW).await })
        })
        .collect();
    let mut taken = Vec::new();
    for task in tasks {
        if let Some(c) = task.await?? {
            taken.push(c);
        }
    }
    ensure_eq!(
        taken,
        vec![put],
        "exactly one of 20 concurrent takes gets the challenge"
    );
    Ok(())
}

pub async fn expired_challenge_is_not_returned_and_is_removed(store: Arc<dyn Store>) -> CaseResult {
    let user = given_user(&*store, "xena").await?;
    store
        .put_challenge(&challenge(b"late", user.id, ChallengeKind::Otp, NOW + 10))
        .await?;
    ensure_eq!(
        store.take_challenge(b"late", NOW + 10).await?,
        None,
        "expired at its time"
    );
    ensure_eq!(
        store.take_challenge(b"late", NOW).await?,
        None,
        "an expired take removes it"
    );

    // Expired challenges go even when nobody takes them: putting the same state again
    // only works if the old row was removed.
    store
        .put_challenge(&challenge(b"stale", user.id, ChallengeKind::Otp, NOW + 5))
        .await?;
    ensure_eq!(store.take_challenge(b"other", NOW + 6).await?, None);
    let renewed = challenge(b"stale", user.id, ChallengeKind::NewPin, NOW + 100);
    store.put_challenge(&renewed).await?;
    ensure_eq!(
        store.take_challenge(b"stale", NOW + 7).await?,
        Some(renewed)
    );
    Ok(())
}

pub async fn challenges_keep_their_kind_and_binding(store: Arc<dyn Store>) -> CaseResult {
    let user = given_user(&*store, "yara").await?;
    let kinds = [
        ChallengeKind::Otp,
        ChallengeKind::NewPin,
        ChallengeKind::ConfirmPin {
            pin_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        },
        ChallengeKind::Upstream {
            target: "nps-1".into(),
            state: vec![0, 0xff, b'x'],
        },
        // Out-of-band transactions (calls, two-way SMS) and their decisions.
        ChallengeKind::Call {
            ask_pin: true,
            device: "+14255550100".into(),
            backup: "+12079460018".into(),
            cache_key: Some("uc:1:vpn".into()),
        },
        ChallengeKind::SmsReply {
            salt: "00ff".into(),
            code_hash: "ab".repeat(32),
            ask_pin: false,
            device: "+14255550100".into(),
            cache_key: None,
        },
        ChallengeKind::SmsReplyTo {
            txn: "0123456789abcdef".into(),
        },
        ChallengeKind::Decided {
            result: "challenge".into(),
            reason: String::new(),
            state: vec![1, 2, 3],
            prompt: "Enter a new PIN".into(),
            device: "+14255550100".into(),
        },
    ];
    for (n, kind) in kinds.into_iter().enumerate() {
        let state = format!("state-{n}").into_bytes();
        let mut put = challenge(&state, user.id, kind, NOW + 60);
        put.client = format!("client-{n}");
        store.put_challenge(&put).await?;
        ensure_eq!(store.take_challenge(&state, NOW).await?, Some(put));
    }
    let duplicate = challenge(b"twice", user.id, ChallengeKind::Otp, NOW + 60);
    store.put_challenge(&duplicate).await?;
    // Duplicate, not another error: the engine replaces a two-way SMS's reply index on it.
    ensure!(
        matches!(
            store.put_challenge(&duplicate).await,
            Err(StoreError::Duplicate(_))
        ),
        "a state is never reused"
    );
    Ok(())
}
