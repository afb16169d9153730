//! Load for the lockout and durability tests: many wrong codes in flight at once, many
//! right ones until the server is killed, and what the audit log says.

use crate::oath::oathtool_hotp_window;
use crate::{nas, Mfad, Radclient, Running};
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::Duration;

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

/// What a [`hotp_burst`] of `sent` wrong codes against a lockout of `max_failures` must
/// leave: every guess and the right code after them rejected, and in the audit log no
/// more codes checked than `max_failures`, the rest rejected as locked.
pub fn assert_lockout_held(
    node: &Mfad,
    user: &str,
    burst: &(BTreeMap<String, usize>, Option<String>),
    sent: usize,
    max_failures: usize,
) {
    let (replies, right) = burst;
    assert_eq!(replies.get("Access-Reject"), Some(&sent), "{replies:?}");
    assert_eq!(
        right.as_deref(),
        Some("Access-Reject"),
        "locked: the right code too"
    );
    let reasons = audit_reasons(node, user);
    let count = |reason: &str| reasons.get(reason).copied().unwrap_or(0);
    assert_eq!(
        count("wrong_code") + count("accepted"),
        max_failures,
        "codes checked: {reasons:?}"
    );
    assert_eq!(
        count("locked"),
        sent + 1 - max_failures,
        "rejected as locked: {reasons:?}"
    );
}

/// Asserts that each of `users` has at least as many `accepted` audit records as the
/// Accepts its client saw (`seen`, from [`accepts_until_killed`]).
pub fn assert_every_accept_recorded(node: &Mfad, users: &[String], seen: &[usize]) {
    for (user, &count) in users.iter().zip(seen) {
        let reasons = audit_reasons(node, user);
        assert!(
            reasons.get("accepted").copied().unwrap_or(0) >= count,
            "{user}: the client saw {count} Accepts, the log has {reasons:?}"
        );
    }
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

/// Each of `users` (HOTP tokens with `seed`, counters at 0) logs in with its next code
/// as fast as the server answers, one thread each, through the RFC client in [`nas`];
/// once `kill_after` Accepts have come back, the server is killed with SIGKILL while the
/// clients keep sending. Returns how many Accepts each user saw.
pub fn accepts_until_killed(
    server: Running,
    secret: &str,
    seed: &str,
    users: &[String],
    kill_after: usize,
) -> Vec<usize> {
    let addr = server.radius_addr();
    let codes = oathtool_hotp_window(seed, 0, 999);
    let (accepted, seen) = mpsc::channel::<()>();
    let counts = std::thread::scope(|scope| {
        let clients: Vec<_> = users
            .iter()
            .enumerate()
            .map(|(i, user)| {
                let (accepted, codes) = (accepted.clone(), &codes);
                scope.spawn(move || {
                    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a client socket");
                    let _ = socket.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut count = 0;
                    for (counter, code) in codes.iter().enumerate() {
                        let mut auth = [u8::try_from(i % 256).unwrap_or(0); 16];
                        auth[..8].copy_from_slice(&(counter as u64).to_be_bytes());
                        let request = nas::Request::access(
                            (counter % 256) as u8,
                            auth,
                            secret.as_bytes(),
                            user,
                            Some(code),
                        );
                        if socket
                            .send_to(&request.encode(secret.as_bytes()), addr)
                            .is_err()
                        {
                            break;
                        }
                        let mut buf = [0u8; 4096];
                        let Ok((n, _)) = socket.recv_from(&mut buf) else {
                            break; // the server is gone
                        };
                        let reply = nas::verify_reply(
                            buf.get(..n).unwrap_or_default(),
                            &auth,
                            secret.as_bytes(),
                        )
                        .unwrap_or_else(|e| panic!("{user}: a reply that does not verify: {e}"));
                        assert_eq!(reply.code, nas::ACCESS_ACCEPT, "{user}: code {counter}");
                        count += 1;
                        if accepted.send(()).is_err() {
                            break;
                        }
                    }
                    count
                })
            })
            .collect();
        drop(accepted);
        for _ in 0..kill_after {
            if seen.recv().is_err() {
                break;
            }
        }
        server.kill9();
        drop(seen);
        clients
            .into_iter()
            .map(|c| c.join().unwrap_or_else(|_| panic!("a client failed")))
            .collect::<Vec<usize>>()
    });
    assert!(
        counts.iter().sum::<usize>() >= kill_after,
        "the load ended before the server was killed: {counts:?}"
    );
    counts
}
