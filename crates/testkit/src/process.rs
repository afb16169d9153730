//! A child process whose output is collected line by line and which is killed on drop.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a wait for process exit looks again; waits for output use a condition
/// variable instead and wake on every new line.
const EXIT_POLL: Duration = Duration::from_millis(10);
/// How long output may still arrive after the child exited.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts to start a program that is busy (ETXTBSY): a test that just wrote an
/// executable can race with another thread's fork, which briefly holds the file open.
const SPAWN_ATTEMPTS: u32 = 50;
const ETXTBSY: i32 = 26;

/// Lines a child wrote to stdout and stderr, shared with the threads that read them.
#[derive(Clone, Default)]
pub(crate) struct Output {
    shared: Arc<(Mutex<OutputState>, Condvar)>,
}

#[derive(Default)]
struct OutputState {
    lines: Vec<String>,
    /// Streams still being read; 0 means the child closed all of them (usually: it exited).
    open: usize,
}

impl Output {
    fn state(&self) -> MutexGuard<'_, OutputState> {
        // A reader thread never panics while holding the lock, so a poisoned lock still
        // holds consistent lines.
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// All lines so far, ANSI escapes removed, joined with newlines.
    pub(crate) fn text(&self) -> String {
        self.state().lines.join("\n")
    }

    /// Waits until `find` returns `Some` for the lines so far, the deadline passes, or the
    /// child has closed its output without `find` matching.
    pub(crate) fn wait_for<T>(
        &self,
        deadline: Instant,
        mut find: impl FnMut(&[String]) -> Option<T>,
    ) -> Option<T> {
        let mut state = self.state();
        loop {
            if let Some(found) = find(&state.lines) {
                return Some(found);
            }
            let now = Instant::now();
            if state.open == 0 || now >= deadline {
                return None;
            }
            state = self
                .shared
                .1
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits until the child closed all its output streams; `false` at the deadline.
    fn wait_closed(&self, deadline: Instant) -> bool {
        let _ = self.wait_for(deadline, |_| None::<()>);
        self.state().open == 0
    }

    fn reader(&self, stream: impl Read + Send + 'static) -> JoinHandle<()> {
        self.state().open += 1;
        let output = self.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = strip_ansi(&String::from_utf8_lossy(&buf));
                        output.state().lines.push(line.trim_end().to_owned());
                        output.shared.1.notify_all();
                    }
                }
            }
            output.state().open -= 1;
            output.shared.1.notify_all();
        })
    }
}

/// A spawned child with captured output; killed and reaped on drop if still running.
pub(crate) struct Process {
    child: Child,
    output: Output,
    readers: Vec<JoinHandle<()>>,
    /// Shown in panic messages.
    name: String,
}

impl Process {
    /// Spawns `command` with stdout and stderr captured and stdin closed.
    pub(crate) fn spawn(name: &str, command: Command) -> Process {
        Self::spawn_with_stdin(name, command, Stdio::null())
    }

    /// [`Process::spawn`] with `stdin` as the child's standard input, e.g. a socket it
    /// is to serve on.
    pub(crate) fn spawn_with_stdin(name: &str, mut command: Command, stdin: Stdio) -> Process {
        command
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn(&mut command)
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        let output = Output::default();
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(output.reader(stdout));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(output.reader(stderr));
        }
        Process {
            child,
            output,
            readers,
            name: name.to_owned(),
        }
    }

    pub(crate) fn output(&self) -> &Output {
        &self.output
    }

    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the child has exited, without blocking.
    pub(crate) fn try_status(&mut self) -> Option<ExitStatus> {
        self.child
            .try_wait()
            .unwrap_or_else(|e| panic!("cannot query {}: {e}", self.name))
    }

    /// Waits for the child to exit, at most `timeout`; `None` if it is still running.
    pub(crate) fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                self.join_readers();
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(EXIT_POLL);
        }
    }

    /// SIGKILL, then reap. A no-op if the child already exited.
    pub(crate) fn kill(&mut self) -> ExitStatus {
        if let Some(status) = self.try_status() {
            return status;
        }
        // Fails only if the child exited in between; `wait` then reaps it.
        let _ = self.child.kill();
        let status = self
            .child
            .wait()
            .unwrap_or_else(|e| panic!("cannot reap {}: {e}", self.name));
        self.join_readers();
        status
    }

    /// Collects the last lines once the child has exited. Bounded: a grandchild that
    /// inherited the pipes could keep them open; its readers are then left running.
    fn join_readers(&mut self) {
        if self.output.wait_closed(Instant::now() + DRAIN_TIMEOUT) {
            for reader in self.readers.drain(..) {
                let _ = reader.join();
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `command` to completion with `input` on stdin, killing it after `timeout`.
/// Returns the exit status (`None` if it was killed) with its stdout and stderr.
pub(crate) fn run_with_input(
    name: &str,
    mut command: Command,
    input: &[u8],
    timeout: Duration,
) -> (Option<ExitStatus>, String, String) {
    use std::io::Write;
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child =
        spawn(&mut command).unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
    let writer = child.stdin.take().map(|mut stdin| {
        let input = input.to_vec();
        // A thread, so a child that writes before it reads cannot deadlock against us; it
        // may also exit without reading everything (fewer prompts than answers).
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        })
    });
    let stdout = child.stdout.take().map(read_all);
    let stderr = child.stderr.take().map(read_all);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(EXIT_POLL),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let join = |handle: Option<JoinHandle<String>>| {
        handle
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    };
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    (status, join(stdout), join(stderr))
}

/// `command.spawn()`, retried while the program file is busy (see [`SPAWN_ATTEMPTS`]).
pub(crate) fn spawn(command: &mut Command) -> std::io::Result<Child> {
    let mut attempt = 1;
    loop {
        match command.spawn() {
            Err(e) if e.raw_os_error() == Some(ETXTBSY) && attempt < SPAWN_ATTEMPTS => {
                attempt += 1;
                std::thread::sleep(EXIT_POLL);
            }
            result => return result,
        }
    }
}

fn read_all(mut stream: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Removes ANSI escape sequences (CSI `ESC [ ... final` and two-byte `ESC x`), which
/// tracing adds when it thinks it writes to a terminal.
pub(crate) fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        // CSI: parameters and intermediates, then one final byte in '@'..='~'.
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::strip_ansi;

    #[test]
    fn ansi_colours_and_bold_are_stripped() {
        let line = "\u{1b}[2m2024-01-01T00:00:00Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m \u{1b}[1mmfad\u{1b}[0m: radius listening on 127.0.0.1:40000";
        assert_eq!(
            strip_ansi(line),
            "2024-01-01T00:00:00Z  INFO mfad: radius listening on 127.0.0.1:40000"
        );
    }

    #[test]
    fn text_without_escapes_is_unchanged() {
        assert_eq!(strip_ansi("plain [text] ok"), "plain [text] ok");
    }
}
