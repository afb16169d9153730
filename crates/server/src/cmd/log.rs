//! `mfad log`: the audit log, filtered, as a table, CSV or JSON.

use super::Ctx;
use crate::cli::{LogArgs, OutputFormat};
use crate::output;
use anyhow::Context;
use mfad_core::audit::AuditQuery;
use mfad_core::engine::Reason;

/// How many recent records `--fraud` looks through.
const FRAUD_SCAN: u32 = 100_000;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub async fn run(ctx: &Ctx, args: LogArgs) -> anyhow::Result<()> {
    let since_ms = args
        .since
        .as_deref()
        .map(|s| parse_since(s, ctx.clock.now_ms()))
        .transpose()?;
    // Fraud reports are rare among all records: read a wide window and keep only them.
    let query = AuditQuery {
        username: args.user.as_deref().map(mfad_core::username::normalise),
        since_ms,
        limit: Some(if args.fraud {
            FRAUD_SCAN.max(args.limit)
        } else {
            args.limit
        }),
    };
    let mut records = ctx.store.query_audit(&query).await?;
    if args.fraud {
        records.retain(|r| r.reason == Reason::FraudReported.as_str());
        records.truncate(usize::try_from(args.limit).unwrap_or(usize::MAX));
    }
    match args.format.format {
        OutputFormat::Table => {
            let headers = [
                "time",
                "user",
                "result",
                "reason",
                "method",
                "device",
                "client",
                "client_ip",
                "server",
            ];
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|r| {
                    vec![
                        time_ms(r.time_ms),
                        r.username.clone(),
                        r.result.map(|x| x.to_string()).unwrap_or_default(),
                        r.reason.clone(),
                        r.method.clone(),
                        r.device.clone(),
                        r.client_name.clone(),
                        r.client_ip.clone(),
                        r.server_name.clone(),
                    ]
                })
                .collect();
            out!("{}", output::table(&headers, &rows));
        }
        OutputFormat::Json => outln!("{}", serde_json::to_string_pretty(&records)?),
        OutputFormat::Csv => {
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|r| {
                    vec![
                        time_ms(r.time_ms),
                        r.id.clone(),
                        r.username.clone(),
                        r.given_name.clone(),
                        r.surname.clone(),
                        r.email.clone(),
                        r.phone.clone(),
                        r.device.clone(),
                        r.method.clone(),
                        r.mode.clone(),
                        r.result.map(|x| x.as_str()).unwrap_or_default().into(),
                        r.reason.clone(),
                        r.server_name.clone(),
                        r.server_ip.clone(),
                        r.client_name.clone(),
                        r.client_ip.clone(),
                        r.channel.clone(),
                        r.calling_station.clone(),
                    ]
                })
                .collect();
            out!("{}", output::csv(&CSV_HEADERS, &rows)?);
        }
    }
    Ok(())
}

const CSV_HEADERS: [&str; 18] = [
    "time",
    "id",
    "username",
    "given_name",
    "surname",
    "email",
    "phone",
    "device",
    "method",
    "mode",
    "result",
    "reason",
    "server_name",
    "server_ip",
    "client_name",
    "client_ip",
    "channel",
    "calling_station",
];

fn time_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// `--since`: RFC 3339, a date (midnight UTC), or an age like `30m`, `12h`, `7d`.
fn parse_since(s: &str, now_ms: i64) -> anyhow::Result<i64> {
    let s = s.trim();
    let bad = || {
        format!("--since '{s}' is not a time; use 2026-11-25T08:00:00Z, 2026-11-25, or an age such as 30m, 12h, 7d")
    };
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return i64::try_from(t.unix_timestamp_nanos() / 1_000_000).with_context(bad);
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(s, &date_format) {
        return Ok(d.midnight().assume_utc().unix_timestamp() * 1000);
    }
    let split = s.len().checked_sub(1).with_context(bad)?;
    let (number, unit) = s.split_at(split);
    let n: i64 = number.parse().ok().with_context(bad)?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => anyhow::bail!(bad()),
    };
    Ok(now_ms - secs * 1000)
}

#[cfg(test)]
mod tests {
    use super::parse_since;

    #[test]
    fn since_accepts_times_dates_and_ages() {
        assert_eq!(
            parse_since("2026-11-25T00:00:00Z", 0).unwrap(),
            1_795_564_800_000
        );
        assert_eq!(parse_since("2026-11-25", 0).unwrap(), 1_795_564_800_000);
        assert_eq!(
            parse_since("2h", 10_000_000).unwrap(),
            10_000_000 - 7_200_000
        );
        assert!(parse_since("yesterday", 0).is_err());
    }
}
