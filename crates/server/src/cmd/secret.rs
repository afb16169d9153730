//! Secrets an operator gives a command, read from a file or standard input so they stay
//! out of the process list and the shell history.

use anyhow::{bail, Context};
use std::io::Read;
use std::path::Path;
use zeroize::Zeroizing;

/// Text from `path`, or from standard input when `path` is `None` or `-`, without its
/// one trailing line end. `flag` names the option in messages.
pub fn read_text(path: Option<&Path>, flag: &str) -> anyhow::Result<Zeroizing<String>> {
    let mut text = Zeroizing::new(String::new());
    match path.filter(|p| *p != Path::new("-")) {
        Some(path) => {
            *text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {flag} {}", path.display()))?;
        }
        None => {
            std::io::stdin()
                .read_to_string(&mut text)
                .with_context(|| format!("cannot read {flag} from standard input"))?;
        }
    }
    let line = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    Ok(Zeroizing::new(line.to_owned()))
}

/// A secret from `path` (`-` for standard input), as [`read_text`]; an empty one is refused.
pub fn read(path: &Path, flag: &str) -> anyhow::Result<Zeroizing<String>> {
    let text = read_text(Some(path), flag)?;
    if text.is_empty() {
        if path == Path::new("-") {
            bail!("{flag} -: standard input is empty; give the secret on it");
        }
        bail!("{flag} {} is empty; put the secret in it", path.display());
    }
    Ok(text)
}

/// The secret given by `--NAME VALUE` (with a warning, it is on the command line) or by
/// `--NAME-file FILE`; `None` when neither is given.
pub fn from_args(
    name: &str,
    value: Option<String>,
    file: Option<&Path>,
) -> anyhow::Result<Option<Zeroizing<String>>> {
    match (value, file) {
        (Some(value), _) => {
            eprintln!(
                "warning: --{name} is visible in the process list and the shell history; use --{name}-file FILE, or --{name}-file - for standard input"
            );
            Ok(Some(Zeroizing::new(value)))
        }
        (None, Some(path)) => read(path, &format!("--{name}-file")).map(Some),
        (None, None) => Ok(None),
    }
}
