//! Conformance cases for RADIUS clients: records, sealed secrets, unique names.

use super::{ensure_eq, ensure_err, new_client, CaseResult, NOW};
use mfad_core::model::{FirstFactor, Prompt};
use mfad_core::store::Store;
use std::sync::Arc;

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
