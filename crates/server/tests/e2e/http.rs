//! End to end: the HTTP listeners of `mfad serve` as curl, openssl and a provider see
//! them: TLS with the operator's certificate and with the generated one, plain HTTP
//! only on loopback, the surfaces each listener serves, limits that keep slow clients
//! from starving a signed webhook, and `/metrics` counting RADIUS logins.

// Tests report failures by panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mfad_testkit::{FakeTwilio, Mfad, Radclient, Running};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "a-shared-secret-of-28-bytes!";

fn mfad() -> Mfad {
    Mfad::new(Path::new(env!("CARGO_BIN_EXE_mfad")))
}

/// One plain-HTTP loopback listener serving `surfaces`, after `http` keys.
fn plain_listener(http: &str, surfaces: &str) -> String {
    format!(
        "{http}\n[[http.listeners]]\nlisten = \"127.0.0.1:0\"\nserve = [{surfaces}]\ntls = false\n"
    )
}

/// Runs a command to completion; (success, stdout, stderr).
fn run(program: &str, args: &[&str], input: &[u8]) -> (bool, String, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `curl` with a time limit; (success, headers and body).
fn curl(args: &[&str]) -> (bool, String) {
    let mut all = vec!["-sS", "-D", "-", "--max-time", "10"];
    all.extend_from_slice(args);
    let (ok, out, err) = run("curl", &all, b"");
    (ok, format!("{out}{err}"))
}

/// The status code of curl's output (`HTTP/1.1 200 OK`).
fn status(output: &str) -> u16 {
    output
        .lines()
        .find_map(|l| l.strip_prefix("HTTP/1.1 "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// curl's arguments to reach `https://localhost:PORT` at `addr`, trusting `ca`.
fn https(addr: SocketAddr, path: &str, ca: &Path) -> (bool, String) {
    let url = format!("https://localhost:{}{path}", addr.port());
    let resolve = format!("localhost:{}:{}", addr.port(), addr.ip());
    curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        "--resolve",
        &resolve,
        &url,
    ])
}

/// The certificate the listener at `addr` presents, as `openssl s_client` verifies it
/// against `ca`: (s_client's output, the SHA-256 fingerprint of the certificate).
fn s_client(addr: SocketAddr, ca: &Path) -> (String, String) {
    let connect = addr.to_string();
    let (_, out, err) = run(
        "openssl",
        &[
            "s_client",
            "-connect",
            &connect,
            "-servername",
            "localhost",
            "-CAfile",
            ca.to_str().unwrap(),
            "-verify_return_error",
        ],
        b"",
    );
    let (ok, fingerprint, why) = run(
        "openssl",
        &["x509", "-noout", "-fingerprint", "-sha256"],
        out.as_bytes(),
    );
    assert!(ok, "no certificate from s_client: {why}\n{out}\n{err}");
    (format!("{out}{err}"), after_equals(&fingerprint))
}

/// `sha256 Fingerprint=AB:CD...` -> `AB:CD...`.
fn after_equals(line: &str) -> String {
    line.trim()
        .split_once('=')
        .map(|(_, f)| f.to_uppercase())
        .unwrap_or_default()
}

/// The fingerprint mfad logged for the listener at `addr`.
fn logged_fingerprint(server: &Running, addr: SocketAddr) -> String {
    let marker = format!("http listener {addr} uses");
    server.wait_for_log(&marker, Duration::from_secs(10));
    let logs = server.logs();
    let line = logs
        .lines()
        .find(|l| l.contains(&marker))
        .unwrap_or_else(|| panic!("no `{marker}` line:\n{logs}"));
    let (_, rest) = line.split_once("SHA-256 fingerprint ").unwrap();
    rest.split(')').next().unwrap().to_owned()
}

fn assert_security_headers(output: &str, tls: bool) {
    let lower = output.to_lowercase();
    for header in [
        "content-security-policy: default-src 'self'",
        "frame-ancestors 'none'",
        "x-content-type-options: nosniff",
        "referrer-policy: no-referrer",
        "x-frame-options: deny",
    ] {
        assert!(lower.contains(header), "{header} missing:\n{output}");
    }
    assert_eq!(
        lower.contains("strict-transport-security: max-age="),
        tls,
        "HSTS exactly on TLS:\n{output}"
    );
}

#[test]
fn tls_with_the_operators_certificate_is_checked_by_curl_and_openssl() {
    let node = mfad();
    let dir = node.dir().to_owned();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let (ok, _, err) = run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ],
        b"",
    );
    assert!(ok, "openssl req: {err}");
    let node = node.with_http(&format!(
        "[[http.listeners]]\nlisten = \"127.0.0.1:0\"\nserve = [\"portal\", \"metrics\"]\n\
         tls_cert_file = {:?}\ntls_key_file = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    ));
    let server = node.start();
    let addr = server.http_addr("portal");

    let (ok, out) = https(addr, "/healthz", &cert);
    assert!(ok && status(&out) == 200, "{out}");
    assert!(out.ends_with("ok\n"), "{out}");
    assert_security_headers(&out, true);
    let (ok, out) = https(addr, "/readyz", &cert);
    assert!(ok && status(&out) == 200, "{out}");
    let (ok, out) = https(addr, "/metrics", &cert);
    assert!(ok && status(&out) == 200, "{out}");

    // Not trusted without the operator's CA; no plain HTTP on a TLS port.
    let url = format!("https://localhost:{}/healthz", addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", addr.port());
    let (ok, out) = curl(&["--resolve", &resolve, &url]);
    assert!(!ok, "an untrusted certificate is refused by curl: {out}");
    let (_, out) = curl(&[&format!("http://{addr}/healthz")]);
    assert_ne!(status(&out), 200, "{out}");

    let (handshake, presented) = s_client(addr, &cert);
    assert!(
        handshake.contains("Verify return code: 0 (ok)"),
        "{handshake}"
    );
    let (_, file_fingerprint, _) = run(
        "openssl",
        &[
            "x509",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-in",
            cert.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(presented, after_equals(&file_fingerprint));
    assert_eq!(presented, logged_fingerprint(&server, addr));
    server.stop();
}

#[test]
fn without_a_certificate_a_generated_one_is_kept_and_its_fingerprint_logged() {
    let node = mfad()
        .with_http("[[http.listeners]]\nlisten = \"127.0.0.1:0\"\nserve = [\"portal\", \"app\"]\n");
    let generated = node.dir().join("tls/cert.pem");
    assert!(!generated.exists());
    let server = node.start();
    let addr = server.http_addr("app");
    assert!(
        server
            .logs()
            .contains(&format!("http listening on {addr} serving portal, app")),
        "{}",
        server.logs()
    );
    assert!(generated.is_file(), "kept in the data directory");
    let logged = logged_fingerprint(&server, addr);
    let (handshake, presented) = s_client(addr, &generated);
    assert!(
        handshake.contains("Verify return code: 0 (ok)"),
        "the generated certificate names localhost: {handshake}"
    );
    assert_eq!(presented, logged);
    let (ok, out) = https(addr, "/healthz", &generated);
    assert!(ok && status(&out) == 200, "{out}");
    assert_security_headers(&out, true);
    server.stop();

    // The next start uses the same certificate.
    let server = node.start();
    let addr = server.http_addr("app");
    assert_eq!(logged_fingerprint(&server, addr), logged);
    assert_eq!(s_client(addr, &generated).1, logged);
    server.stop();
}

#[test]
fn plain_http_on_a_non_loopback_address_is_refused() {
    let node = mfad().with_http(
        "[[http.listeners]]\nlisten = \"0.0.0.0:0\"\nserve = [\"portal\"]\ntls = false\n",
    );
    let err = node.cli_err(["serve"]);
    assert!(err.contains("loopback"), "{err}");
    assert!(err.contains("0.0.0.0:0"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn the_old_webhook_listen_keys_are_refused_with_the_new_way() {
    let node = mfad().with_config("[voice]\nlisten = \"127.0.0.1:8088\"\n");
    let err = node.cli_err(["serve"]);
    assert!(err.contains("voice.listen is no longer read"), "{err}");
    assert!(err.contains("[[http.listeners]]"), "{err}");
}

#[test]
fn each_listener_serves_its_surfaces_and_every_one_its_health() {
    const SID: &str = "AC00000000000000000000000000000011";
    let fake = FakeTwilio::start(SID, "token");
    let node = mfad();
    let token = node.dir().join("token");
    std::fs::write(&token, "token").unwrap();
    let node = node
        .with_config(&format!(
            "[voice]\ngateway = \"twilio\"\n[voice.twilio]\napi_url = \"{}\"\naccount_sid = \"{SID}\"\n\
             auth_token_file = {:?}\nfrom = \"+15005550006\"\n",
            fake.url(),
            token.display().to_string()
        ))
        .with_http(&format!(
            "{}{}",
            plain_listener("", "\"webhooks\""),
            plain_listener("", "\"metrics\"")
        ));
    let server = node.start();
    let hooks = server.http_addr("webhooks");
    let metrics = server.http_addr("metrics");
    assert_ne!(hooks, metrics);
    for addr in [hooks, metrics] {
        let (_, out) = curl(&[&format!("http://{addr}/healthz")]);
        assert_eq!(status(&out), 200, "{out}");
        assert_security_headers(&out, false);
        let (_, out) = curl(&[&format!("http://{addr}/readyz")]);
        assert_eq!(status(&out), 200, "{out}");
    }
    let unsigned = |addr: SocketAddr| {
        let url = format!("http://{addr}/hooks/voice/status?txn=x");
        status(&curl(&["-d", "CallStatus=completed", &url]).1)
    };
    assert_eq!(unsigned(hooks), 403, "served, and the signature checked");
    assert_eq!(unsigned(metrics), 404, "not served here");
    let (_, out) = curl(&[&format!("http://{metrics}/metrics")]);
    assert_eq!(status(&out), 200, "{out}");
    let (_, out) = curl(&[&format!("http://{hooks}/metrics")]);
    assert_eq!(status(&out), 404, "{out}");
    server.stop();
}

/// The value of the sample `name{...}` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[test]
fn metrics_are_scraped_and_count_radius_logins() {
    let node = mfad();
    node.add_client("vpn", "127.0.0.1", SECRET);
    node.cli_ok(["user", "add", "alice"]);
    node.cli_ok(["bypass", "alice", "--seconds", "300"]);
    let server = node.start();
    let url = format!("{}/metrics", server.http_url("metrics"));
    let scrape = || {
        let (ok, out) = curl(&[&url]);
        assert!(ok && status(&out) == 200, "{out}");
        assert!(
            out.to_lowercase().contains("content-type: text/plain"),
            "{out}"
        );
        out
    };
    let before = scrape();
    assert_eq!(
        sample(&before, "mfad_auth_total", &["result=\"accept\""]),
        0.0
    );
    let radius = Radclient::new(server.radius_addr(), SECRET);
    let login = |user: &str| radius.send("auth", &[("User-Name", user), ("User-Password", "x")]);
    assert!(login("alice").is("Access-Accept"));
    assert!(login("nobody").is("Access-Reject"));
    assert!(login("nobody").is("Access-Reject"));
    let after = scrape();
    let accepted = ["channel=\"radius\"", "result=\"accept\""];
    assert_eq!(sample(&after, "mfad_auth_total", &accepted), 1.0, "{after}");
    let unknown = ["result=\"reject\"", "reason=\"unknown_user\""];
    assert_eq!(sample(&after, "mfad_auth_total", &unknown), 2.0, "{after}");
    assert_eq!(
        sample(
            &after,
            "mfad_auth_duration_seconds_count",
            &["channel=\"radius\""]
        ),
        3.0,
        "{after}"
    );
    assert!(
        sample(&after, "mfad_radius_received_total", &[]) >= 3.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, "mfad_radius_replies_total", &["kind=\"reject\""]),
        2.0,
        "{after}"
    );
    // The bypass used and the three audit records went through the store's writer.
    let batches = ["store=\"sqlite\"", "kind=\"write\""];
    assert!(
        sample(&after, "mfad_store_batch_size_sum", &batches)
            - sample(&before, "mfad_store_batch_size_sum", &batches)
            >= 4.0,
        "{after}"
    );
    server.stop();
}

/// Twilio's reply to a two-way SMS, posted while `held` slow clients hold (or try to
/// hold) every connection the listener allows.
#[test]
fn slow_and_half_open_connections_do_not_keep_a_signed_webhook_from_an_answer() {
    const SID: &str = "AC00000000000000000000000000000012";
    const TOKEN: &str = "twilio-http-token";
    const SAMS_PHONE: &str = "+14255550142";
    let fake = std::sync::Arc::new(FakeTwilio::start(SID, TOKEN));
    let node = mfad();
    let token = node.dir().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let node = node
        .with_config(&format!(
            "reject_delay_ms = 0\n\n[policy]\nout_of_band_timeout_seconds = 40\n\n\
             [policy.sms]\nmode = \"two-way\"\n\n[sms]\ngateway = \"twilio\"\n\n\
             [sms.twilio]\napi_url = \"{}\"\naccount_sid = \"{SID}\"\nauth_token_file = {:?}\nfrom = \"+15005550006\"\n",
            fake.url(),
            token.display().to_string()
        ))
        .with_http(&plain_listener(
            "[http]\nmax_connections = 16\nheader_timeout_seconds = 2\n",
            "\"webhooks\"",
        ));
    node.add_client("vpn", "127.0.0.1", SECRET);
    node.cli_ok([
        "user", "add", "sam", "--method", "sms", "--phone", SAMS_PHONE,
    ]);
    let server = node.start();
    let addr = server.http_addr("webhooks");

    // Four times the connection limit: half of them send nothing, half a request head
    // that never ends.
    let held: Vec<TcpStream> = (0..64)
        .map(|i| {
            let mut stream = TcpStream::connect(addr).unwrap();
            if i % 2 == 0 {
                stream
                    .write_all(b"POST /hooks/sms/inbound HTTP/1.1\r\nHost: x\r\n")
                    .unwrap();
            }
            stream
        })
        .collect();

    let radius = Radclient::new(server.radius_addr(), SECRET).with_timeout(Duration::from_secs(45));
    let login = std::thread::spawn(move || {
        radius.send("auth", &[("User-Name", "sam"), ("User-Password", "x")])
    });
    let code = fake.wait_for_messages(1, Duration::from_secs(20))[0]
        .code(6)
        .unwrap();
    let url = format!("http://{addr}/hooks/sms/inbound");
    let (tx, rx) = std::sync::mpsc::channel();
    let replier = {
        let fake = std::sync::Arc::clone(&fake);
        std::thread::spawn(move || {
            let _ = tx.send(fake.reply_sms(&url, SAMS_PHONE, "+15005550006", &code));
        })
    };
    let answered = rx.recv_timeout(Duration::from_secs(20));
    assert_eq!(
        answered,
        Ok(200),
        "the signed webhook is answered while slow clients come and go\n{}",
        server.logs()
    );
    replier.join().unwrap();
    let reply = login.join().unwrap();
    assert!(reply.is("Access-Accept"), "{}", reply.output);

    // Every slow client was cut off.
    let deadline = Instant::now() + Duration::from_secs(15);
    for mut stream in held {
        let left = deadline.saturating_duration_since(Instant::now());
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let mut buf = [0u8; 512];
        let closed = loop {
            match stream.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) => break e.kind() == std::io::ErrorKind::ConnectionReset,
            }
        };
        assert!(closed, "a slow connection is closed by the server");
    }
    server.stop();
}
