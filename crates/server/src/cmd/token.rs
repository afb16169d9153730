//! `mfad token ...`: software tokens with otpauth:// URIs, hardware token import, resync.

use super::Ctx;
use crate::cli::{OutputFormat, TokenCommand};
use crate::output;
use anyhow::Context;
use mfad_core::import::{self, Format, ImportKeys};
use mfad_core::otp::{Algorithm, OtpKind};
use mfad_core::otpauth::encode_base32;
use mfad_core::service;
use mfad_core::service::tokens::TokenSpec;
use std::collections::HashMap;
use std::path::Path;

pub async fn run(ctx: &Ctx, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Add {
            user,
            kind,
            secret,
            secret_file,
            digits,
            period,
            algorithm,
            serial,
            qr,
            format,
        } => {
            let secret = super::secret::from_args("secret", secret, secret_file.as_deref())?;
            let args = Args {
                kind: &kind,
                secret: secret.as_deref().map(String::as_str),
                digits,
                period,
                algorithm: &algorithm,
            };
            add(ctx, &user, args, serial, qr, format.format).await
        }
        TokenCommand::Import {
            file,
            format,
            psk_file,
            password_file,
        } => {
            import(
                ctx,
                &file,
                format.as_deref(),
                psk_file.as_deref(),
                password_file.as_deref(),
            )
            .await
        }
        TokenCommand::Assign { serial, user } => {
            let user = ctx.user(&user).await?;
            let token = ctx.tokens().assign(&serial, &user).await?;
            outln!("assigned token {} to {}", token.serial, user.username);
            Ok(())
        }
        TokenCommand::Resync { user, code1, code2 } => {
            let user = ctx.user(&user).await?;
            let (serial, next) = ctx.tokens().resync(&user, &code1, &code2).await?;
            outln!("resynchronised token {serial}: the next code expected is number {next}");
            Ok(())
        }
        TokenCommand::List { user, format } => list(ctx, user.as_deref(), format.format).await,
        TokenCommand::Delete { serial } => {
            let token = ctx.tokens().delete(&serial).await?;
            outln!("deleted token {}", token.serial);
            Ok(())
        }
    }
}

/// `mfad token add`'s arguments as typed.
struct Args<'a> {
    kind: &'a str,
    secret: Option<&'a str>,
    digits: u32,
    period: u64,
    algorithm: &'a str,
}

async fn add(
    ctx: &Ctx,
    name: &str,
    args: Args<'_>,
    serial: Option<String>,
    qr: bool,
    format: OutputFormat,
) -> anyhow::Result<()> {
    let user = ctx.user(name).await?;
    let spec = TokenSpec {
        kind: args.kind.parse::<OtpKind>().map_err(anyhow::Error::msg)?,
        algorithm: args
            .algorithm
            .parse::<Algorithm>()
            .map_err(anyhow::Error::msg)?,
        digits: args.digits,
        period: args.period,
        secret: args.secret,
        serial,
    };
    let created = ctx.tokens().add(&user, spec).await?;
    let (serial, uri) = (&created.serial, &created.uri);
    if format == OutputFormat::Json {
        let value = serde_json::json!({ "serial": serial, "user": user.username, "uri": uri });
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    outln!(
        "created {} token {serial} for {}",
        created.kind,
        user.username
    );
    outln!("{uri}");
    if qr {
        outln!("{}", qr_text(uri)?);
        outln!(
            "Scan the code with the authenticator app, or enter the secret {}",
            encode_base32(&created.secret)
        );
    }
    Ok(())
}

/// The QR code in terminal characters (two modules per character row, with a quiet zone).
fn qr_text(uri: &str) -> anyhow::Result<String> {
    let code = qrcode::QrCode::with_error_correction_level(uri, qrcode::EcLevel::M)
        .context("the URI is too long for a QR code")?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

async fn import(
    ctx: &Ctx,
    file: &Path,
    format: Option<&str>,
    psk_file: Option<&Path>,
    password_file: Option<&Path>,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let format = match format {
        Some("pskc") => Format::Pskc,
        Some("csv") => Format::Csv,
        _ => import::detect(&bytes),
    };
    let mut keys = ImportKeys::default();
    if let Some(path) = psk_file {
        let text = super::secret::read(path, "--psk-file")?;
        let psk = data_encoding::HEXLOWER_PERMISSIVE
            .decode(text.as_bytes())
            .with_context(|| format!("{} must hold the pre-shared key in hex", path.display()))?;
        keys.psk = Some(psk);
    }
    if let Some(path) = password_file {
        keys.password = Some(super::secret::read(path, "--password-file")?.to_string());
    }
    let tokens = import::parse(&bytes, format, &keys)
        .with_context(|| format!("nothing imported from {}", file.display()))?;
    let imported = match ctx.tokens().import(&tokens).await {
        Err(err @ service::Error::ImportDuplicate(_)) => {
            anyhow::bail!("nothing imported from {}: {err}", file.display())
        }
        other => other?,
    };
    outln!(
        "imported {imported} tokens from {}; assign them with 'mfad token assign SERIAL USER'",
        file.display()
    );
    Ok(())
}

async fn list(ctx: &Ctx, user: Option<&str>, format: OutputFormat) -> anyhow::Result<()> {
    let tokens = match user {
        Some(name) => ctx.tokens().list(Some(&ctx.user(name).await?)).await?,
        None => ctx.tokens().list(None).await?,
    };
    let names: HashMap<i64, String> = ctx
        .users()
        .list()
        .await?
        .into_iter()
        .map(|u| (u.id, u.username))
        .collect();
    let rows = tokens
        .iter()
        .map(|t| {
            vec![
                t.serial.clone(),
                t.kind.to_string(),
                t.user_id
                    .and_then(|id| names.get(&id).cloned())
                    .unwrap_or_else(|| "-".into()),
                t.algorithm.to_string(),
                t.digits.to_string(),
                if t.kind == OtpKind::Totp {
                    t.period.to_string()
                } else {
                    "-".into()
                },
                t.next.to_string(),
            ]
        })
        .collect();
    let headers = [
        "serial",
        "type",
        "user",
        "algorithm",
        "digits",
        "period",
        "next",
    ];
    output::print(format, &tokens, &headers, rows)
}
