//! `mfad client ...`: the RADIUS clients (VPNs, gateways, PAM hosts) mfad answers.

use super::Ctx;
use crate::cli::ClientCommand;
use crate::output;
use anyhow::{bail, Context};
use ipnet::IpNet;
use mfad_core::model::{FirstFactor, NewClient};
use mfad_core::store::StoreError;
use std::net::IpAddr;

pub async fn run(ctx: &Ctx, cmd: ClientCommand) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Add {
            name,
            address,
            secret,
            secret_file,
            first_factor,
            prompt,
            require_message_authenticator,
            require_user_match,
            code_separator,
            targets,
        } => {
            let address: IpNet = address
                .parse()
                .or_else(|_| address.parse::<IpAddr>().map(IpNet::from))
                .with_context(|| format!("--address '{address}' is not an IP address or CIDR network such as 10.0.0.0/24"))?;
            let secret = super::secret::from_args("secret", secret, secret_file.as_deref())?
                .context("give --secret-file FILE, or --secret-file - to read standard input")?;
            if secret.is_empty() {
                bail!("the shared secret is empty; give a random secret of at least 16 characters");
            }
            if secret.len() < 16 {
                eprintln!(
                    "warning: the shared secret of client {name} has {} bytes; use at least 16 random bytes (BlastRADIUS, CVE-2024-3596)",
                    secret.len()
                );
            }
            let new = NewClient {
                name: name.clone(),
                address,
                secret: secret.to_string(),
                first_factor: first_factor.parse().map_err(anyhow::Error::msg)?,
                prompt: prompt.parse().map_err(anyhow::Error::msg)?,
                require_message_authenticator,
                require_user_match,
                code_separator,
                targets,
            };
            check_targets(ctx, &new)?;
            if new.first_factor == FirstFactor::Directory && ctx.config.directory.is_none() {
                eprintln!(
                    "warning: client {name} checks passwords against the directory, but the config has no [directory] section; its users are rejected until one is added"
                );
            }
            match ctx.store.create_client(&new, ctx.now()).await {
                Err(StoreError::Duplicate(_)) => {
                    bail!("client '{name}' already exists; remove it first with 'mfad client remove {name}'")
                }
                other => other?,
            };
            outln!("added client {name} for {address}; mfad answers it within 5 seconds");
            Ok(())
        }
        ClientCommand::List { format } => {
            let clients = ctx.store.list_clients().await?;
            let rows = clients
                .iter()
                .map(|c| {
                    vec![
                        c.name.clone(),
                        c.address.to_string(),
                        c.first_factor.to_string(),
                        c.prompt.to_string(),
                        c.require_message_authenticator.to_string(),
                        c.require_user_match.to_string(),
                        c.code_separator.clone(),
                        c.targets.join(","),
                    ]
                })
                .collect();
            let headers = [
                "name",
                "address",
                "first_factor",
                "prompt",
                "require_message_authenticator",
                "require_user_match",
                "code_separator",
                "targets",
            ];
            output::print(format.format, &clients, &headers, rows)
        }
        ClientCommand::Remove { name } => {
            match ctx.store.delete_client(&name).await {
                Err(StoreError::NotFound(_)) => {
                    bail!("client '{name}' does not exist; see 'mfad client list'")
                }
                other => other?,
            };
            outln!("removed client {name}");
            Ok(())
        }
    }
}

/// A `radius` client names configured targets; other clients name none.
fn check_targets(ctx: &Ctx, client: &NewClient) -> anyhow::Result<()> {
    let configured = &ctx.config.radius.targets;
    if client.first_factor != FirstFactor::Radius {
        if !client.targets.is_empty() {
            bail!("--targets applies only with --first-factor radius; drop it or add --first-factor radius");
        }
        return Ok(());
    }
    for name in &client.targets {
        if !configured.iter().any(|t| t.name == *name) {
            bail!("target '{name}' is not configured; add a [[radius.targets]] entry with name = \"{name}\" or check the spelling");
        }
    }
    if configured.is_empty() {
        eprintln!(
            "warning: client {} forwards to target RADIUS servers, but the config has no [[radius.targets]]; its users are rejected until one is added",
            client.name
        );
    }
    Ok(())
}
