//! The arguments of `relaykey dkim`.

use clap::{Subcommand, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AlgorithmChoice {
    Ed25519,
    Rsa,
    Both,
}

#[derive(Debug, Subcommand)]
pub enum DkimCmd {
    /// Generate keys for a verified sender domain and print the DNS TXT records to publish.
    /// The keys start `published` (not signing): publish the records, then `dkim activate`.
    Generate {
        domain: String,
        /// The selector (names one key). Default: rk<year><letter>, the first free letter,
        /// RSA before Ed25519
        #[arg(long)]
        selector: Option<String>,
        /// Which keys: an Ed25519 key (RFC 8463), an RSA-2048 key, or one of each
        #[arg(long, value_enum, default_value = "both")]
        algorithm: AlgorithmChoice,
    },
    /// List the keys of one domain, or of every domain
    List { domain: Option<String> },
    /// Make a key sign the domain's mail (publish its record first)
    Activate { domain: String, selector: String },
    /// Stop a key signing; keep its record in DNS a few days for mail already sent
    Retire { domain: String, selector: String },
    /// Look up each key's TXT record now and say whether DNS publishes the stored key
    /// (exit status 1 unless every key not retired matches)
    Check { domain: String },
}
