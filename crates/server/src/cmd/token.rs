//! `mfad token ...`: software tokens with otpauth:// URIs, hardware token import, resync.

use super::Ctx;
use crate::cli::{OutputFormat, TokenCommand};
use crate::output;
use anyhow::{bail, Context};
use mfad_core::clock::{random_array, Random};
use mfad_core::import::{self, Format, ImportKeys};
use mfad_core::model::{NewToken, Secret, Token};
use mfad_core::otp::{Algorithm, OtpKind};
use mfad_core::otpauth::{encode_base32, parse_base32_secret, OtpAuthUri};
use mfad_core::store::StoreError;
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
            let spec = Spec {
                kind: &kind,
                secret: secret.as_deref().map(String::as_str),
                digits,
                period,
                algorithm: &algorithm,
            };
            add(ctx, &user, spec, serial, qr, format.format).await
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
            let token = token(ctx, &serial).await?;
            ctx.store.assign_token(token.id, Some(user.id)).await?;
            outln!("assigned token {} to {}", token.serial, user.username);
            Ok(())
        }
        TokenCommand::Resync { user, code1, code2 } => {
            let user = ctx.user(&user).await?;
            let (serial, next) = ctx.engine.resync(&user, &code1, &code2).await?;
            outln!("resynchronised token {serial}: the next code expected is number {next}");
            Ok(())
        }
        TokenCommand::List { user, format } => list(ctx, user.as_deref(), format.format).await,
        TokenCommand::Delete { serial } => {
            let token = token(ctx, &serial).await?;
            ctx.store.delete_token(token.id).await?;
            outln!("deleted token {}", token.serial);
            Ok(())
        }
    }
}

async fn token(ctx: &Ctx, serial: &str) -> anyhow::Result<Token> {
    ctx.store
        .token_by_serial(serial)
        .await?
        .with_context(|| format!("token '{serial}' does not exist; see 'mfad token list'"))
}

struct Spec<'a> {
    kind: &'a str,
    secret: Option<&'a str>,
    digits: u32,
    period: u64,
    algorithm: &'a str,
}

async fn add(
    ctx: &Ctx,
    name: &str,
    spec: Spec<'_>,
    serial: Option<String>,
    qr: bool,
    format: OutputFormat,
) -> anyhow::Result<()> {
    let user = ctx.user(name).await?;
    let kind: OtpKind = spec.kind.parse().map_err(anyhow::Error::msg)?;
    let algorithm: Algorithm = spec.algorithm.parse().map_err(anyhow::Error::msg)?;
    if !matches!(spec.digits, 6 | 8) {
        bail!("--digits must be 6 or 8 (what authenticator apps support)");
    }
    if kind == OtpKind::Totp && !matches!(spec.period, 30 | 60) {
        bail!("--period must be 30 or 60 seconds");
    }
    let secret = match spec.secret {
        Some(b32) => parse_base32_secret(b32).map_err(|e| anyhow::anyhow!("--secret: {e}"))?,
        // 160 bits, the length RFC 4226 §4 (R6) recommends.
        None => random_array::<20>(&crate::system::OsRandom).to_vec(),
    };
    let serial = serial.unwrap_or_else(|| new_serial(kind, &crate::system::OsRandom));
    let new = NewToken {
        serial: serial.clone(),
        user_id: Some(user.id),
        kind,
        algorithm,
        digits: spec.digits,
        period: spec.period,
        secret: Secret::new(secret.clone()),
        next: 0,
    };
    match ctx
        .store
        .create_tokens(std::slice::from_ref(&new), ctx.now())
        .await
    {
        Err(StoreError::Duplicate(_)) => {
            bail!("token '{serial}' already exists; choose another --serial")
        }
        other => other?,
    };
    let account = if user.email.is_empty() {
        &user.username
    } else {
        &user.email
    };
    let uri = OtpAuthUri {
        kind,
        issuer: &ctx.config.server.issuer,
        account,
        secret: &secret,
        algorithm,
        digits: spec.digits,
        period: spec.period,
        counter: 0,
    }
    .to_uri();
    if format == OutputFormat::Json {
        let value = serde_json::json!({ "serial": serial, "user": user.username, "uri": uri });
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    outln!("created {kind} token {serial} for {}", user.username);
    outln!("{uri}");
    if qr {
        outln!("{}", qr_text(&uri)?);
        outln!(
            "Scan the code with the authenticator app, or enter the secret {}",
            encode_base32(&secret)
        );
    }
    Ok(())
}

fn new_serial(kind: OtpKind, rng: &dyn Random) -> String {
    let bytes = random_array::<4>(rng);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{kind}-{hex}")
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
    match ctx.store.create_tokens(&tokens, ctx.now()).await {
        Err(StoreError::Duplicate(what)) => {
            bail!(
                "nothing imported from {}: {what} already exists",
                file.display()
            )
        }
        other => other?,
    };
    outln!(
        "imported {} tokens from {}; assign them with 'mfad token assign SERIAL USER'",
        tokens.len(),
        file.display()
    );
    Ok(())
}

async fn list(ctx: &Ctx, user: Option<&str>, format: OutputFormat) -> anyhow::Result<()> {
    let tokens = match user {
        Some(name) => ctx.store.tokens_for_user(ctx.user(name).await?.id).await?,
        None => ctx.store.list_tokens().await?,
    };
    let names: HashMap<i64, String> = ctx
        .store
        .list_users()
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
