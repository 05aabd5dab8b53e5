//! The outcome of one authentication: granted, denied (with a reason for the log only), or a
//! temporary failure (our fault: the client should retry).

use std::fmt;

use crate::model::PermissionSet;
use crate::restriction::AccessRestriction;

/// Which stored secret a login used. `hash` identifies the secret's generation: a `change`
/// writes a new hash, so a session can later tell that its secret is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialRef {
    ApiKey { id: i64, hash: String },
    SmtpCredential { id: i64, hash: String },
}

impl CredentialRef {
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
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Granted(Grant),
    Denied(DenyReason),
    /// The store could not be read; the message is for the log.
    TempFail(String),
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

    /// `ok`, a [`DenyReason`], or `store_error`.
    pub fn reason(&self) -> &str {
        match self {
            Self::Granted(g) if g.cached => "cached",
            Self::Granted(_) => "ok",
            Self::Denied(r) => r.as_str(),
            Self::TempFail(_) => "store_error",
        }
    }

    pub fn is_granted(&self) -> bool {
        matches!(self, Self::Granted(_))
    }
}
