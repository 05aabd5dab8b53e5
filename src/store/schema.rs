//! Versioned migrations, applied in order at open; `PRAGMA user_version` records the last one.

/// Each entry moves the schema from version `i` to `i + 1`. Never edit a released entry:
/// append a new one.
pub const MIGRATIONS: &[&str] = &[
    // 1: accounts, API keys, SMTP credentials.
    r#"
    CREATE TABLE accounts (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        email       TEXT    NOT NULL UNIQUE COLLATE NOCASE,
        enabled     INTEGER NOT NULL DEFAULT 1,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE api_keys (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        account_id   INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name         TEXT    NOT NULL,
        permissions  TEXT    NOT NULL,
        allow        TEXT    NOT NULL DEFAULT '',
        last5        TEXT    NOT NULL,
        locator      TEXT    NOT NULL,
        hash         TEXT    NOT NULL,
        created_at   INTEGER NOT NULL,
        last_used_at INTEGER,
        UNIQUE (account_id, last5)
    );
    CREATE INDEX api_keys_locator ON api_keys(locator);
    CREATE TABLE smtp_credentials (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        account_id   INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        username     TEXT    NOT NULL UNIQUE COLLATE NOCASE,
        allow        TEXT    NOT NULL DEFAULT '',
        last5        TEXT    NOT NULL,
        hash         TEXT    NOT NULL,
        created_at   INTEGER NOT NULL,
        last_used_at INTEGER
    );
    CREATE INDEX smtp_credentials_account ON smtp_credentials(account_id);
    "#,
    // 2: sender entries (domains and addresses an account may send as). `entry` is unique
    // system-wide: one owner per name. Existing accounts get their own address by
    // `SENDERS_BACKFILL_AT` (in Rust: the domain goes through IDNA).
    r#"
    CREATE TABLE senders (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        entry       TEXT    NOT NULL UNIQUE COLLATE NOCASE,
        account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        kind        TEXT    NOT NULL CHECK (kind IN ('domain', 'address')),
        verified    INTEGER NOT NULL DEFAULT 0,
        token       TEXT,
        unicode     TEXT    NOT NULL,
        created_at  INTEGER NOT NULL
    );
    CREATE INDEX senders_account ON senders(account_id);
    "#,
    // DKIM keys of sender domains. A key hangs on its verified domain entry: removing the
    // entry removes its keys. `private_key` is PKCS#8 DER and never leaves the store but to
    // the daemon's keyring.
    r#"
    CREATE TABLE dkim_keys (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        sender_id   INTEGER NOT NULL REFERENCES senders(id) ON DELETE CASCADE,
        domain      TEXT    NOT NULL COLLATE NOCASE,
        selector    TEXT    NOT NULL COLLATE NOCASE,
        algorithm   TEXT    NOT NULL CHECK (algorithm IN ('rsa', 'ed25519')),
        private_key BLOB    NOT NULL,
        public_key  BLOB    NOT NULL,
        state       TEXT    NOT NULL CHECK (state IN ('published', 'active', 'retired')),
        created_at  INTEGER NOT NULL,
        UNIQUE (domain, selector)
    );
    CREATE INDEX dkim_keys_sender ON dkim_keys(sender_id);
    "#,
    // State the daemons share, so that several hosts on one store count and remember alike
    // and a restart forgets nothing: per-account message counts in time buckets
    // (`message_limits`; `span` 0 minute, 1 hour, 2 day; `slot` the bucket's number since the
    // Unix epoch), and the login ledger the policy server consults (`auth::ledger`; times in
    // Unix milliseconds; `client` the canonical address or '').
    r#"
    CREATE TABLE message_counts (
        account     TEXT    NOT NULL,
        span        INTEGER NOT NULL,
        slot        INTEGER NOT NULL,
        n           INTEGER NOT NULL,
        PRIMARY KEY (account, span, slot)
    );
    CREATE TABLE login_grants (
        username       TEXT    NOT NULL,
        client         TEXT    NOT NULL,
        kind           TEXT    NOT NULL CHECK (kind IN ('apikey', 'smtp')),
        credential_id  INTEGER NOT NULL,
        hash           TEXT    NOT NULL,
        account_id     INTEGER NOT NULL,
        account        TEXT    NOT NULL,
        login_at       INTEGER NOT NULL,
        revoked_at     INTEGER,
        PRIMARY KEY (username, client, kind, credential_id, hash)
    );
    CREATE INDEX login_grants_login_at ON login_grants(login_at);
    "#,
];

/// The migration after which every existing account gets its own address as a verified
/// sender entry.
pub const SENDERS_BACKFILL_AT: usize = 2;
