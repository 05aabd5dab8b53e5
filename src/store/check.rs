//! `relaykey store check`: the store's rules, read back from what is stored. Each rule is
//! enforced when a row is written; this finds rows that break one anyway (written by hand, by
//! an older version, or copied in from elsewhere), on either engine.

use std::collections::{HashMap, HashSet};

use super::db::params;
use super::{Result, Store};
use crate::legacy_hash::{LegacyHash, is_imported};
use crate::model::MAX_PER_ACCOUNT;
use crate::secret::HashParams;

/// One broken rule, with what it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreProblem {
    pub table: &'static str,
    pub id: i64,
    pub problem: String,
}

/// What a check read, and what it found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreCheck {
    pub schema_version: i64,
    pub accounts: u64,
    pub api_keys: u64,
    pub smtp_credentials: u64,
    pub senders: u64,
    pub dkim_keys: u64,
    pub problems: Vec<StoreProblem>,
}

impl StoreCheck {
    fn problem(&mut self, table: &'static str, id: i64, problem: impl Into<String>) {
        self.problems.push(StoreProblem { table, id, problem: problem.into() });
    }
}

/// A stored secret hash this build can verify: argon2id, or an imported scheme it keeps.
fn hash_is_usable(stored: &str) -> bool {
    if is_imported(stored) {
        return LegacyHash::parse_stored(stored, u32::MAX).is_some();
    }
    HashParams::of_phc(stored).is_some()
}

impl Store {
    /// Reads the whole store in one snapshot and checks every rule.
    pub fn check(&self) -> Result<StoreCheck> {
        self.read_snapshot(|s| s.check_snapshot())
    }

    fn check_snapshot(&self) -> Result<StoreCheck> {
        let (version, current) = self.schema_versions()?;
        let mut check = StoreCheck { schema_version: version, ..Default::default() };
        if version != current {
            check.problem("schema", version, format!("schema version {version}, this relaykey writes {current}"));
        }

        let mut account_emails = HashMap::new();
        for account in self.all_accounts()? {
            check.accounts += 1;
            match account {
                Ok(a) => {
                    account_emails.insert(a.email.as_str().to_lowercase(), a.id);
                }
                Err(e) => check.problem("accounts", -1, format!("unreadable: {e}")),
            }
        }
        for row in self.db.rows("SELECT id, email FROM accounts", params![])? {
            let (id, email) = (row.int(0)?, row.text(1)?);
            if crate::address::EmailAddress::from_stored(&email).is_err() {
                check.problem("accounts", id, format!("{email:?} is not a valid address"));
            }
        }

        let mut keys_per_account: HashMap<i64, usize> = HashMap::new();
        let mut last5_seen: HashSet<(i64, String)> = HashSet::new();
        for row in self.db.rows("SELECT id, account_id, last5, hash FROM api_keys ORDER BY id", params![])? {
            check.api_keys += 1;
            let (id, account, last5, hash) = (row.int(0)?, row.int(1)?, row.text(2)?, row.text(3)?);
            *keys_per_account.entry(account).or_default() += 1;
            if last5.chars().count() != 5 {
                check.problem("api_keys", id, format!("masked part {last5:?} is not 5 characters"));
            } else if !last5_seen.insert((account, last5.clone())) {
                check.problem("api_keys", id, format!("another key of account {account} also ends in {last5}"));
            }
            if !hash_is_usable(&hash) {
                check.problem("api_keys", id, "the hash is neither argon2id nor a kept imported scheme");
            }
        }
        for key in self.all_api_keys()? {
            if let Err(e) = key {
                check.problem("api_keys", -1, format!("unreadable: {e}"));
            }
        }

        let mut creds_per_account: HashMap<i64, usize> = HashMap::new();
        let mut usernames: HashMap<String, i64> = HashMap::new();
        for row in
            self.db.rows("SELECT id, account_id, username, last5, hash FROM smtp_credentials ORDER BY id", params![])?
        {
            check.smtp_credentials += 1;
            let (id, account, username, last5, hash) =
                (row.int(0)?, row.int(1)?, row.text(2)?, row.text(3)?, row.text(4)?);
            *creds_per_account.entry(account).or_default() += 1;
            let folded = username.to_lowercase();
            if let Some(other) = usernames.insert(folded.clone(), id) {
                check.problem("smtp_credentials", id, format!("username {username} is also credential {other}'s"));
            }
            if account_emails.get(&folded).is_some_and(|owner| *owner != account) {
                check.problem("smtp_credentials", id, format!("username {username} is another account's address"));
            }
            let imported = is_imported(&hash);
            if !(last5.chars().count() == 5 || (imported && last5.is_empty())) {
                check.problem("smtp_credentials", id, format!("masked part {last5:?} is not 5 characters"));
            }
            if !hash_is_usable(&hash) {
                check.problem("smtp_credentials", id, "the hash is neither argon2id nor a kept imported scheme");
            }
        }
        for cred in self.all_smtp_credentials()? {
            if let Err(e) = cred {
                check.problem("smtp_credentials", -1, format!("unreadable: {e}"));
            }
        }
        for (what, per_account) in [("API keys", &keys_per_account), ("SMTP credentials", &creds_per_account)] {
            for (account, n) in per_account {
                if *n > MAX_PER_ACCOUNT {
                    check.problem("accounts", *account, format!("{n} {what}, more than {MAX_PER_ACCOUNT}"));
                }
            }
        }

        let mut own_address_bound: HashSet<i64> = HashSet::new();
        let mut domains: HashMap<i64, (String, bool)> = HashMap::new();
        for row in self.db.rows("SELECT id, account_id, entry, kind, verified FROM senders ORDER BY id", params![])? {
            check.senders += 1;
            let (id, account, entry, kind, verified) =
                (row.int(0)?, row.int(1)?, row.text(2)?, row.text(3)?, row.flag(4)?);
            if account_emails.get(&entry.to_lowercase()) == Some(&account) {
                own_address_bound.insert(account);
            }
            if kind == "domain" {
                domains.insert(id, (entry.to_lowercase(), verified));
            }
        }
        for (email, id) in &account_emails {
            if !own_address_bound.contains(id) {
                check.problem("accounts", *id, format!("{email} does not own its own address as a sender"));
            }
        }

        for row in self.db.rows("SELECT id, sender_id, domain, state FROM dkim_keys ORDER BY id", params![])? {
            check.dkim_keys += 1;
            let (id, sender, domain, state) = (row.int(0)?, row.int(1)?, row.text(2)?, row.text(3)?);
            match domains.get(&sender) {
                None => check.problem("dkim_keys", id, format!("{domain}: its sender entry is not a domain")),
                Some((entry, _)) if *entry != domain.to_lowercase() => {
                    check.problem("dkim_keys", id, format!("{domain}: hangs on sender entry {entry}"))
                }
                Some((_, false)) if state == "active" => {
                    check.problem("dkim_keys", id, format!("{domain}: active on an unverified domain"))
                }
                Some(_) => {}
            }
        }
        if let Err(e) = self.dkim_keys(None) {
            check.problem("dkim_keys", -1, format!("unreadable: {e}"));
        }
        Ok(check)
    }
}
