//! Messages sent per account over the last minute, hour and day: sliding windows made of 60
//! (minute, hour) or 96 (day) buckets, so memory per account is fixed however many messages
//! it sends. A window's count may include up to one bucket of older messages (1 s, 1 min or
//! 15 min), which errs on the strict side. In memory only: a restart forgets the counts.
//!
//! No clock: callers pass `now`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::action::RateWindow;

const MAX_ACCOUNTS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub minute: u32,
    pub hour: u32,
    pub day: u32,
}

impl Usage {
    pub fn get(&self, window: RateWindow) -> u32 {
        match window {
            RateWindow::Minute => self.minute,
            RateWindow::Hour => self.hour,
            RateWindow::Day => self.day,
        }
    }
}

/// One sliding window: (bucket number, count) pairs, oldest first.
#[derive(Debug)]
struct Window {
    span: Duration,
    bucket: Duration,
    buckets: VecDeque<(u64, u32)>,
}

impl Window {
    fn new(span: Duration, buckets: u32) -> Self {
        Self { span, bucket: span / buckets, buckets: VecDeque::new() }
    }

    fn slot(&self, since_epoch: Duration) -> u64 {
        (since_epoch.as_millis() / self.bucket.as_millis().max(1)) as u64
    }

    fn expire(&mut self, since_epoch: Duration) {
        let n = (self.span.as_millis() / self.bucket.as_millis().max(1)) as u64;
        let oldest = self.slot(since_epoch).saturating_sub(n - 1);
        while self.buckets.front().is_some_and(|(s, _)| *s < oldest) {
            self.buckets.pop_front();
        }
    }

    fn count(&mut self, since_epoch: Duration) -> u32 {
        self.expire(since_epoch);
        self.buckets.iter().map(|(_, c)| *c).sum()
    }

    fn add(&mut self, since_epoch: Duration) {
        self.expire(since_epoch);
        let slot = self.slot(since_epoch);
        match self.buckets.back_mut() {
            Some((s, c)) if *s == slot => *c += 1,
            _ => self.buckets.push_back((slot, 1)),
        }
    }
}

#[derive(Debug)]
struct Counters {
    minute: Window,
    hour: Window,
    day: Window,
    last: Duration,
}

impl Counters {
    fn new() -> Self {
        Self {
            minute: Window::new(Duration::from_secs(60), 60),
            hour: Window::new(Duration::from_secs(3600), 60),
            day: Window::new(Duration::from_secs(86_400), 96),
            last: Duration::ZERO,
        }
    }
}

/// Per-account message counters.
#[derive(Debug)]
pub struct MessageRates {
    epoch: Instant,
    accounts: HashMap<String, Counters>,
}

impl MessageRates {
    pub fn new(epoch: Instant) -> Self {
        Self { epoch, accounts: HashMap::new() }
    }

    /// Messages `account` sent in each window up to `now`.
    pub fn usage(&mut self, account: &str, now: Instant) -> Usage {
        let t = now.saturating_duration_since(self.epoch);
        let Some(c) = self.accounts.get_mut(account) else { return Usage::default() };
        Usage { minute: c.minute.count(t), hour: c.hour.count(t), day: c.day.count(t) }
    }

    /// Counts one message of `account` at `now`.
    pub fn record(&mut self, account: &str, now: Instant) {
        let t = now.saturating_duration_since(self.epoch);
        if self.accounts.len() >= MAX_ACCOUNTS && !self.accounts.contains_key(account) {
            // Accounts idle for a day hold nothing that can still refuse a message.
            self.accounts.retain(|_, c| t.saturating_sub(c.last) < Duration::from_secs(86_400));
        }
        let c = self.accounts.entry(account.to_string()).or_insert_with(Counters::new);
        c.minute.add(t);
        c.hour.add(t);
        c.day.add(t);
        c.last = t;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_account_and_forgets_old_messages() {
        let t0 = Instant::now();
        let mut r = MessageRates::new(t0);
        for i in 0..3 {
            r.record("a@example.com", t0 + Duration::from_secs(i));
        }
        r.record("b@example.com", t0);
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(r.usage("a@example.com", at(3)), Usage { minute: 3, hour: 3, day: 3 });
        assert_eq!(r.usage("b@example.com", at(3)), Usage { minute: 1, hour: 1, day: 1 });
        assert_eq!(r.usage("a@example.com", at(61)).minute, 1, "only the message sent at 2 s is within a minute");
        assert_eq!(r.usage("a@example.com", at(62)), Usage { minute: 0, hour: 3, day: 3 });
        assert_eq!(r.usage("a@example.com", at(3700)), Usage { minute: 0, hour: 0, day: 3 });
        assert_eq!(r.usage("a@example.com", at(86_400 + 900)), Usage::default());
        assert_eq!(r.usage("nobody", at(0)), Usage::default());
    }
}
