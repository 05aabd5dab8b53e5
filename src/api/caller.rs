//! Authentication of a request: `Authorization: Bearer <api key>`, decided by the shared
//! Authenticator (one argon2 verification at most, cached, IP restriction and permission
//! checked there). Handlers name the permission they need in their signature:
//! `Caller<Manage>`.

use std::marker::PhantomData;
use std::net::IpAddr;
use std::sync::Arc;

use super::error::ApiError;
use super::state::ApiState;
use crate::auth::{CredentialRef, Decision, DenyReason, FrontEnd, Grant, Login, LoginMechanism, Presented};
use crate::model::Permission;
use crate::secret::Secret;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

/// The client's address, put into each request's extensions by the server.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

/// A permission an endpoint needs.
pub trait Needs {
    const PERMISSION: Permission;
}

/// The permissions as types, so that a handler's signature says what it needs:
/// `Caller<perm::Manage>`.
pub mod perm {
    use super::{Needs, Permission};

    pub struct View;
    pub struct Manage;
    pub struct Send;

    impl Needs for View {
        const PERMISSION: Permission = Permission::View;
    }
    impl Needs for Manage {
        const PERMISSION: Permission = Permission::Manage;
    }
    impl Needs for Send {
        const PERMISSION: Permission = Permission::Send;
    }
}

/// An authenticated caller holding permission `N`.
pub struct Caller<N> {
    pub grant: Grant,
    pub ip: Option<IpAddr>,
    _needs: PhantomData<N>,
}

impl<N> Caller<N> {
    /// The id of the key making the request.
    pub fn key_id(&self) -> Option<i64> {
        match self.grant.credential {
            CredentialRef::ApiKey { id, .. } => Some(id),
            CredentialRef::SmtpCredential { .. } => None,
        }
    }
}

/// The key from `Authorization: Bearer <key>`; the scheme is case-insensitive (RFC 9110 §11.1).
fn bearer(parts: &Parts) -> Option<Secret> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| Secret::from_presented(token))
}

impl<N: Needs> FromRequestParts<Arc<ApiState>> for Caller<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<ApiState>) -> Result<Self, ApiError> {
        let ip = parts.extensions.get::<ClientAddr>().map(|c| c.0);
        let Some(secret) = bearer(parts) else {
            return Err(ApiError::unauthorized());
        };
        let login = Login {
            front_end: FrontEnd::Api,
            mechanism: LoginMechanism::Bearer,
            client_ip: ip,
            presented: Presented::ApiKey { secret, needs: N::PERMISSION },
        };
        let outcome = state.logins.login(login).await;
        tokio::time::sleep(outcome.delay).await;
        match outcome.decision {
            Decision::Granted(grant) => Ok(Self { grant, ip, _needs: PhantomData }),
            // The key is genuine here: telling its holder what is missing leaks nothing.
            Decision::Denied(DenyReason::PermissionMissing) => {
                Err(ApiError::forbidden(format!("this API key lacks the {} permission", N::PERMISSION)))
            }
            Decision::Denied(DenyReason::IpNotAllowed | DenyReason::IpRequired) => {
                Err(ApiError::forbidden("this API key may not be used from this address"))
            }
            Decision::Denied(_) => Err(ApiError::unauthorized()),
            Decision::TempFail(_) => {
                Err(ApiError::unavailable("authentication is temporarily unavailable; retry later"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(value: Option<&str>) -> Parts {
        let mut b = axum::http::Request::builder();
        if let Some(v) = value {
            b = b.header(AUTHORIZATION, v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_other_schemes_are_no_key() {
        for (header, want) in [
            (Some("Bearer ABC"), Some("ABC")),
            (Some("bearer   ABC "), Some("ABC")),
            (Some("BEARER ABC"), Some("ABC")),
            (Some("Basic QUJD"), None),
            (Some("Bearer"), None),
            (Some("Bearer "), None),
            (None, None),
        ] {
            let got = bearer(&parts(header));
            assert_eq!(got.as_ref().map(Secret::expose), want, "{header:?}");
        }
    }
}
