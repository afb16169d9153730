//! Conformance cases for challenges, cached successes and RADIUS clients.

use super::{ensure, ensure_eq, ensure_err, given_user, new_client, CaseResult, NOW};
use mfad_core::model::{Challenge, ChallengeKind, FirstFactor, Prompt};
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

pub async fn rate_limit_allows_the_limit_per_window_then_refuses(
    store: Arc<dyn Store>,
) -> CaseResult {
    for n in 1..=3 {
        ensure!(
            store.take_rate("sms:user:1", NOW, 60, 3).await?,
            "use {n} of 3 is allowed"
        );
    }
    ensure!(
        !store.take_rate("sms:user:1", NOW + 30, 60, 3).await?,
        "the fourth in the window is refused"
    );
    ensure!(
        !store.take_rate("sms:user:1", NOW + 59, 60, 3).await?,
        "refused uses do not extend or reset the window"
    );
    ensure!(
        store.take_rate("sms:user:2", NOW + 30, 60, 3).await?,
        "keys are independent"
    );
    ensure!(
        store.take_rate("sms:user:1", NOW + 60, 60, 3).await?,
        "a new window starts when the old one ends"
    );
    ensure!(
        store.take_rate("sms:user:1", NOW + 61, 60, 3).await?,
        "second use of the new window"
    );
    ensure!(
        store.take_rate("sms:user:1", NOW + 62, 60, 3).await?,
        "third use of the new window"
    );
    ensure!(
        !store.take_rate("sms:user:1", NOW + 63, 60, 3).await?,
        "the new window has the same limit"
    );
    Ok(())
}

pub async fn concurrent_uses_never_exceed_the_rate_limit(store: Arc<dyn Store>) -> CaseResult {
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.take_rate("call:gateway", NOW, 3600, 7).await })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        if task.await?? {
            allowed += 1;
        }
    }
    ensure_eq!(allowed, 7, "exactly the limit among 20 concurrent uses");
    Ok(())
}

pub async fn cached_auth_holds_until_its_time(store: Arc<dyn Store>) -> CaseResult {
    store.put_cached_auth("zoe|vpn", NOW + 60).await?;
    ensure!(
        store.cached_auth("zoe|vpn", NOW).await?,
        "valid before its time"
    );
    ensure!(
        store.cached_auth("zoe|vpn", NOW + 59).await?,
        "valid just before its time"
    );
    ensure!(
        !store.cached_auth("zoe|vpn", NOW + 60).await?,
        "expired at its time"
    );
    ensure!(
        !store.cached_auth("zoe|rdg", NOW).await?,
        "keys do not match by prefix"
    );
    ensure!(
        !store.cached_auth("zoe", NOW).await?,
        "keys do not match by prefix"
    );
    store.put_cached_auth("zoe|vpn", NOW + 120).await?;
    ensure!(
        store.cached_auth("zoe|vpn", NOW + 100).await?,
        "a new success extends it"
    );
    Ok(())
}

pub async fn clients_are_created_listed_and_deleted(store: Arc<dyn Store>) -> CaseResult {
    let mut vpn = new_client("vpn", "10.0.0.0/24")?;
    vpn.prompt = Prompt::Challenge;
    vpn.require_user_match = true;
    vpn.first_factor = FirstFactor::Radius;
    vpn.targets = vec!["nps-1".into(), "nps-2".into()];
    let rdg = new_client("rdg", "2001:db8::/64")?;
    let created = store.create_client(&vpn, NOW).await?;
    ensure_eq!(created.name, "vpn");
    ensure_eq!(created.address, vpn.address);
    ensure_eq!(created.secret, vpn.secret);
    ensure_eq!(
        (created.prompt, created.first_factor),
        (vpn.prompt, vpn.first_factor)
    );
    ensure_eq!(
        (
            created.require_message_authenticator,
            created.require_user_match
        ),
        (true, true)
    );
    ensure_eq!(created.created_at, NOW);
    ensure_eq!(created.targets, vpn.targets, "targets keep their order");
    store.create_client(&rdg, NOW).await?;

    let listed = store.list_clients().await?;
    let names: Vec<&str> = listed.iter().map(|c| c.name.as_str()).collect();
    ensure_eq!(names, ["rdg", "vpn"]);
    let secrets: Vec<&str> = listed.iter().map(|c| c.secret.as_str()).collect();
    ensure_eq!(
        secrets,
        [rdg.secret.as_str(), vpn.secret.as_str()],
        "secrets round-trip"
    );
    ensure_eq!(listed.last(), Some(&created));

    store.delete_client("vpn").await?;
    let names: Vec<String> = store
        .list_clients()
        .await?
        .into_iter()
        .map(|c| c.name)
        .collect();
    ensure_eq!(names, ["rdg"]);
    ensure_err!(store.delete_client("vpn").await, NotFound);
    Ok(())
}

pub async fn duplicate_client_name_is_rejected(store: Arc<dyn Store>) -> CaseResult {
    store
        .create_client(&new_client("vpn", "10.0.0.1/32")?, NOW)
        .await?;
    ensure_err!(
        store
            .create_client(&new_client("vpn", "10.0.0.2/32")?, NOW)
            .await,
        Duplicate
    );
    let listed = store.list_clients().await?;
    let address = listed.first().map(|c| c.address.to_string());
    ensure_eq!((listed.len(), address.as_deref()), (1, Some("10.0.0.1/32")));
    Ok(())
}
