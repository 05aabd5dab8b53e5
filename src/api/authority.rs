//! What a calling API key may hand out: at most its own permissions and at most its own reach.
//! A key that could give more could raise itself: mint a key with more, then use that one.
//! (The operator's CLI is not bound by this; it is the operator.)

use super::error::ApiError;
use crate::auth::Grant;
use crate::model::PermissionSet;
use crate::restriction::AccessRestriction;

pub struct Authority {
    permissions: PermissionSet,
    reach: AccessRestriction,
}

impl Authority {
    /// The authority of the key a request was made with.
    pub fn of(grant: &Grant) -> Self {
        // API callers are always API keys, which carry permissions; anything else holds none.
        Self { permissions: grant.permissions.unwrap_or(PermissionSet::EMPTY), reach: grant.allow.clone() }
    }

    /// What a new key gets when the request names no permissions: the caller's own.
    pub fn permissions(&self) -> PermissionSet {
        self.permissions
    }

    /// What a new key or credential gets when the request names no restriction: the caller's.
    pub fn reach(&self) -> &AccessRestriction {
        &self.reach
    }

    /// Refuses permissions the caller does not hold.
    pub fn may_give_permissions(&self, wanted: PermissionSet) -> Result<(), ApiError> {
        let beyond = wanted.beyond(self.permissions);
        if beyond.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = beyond.iter().map(|p| p.as_str()).collect();
        Err(ApiError::forbidden(format!(
            "this API key cannot give permissions it does not hold ({})",
            names.join(", ")
        )))
    }

    /// Refuses a restriction that allows an address the caller's own restriction does not.
    pub fn may_give_reach(&self, wanted: &AccessRestriction) -> Result<(), ApiError> {
        if wanted.is_within(&self.reach) {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "this API key cannot allow use from addresses outside its own restriction ({})",
            self.reach.to_strings().join(", ")
        )))
    }

    /// Refuses to hand over a new secret for something usable from further than the caller.
    pub fn may_change_secret_of(&self, allow: &AccessRestriction) -> Result<(), ApiError> {
        if allow.is_within(&self.reach) {
            return Ok(());
        }
        Err(ApiError::forbidden(
            "this API key cannot change the secret of a key or credential usable from addresses outside its own restriction",
        ))
    }

    /// A key editing itself may narrow what it holds, never widen it.
    pub fn may_edit_itself(
        &self,
        permissions: Option<PermissionSet>,
        allow: Option<&AccessRestriction>,
    ) -> Result<(), ApiError> {
        let raises = permissions.is_some_and(|p| !p.beyond(self.permissions).is_empty())
            || allow.is_some_and(|a| !a.is_within(&self.reach));
        if raises {
            return Err(ApiError::forbidden(
                "an API key cannot raise its own permissions or widen its own restriction",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::CredentialRef;
    use crate::model::Permission::{Manage, Send, Smtp, View};

    fn authority(perms: &[crate::model::Permission], allow: &[&str]) -> Authority {
        Authority::of(&Grant {
            username: "a@b.c".into(),
            account_id: 1,
            account: "a@b.c".into(),
            credential: CredentialRef::ApiKey { id: 1, hash: String::new() },
            permissions: Some(perms.iter().copied().collect()),
            allow: AccessRestriction::parse_all(allow).unwrap(),
            cached: false,
        })
    }

    #[test]
    fn gives_at_most_what_it_holds() {
        let a = authority(&[View, Manage], &["127.0.0.1"]);
        assert!(a.may_give_permissions([View].into_iter().collect()).is_ok());
        let e = a.may_give_permissions([Smtp, View, Send].into_iter().collect()).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (403, "forbidden"));
        assert!(e.message.contains("(smtp, send)"), "{}", e.message);
        assert!(a.may_give_reach(&AccessRestriction::parse_all(&["127.0.0.1"]).unwrap()).is_ok());
        assert!(a.may_give_reach(&AccessRestriction::unrestricted()).is_err());
    }

    #[test]
    fn an_unrestricted_full_key_may_give_anything() {
        let a = authority(&[Smtp, Send, View, Manage], &[]);
        assert!(a.may_give_permissions(PermissionSet::all()).is_ok());
        assert!(a.may_give_reach(&AccessRestriction::parse_all(&["0.0.0.0/0", "::/0"]).unwrap()).is_ok());
        assert!(a.may_edit_itself(Some(PermissionSet::all()), Some(&AccessRestriction::unrestricted())).is_ok());
    }

    #[test]
    fn editing_itself_may_only_narrow() {
        let a = authority(&[View, Manage], &["127.0.0.0/8"]);
        assert!(a.may_edit_itself(Some([Manage].into_iter().collect()), None).is_ok());
        assert!(a.may_edit_itself(None, Some(&AccessRestriction::parse_all(&["127.0.0.1"]).unwrap())).is_ok());
        assert!(a.may_edit_itself(Some(PermissionSet::all()), None).is_err());
        assert!(a.may_edit_itself(None, Some(&AccessRestriction::unrestricted())).is_err());
    }
}
