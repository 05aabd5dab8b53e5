//! Logging: journald (structured fields) when started by systemd, plain text on stderr
//! otherwise. The journald layer fails where its socket is missing; then stderr is used.
//!
//! In the journal every tracing field becomes a field of its own, upper-cased and without a
//! prefix (`DECISION=deny`, `REASON=ip_not_allowed`, `USER=`, `IP=`, `CREDENTIAL=`), and the
//! fixed message noun (`auth`, `policy`, `queued`) is `MESSAGE`, so
//! `journalctl -u relaykey MESSAGE=auth DECISION=deny` finds refused logins.

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

/// Is stderr connected to the journal? systemd sets `JOURNAL_STREAM=DEV:INODE` for its
/// services; it only counts while stderr is still that stream (not redirected by a wrapper).
fn under_journald() -> bool {
    let Some(stream) = std::env::var("JOURNAL_STREAM").ok() else { return false };
    let Some((dev, ino)) = parse_journal_stream(&stream) else { return false };
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Ok(stderr) = std::io::stderr().as_fd().try_clone_to_owned() else { return false };
    match std::fs::File::from(stderr).metadata() {
        Ok(meta) => meta.dev() == dev && meta.ino() == ino,
        Err(_) => false,
    }
}

fn parse_journal_stream(value: &str) -> Option<(u64, u64)> {
    let (dev, ino) = value.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

fn journald_layer() -> Option<tracing_journald::Layer> {
    let layer = tracing_journald::layer().ok()?;
    // INFO carries every login decision: syslog's "informational", not "notice".
    let mut priorities = tracing_journald::PriorityMappings::new();
    priorities.info = tracing_journald::Priority::Informational;
    priorities.debug = tracing_journald::Priority::Debug;
    Some(layer.with_field_prefix(None).with_syslog_identifier("relaykey".into()).with_priority_mappings(priorities))
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
    let journal = under_journald();
    let journald = if journal { journald_layer() } else { None };
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
            if journal {
                // The journal stamps each line itself.
                let _ = registry.with(fmt.without_time()).try_init();
            } else {
                let _ = registry.with(fmt).try_init();
            }
        }
    }
    LogHandle(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_journal_stream_variable() {
        assert_eq!(parse_journal_stream("64769:1234"), Some((64769, 1234)));
        assert_eq!(parse_journal_stream("64769"), None);
        assert_eq!(parse_journal_stream("a:b"), None);
    }
}
