//! Logging in through the real `pam_radius_auth` PAM module, driven by `pamtester`.
//!
//! What the tests of this crate established about Debian bookworm's libpam-radius-auth
//! 2.0.0:
//!
//! - It sends **no Message-Authenticator**: an Access-Request carries User-Name,
//!   User-Password, NAS-IP-Address, NAS-Identifier (the PAM service name), NAS-Port (the
//!   process id), NAS-Port-Type = Virtual and, in the first round, Service-Type =
//!   Authenticate-Only. A server that requires Message-Authenticator from every client
//!   locks this module out; configure its client without that requirement.
//! - The user **need not exist locally** (no passwd entry): the module only talks RADIUS.
//! - It prompts `Password: `, then shows the Reply-Message of an Access-Challenge as the
//!   next prompt (echo on) and sends the answer with the challenge's State.
//! - Linux-PAM lowercases service names, so the generated service name is lowercase.
//!
//! Writing the service file needs root (`/etc/pam.d`); the file is removed afterwards.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::process::run_with_input;
use crate::{require_file, require_tool};

const PAM_DIR: &str = "/etc/pam.d";
/// Per-request timeout written to the pam_radius config, in seconds.
const RADIUS_TIMEOUT_SECS: u32 = 3;
/// pamtester is killed after this; pam_radius gives up long before.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The end of one PAM conversation.
#[derive(Clone, Debug)]
pub struct PamResult {
    /// `pam_authenticate` returned PAM_SUCCESS.
    pub success: bool,
    /// pamtester's stderr then stdout: the prompts it showed (`Password: `, challenge
    /// messages, without line breaks between them) and its verdict.
    pub output: String,
}

/// Authenticates `user` against the RADIUS server at `radius` through `pam_radius_auth`,
/// answering the prompts with `responses` in order: first the password, then the answer to
/// each Access-Challenge. Running out of responses ends the conversation as a failure.
pub fn pam_login(radius: SocketAddr, secret: &str, user: &str, responses: &[&str]) -> PamResult {
    assert!(
        !secret.is_empty() && !secret.contains(char::is_whitespace),
        "pam_radius_auth.conf cannot hold a secret with whitespace: {secret:?}"
    );
    let pamtester = require_tool("pamtester");
    require_file("pam_radius_auth.so", pam_radius_module());
    let dir = tempfile::Builder::new()
        .prefix("pam-radius-")
        .tempdir()
        .expect("create a temp dir for the pam_radius config");
    // pam_radius_auth.conf: `server[:port] secret [timeout]`; IPv6 as `[addr]:port`.
    let conf = dir.path().join("pam_radius_auth.conf");
    std::fs::write(&conf, format!("{radius} {secret} {RADIUS_TIMEOUT_SECS}\n"))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", conf.display()));
    let service = PamService::create(&format!(
        "auth required pam_radius_auth.so conf={}\n",
        conf.display()
    ));

    let mut input = String::new();
    for response in responses {
        input.push_str(response);
        input.push('\n');
    }
    let mut command = Command::new(pamtester);
    command.args(["-v", service.name(), user, "authenticate"]);
    let (status, stdout, stderr) =
        run_with_input("pamtester", command, input.as_bytes(), LOGIN_TIMEOUT);
    let Some(status) = status else {
        panic!("pamtester hung for {LOGIN_TIMEOUT:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    };
    PamResult {
        success: status.success(),
        output: format!("{stderr}{stdout}"),
    }
}

/// `/etc/pam.d/mfad-test-<unique>`, removed on drop.
struct PamService {
    name: String,
    path: PathBuf,
}

impl PamService {
    fn create(contents: &str) -> PamService {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!(
            "mfad-test-{:x}-{:x}-{nanos:x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = Path::new(PAM_DIR).join(&name);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap_or_else(|e| {
                panic!(
                    "cannot create {} ({e}); pam_login needs root to add a PAM service",
                    path.display()
                )
            });
        file.write_all(contents.as_bytes())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        PamService { name, path }
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for PamService {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Where the distribution put `pam_radius_auth.so` (Debian: `/lib/<multiarch>/security`).
fn pam_radius_module() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = ["/lib/security", "/lib64/security", "/usr/lib/security"]
        .iter()
        .map(PathBuf::from)
        .collect();
    for root in ["/lib", "/usr/lib", "/usr/lib64"] {
        if let Ok(entries) = std::fs::read_dir(root) {
            dirs.extend(entries.flatten().map(|e| e.path().join("security")));
        }
    }
    dirs.into_iter()
        .map(|dir| dir.join("pam_radius_auth.so"))
        .find(|path| path.is_file())
}
