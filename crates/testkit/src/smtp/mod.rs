//! A real SMTP server for tests: Debian's aiosmtpd under `/usr/bin/python3`, with
//! STARTTLS or implicit TLS on a certificate from a test CA, and AUTH when asked.

use crate::process::{run_with_input, Process};
use crate::ReservedTcpPort;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const SCRIPT: &str = include_str!("server.py");
/// aiosmtpd is packaged for Debian's interpreter, not for another `python3` on `PATH`.
const PYTHON: &str = "/usr/bin/python3";
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How the server protects connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpMode {
    Plain,
    Starttls,
    Tls,
}

impl SmtpMode {
    fn arg(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Starttls => "starttls",
            Self::Tls => "tls",
        }
    }
}

/// A CA and a `localhost`/127.0.0.1 server certificate it signed, made with `openssl`.
pub struct TestCa {
    dir: TempDir,
}

impl TestCa {
    pub fn new() -> TestCa {
        let dir = tempfile::Builder::new()
            .prefix("mfad-test-ca-")
            .tempdir()
            .expect("temp dir for the test CA");
        let openssl = crate::require_tool("openssl");
        let d = dir.path();
        std::fs::write(
            d.join("leaf.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .expect("write leaf.ext");
        let steps: [&[&str]; 3] = [
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=mfad test CA",
            ],
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "leaf.ext",
            ],
        ];
        for args in steps {
            let out = Command::new(&openssl)
                .args(args)
                .current_dir(d)
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        TestCa { dir }
    }

    /// The CA certificate, for the client's trust store.
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
    fn cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }
    fn key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

/// One message the server accepted.
#[derive(Clone, Debug)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    /// The whole message as received: headers, blank line, body.
    pub data: String,
    /// Whether the session was encrypted (STARTTLS or implicit TLS).
    pub tls: bool,
    /// Whether the client authenticated.
    pub auth: bool,
}

impl ReceivedMail {
    /// A header's value (unfolded), e.g. `Subject`.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let head = head.replace("\r\n ", " ").replace("\n ", " ");
        head.lines().find_map(|l| {
            let (key, value) = l.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }

    /// The body, with quoted-printable soft line breaks and escapes decoded.
    pub fn body(&self) -> String {
        let body = self
            .data
            .split_once("\r\n\r\n")
            .or_else(|| self.data.split_once("\n\n"))
            .map(|(_, b)| b)
            .unwrap_or_default();
        let qp = self
            .header("Content-Transfer-Encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("quoted-printable"));
        let body = body.replace("\r\n", "\n");
        if !qp {
            return body;
        }
        decode_quoted_printable(&body)
    }
}

/// RFC 2045 §6.7 quoted-printable.
fn decode_quoted_printable(text: &str) -> String {
    let text = text.replace("=\n", "");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A running aiosmtpd; killed on drop.
pub struct SmtpServer {
    process: Process,
    addr: SocketAddr,
    _script: TempDir,
}

impl SmtpServer {
    /// Starts a server on a free port.
    pub fn start(mode: SmtpMode, ca: Option<&TestCa>, auth: Option<(&str, &str)>) -> SmtpServer {
        Self::start_on(ReservedTcpPort::new(), mode, ca, auth)
    }

    /// Starts a server on `port`, held since it was reserved (e.g. while mail to it
    /// failed): the server listens on that very socket, passed as its stdin.
    pub fn start_on(
        port: ReservedTcpPort,
        mode: SmtpMode,
        ca: Option<&TestCa>,
        auth: Option<(&str, &str)>,
    ) -> SmtpServer {
        let python = Path::new(PYTHON);
        assert!(
            python.exists(),
            "{}",
            crate::missing("/usr/bin/python3 with python3-aiosmtpd")
        );
        check_aiosmtpd();
        let script = tempfile::Builder::new()
            .prefix("mfad-test-smtp-")
            .tempdir()
            .expect("temp dir for the SMTP server");
        let path = script.path().join("server.py");
        std::fs::write(&path, SCRIPT).expect("write server.py");
        let mut command = Command::new(python);
        command.arg(&path).arg(mode.arg());
        if mode != SmtpMode::Plain {
            let ca = ca.expect("a TLS mode needs a TestCa");
            command.arg(ca.cert()).arg(ca.key());
        }
        if let Some((user, password)) = auth {
            command.arg(user).arg(password);
        }
        let process = Process::spawn_with_stdin("aiosmtpd", command, port.into_stdio());
        let deadline = Instant::now() + START_TIMEOUT;
        let port = process.output().wait_for(deadline, |lines| {
            lines
                .iter()
                .find_map(|l| l.strip_prefix("listening ")?.trim().parse::<u16>().ok())
        });
        let Some(port) = port else {
            panic!(
                "aiosmtpd did not start listening\noutput:\n{}",
                process.output().text()
            );
        };
        SmtpServer {
            process,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _script: script,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let text = self.process.output().text();
        text.lines()
            .filter_map(|l| l.strip_prefix("message "))
            .map(parse_message)
            .collect()
    }

    /// Waits until `count` messages have arrived; panics at the deadline.
    pub fn wait_for_messages(&self, count: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + timeout;
        let found = self.process.output().wait_for(deadline, |lines| {
            let n = lines.iter().filter(|l| l.starts_with("message ")).count();
            (n >= count).then_some(())
        });
        if found.is_none() {
            panic!(
                "expected {count} message(s) within {timeout:?}, got {}\noutput:\n{}",
                self.messages().len(),
                self.process.output().text()
            );
        }
        self.messages()
    }

    /// Stops the server (the port is free again afterwards).
    pub fn stop(mut self) {
        self.process.kill();
    }
}

fn parse_message(json: &str) -> ReceivedMail {
    let value: serde_json::Value = serde_json::from_str(json).expect("message line is JSON");
    ReceivedMail {
        from: value["from"].as_str().unwrap_or_default().to_owned(),
        to: value["to"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        data: value["data"].as_str().unwrap_or_default().to_owned(),
        tls: value["tls"].as_bool().unwrap_or(false),
        auth: value["auth"].as_bool().unwrap_or(false),
    }
}

fn check_aiosmtpd() {
    let (status, _, stderr) = run_with_input(
        "python3",
        {
            let mut c = Command::new(PYTHON);
            c.args(["-c", "import aiosmtpd"]);
            c
        },
        &[],
        Duration::from_secs(30),
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "{} ({stderr})",
        crate::missing("python3-aiosmtpd")
    );
}
