//! The load generator: C concurrent RADIUS clients on UDP, each with its own socket and
//! its own slice of the users, measuring every request's latency.

use crate::setup::{key, username, Site, SECRET};
use mfad_core::otp::{format_code, hotp, Algorithm};
use mfad_radius_proto::{
    attr, encode_request, encrypt_user_password, verify_response, Code, Packet,
};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// mfad: the user's next HOTP code; with `wrong_every_other`, every second request
    /// of a user carries a wrong code.
    Hotp { wrong_every_other: bool },
    /// FreeRADIUS: the user's PAP password.
    Pap,
}

#[derive(Default)]
pub struct Report {
    pub sent: u64,
    /// Requests that should succeed.
    pub valid: u64,
    /// Accepts for requests that should succeed.
    pub accepted: u64,
    /// Accepts for requests that should fail (must stay 0).
    pub wrongly_accepted: u64,
    pub timeouts: u64,
    pub elapsed: Duration,
    /// CPU time the servers (all nodes together) and this load generator spent during
    /// the run.
    pub cpu: CpuUse,
    latencies_us: Vec<u32>,
}

/// CPU time of the server under test and of the load generator, from `/proc`.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuUse {
    pub server: Duration,
    pub generator: Duration,
}

impl CpuUse {
    /// Starts measuring the `servers` processes (summed, so several nodes count as one
    /// server) and this process.
    pub fn start(servers: &[u32]) -> impl FnOnce() -> CpuUse {
        let servers: Vec<String> = servers.iter().map(u32::to_string).collect();
        let total = move || -> Duration { servers.iter().map(|pid| cpu_time(pid)).sum() };
        let before = (total(), cpu_time("self"));
        move || CpuUse {
            server: total().saturating_sub(before.0),
            generator: cpu_time("self").saturating_sub(before.1),
        }
    }
}

/// User plus system time of every thread of a process (`/proc/PID/stat`, fields 14
/// and 15, in clock ticks of 1/100 s on Linux).
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after it do not.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

impl Report {
    pub fn rate(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn percentile(&self, p: f64) -> f64 {
        let n = self.latencies_us.len();
        if n == 0 {
            return 0.0;
        }
        let i = ((n as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies_us.get(i).copied().unwrap_or_default()) / 1000.0
    }

    /// Microseconds of `cpu` per request sent.
    fn per_request(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() * 1e6 / self.sent.max(1) as f64
    }

    pub fn header() -> String {
        format!(
            "{:<34} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12} {:>12}",
            "run",
            "success/s",
            "p50 ms",
            "p99 ms",
            "success",
            "timeouts",
            "bad acc.",
            "server µs/r",
            "loadgen µs/r"
        )
    }

    pub fn line(&self, name: &str) -> String {
        format!(
            "{:<34} {:>12.0} {:>9.2} {:>9.2} {:>8.2}% {:>9} {:>9} {:>12.1} {:>12.1}",
            name,
            self.rate(),
            self.percentile(0.50),
            self.percentile(0.99),
            100.0 * self.accepted as f64 / self.valid.max(1) as f64,
            self.timeouts,
            self.wrongly_accepted,
            self.per_request(self.cpu.server),
            self.per_request(self.cpu.generator),
        )
    }
}

thread_local! {
    /// The last code accepted per user, for the replay check after a restart.
    static LAST_ACCEPTED: RefCell<Vec<Option<String>>> = const { RefCell::new(Vec::new()) };
    /// Next HOTP counter per user; persists across runs against the same server.
    static COUNTERS: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// One request and its answer; None on timeout.
async fn exchange(
    socket: &UdpSocket,
    id: u8,
    user: &str,
    password: &str,
) -> anyhow::Result<Option<Code>> {
    let mut authenticator = [0u8; 16];
    getrandom::getrandom(&mut authenticator)?;
    let mut packet = Packet::new(Code::AccessRequest, id, authenticator);
    packet.add(attr::USER_NAME, user);
    packet.add(
        attr::USER_PASSWORD,
        encrypt_user_password(password.as_bytes(), SECRET.as_bytes(), &authenticator)?,
    );
    let bytes = encode_request(&packet, SECRET.as_bytes(), true)?;
    socket.send(&bytes).await?;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
            Err(_) => return Ok(None),
            Ok(n) => {
                let reply = buf.get(..n?).unwrap_or_default();
                // A late answer to an earlier, timed-out request fails this check.
                if reply.get(1) == Some(&id)
                    && verify_response(reply, &authenticator, SECRET.as_bytes())
                {
                    return Ok(reply.first().map(|&c| Code::from(c)));
                }
            }
        }
    }
}

/// Worker `i` sends to `targets[i % targets.len()]`, so the load is spread evenly.
pub async fn run(
    targets: &[SocketAddr],
    server_pids: &[u32],
    site: &Site,
    mode: Mode,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Report> {
    COUNTERS.with(|c| c.borrow_mut().resize(site.users, 0));
    LAST_ACCEPTED.with(|c| c.borrow_mut().resize(site.users, None));
    let report = Rc::new(RefCell::new(Report::default()));
    let cpu = CpuUse::start(server_pids);
    let start = Instant::now();
    let stop = start + duration;
    let local = tokio::task::LocalSet::new();
    for worker in 0..concurrency {
        let report = report.clone();
        let users = site.users;
        let Some(&target) = targets.get(worker % targets.len().max(1)) else {
            anyhow::bail!("no target to send to");
        };
        local.spawn_local(async move {
            if let Err(err) =
                worker_loop(worker, concurrency, users, target, mode, stop, &report).await
            {
                eprintln!("worker {worker} stopped: {err:#}");
            }
        });
    }
    local.await;
    let mut report = Rc::try_unwrap(report)
        .map_err(|_| anyhow::anyhow!("workers still running"))?
        .into_inner();
    report.elapsed = start.elapsed();
    report.cpu = cpu();
    report.latencies_us.sort_unstable();
    Ok(report)
}

async fn worker_loop(
    worker: usize,
    concurrency: usize,
    users: usize,
    target: SocketAddr,
    mode: Mode,
    stop: Instant,
    report: &RefCell<Report>,
) -> anyhow::Result<()> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    socket.connect(target).await?;
    let mine: Vec<usize> = (worker..users).step_by(concurrency).collect();
    let mut turn: u64 = 0;
    let mut id: u8 = 0;
    while Instant::now() < stop && !mine.is_empty() {
        let Some(&user) = mine.get((turn as usize) % mine.len()) else {
            break;
        };
        let name = username(user);
        let (password, valid) = match mode {
            Mode::Pap => (format!("pw-{name}"), true),
            Mode::Hotp { wrong_every_other } => {
                let counter = COUNTERS.with(|c| c.borrow().get(user).copied().unwrap_or_default());
                // Half of every pass is wrong, and each user alternates between passes.
                let (pass, position) = (turn / mine.len() as u64, turn % mine.len() as u64);
                let wrong = wrong_every_other && (pass + position) % 2 == 1;
                if wrong {
                    (wrong_code(&key(user), counter), false)
                } else {
                    COUNTERS.with(|c| c.borrow_mut().get_mut(user).map(|n| *n += 1));
                    (
                        format_code(hotp(Algorithm::Sha1, &key(user), counter, 6), 6),
                        true,
                    )
                }
            }
        };
        turn += 1;
        id = id.wrapping_add(1);
        let began = Instant::now();
        let answer = exchange(&socket, id, &name, &password).await?;
        let micros = u32::try_from(began.elapsed().as_micros()).unwrap_or(u32::MAX);
        let mut r = report.borrow_mut();
        r.sent += 1;
        r.latencies_us.push(micros);
        r.valid += u64::from(valid);
        match answer {
            None => r.timeouts += 1,
            Some(Code::AccessAccept) if valid => {
                r.accepted += 1;
                if matches!(mode, Mode::Hotp { .. }) {
                    LAST_ACCEPTED
                        .with(|c| c.borrow_mut().get_mut(user).map(|s| *s = Some(password)));
                }
            }
            Some(Code::AccessAccept) => r.wrongly_accepted += 1,
            Some(_) => {}
        }
    }
    Ok(())
}

/// A code that matches none in the server's look-ahead window: a random six-digit code
/// would hit one of those ten codes with probability 1e-5 and count as a false "bad
/// accept" in a long run.
fn wrong_code(key: &[u8], counter: u64) -> String {
    let window: Vec<u32> = (counter..counter + 10)
        .map(|c| hotp(Algorithm::Sha1, key, c, 6))
        .collect();
    let mut candidate = hotp(Algorithm::Sha1, key, counter + 100_000, 6);
    while window.contains(&candidate) {
        candidate = (candidate + 1) % 1_000_000;
    }
    format_code(candidate, 6)
}

pub struct Replay {
    pub sent: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Requests with no valid answer in time: a server that does not answer proves
    /// nothing about replay protection.
    pub unanswered: u64,
}

impl Replay {
    /// Every replayed code was answered, and with an Access-Reject; and there was one to
    /// replay.
    pub fn held(&self) -> bool {
        self.sent > 0 && self.rejected == self.sent
    }
}

/// Sends each user's last accepted code again (after the server was killed and restarted).
///
/// A code that is also one of the next ten codes of its token (the server's look-ahead
/// window; a chance of about 1e-5 for each) is a fresh code there, rightly accepted, so
/// it is not sent: every code that is sent must be rejected.
pub async fn replay_last_accepted(target: SocketAddr, site: &Site) -> anyhow::Result<Replay> {
    let counters = COUNTERS.with(|c| c.borrow().clone());
    let codes: Vec<(usize, String)> = LAST_ACCEPTED.with(|c| {
        c.borrow()
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.clone().map(|s| (i, s)))
            .filter(|(user, code)| {
                let next = counters.get(*user).copied().unwrap_or_default();
                !(next..next + 10)
                    .any(|c| format_code(hotp(Algorithm::Sha1, &key(*user), c, 6), 6) == *code)
            })
            .take(2000)
            .collect()
    });
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    socket.connect(target).await?;
    let mut out = Replay {
        sent: 0,
        accepted: 0,
        rejected: 0,
        unanswered: 0,
    };
    for (n, (user, code)) in codes.iter().enumerate() {
        let answer = exchange(&socket, n as u8, &username(*user), code).await?;
        out.sent += 1;
        match answer {
            Some(Code::AccessReject) => out.rejected += 1,
            Some(Code::AccessAccept) => {
                out.accepted += 1;
                eprintln!("accepted again: {} with code {code}", username(*user));
            }
            Some(other) => eprintln!("answered {other:?}: {} with code {code}", username(*user)),
            None => out.unanswered += 1,
        }
    }
    let _ = site;
    Ok(out)
}
