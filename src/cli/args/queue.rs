//! The arguments of `relaykey queue`.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum QueueCmd {
    /// List queued messages
    List,
    /// Show one message's envelope, delivery state and headers
    Show { id: String },
    /// Try a message again at the next queue scan (or every message with --all)
    Retry {
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// Remove a message from the queue without delivering or bouncing it
    Delete { id: String },
}
