//! The command line: every operator command and its flags.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "mfad",
    version,
    about = "On-premises multi-factor authentication server"
)]
pub struct Cli {
    /// Configuration file (default: ./mfad.toml if present, else built-in defaults).
    #[arg(long, global = true, env = "MFAD_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run every enabled front-end until SIGTERM or Ctrl-C.
    Serve,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage OATH tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage RADIUS clients (VPNs, gateways, PAM hosts).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Let a user in once without a second factor within N seconds.
    Bypass {
        user: String,
        #[arg(long)]
        seconds: i64,
    },
    /// Show the audit log, newest first.
    Log(LogArgs),
    /// Import and sync users from Active Directory / LDAP ([directory] in the config).
    #[command(subcommand)]
    Directory(DirectoryCommand),
    /// Enrollment e-mails and their delivery.
    #[command(subcommand)]
    Email(EmailCommand),
    /// Settings kept in the store, in force on every node within seconds.
    #[command(subcommand)]
    Setting(SettingCommand),
    /// E-mail templates kept in the store, in place of the shipped or directory ones.
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Move a whole store between SQLite and PostgreSQL.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Write a consistent snapshot of the configured store to FILE (JSON lines, secrets
    /// kept sealed with the key file).
    Backup { file: PathBuf },
    /// Load a snapshot written by `mfad backup` into the configured store, which must be
    /// empty (a new database).
    Restore { file: PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum DirectoryCommand {
    /// Check connection, TLS, the service bind and a sample search on every server.
    Test,
    /// Import users from the directory (the first sync; running it again changes nothing).
    Import {
        /// Show what would change without changing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Sync users with the directory now.
    Sync {
        /// Show what would change without changing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Allow the disables or removals the mass-change safeguard held back.
    Approve,
    /// Apply a phone change a sync held for an SMS or call user (see `status`), after
    /// checking with the user that they made it.
    ApprovePhone {
        /// The user whose held phone change to apply.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        user: Option<String>,
        /// Apply every held phone change.
        #[arg(long)]
        all: bool,
    },
    /// Show the last sync and what waits for approval.
    Status {
        #[command(flatten)]
        format: FormatArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum EmailCommand {
    /// Send the user the welcome e-mail for their method (again).
    Send { user: String },
    /// Show queued, sent and failed e-mails, newest first.
    Status {
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        format: FormatArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum SettingCommand {
    /// Show the stored settings (credentials hidden).
    List {
        #[command(flatten)]
        format: FormatArg,
    },
    /// Show the value in force for KEY and whether it is stored.
    Get {
        key: String,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Store KEY = VALUE for every node, after checking it against the configuration.
    /// VALUE is TOML (5, true, "text", ["a", "b"]) or plain text.
    Set {
        key: String,
        /// The value; never for credentials (use --secret).
        #[arg(conflicts_with_all = ["value_file", "secret"])]
        value: Option<String>,
        /// A credential: stored encrypted and never shown; read from --value-file or
        /// standard input.
        #[arg(long)]
        secret: bool,
        /// Read the value from this file (a trailing newline is ignored).
        #[arg(long)]
        value_file: Option<PathBuf>,
    },
    /// Remove a stored setting: the config file's value is in force again.
    Unset { key: String },
}

#[derive(Subcommand, Debug)]
pub enum TemplateCommand {
    /// Show every template and where it comes from (stored, directory or shipped).
    List {
        #[command(flatten)]
        format: FormatArg,
    },
    /// Print the text of template NAME as in force.
    Show { name: String },
    /// Store template NAME (e.g. welcome-sms.en.txt) from FILE, after checking it.
    Set {
        name: String,
        #[arg(long)]
        file: PathBuf,
    },
    /// Remove a stored template: the directory's or shipped one is in force again.
    Unset { name: String },
}

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Copy every user, token, counter, client, challenge, audit record, e-mail, rate
    /// limit, stored setting and the directory sync state from one store to another,
    /// empty one, and check the row counts. Both use the configured key file; secrets
    /// are copied sealed.
    Copy {
        /// The source, e.g. sqlite://mfad-data/mfad.db.
        #[arg(long)]
        from: String,
        /// The empty target, e.g. postgres://mfad@db/mfad.
        #[arg(long)]
        to: String,
    },
}

#[derive(Clone, Copy, Debug, Default, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
    Csv,
}

#[derive(Args, Debug, Default)]
pub struct FormatArg {
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

#[derive(Args, Debug, Default)]
pub struct UserFields {
    #[arg(long)]
    pub given_name: Option<String>,
    #[arg(long)]
    pub surname: Option<String>,
    #[arg(long)]
    pub email: Option<String>,
    #[arg(long)]
    pub phone: Option<String>,
    /// `standard` (code only) or `pin` (PIN followed by the code).
    #[arg(long)]
    pub pin_mode: Option<String>,
    /// The second factor: app, token, sms, call or push.
    #[arg(long)]
    pub method: Option<String>,
    /// Called when the phone does not answer (method call).
    #[arg(long)]
    pub backup_phone: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    Add {
        user: String,
        #[command(flatten)]
        fields: UserFields,
        /// Give the user a random initial PIN (sent in the welcome e-mail when
        /// email.send_to_users is on, else printed); they must change it at first login.
        #[arg(long)]
        generate_pin: bool,
        /// The language of the user's prompts (`en`, `de`, `de-CH`); empty: the server's.
        #[arg(long, default_value = "")]
        language: String,
    },
    List {
        #[command(flatten)]
        format: FormatArg,
    },
    Show {
        user: String,
        #[command(flatten)]
        format: FormatArg,
    },
    Update {
        user: String,
        #[command(flatten)]
        fields: UserFields,
    },
    Disable {
        user: String,
    },
    Enable {
        user: String,
    },
    Delete {
        user: String,
    },
    /// Clear the failure count and any lockout.
    Unlock {
        user: String,
    },
    Block {
        user: String,
        #[arg(long, default_value = "blocked by an operator")]
        reason: String,
        /// Days until the block expires (default: policy.block_days).
        #[arg(long)]
        days: Option<i64>,
    },
    Unblock {
        user: String,
    },
    /// Set the user's PIN (checked against the PIN rules).
    SetPin {
        user: String,
        /// The PIN; it is visible in the process list and the shell history, so prefer
        /// --pin-file.
        #[arg(
            long,
            conflicts_with_all = ["generate", "pin_file"],
            required_unless_present_any = ["generate", "pin_file"]
        )]
        pin: Option<String>,
        /// Read the PIN from FILE, or from standard input for `-` (a trailing newline is
        /// ignored).
        #[arg(long, value_name = "FILE", conflicts_with = "generate")]
        pin_file: Option<PathBuf>,
        /// Generate a random PIN that follows the rules and ask for a new one at the next
        /// login; it goes into a welcome e-mail when email.send_to_users is on, else it is
        /// printed.
        #[arg(long)]
        generate: bool,
        /// Ask for a new PIN at the next successful login.
        #[arg(long)]
        change_required: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a software token for a user and print its otpauth:// URI.
    Add {
        user: String,
        #[arg(long = "type", default_value = "totp")]
        kind: String,
        /// Base32 secret (at least 128 bits); a random 160-bit one when omitted. It is
        /// visible in the process list and the shell history, so prefer --secret-file.
        #[arg(long, conflicts_with = "secret_file")]
        secret: Option<String>,
        /// Read the base32 secret from FILE, or from standard input for `-` (a trailing
        /// newline is ignored).
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
        #[arg(long, default_value_t = 6)]
        digits: u32,
        /// TOTP step in seconds.
        #[arg(long, default_value_t = 30)]
        period: u64,
        #[arg(long, default_value = "sha1")]
        algorithm: String,
        /// Serial number (default: generated).
        #[arg(long)]
        serial: Option<String>,
        /// Print a QR code of the URI for scanning with an authenticator app.
        #[arg(long)]
        qr: bool,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Import hardware tokens from an OATH CSV or PSKC (RFC 6030) file, all or nothing.
    Import {
        file: PathBuf,
        #[arg(long, value_parser = ["pskc", "csv"])]
        format: Option<String>,
        /// Hex file holding the PSKC pre-shared AES key.
        #[arg(long)]
        psk_file: Option<PathBuf>,
        /// File holding the PSKC PBKDF2 password.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Assign an imported token to a user.
    Assign {
        serial: String,
        user: String,
    },
    /// Resynchronise a user's HOTP token with two consecutive codes.
    Resync {
        user: String,
        code1: String,
        code2: String,
    },
    List {
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        format: FormatArg,
    },
    Delete {
        serial: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    Add {
        name: String,
        /// Source address or network of the client, e.g. 10.0.0.7 or 10.0.0.0/24.
        #[arg(long)]
        address: String,
        /// The shared secret; it is visible in the process list and the shell history,
        /// so prefer --secret-file.
        #[arg(
            long,
            conflicts_with = "secret_file",
            required_unless_present = "secret_file"
        )]
        secret: Option<String>,
        /// Read the shared secret from FILE, or from standard input for `-` (a trailing
        /// newline is ignored).
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
        /// none (the client checked the password), directory (mfad binds as the user) or
        /// radius (mfad forwards the request to the [[radius.targets]] servers).
        #[arg(long, default_value = "none")]
        first_factor: String,
        /// With --first-factor radius: target names from [[radius.targets]], tried in this
        /// order, e.g. nps-1,nps-2. Default: every target, in the config's order.
        #[arg(long, value_delimiter = ',')]
        targets: Vec<String>,
        /// auto, inline or challenge. With a first factor: challenge and auto ask for the
        /// code after the password; inline expects password and code in one field.
        #[arg(long, default_value = "auto")]
        prompt: String,
        /// With a first factor: the text between password and code in one field, e.g.
        /// ',' for 'password,123456'. Without it, inline takes the code's digits from the end.
        #[arg(long, default_value = "")]
        code_separator: String,
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        require_message_authenticator: bool,
        /// Reject users mfad does not know (false: pass them on their first factor).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        require_user_match: bool,
    },
    List {
        #[command(flatten)]
        format: FormatArg,
    },
    Remove {
        name: String,
    },
}

#[derive(Args, Debug)]
pub struct LogArgs {
    #[arg(long)]
    pub user: Option<String>,
    /// RFC 3339 time, a date (2026-11-25), or an age such as 30m, 12h, 7d.
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Only fraud reports (the fraud code pressed in a verification call).
    #[arg(long)]
    pub fraud: bool,
    #[command(flatten)]
    pub format: FormatArg,
}
