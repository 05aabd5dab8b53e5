//! The arguments of `relaykey import`.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ImportCmd {
    /// Import the users of a Dovecot passwd-file as SMTP credentials, keeping their passwords
    ///
    /// Each `user:{SCHEME}hash:...` line becomes an SMTP credential with that username, under
    /// --account or else an account named by the user's address (created if missing). Hashes
    /// in ARGON2ID, ARGON2I, BLF-CRYPT, SHA512-CRYPT and SHA256-CRYPT are kept until the user's
    /// first login, which rehashes them to argon2id; PLAIN/CLEAR passwords are hashed now.
    /// Weak schemes (MD5-CRYPT, DES-CRYPT, PLAIN-MD5, SHA, SSHA, ...) are refused unless
    /// --allow-weak. Users already present are skipped, so importing again changes nothing.
    ///
    /// Prints one line per user and a summary (--json: {"dry_run", "imported", "skipped",
    /// "refused", "users": [{"line", "username", "outcome", "account", "id", "scheme",
    /// "imported", "reason"}]}). Exit status 0 when nothing was refused, 3 when some users were
    /// refused and the rest imported, 1 when nothing could be done, 75 when the store failed.
    #[command(verbatim_doc_comment)]
    DovecotPasswd {
        /// The passwd-file (user:password:uid:gid:gecos:home:shell:extra_fields)
        file: PathBuf,
        /// Put every credential under this existing account [default: one account per user]
        #[arg(long, value_name = "EMAIL")]
        account: Option<String>,
        /// Scheme of passwords written without {SCHEME} (Dovecot's default_pass_scheme)
        #[arg(long, value_name = "SCHEME", default_value = "CRYPT")]
        default_scheme: String,
        /// Import weak schemes too, rehashed at the first login
        #[arg(long)]
        allow_weak: bool,
        /// Report what would be done, and write nothing
        #[arg(long)]
        dry_run: bool,
    },
}
