//! Per-account message limits, shared by every way a message leaves: the policy server (for
//! Postfix), the relay's DATA and the API's send. One [`MessageLimits`] is owned by the daemon
//! and handed to each front end, so a message counted on one path counts on all of them; its
//! counts live in the store (`message_counts`), so every host on one PostgreSQL shares them
//! and a restart keeps them.
//!
//! The counts are sliding windows made of 60 (minute, hour) or 96 (day) buckets: 1 s, 1 min
//! and 15 min wide. A window's count may include up to one bucket of older messages, which
//! errs on the strict side. Bucket numbers count from the Unix epoch on the caller's wall
//! clock, so every host (and either store engine) numbers them alike.
//!
//! [`AccountCounts`] is the core: one account's windows, no clock (callers pass the time since
//! the epoch), no I/O, no lock. [`MessageLimits`] reads an account's buckets, lets the core
//! decide and writes the message's buckets in one store transaction.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::store::message_counts::CountedBucket;
use crate::store::shared_state::{self, StoreLocation};
use crate::store::{Store, StoreError};

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

    /// The window's length and its number of buckets.
    fn shape(self) -> (Duration, u32) {
        match self {
            Self::Minute => (Duration::from_secs(60), 60),
            Self::Hour => (Duration::from_secs(3600), 60),
            Self::Day => (Duration::from_secs(86_400), 96),
        }
    }

    /// How the store names the window (`message_counts.span`).
    pub fn code(self) -> i64 {
        match self {
            Self::Minute => 0,
            Self::Hour => 1,
            Self::Day => 2,
        }
    }

    pub fn from_code(code: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.code() == code)
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

impl Window {
    /// Adds a stored bucket; `sort` puts them in order once all are in.
    fn load(&mut self, slot: u64, count: u32) {
        self.buckets.push_back((slot, count));
    }

    fn sort(&mut self) {
        self.buckets.make_contiguous().sort_unstable_by_key(|(slot, _)| *slot);
    }
}

/// One account's three windows: the decision core.
#[derive(Debug)]
pub struct AccountCounts {
    minute: Window,
    hour: Window,
    day: Window,
}

impl Default for AccountCounts {
    fn default() -> Self {
        Self::new()
    }
}

impl AccountCounts {
    pub fn new() -> Self {
        let window = |w: RateWindow| {
            let (span, buckets) = w.shape();
            Window::new(span, buckets)
        };
        Self { minute: window(RateWindow::Minute), hour: window(RateWindow::Hour), day: window(RateWindow::Day) }
    }

    /// The windows as the store holds them: (window, bucket number, messages) in any order.
    /// Rows of an unknown window or with a negative number or count are no messages.
    pub fn from_buckets(buckets: &[CountedBucket]) -> Self {
        let mut counts = Self::new();
        for b in buckets {
            let (Some(window), Ok(slot), Ok(n)) =
                (RateWindow::from_code(b.span), u64::try_from(b.slot), u32::try_from(b.count))
            else {
                continue;
            };
            counts.window(window).load(slot, n);
        }
        for w in RateWindow::ALL {
            counts.window(w).sort();
        }
        counts
    }

    fn window(&mut self, w: RateWindow) -> &mut Window {
        match w {
            RateWindow::Minute => &mut self.minute,
            RateWindow::Hour => &mut self.hour,
            RateWindow::Day => &mut self.day,
        }
    }

    /// Messages counted in each window at `t` (time since the Unix epoch).
    pub fn usage(&mut self, t: Duration) -> Usage {
        Usage { minute: self.minute.count(t), hour: self.hour.count(t), day: self.day.count(t) }
    }

    /// Counts one message at `t`.
    pub fn add(&mut self, t: Duration) {
        for w in RateWindow::ALL {
            self.window(w).add(t);
        }
    }

    /// Whether every window of `quota` has room for one more message at `t`; if not, how long
    /// to wait. Counts nothing.
    pub fn check(&mut self, quota: &Usage, t: Duration) -> Result<(), RetryAfter> {
        let mut refusal: Option<RetryAfter> = None;
        for window in RateWindow::ALL {
            let limit = quota.get(window);
            if limit == 0 {
                continue;
            }
            let wait = self.window(window).wait_below(limit, t);
            if !wait.is_zero() && refusal.is_none_or(|r| wait > r.after) {
                refusal = Some(RetryAfter { window, limit, after: wait.max(Duration::from_secs(1)) });
            }
        }
        refusal.map_or(Ok(()), Err)
    }

    /// Counts one message at `t` if every window of `quota` has room for it; otherwise counts
    /// nothing and says how long to wait.
    pub fn try_take(&mut self, quota: &Usage, t: Duration) -> Result<(), RetryAfter> {
        self.check(quota, t)?;
        self.add(t);
        Ok(())
    }

    /// The bucket of each window that a message at `t` goes into: (window, bucket number).
    pub fn buckets_at(t: Duration) -> [(RateWindow, u64); 3] {
        let mut c = Self::new();
        RateWindow::ALL.map(|w| (w, c.window(w).slot(t)))
    }

    /// The oldest bucket each window still counts at `t`; older ones can be deleted.
    pub fn oldest_at(t: Duration) -> [(RateWindow, u64); 3] {
        let mut c = Self::new();
        RateWindow::ALL.map(|w| {
            let window = c.window(w);
            (w, window.slot(t).saturating_sub(window.slots() - 1))
        })
    }
}

/// Why a message could not be counted: the store failed. A temporary failure for the
/// client (never "limit reached").
#[derive(Debug, thiserror::Error)]
pub enum CountError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("message count task failed: {0}")]
    Task(String),
}

/// How often the buckets of every account are purged of old ones (an account's own are purged
/// at each of its messages).
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// The daemon's one set of counters, shared by the front ends, kept in the store.
pub struct MessageLimits {
    location: StoreLocation,
    /// Connections of its own, each opened on first use and again after a failure, so that a
    /// store that comes back is used again without a restart. One for SQLite (one writer at a
    /// time anyway); several for PostgreSQL, so that the counting of one account does not wait
    /// for another's round trips.
    conns: Vec<Arc<Mutex<Connection>>>,
}

/// Connections to PostgreSQL per daemon for the counters.
const PG_CONNECTIONS: usize = 4;

#[derive(Default)]
struct Connection {
    store: Option<Store>,
    /// When every account's old buckets were last purged (time since the epoch).
    purged: Option<Duration>,
}

impl MessageLimits {
    /// Counters in the store at `location`; nothing is opened until the first message.
    pub fn new(location: StoreLocation) -> Self {
        let n = match location {
            StoreLocation::Sqlite(_) => 1,
            StoreLocation::Postgres(_) => PG_CONNECTIONS,
        };
        Self { location, conns: (0..n).map(|_| Arc::default()).collect() }
    }

    /// Counts one message of `account` at `now` if every window of `quota` has room for it;
    /// otherwise counts nothing and says how long to wait (the inner `Err`). With no limit set
    /// nothing is counted and the store is not asked. `quota` comes from the caller's current
    /// config, so a reload applies to the next message without resetting the counts.
    pub async fn try_take(
        &self,
        account: &str,
        quota: &Usage,
        now: SystemTime,
    ) -> Result<Result<(), RetryAfter>, CountError> {
        if quota.is_unlimited() {
            return Ok(Ok(()));
        }
        let quota = *quota;
        self.decide(account, now, move |counts, t| {
            let verdict = counts.check(&quota, t);
            let take = verdict.is_ok();
            (verdict, take)
        })
        .await
    }

    /// For a caller that decides from the counts itself (the policy server weighs them with
    /// its other facts): `decide` sees `account`'s windows at `now` and says whether to count
    /// the message; reading, deciding and counting are one store transaction, so concurrent
    /// messages of one account (on any host) cannot both take the last slot.
    pub async fn decide<T: Send + 'static>(
        &self,
        account: &str,
        now: SystemTime,
        decide: impl FnOnce(&mut AccountCounts, Duration) -> (T, bool) + Send + 'static,
    ) -> Result<T, CountError> {
        let t = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let (conns, location, account) = (self.conns.clone(), self.location.clone(), account.to_string());
        tokio::task::spawn_blocking(move || {
            // A free connection if there is one; else wait for the one the account hashes to.
            let home =
                crate::store::message_counts::account_lock(&account).unsigned_abs() as usize % conns.len().max(1);
            let free = (0..conns.len()).map(|i| &conns[(home + i) % conns.len()]).find_map(|c| c.try_lock().ok());
            let mut conn = match free {
                Some(conn) => conn,
                None => conns[home].lock().unwrap_or_else(PoisonError::into_inner),
            };
            let out = conn.count(&location, &account, t, decide);
            if out.is_err() {
                // A failed connection may stay failed; the next message opens another.
                conn.store = None;
            }
            out
        })
        .await
        .map_err(|e| CountError::Task(e.to_string()))?
        .map_err(CountError::Store)
    }

    /// Messages `account` sent in each window up to `now` (for tests and tools).
    pub async fn usage(&self, account: &str, now: SystemTime) -> Result<Usage, CountError> {
        self.decide(account, now, |counts, t| (counts.usage(t), false)).await
    }
}

impl Connection {
    fn count<T>(
        &mut self,
        location: &StoreLocation,
        account: &str,
        t: Duration,
        decide: impl FnOnce(&mut AccountCounts, Duration) -> (T, bool),
    ) -> Result<T, StoreError> {
        let store = match &mut self.store {
            Some(store) => store,
            None => self.store.insert(open_store(location)?),
        };
        let oldest = AccountCounts::oldest_at(t).map(|(w, slot)| (w.code(), slot as i64));
        let current = AccountCounts::buckets_at(t).map(|(w, slot)| (w.code(), slot as i64));
        let out = store.count_message(account, &oldest, &current, |buckets| {
            let mut counts = AccountCounts::from_buckets(buckets);
            decide(&mut counts, t)
        })?;
        if self.purged.is_none_or(|at| t.saturating_sub(at) >= PURGE_EVERY) {
            self.purged = Some(t);
            store.purge_message_counts(&oldest)?;
        }
        Ok(out)
    }
}

/// The counters' own connection. Losing a message count on a crash is harmless, so SQLite
/// need not wait for the disk at every commit.
fn open_store(location: &StoreLocation) -> Result<Store, StoreError> {
    let store = shared_state::open(location)?;
    store.relax_durability()?;
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(minute: u32, hour: u32, day: u32) -> Usage {
        Usage { minute, hour, day }
    }

    fn secs(s: u64) -> Duration {
        // Some time after the epoch, on a bucket boundary of every window (as the in-memory
        // counters' epoch was).
        Duration::from_secs(1_699_999_200 + s)
    }

    #[test]
    fn counts_and_forgets_old_messages() {
        let mut r = AccountCounts::new();
        let at = secs;
        for i in 0..3 {
            r.add(at(i));
        }
        assert_eq!(r.usage(at(3)), Usage { minute: 3, hour: 3, day: 3 });
        assert_eq!(r.usage(at(61)).minute, 1, "only the message sent at 2 s is within a minute");
        assert_eq!(r.usage(at(62)), Usage { minute: 0, hour: 3, day: 3 });
        assert_eq!(r.usage(at(3700)), Usage { minute: 0, hour: 0, day: 3 });
        assert_eq!(r.usage(at(86_400 + 900)), Usage::default());
        assert_eq!(AccountCounts::new().usage(at(0)), Usage::default());
    }

    #[test]
    fn try_take_counts_up_to_the_limit_then_refuses_without_counting() {
        let mut r = AccountCounts::new();
        let q = quota(2, 0, 0);
        assert_eq!(r.try_take(&q, secs(0)), Ok(()));
        assert_eq!(r.try_take(&q, secs(10)), Ok(()));
        let refused = r.try_take(&q, secs(20)).unwrap_err();
        assert_eq!((refused.window, refused.limit), (RateWindow::Minute, 2));
        // The message sent at 0 s leaves the minute window at 60 s.
        assert_eq!(refused.after, Duration::from_secs(40));
        assert_eq!(refused.seconds(), 40);
        assert_eq!(r.usage(secs(20)).minute, 2, "a refusal is not counted");
        assert_eq!(AccountCounts::new().try_take(&q, secs(20)), Ok(()), "other accounts unaffected");
        assert_eq!(r.try_take(&q, secs(60)), Ok(()));
    }

    #[test]
    fn try_take_waits_for_the_window_that_frees_up_last() {
        let mut r = AccountCounts::new();
        let q = quota(1, 1, 0);
        assert_eq!(r.try_take(&q, secs(0)), Ok(()));
        let refused = r.try_take(&q, secs(1)).unwrap_err();
        assert_eq!((refused.window, refused.limit), (RateWindow::Hour, 1));
        assert_eq!(refused.after, Duration::from_secs(3599));
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
    fn the_stored_buckets_give_back_the_same_counts() {
        let mut live = AccountCounts::new();
        let mut stored: Vec<CountedBucket> = Vec::new();
        for s in [0, 1, 1, 59, 61, 3000, 7200] {
            live.add(secs(s));
            for (w, slot) in AccountCounts::buckets_at(secs(s)) {
                match stored.iter_mut().find(|b| b.span == w.code() && b.slot == slot as i64) {
                    Some(b) => b.count += 1,
                    None => stored.push(CountedBucket { span: w.code(), slot: slot as i64, count: 1 }),
                }
            }
        }
        // The store returns rows in no particular order, and may hold garbage.
        stored.reverse();
        stored.push(CountedBucket { span: 9, slot: 1, count: 5 });
        stored.push(CountedBucket { span: 0, slot: -1, count: 5 });
        let mut loaded = AccountCounts::from_buckets(&stored);
        for s in [7200, 7230, 9000, 86_000, 90_000] {
            assert_eq!(loaded.usage(secs(s)), live.usage(secs(s)), "at {s} s");
        }
    }

    #[test]
    fn the_oldest_bucket_is_the_first_a_window_still_counts() {
        let t = secs(0);
        let mut r = AccountCounts::new();
        for (w, oldest) in AccountCounts::oldest_at(t) {
            let (span, buckets) = w.shape();
            let width = (span / buckets).as_secs();
            // A message in the oldest bucket still counts; one a bucket earlier does not.
            r.add(Duration::from_secs(oldest * width));
            assert_eq!(r.usage(t).get(w), 1, "{w:?}");
            let mut before = AccountCounts::new();
            before.add(Duration::from_secs((oldest - 1) * width));
            assert_eq!(before.usage(t).get(w), 0, "{w:?}");
            r = AccountCounts::new();
        }
    }
}

#[cfg(test)]
mod store_tests {
    use super::*;

    fn limits() -> (tempfile::TempDir, MessageLimits) {
        let dir = tempfile::tempdir().unwrap();
        let location = StoreLocation::from(&dir.path().join("relaykey.db"));
        (dir, MessageLimits::new(location))
    }

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_699_999_200 + s)
    }

    #[tokio::test]
    async fn one_instance_counts_for_every_caller_per_account() {
        let (_dir, limits) = limits();
        let q = Usage { minute: 1, hour: 0, day: 0 };
        assert_eq!(limits.try_take("a@example.com", &q, at(0)).await.unwrap(), Ok(()));
        assert!(limits.try_take("a@example.com", &q, at(0)).await.unwrap().is_err());
        assert_eq!(limits.try_take("b@example.com", &q, at(0)).await.unwrap(), Ok(()), "per account");
        assert_eq!(limits.usage("a@example.com", at(0)).await.unwrap().minute, 1);
        assert_eq!(limits.try_take("a@example.com", &q, at(60)).await.unwrap(), Ok(()), "the minute is over");
    }

    #[tokio::test]
    async fn without_a_quota_nothing_is_counted_or_kept() {
        let (_dir, limits) = limits();
        for _ in 0..5 {
            assert_eq!(limits.try_take("a@example.com", &Usage::default(), at(0)).await.unwrap(), Ok(()));
        }
        assert_eq!(limits.usage("a@example.com", at(0)).await.unwrap(), Usage::default());
    }

    #[tokio::test]
    async fn another_instance_on_the_same_store_sees_the_counts() {
        // As a second host on one PostgreSQL, or the daemon after a restart.
        let (dir, limits) = limits();
        let q = Usage { minute: 0, hour: 0, day: 2 };
        for _ in 0..2 {
            assert_eq!(limits.try_take("a@example.com", &q, at(0)).await.unwrap(), Ok(()));
        }
        drop(limits);
        let again = MessageLimits::new(StoreLocation::from(&dir.path().join("relaykey.db")));
        let refused = again.try_take("a@example.com", &q, at(3600)).await.unwrap().unwrap_err();
        assert_eq!((refused.window, refused.limit), (RateWindow::Day, 2));
        assert_eq!(again.usage("a@example.com", at(86_400)).await.unwrap(), Usage::default(), "a day later");
    }

    #[tokio::test]
    async fn a_store_that_cannot_be_opened_is_an_error_not_a_refusal() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the database's directory should be.
        std::fs::write(dir.path().join("file"), "").unwrap();
        let limits = MessageLimits::new(StoreLocation::from(&dir.path().join("file/relaykey.db")));
        let q = Usage { minute: 1, hour: 0, day: 0 };
        assert!(limits.try_take("a@example.com", &q, at(0)).await.is_err());
    }
}
