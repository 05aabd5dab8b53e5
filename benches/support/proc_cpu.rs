//! CPU time of whole process trees from /proc, so a bench can say what a server spent per
//! message and not only how fast it answered (on a shared, noisy machine the first is the
//! steadier figure). A tree's time is user + system of every live member plus what its members
//! already reaped from children that exited (Postfix's master reaps its smtpd and cleanup
//! processes, so their work stays counted).

use std::collections::HashMap;

/// Seconds of CPU used so far by `roots` and all their descendants.
pub fn tree_cpu_secs(roots: &[u32]) -> f64 {
    let procs = read_procs();
    let in_tree = |mut pid: u32| loop {
        if roots.contains(&pid) {
            return true;
        }
        match procs.get(&pid) {
            Some(p) if p.ppid != 0 && p.ppid != pid => pid = p.ppid,
            _ => return false,
        }
    };
    let ticks: u64 = procs.iter().filter(|&(&pid, _)| in_tree(pid)).map(|(_, p)| p.ticks).sum();
    // SAFETY: sysconf has no preconditions.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / per_sec
}

struct Proc {
    ppid: u32,
    /// utime + stime + cutime + cstime, in clock ticks.
    ticks: u64,
}

fn read_procs() -> HashMap<u32, Proc> {
    let mut procs = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return procs };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // After the parenthesised command name: state ppid pgrp session tty tpgid flags minflt
        // cminflt majflt cmajflt utime stime cutime cstime ...
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        procs.insert(pid, Proc { ppid: num(1) as u32, ticks: num(11) + num(12) + num(13) + num(14) });
    }
    procs
}
