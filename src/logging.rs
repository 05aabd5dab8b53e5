//! Logging: journald (structured fields) when started by systemd, plain text on stderr
//! otherwise. The journald layer fails where its socket is missing; then stderr is used.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

/// Changes the log level of a running process (SIGHUP).
pub struct LogHandle(reload::Handle<EnvFilter, tracing_subscriber::Registry>);

impl LogHandle {
    pub fn set_level(&self, level: &str) -> Result<(), String> {
        let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
        self.0.reload(filter).map_err(|e| e.to_string())
    }
}

/// Is stderr connected to the journal (systemd sets `JOURNAL_STREAM` for its services)?
fn under_journald() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some()
}

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `level`.
pub fn init(level: &str) -> LogHandle {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let journald = if under_journald() { tracing_journald::layer().ok() } else { None };
    match journald {
        Some(layer) => {
            let _ = registry.with(layer).try_init();
        }
        None => {
            use std::io::IsTerminal;
            let fmt = tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(false);
            let _ = registry.with(fmt).try_init();
        }
    }
    LogHandle(handle)
}
