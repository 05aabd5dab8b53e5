//! Per-account message limits, shared by every way a message leaves: the policy server (for
//! Postfix), the relay's DATA and the API's send. One [`MessageLimits`] is owned by the daemon
//! and handed to each front end, so a message counted on one path counts on all of them.
//!
//! The counts are sliding windows made of 60 (minute, hour) or 96 (day) buckets, so memory per
//! account is fixed however many messages it sends. A window's count may include up to one
//! bucket of older messages (1 s, 1 min or 15 min), which errs on the strict side. In memory
//! only: a restart forgets the counts.
//!
//! [`MessageCounters`] is the core: no clock (callers pass `now`), no I/O, no lock.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const MAX_ACCOUNTS: usize = 100_000;

/// One of the three windows a limit can be set for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateWindow {
    Minute,
    Hour,
    Day,
}

impl RateWindow {
    pub const ALL: [RateWindow; 3] = [Self::Minute, Self::Hour, Self::Day];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }
}

/// A count per window: messages sent, or (as a quota) messages allowed, where 0 turns the
/// window's limit off.
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

    /// As a quota: no window is limited.
    pub fn is_unlimited(&self) -> bool {
        *self == Self::default()
    }
}

/// A message refused because a window's limit is used up, and how long until it would fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter {
    /// The window that is full (of several, the one that frees up last).
    pub window: RateWindow,
    pub limit: u32,
    /// Until a slot frees in every full window; at least one second, so a client that honours
    /// it does not come back at once.
    pub after: Duration,
}

impl RetryAfter {
    /// Whole seconds, rounded up: the `Retry-After` header's unit.
    pub fn seconds(&self) -> u64 {
        self.after.as_millis().div_ceil(1000).max(1) as u64
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

    fn bucket_ms(&self) -> u128 {
        self.bucket.as_millis().max(1)
    }

    fn slots(&self) -> u64 {
        (self.span.as_millis() / self.bucket_ms()) as u64
    }

    fn slot(&self, since_epoch: Duration) -> u64 {
        (since_epoch.as_millis() / self.bucket_ms()) as u64
    }

    fn expire(&mut self, since_epoch: Duration) {
        let oldest = self.slot(since_epoch).saturating_sub(self.slots() - 1);
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

    /// How long until the window holds fewer than `limit` messages (zero if it already does).
    fn wait_below(&mut self, limit: u32, since_epoch: Duration) -> Duration {
        let count = self.count(since_epoch);
        if count < limit {
            return Duration::ZERO;
        }
        // The oldest buckets leave first; find the one whose departure brings the count under.
        let mut to_drop = count - limit + 1;
        for (slot, c) in &self.buckets {
            to_drop = to_drop.saturating_sub(*c);
            if to_drop == 0 {
                // `expire` drops bucket `slot` once the current slot reaches `slot + slots`.
                let leaves_ms = (*slot + self.slots()) as u128 * self.bucket_ms();
                let wait_ms = leaves_ms.saturating_sub(since_epoch.as_millis());
                return Duration::from_millis(wait_ms.min(u64::MAX as u128) as u64);
            }
        }
        self.span
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

    fn window(&mut self, w: RateWindow) -> &mut Window {
        match w {
            RateWindow::Minute => &mut self.minute,
            RateWindow::Hour => &mut self.hour,
            RateWindow::Day => &mut self.day,
        }
    }
}

/// Per-account message counters: the decision core, without clock or lock.
#[derive(Debug)]
pub struct MessageCounters {
    epoch: Instant,
    accounts: HashMap<String, Counters>,
}

impl MessageCounters {
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

    /// Counts one message of `account` at `now` if every window of `quota` has room for it;
    /// otherwise counts nothing and says how long to wait. With no limit set, nothing is
    /// counted (and nothing kept in memory).
    pub fn try_take(&mut self, account: &str, quota: &Usage, now: Instant) -> Result<(), RetryAfter> {
        if quota.is_unlimited() {
            return Ok(());
        }
        let t = now.saturating_duration_since(self.epoch);
        if let Some(counters) = self.accounts.get_mut(account) {
            let mut refusal: Option<RetryAfter> = None;
            for window in RateWindow::ALL {
                let limit = quota.get(window);
                if limit == 0 {
                    continue;
                }
                let wait = counters.window(window).wait_below(limit, t);
                if !wait.is_zero() && refusal.is_none_or(|r| wait > r.after) {
                    refusal = Some(RetryAfter { window, limit, after: wait.max(Duration::from_secs(1)) });
                }
            }
            if let Some(r) = refusal {
                return Err(r);
            }
        }
        self.record(account, now);
        Ok(())
    }
}

/// The daemon's one set of counters, shared by the front ends.
#[derive(Debug)]
pub struct MessageLimits {
    counters: Mutex<MessageCounters>,
}

impl Default for MessageLimits {
    fn default() -> Self {
        Self::new()
    }
}

impl MessageLimits {
    pub fn new() -> Self {
        Self { counters: Mutex::new(MessageCounters::new(Instant::now())) }
    }

    /// See [`MessageCounters::try_take`]. `quota` comes from the caller's current config, so
    /// a reload applies to the next message without resetting the counts.
    pub fn try_take(&self, account: &str, quota: &Usage, now: Instant) -> Result<(), RetryAfter> {
        self.lock().try_take(account, quota, now)
    }

    /// The counters, for a caller that decides from the counts itself (the policy server
    /// weighs them with its other facts) and must read and update them in one step.
    pub fn lock(&self) -> MutexGuard<'_, MessageCounters> {
        // A panic elsewhere while holding the lock leaves counts that are still usable.
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(minute: u32, hour: u32, day: u32) -> Usage {
        Usage { minute, hour, day }
    }

    #[test]
    fn counts_per_account_and_forgets_old_messages() {
        let t0 = Instant::now();
        let mut r = MessageCounters::new(t0);
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

    #[test]
    fn try_take_counts_up_to_the_limit_then_refuses_without_counting() {
        let t0 = Instant::now();
        let mut r = MessageCounters::new(t0);
        let q = quota(2, 0, 0);
        assert_eq!(r.try_take("a@example.com", &q, t0), Ok(()));
        assert_eq!(r.try_take("a@example.com", &q, t0 + Duration::from_secs(10)), Ok(()));
        let refused = r.try_take("a@example.com", &q, t0 + Duration::from_secs(20)).unwrap_err();
        assert_eq!((refused.window, refused.limit), (RateWindow::Minute, 2));
        // The message sent at 0 s leaves the minute window at 60 s.
        assert_eq!(refused.after, Duration::from_secs(40));
        assert_eq!(refused.seconds(), 40);
        assert_eq!(r.usage("a@example.com", t0 + Duration::from_secs(20)).minute, 2, "a refusal is not counted");
        assert_eq!(r.try_take("b@example.com", &q, t0 + Duration::from_secs(20)), Ok(()), "other accounts unaffected");
        assert_eq!(r.try_take("a@example.com", &q, t0 + Duration::from_secs(60)), Ok(()));
    }

    #[test]
    fn try_take_waits_for_the_window_that_frees_up_last() {
        let t0 = Instant::now();
        let mut r = MessageCounters::new(t0);
        let q = quota(1, 1, 0);
        assert_eq!(r.try_take("a@example.com", &q, t0), Ok(()));
        let refused = r.try_take("a@example.com", &q, t0 + Duration::from_secs(1)).unwrap_err();
        assert_eq!((refused.window, refused.limit), (RateWindow::Hour, 1));
        assert_eq!(refused.after, Duration::from_secs(3599));
    }

    #[test]
    fn without_a_quota_nothing_is_counted_or_kept() {
        let t0 = Instant::now();
        let mut r = MessageCounters::new(t0);
        for _ in 0..5 {
            assert_eq!(r.try_take("a@example.com", &Usage::default(), t0), Ok(()));
        }
        assert_eq!(r.usage("a@example.com", t0), Usage::default());
        assert!(r.accounts.is_empty());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_never_zero() {
        let r = |ms| RetryAfter { window: RateWindow::Minute, limit: 1, after: Duration::from_millis(ms) };
        assert_eq!(r(1).seconds(), 1);
        assert_eq!(r(1000).seconds(), 1);
        assert_eq!(r(1001).seconds(), 2);
        assert_eq!(r(0).seconds(), 1);
    }

    #[test]
    fn one_instance_counts_for_every_caller() {
        let limits = MessageLimits::new();
        let now = Instant::now();
        let q = quota(1, 0, 0);
        assert_eq!(limits.try_take("a@example.com", &q, now), Ok(()));
        assert!(limits.try_take("a@example.com", &q, now).is_err());
        assert_eq!(limits.lock().usage("a@example.com", now).minute, 1);
    }
}
