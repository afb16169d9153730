//! `mfad client ...`: the RADIUS clients (VPNs, gateways, PAM hosts) mfad answers.

use super::Ctx;
use crate::cli::ClientCommand;
use crate::output;
use anyhow::Context;
use mfad_core::model::NewClient;
use mfad_core::service::clients::parse_address;

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
            let address = parse_address(&address)?;
            let secret = super::secret::from_args("secret", secret, secret_file.as_deref())?
                .context("give --secret-file FILE, or --secret-file - to read standard input")?;
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
            let clients = ctx.clients();
            for notice in clients.check(&new)? {
                eprintln!("warning: {notice}");
            }
            clients.add(&new).await?;
            outln!("added client {name} for {address}; mfad answers it within 5 seconds");
            Ok(())
        }
        ClientCommand::List { format } => {
            let clients = ctx.clients().list().await?;
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
            ctx.clients().remove(&name).await?;
            outln!("removed client {name}");
            Ok(())
        }
    }
}
