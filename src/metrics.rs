//! A small process-wide metrics registry, rendered in the Prometheus text format by the
//! operator listener (`/metrics`). Front ends record events with the functions below; nothing
//! here does I/O.
//!
//! Hand-written rather than a metrics crate: a dozen counters and gauges do not justify a
//! dependency tree (the usual exporter pulls a second TLS stack).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{LazyLock, Mutex};

/// Every metric this daemon exposes: name, type and help text. Rendering follows this order.
const METRICS: &[(&str, Kind, &str)] = &[
    ("relaykey_authentications_total", Kind::Counter, "Authentications by front end, result and reason."),
    ("relaykey_policy_decisions_total", Kind::Counter, "Postfix policy decisions by decision and reason."),
    ("relaykey_queue_messages", Kind::Gauge, "Messages in the relay queue."),
    ("relaykey_queue_oldest_age_seconds", Kind::Gauge, "Age of the oldest message in the relay queue."),
    ("relaykey_deliveries_total", Kind::Counter, "Relay delivery attempts by result."),
    ("relaykey_connections", Kind::Gauge, "Open connections per listener."),
    ("relaykey_connections_total", Kind::Counter, "Accepted connections per listener."),
    ("relaykey_api_requests_total", Kind::Counter, "HTTP API responses by status code."),
    ("relaykey_api_requests_in_flight", Kind::Gauge, "HTTP API requests being handled."),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
        }
    }
}

/// Label pairs, kept sorted so that one series has one key.
type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
pub struct Registry {
    series: Mutex<BTreeMap<(&'static str, Labels), i64>>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::default);

/// The process-wide registry.
pub fn registry() -> &'static Registry {
    &REGISTRY
}

impl Registry {
    fn key(name: &'static str, labels: &[(&'static str, &str)]) -> (&'static str, Labels) {
        let mut l: Labels = labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect();
        l.sort();
        (name, l)
    }

    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], delta: i64) {
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        *series.entry(Self::key(name, labels)).or_insert(0) += delta;
    }

    pub fn set(&self, name: &'static str, labels: &[(&'static str, &str)], value: i64) {
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series.insert(Self::key(name, labels), value);
    }

    pub fn get(&self, name: &'static str, labels: &[(&'static str, &str)]) -> i64 {
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series.get(&Self::key(name, labels)).copied().unwrap_or(0)
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        for (name, kind, help) in METRICS {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {}", kind.as_str());
            let mut any = false;
            for ((_, labels), value) in series.range((*name, Vec::new())..).take_while(|((n, _), _)| n == name) {
                any = true;
                let _ = writeln!(out, "{name}{} {value}", render_labels(labels));
            }
            if !any && labels_free(name) {
                let _ = writeln!(out, "{name} 0");
            }
        }
        out
    }
}

/// Metrics without labels are printed as 0 before their first update, so dashboards see them.
fn labels_free(name: &str) -> bool {
    matches!(name, "relaykey_queue_messages" | "relaykey_queue_oldest_age_seconds" | "relaykey_api_requests_in_flight")
}

fn render_labels(labels: &Labels) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    format!("{{{}}}", parts.join(","))
}

/// Label values escape backslash, double quote and line feed (the text format's only escapes).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// One authentication decision by `front_end` (`smtp`, `api`): its `result` (`allow`,
/// `deny`, `tempfail`) and `reason`. Plain labels, so that metrics stays a leaf that `auth`
/// may call, not the other way round.
pub fn record_auth(front_end: &str, result: &str, reason: &str) {
    registry().add(
        "relaykey_authentications_total",
        &[("front_end", front_end), ("result", result), ("reason", reason)],
        1,
    );
}

/// One policy decision: `dunno` or `refuse`, and why.
pub fn record_policy(decision: &str, reason: &str) {
    registry().add("relaykey_policy_decisions_total", &[("decision", decision), ("reason", reason)], 1);
}

/// One delivery attempt (`delivered`, `deferred`, `bounced`).
pub fn record_delivery(result: &str) {
    registry().add("relaykey_deliveries_total", &[("result", result)], 1);
}

/// The relay queue's size and the age of its oldest message, as last observed.
pub fn set_queue(messages: u64, oldest_age_seconds: u64) {
    registry().set("relaykey_queue_messages", &[], messages as i64);
    registry().set("relaykey_queue_oldest_age_seconds", &[], oldest_age_seconds as i64);
}

/// Counts an open connection on `listener` until dropped.
#[derive(Debug)]
pub struct OpenConnection(&'static str);

impl OpenConnection {
    pub fn new(listener: &'static str) -> Self {
        registry().add("relaykey_connections_total", &[("listener", listener)], 1);
        registry().add("relaykey_connections", &[("listener", listener)], 1);
        Self(listener)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        registry().add("relaykey_connections", &[("listener", self.0)], -1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_help_type_and_escaped_labels() {
        let r = Registry::default();
        r.add("relaykey_policy_decisions_total", &[("decision", "re\"ject\n")], 2);
        r.set("relaykey_queue_messages", &[], 7);
        let text = r.render();
        assert!(text.contains("# TYPE relaykey_policy_decisions_total counter\n"));
        assert!(text.contains("relaykey_policy_decisions_total{decision=\"re\\\"ject\\n\"} 2\n"), "{text}");
        assert!(text.contains("relaykey_queue_messages 7\n"));
        assert!(text.contains("relaykey_api_requests_in_flight 0\n"));
    }

    #[test]
    fn labels_are_one_series_whatever_their_order() {
        let r = Registry::default();
        r.add("relaykey_connections", &[("a", "1"), ("b", "2")], 1);
        r.add("relaykey_connections", &[("b", "2"), ("a", "1")], 1);
        assert_eq!(r.get("relaykey_connections", &[("a", "1"), ("b", "2")]), 2);
    }
}
