//! The outcome of one authentication: granted, denied (with a reason for the log only), or a
//! temporary failure (our fault: the client should retry).

use std::fmt;

use crate::model::PermissionSet;
use crate::restriction::AccessRestriction;

/// Which stored secret a login used. `hash` is the stored hash the secret was verified against;
/// it identifies the secret's generation through its salt: a `change` writes a hash with a new
/// salt, while a rehash on login (new argon2 parameters) keeps the salt. So "is this still the
/// secret the session logged in with" is [`CredentialRef::is_generation_of`] on the stored
/// hash, never string equality, which a rehash would break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialRef {
    ApiKey { id: i64, hash: String },
    SmtpCredential { id: i64, hash: String },
}

impl CredentialRef {
    /// Does `stored` (the credential's hash as the store holds it now) belong to the secret
    /// this login used? True across a rehash, false after a `change`. A login with an imported
    /// hash is followed by the rehash to argon2id, whose salt is derived from that hash
    /// (`legacy_hash::rehash_salt`), so the session stays the same secret's.
    pub fn is_generation_of(&self, stored: &str) -> bool {
        let (Self::ApiKey { hash, id } | Self::SmtpCredential { hash, id }) = self;
        if crate::legacy_hash::is_imported(hash) {
            return hash == stored || crate::secret::has_salt(stored, &crate::legacy_hash::rehash_salt(*id, hash));
        }
        crate::secret::same_generation(hash, stored)
    }

    /// `apikey:7` or `smtp:3`, for logs.
    pub fn label(&self) -> String {
        match self {
            Self::ApiKey { id, .. } => format!("apikey:{id}"),
            Self::SmtpCredential { id, .. } => format!("smtp:{id}"),
        }
    }
}

/// A successful login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The canonical (lower-cased) login name, as Postfix should record it.
    pub username: String,
    pub account_id: i64,
    pub account: String,
    pub credential: CredentialRef,
    /// For API keys, what the key may do; SMTP credentials carry no permissions.
    pub permissions: Option<PermissionSet>,
    pub allow: AccessRestriction,
    /// Answered from the cache, without an argon2 verification.
    pub cached: bool,
}

/// Why a login was refused. Shown in logs and `relaykey auth test`, never to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    UnknownUser,
    BadSecret,
    AccountDisabled,
    IpNotAllowed,
    /// The secret is restricted and the request carried no client address.
    IpRequired,
    /// An API key without the permission this use needs (`smtp` for SMTP AUTH).
    PermissionMissing,
    /// The secret a session logged in with was changed or removed since.
    SecretRevoked,
    /// The SASL response held no well-formed credential (see `auth::mechanism`).
    MalformedCredentials,
}

impl DenyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownUser => "unknown_user",
            Self::BadSecret => "bad_secret",
            Self::AccountDisabled => "account_disabled",
            Self::IpNotAllowed => "ip_not_allowed",
            Self::IpRequired => "ip_required",
            Self::PermissionMissing => "permission_missing",
            Self::SecretRevoked => "secret_revoked",
            Self::MalformedCredentials => "malformed_credentials",
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a decision could not be made: our fault, the client should retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TempFailReason {
    /// The store could not be read; the message is for the log.
    #[error("store: {0}")]
    Store(String),
    /// The argon2 verification threads are gone.
    #[error("verification pool closed")]
    VerifierClosed,
    /// A blocking lookup task panicked or was cancelled.
    #[error("lookup task failed: {0}")]
    Task(String),
}

impl TempFailReason {
    /// The log label (`reason=`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Store(_) => "store_error",
            Self::VerifierClosed => "verifier_closed",
            Self::Task(_) => "task_failed",
        }
    }
}

impl From<crate::store::StoreError> for TempFailReason {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Store(e.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Granted(Grant),
    Denied(DenyReason),
    TempFail(TempFailReason),
}

impl Decision {
    /// `allow`, `deny` or `tempfail`: the log field.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Granted(_) => "allow",
            Self::Denied(_) => "deny",
            Self::TempFail(_) => "tempfail",
        }
    }

    /// `ok`, `cached`, a [`DenyReason`] or a [`TempFailReason`].
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Granted(g) if g.cached => "cached",
            Self::Granted(_) => "ok",
            Self::Denied(r) => r.as_str(),
            Self::TempFail(r) => r.as_str(),
        }
    }

    pub fn is_granted(&self) -> bool {
        matches!(self, Self::Granted(_))
    }
}
