//! The one peer check. A test names what it needs (programs, root, any other condition); when
//! something is missing it skips with a printed reason, except under `CI=true`, where a missing
//! peer is a failure: CI must never report a test as passed that did not run.

use std::path::{Path, PathBuf};

/// Is this run a CI run (`CI=true`)?
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Running as root (effective uid 0)?
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Where `program` is installed, looked up in the usual system directories (the test runner's
/// PATH may lack the sbin directories).
pub fn which(program: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin", "/usr/local/sbin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.exists())
}

/// What a test needs; [`Needs::met`] applies the skip rule.
#[must_use]
#[derive(Default)]
pub struct Needs {
    missing: Vec<String>,
}

/// Starts a peer check: `if !needs().programs(&["postfix", "swaks"]).root().met() { return; }`.
pub fn needs() -> Needs {
    Needs::default()
}

impl Needs {
    pub fn programs(mut self, programs: &[&str]) -> Self {
        self.missing.extend(programs.iter().filter(|p| which(p).is_none()).map(|p| format!("{p} (not installed)")));
        self
    }

    pub fn root(self) -> Self {
        self.condition(is_root(), "root")
    }

    /// Any other precondition, described by `what`.
    pub fn condition(mut self, holds: bool, what: &str) -> Self {
        if !holds {
            self.missing.push(what.to_string());
        }
        self
    }

    /// True when everything is there. Otherwise false after printing why the test skips, or a
    /// panic under `CI=true`.
    pub fn met(self) -> bool {
        if self.missing.is_empty() {
            return true;
        }
        let what = self.missing.join(", ");
        assert!(!ci(), "required under CI=true, but missing: {what}");
        eprintln!("skipping: missing {what}");
        false
    }
}

/// Shorthand: are these programs installed (skip rule applied)?
pub fn available(programs: &[&str]) -> bool {
    needs().programs(programs).met()
}

/// Shorthand: does `holds` (described by `what`) hold (skip rule applied)?
pub fn require(holds: bool, what: &str) -> bool {
    needs().condition(holds, what).met()
}
