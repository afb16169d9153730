//! Guessing attacks for the lockout tests: many wrong codes and one right one, all in
//! flight at once, and what the audit log says was checked.

use crate::oath::oathtool_hotp_window;
use crate::{Mfad, Radclient};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Sends `wrong` wrong six-digit codes for `user` all at once, spread over `servers`
/// (one radclient burst each, all running together), then, once every reply is in, the
/// next right HOTP code of `seed`. Returns how many of each reply the burst got, and
/// the right code's reply.
pub fn hotp_burst(
    servers: &[SocketAddr],
    secret: &str,
    user: &str,
    seed: &str,
    wrong: usize,
) -> (BTreeMap<String, usize>, Option<String>) {
    // Codes the token may accept now (its counter is at most 20 here, look-ahead 10 and
    // the resynchronisation window beyond) are never sent as wrong ones.
    let near = oathtool_hotp_window(seed, 0, 60);
    let right = near.first().cloned().unwrap_or_default();
    let guesses: Vec<String> = (0..)
        .map(|i: u32| format!("{:06}", (i * 7919 + 123_457) % 1_000_000))
        .filter(|code| !near.contains(code))
        .take(wrong)
        .collect();
    let mut bursts: Vec<Vec<Vec<(&str, &str)>>> = vec![Vec::new(); servers.len().max(1)];
    for (i, code) in guesses.iter().enumerate() {
        if let Some(burst) = bursts.get_mut(i % servers.len().max(1)) {
            burst.push(vec![("User-Name", user), ("User-Password", code.as_str())]);
        }
    }
    let replies = std::thread::scope(|scope| {
        let running: Vec<_> = servers
            .iter()
            .zip(&bursts)
            .map(|(addr, burst)| {
                scope.spawn(move || Radclient::new(*addr, secret).burst("auth", burst))
            })
            .collect();
        running
            .into_iter()
            .flat_map(|r| r.join().unwrap_or_default())
            .collect::<Vec<_>>()
    });
    let mut counts = BTreeMap::new();
    for (code, n) in replies {
        *counts.entry(code).or_default() += n;
    }
    let after = servers.first().and_then(|addr| {
        Radclient::new(*addr, secret)
            .send("auth", &[("User-Name", user), ("User-Password", &right)])
            .code
    });
    (counts, after)
}

/// How many audit records of `user` there are per reason (`wrong_code`, `locked`,
/// `accepted`, ...), read with `mfad log --format json`.
pub fn audit_reasons(node: &Mfad, user: &str) -> BTreeMap<String, usize> {
    let log = node.cli_ok([
        "log", "--user", user, "--limit", "10000", "--format", "json",
    ]);
    let records: Vec<serde_json::Value> = serde_json::from_str(&log).unwrap_or_default();
    let mut counts = BTreeMap::new();
    for record in records {
        let reason = record["reason"].as_str().unwrap_or_default().to_owned();
        *counts.entry(reason).or_default() += 1;
    }
    counts
}
