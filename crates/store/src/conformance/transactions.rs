//! Conformance cases for transactions. Challenges: single use among concurrent takes,
//! expiry, and the kind and binding each one keeps. Pending out-of-band logins: read by
//! any node, decided once, and taken (to be audited) once.

use super::{ensure, ensure_eq, ensure_err, given_user, CaseResult, NOW};
use mfad_core::audit::{AuditRecord, AuditResult};
use mfad_core::engine::{Prompt, PromptKind};
use mfad_core::model::{Challenge, ChallengeKind};
use mfad_core::store::{Decision, PendingTxn, Store, StoreError};
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

fn pending_txn(txn: &[u8], expires_at: i64) -> PendingTxn {
    PendingTxn {
        txn: txn.to_vec(),
        draft: AuditRecord {
            id: "0123456789abcdef0123456789abcdef".into(),
            time_ms: NOW * 1000,
            username: "alice".into(),
            method: "call".into(),
            device: "+14255550100".into(),
            channel: "radius".into(),
            ..AuditRecord::default()
        },
        prompt: Prompt {
            kind: PromptKind::AnswerCall,
            language: "de-CH".into(),
        },
        decision: None,
        expires_at,
    }
}

fn decision(reason: &str) -> Decision {
    Decision {
        result: AuditResult::Reject,
        reason: reason.into(),
        challenge: None,
        device: "+14255550199".into(),
    }
}

pub async fn pending_transaction_reads_back_and_is_decided_once(
    store: Arc<dyn Store>,
) -> CaseResult {
    let put = pending_txn(b"txn-read", NOW + 300);
    store.put_pending(&put, NOW).await?;
    ensure_eq!(store.pending(b"txn-read", NOW).await?, Some(put.clone()));
    ensure_eq!(
        store.take_decided(b"txn-read", NOW).await?,
        None,
        "an undecided transaction is not taken"
    );
    let accepted = Decision {
        result: AuditResult::Challenge,
        reason: "accepted".into(),
        challenge: Some((
            vec![0, 1, 0xff],
            Prompt {
                kind: PromptKind::NewPin,
                language: "en".into(),
            },
        )),
        device: "+14255550100".into(),
    };
    ensure!(
        store.decide_pending(b"txn-read", &accepted, NOW).await?,
        "the first decision is recorded"
    );
    ensure!(
        !store
            .decide_pending(b"txn-read", &decision("call_timeout"), NOW)
            .await?,
        "a decided transaction is not decided again"
    );
    let decided = PendingTxn {
        decision: Some(accepted),
        ..put
    };
    ensure_eq!(store.pending(b"txn-read", NOW).await?, Some(decided));
    ensure!(
        !store
            .decide_pending(b"unknown", &decision("x"), NOW)
            .await?,
        "an unknown transaction is not decided"
    );
    Ok(())
}

pub async fn racing_decisions_and_takes_succeed_once(store: Arc<dyn Store>) -> CaseResult {
    store
        .put_pending(&pending_txn(b"txn-race", NOW + 300), NOW)
        .await?;
    let deciders: Vec<_> = (0..20)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let reason = format!("reason-{n}");
                let won = store
                    .decide_pending(b"txn-race", &decision(&reason), NOW)
                    .await?;
                Ok::<_, mfad_core::store::StoreError>(won.then_some(reason))
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in deciders {
        if let Some(reason) = task.await?? {
            winners.push(reason);
        }
    }
    ensure_eq!(winners.len(), 1, "exactly one of 20 racing decisions wins");
    let takers: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.take_decided(b"txn-race", NOW).await })
        })
        .collect();
    let mut taken = Vec::new();
    for task in takers {
        if let Some(found) = task.await?? {
            taken.push(found);
        }
    }
    ensure_eq!(taken.len(), 1, "exactly one of 20 racing takes gets it");
    let reason = taken
        .first()
        .and_then(|t| t.decision.as_ref())
        .map(|d| d.reason.clone());
    ensure_eq!(reason, winners.first().cloned(), "the winning decision");
    ensure_eq!(
        store.pending(b"txn-race", NOW).await?,
        None,
        "taken is gone"
    );
    Ok(())
}

pub async fn expired_pending_transaction_is_not_read_decided_or_taken(
    store: Arc<dyn Store>,
) -> CaseResult {
    store
        .put_pending(&pending_txn(b"txn-late", NOW + 10), NOW)
        .await?;
    store
        .put_pending(&pending_txn(b"txn-late-decided", NOW + 10), NOW)
        .await?;
    ensure!(
        store
            .decide_pending(b"txn-late-decided", &decision("wrong_pin"), NOW)
            .await?,
        "decided while live"
    );
    let at = NOW + 10;
    ensure_eq!(store.pending(b"txn-late", at).await?, None);
    ensure!(
        !store
            .decide_pending(b"txn-late", &decision("x"), at)
            .await?,
        "an expired transaction is not decided"
    );
    ensure_eq!(store.take_decided(b"txn-late-decided", at).await?, None);
    // A later transaction sweeps the expired ones away.
    store
        .put_pending(&pending_txn(b"txn-next", NOW + 400), at)
        .await?;
    ensure_eq!(
        store.pending(b"txn-late", NOW).await?,
        None,
        "swept, not merely hidden"
    );
    Ok(())
}

pub async fn expired_pending_logins_are_swept_with_one_record_each(
    store: Arc<dyn Store>,
) -> CaseResult {
    store
        .put_pending(&pending_txn(b"txn-gone", NOW + 10), NOW)
        .await?;
    store
        .put_pending(&pending_txn(b"txn-gone-decided", NOW + 10), NOW)
        .await?;
    store
        .put_pending(&pending_txn(b"txn-live", NOW + 100), NOW)
        .await?;
    ensure!(
        store
            .decide_pending(b"txn-gone-decided", &decision("call_timeout"), NOW)
            .await?,
        "decided while live"
    );
    // Nodes sweeping at once: each expired login is swept, and recorded, once.
    let sweeps: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.sweep_pending(NOW + 10).await })
        })
        .collect();
    let mut swept = 0;
    for sweep in sweeps {
        swept += sweep.await??;
    }
    ensure_eq!(swept, 2, "the two expired logins");
    store.flush().await?;
    let records = store.query_audit(&Default::default()).await?;
    let mut devices: Vec<_> = records.iter().map(|r| r.device.as_str()).collect();
    devices.sort_unstable();
    ensure_eq!(
        devices,
        vec!["+14255550100", "+14255550199"],
        "one record each, with the phone a decision named"
    );
    ensure!(
        records.iter().all(|r| r.result == Some(AuditResult::Reject)
            && r.reason == "challenge_expired"
            && r.username == "alice"),
        "rejected as expired, from the draft: {records:?}"
    );
    ensure!(
        store.pending(b"txn-live", NOW + 10).await?.is_some(),
        "a login still waiting is left alone"
    );
    ensure_eq!(store.sweep_pending(NOW + 10).await?, 0, "nothing twice");
    // A new pending login sweeps too.
    store
        .put_pending(&pending_txn(b"txn-next", NOW + 400), NOW + 100)
        .await?;
    store.flush().await?;
    ensure_eq!(store.query_audit(&Default::default()).await?.len(), 3);
    Ok(())
}

pub async fn duplicate_pending_id_is_rejected_and_delete_removes_it(
    store: Arc<dyn Store>,
) -> CaseResult {
    let put = pending_txn(b"txn-dup", NOW + 300);
    store.put_pending(&put, NOW).await?;
    ensure_err!(store.put_pending(&put, NOW).await, Duplicate);
    store.delete_pending(b"txn-dup").await?;
    ensure_eq!(store.pending(b"txn-dup", NOW).await?, None);
    store.delete_pending(b"txn-dup").await?;
    store.put_pending(&put, NOW).await?;
    ensure!(
        store.pending(b"txn-dup", NOW).await?.is_some(),
        "the id is free again once deleted"
    );
    Ok(())
}
