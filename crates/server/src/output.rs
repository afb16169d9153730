//! Tables for people, JSON and CSV for scripts.
//!
//! Every table and CSV cell passes through here, because cells hold what others typed
//! (a User-Name from any RADIUS client, names from the directory): a table escapes
//! control characters so a cell cannot drive the operator's terminal, and CSV cells
//! that a spreadsheet would run as a formula are made plain text. JSON needs neither.
//!
//! Everything a command prints goes through [`out!`] and [`outln!`], which return a
//! write error instead of panicking as `print!` does: when the reader of a pipe goes
//! away (`mfad user list | head -1`), `main` ends the command quietly.

/// `print!` that returns the write error to the calling command (with `?`).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::stdout(format_args!($($arg)*))?
    };
}

/// `println!` that returns the write error to the calling command (with `?`).
macro_rules! outln {
    () => {
        $crate::output::stdout(format_args!("\n"))?
    };
    ($($arg:tt)*) => {
        $crate::output::stdout(format_args!("{}\n", format_args!($($arg)*)))?
    };
}

use crate::cli::OutputFormat;
use serde::Serialize;
use std::borrow::Cow;
use std::fmt::Write;
use std::io::Write as _;

/// Writes to standard output, returning the error (a closed pipe, a full disk) that
/// `print!` would panic with.
pub fn stdout(args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)?;
    out.flush()
}

/// Whether `err` is standard output's reader having gone away: not a failure of the
/// command, whose output nobody wants any more.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Prints rows as an aligned table, CSV, or (from `items`) JSON.
pub fn print<T: Serialize>(
    format: OutputFormat,
    items: &[T],
    headers: &[&str],
    rows: Vec<Vec<String>>,
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => outln!("{}", serde_json::to_string_pretty(items)?),
        OutputFormat::Csv => out!("{}", csv(headers, &rows)?),
        OutputFormat::Table => out!("{}", table(headers, &rows)),
    }
    Ok(())
}

/// Rows as aligned columns, each cell [`for_terminal`].
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<Cow<str>>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| for_terminal(cell)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", parts.join("  ").trim_end())
    };
    let mut out = line(headers.to_vec());
    for row in &rows {
        out.push_str(&line(row.iter().map(AsRef::as_ref).collect()));
    }
    out
}

/// Rows as CSV under a header line, each cell [`for_terminal`] and [`for_spreadsheet`].
pub fn csv(headers: &[&str], rows: &[Vec<String>]) -> anyhow::Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(headers)?;
    for row in rows {
        w.write_record(
            row.iter()
                .map(|cell| for_spreadsheet(&for_terminal(cell)).into_owned()),
        )?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

/// `cell` with every character that acts on a terminal shown as an escape instead:
/// C0 controls (ESC starts the sequences that recolour, retitle or rewrite the screen;
/// a newline or tab would break the row), DEL, C1 controls (U+009B is a one-character
/// CSI) and the bidirectional overrides that reorder what is shown.
pub fn for_terminal(cell: &str) -> Cow<'_, str> {
    if !cell.chars().any(acts_on_terminal) {
        return Cow::Borrowed(cell);
    }
    let mut out = String::with_capacity(cell.len() + 8);
    for c in cell.chars() {
        // Writing to a String cannot fail.
        let _ = match c {
            '\n' => write!(out, "\\n"),
            '\r' => write!(out, "\\r"),
            '\t' => write!(out, "\\t"),
            c if c.is_ascii() && c.is_control() => write!(out, "\\x{:02x}", u32::from(c)),
            c if acts_on_terminal(c) => write!(out, "\\u{{{:x}}}", u32::from(c)),
            c => write!(out, "{c}"),
        };
    }
    Cow::Owned(out)
}

fn acts_on_terminal(c: char) -> bool {
    // Unicode 15 §2.7 (Cc: U+0000–U+001F, U+007F–U+009F) and UAX #9 §2 (embeddings,
    // overrides and isolates).
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `cell` as a spreadsheet reads it: as text, never as a formula. OWASP "CSV Injection":
/// a cell starting with `=`, `+`, `-`, `@`, tab or carriage return gets a leading `'`.
/// A plain number (`-5`, a phone number `+15550100`) and the placeholder `-` cannot
/// call anything and stay as they are.
pub fn for_spreadsheet(cell: &str) -> Cow<'_, str> {
    let formula = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if formula && cell != "-" && !is_number(cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// A sign, digits, and at most one decimal point between digits.
fn is_number(cell: &str) -> bool {
    let unsigned = cell.strip_prefix(['+', '-']).unwrap_or(cell);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, "0"));
    [whole, fraction]
        .iter()
        .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

/// Unix seconds as RFC 3339 UTC, or "-".
pub fn time(secs: Option<i64>) -> String {
    secs.and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::{csv, for_spreadsheet, for_terminal, table};

    #[test]
    fn control_characters_are_shown_as_escapes_in_a_table() {
        let cases = [
            ("alice", "alice"),
            ("\u{1b}]0;owned\u{7}x", "\\x1b]0;owned\\x07x"),
            ("\u{1b}[2J\u{1b}[31mroot", "\\x1b[2J\\x1b[31mroot"),
            ("a\nb\tc\rd", "a\\nb\\tc\\rd"),
            ("del\u{7f}", "del\\x7f"),
            ("\u{9b}31m", "\\u{9b}31m"),
            ("evil\u{202e}gpj.exe", "evil\\u{202e}gpj.exe"),
            ("Zoë Ñúñez", "Zoë Ñúñez"),
        ];
        for (cell, shown) in cases {
            assert_eq!(for_terminal(cell), shown, "{cell:?}");
        }
        let out = table(&["user"], &[vec!["\u{1b}[31mred\nfake row".into()]]);
        assert_eq!(out, "user\n\\x1b[31mred\\nfake row\n");
    }

    #[test]
    fn csv_cells_that_start_a_formula_are_plain_text() {
        let cases = [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
            ("@SUM(1+1)", "'@SUM(1+1)"),
            ("\tx", "'\tx"),
            ("\r=x", "'\r=x"),
            ("alice", "alice"),
            ("a=b", "a=b"),
            ("-", "-"),
            ("-42", "-42"),
            ("-0.5", "-0.5"),
            ("+15550100", "+15550100"),
            ("-.5", "'-.5"),
            ("+", "'+"),
        ];
        for (cell, shown) in cases {
            assert_eq!(for_spreadsheet(cell), shown, "{cell:?}");
        }
        let out = csv(
            &["user", "n"],
            &[vec!["=HYPERLINK(\"http://x\",\"y\")".into(), "-1".into()]],
        )
        .unwrap();
        assert_eq!(
            out,
            "user,n\n\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",-1\n"
        );
    }
}
