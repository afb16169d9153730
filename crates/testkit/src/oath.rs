//! `oathtool` (OATH Toolkit) as an independent oracle for HOTP and TOTP codes.

use std::process::Command;

use crate::require_tool;

/// The TOTP code (RFC 6238) for a base32 secret at `unix_time`. `algorithm` is `SHA1`,
/// `SHA256` or `SHA512` (any case); `period` is the time step in seconds.
pub fn oathtool_totp(
    secret_b32: &str,
    unix_time: u64,
    digits: u32,
    algorithm: &str,
    period: u64,
) -> String {
    let mode = algorithm.to_ascii_uppercase();
    assert!(
        matches!(mode.as_str(), "SHA1" | "SHA256" | "SHA512"),
        "oathtool knows SHA1, SHA256 and SHA512, not {algorithm}"
    );
    oathtool(&[
        format!("--totp={mode}"),
        "--base32".to_owned(),
        format!("--digits={digits}"),
        format!("--time-step-size={period}s"),
        // `@N` is seconds since the epoch, independent of the time zone.
        format!("--now=@{unix_time}"),
        secret_b32.to_owned(),
    ])
}

/// The HOTP code (RFC 4226, HMAC-SHA1) for a base32 secret at `counter`.
pub fn oathtool_hotp(secret_b32: &str, counter: u64, digits: u32) -> String {
    oathtool(&[
        "--base32".to_owned(),
        format!("--digits={digits}"),
        format!("--counter={counter}"),
        secret_b32.to_owned(),
    ])
}

/// The HOTP codes for counters `from` to `from + window`, in order (`oathtool -w`).
pub fn oathtool_hotp_window(secret_b32: &str, from: u64, window: u64) -> Vec<String> {
    oathtool(&[
        "--base32".to_owned(),
        format!("--counter={from}"),
        format!("--window={window}"),
        secret_b32.to_owned(),
    ])
    .lines()
    .map(str::to_owned)
    .collect()
}

fn oathtool(args: &[String]) -> String {
    let mut command = Command::new(require_tool("oathtool"));
    command.args(args);
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        panic!(
            "oathtool {} failed with {}: {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    stdout.trim().to_owned()
}
