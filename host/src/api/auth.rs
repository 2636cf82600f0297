//! Bearer tokens and roles. A token is shown once when created; only its SHA-256 is kept.
//! `viewer` reads, `operator` also runs jobs, `admin` also manages endpoints and tokens.
//! Every request is authenticated, loopback included; every state-changing one is audited.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::ApiState;
use super::error::ApiError;

/// What a token may do; ordered, each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    /// Parses `admin`, `operator` or `viewer`.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// Who made a request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

/// A new random token (`tmk_` and 64 hex digits) and its hash.
pub fn new_token() -> anyhow::Result<(String, String)> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let token = format!("tmk_{}", hex::encode(bytes));
    let hash = hash_token(&token);
    Ok((token, hash))
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The role a request needs: reads need `viewer`; starting or cancelling jobs, and the
/// lab's device bytes (read or written: they are the guest's data), `operator`; tokens, the
/// audit log and endpoint changes `admin`.
pub fn required_role(method: &Method, path: &str) -> Role {
    let admin_area = path.starts_with("/v1/tokens") || path.starts_with("/v1/audit");
    let managed = path.starts_with("/v1/endpoints") || path.starts_with("/v1/adapters");
    if admin_area || (managed && method != Method::GET) {
        Role::Admin
    } else if path.starts_with("/v1/lab/") {
        Role::Operator
    } else if method == Method::GET || method == Method::HEAD {
        Role::Viewer
    } else {
        Role::Operator
    }
}

/// Authenticates, authorizes and audits every request.
pub async fn guard(
    State(state): State<Arc<ApiState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = presented else {
        return unauthorized("no bearer token: send `Authorization: Bearer <token>`");
    };
    let found = match state.tokens.lookup(&state.data.catalog, &hash_token(token)) {
        Ok(found) => found,
        Err(e) => return ApiError::internal(e).into_response(),
    };
    let Some((name, role)) = found else {
        return unauthorized("the bearer token is not valid");
    };
    let Some(role) = Role::parse(&role) else {
        return ApiError::internal(anyhow::anyhow!("token {name} has unknown role {role}"))
            .into_response();
    };
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let needed = required_role(&method, &path);
    let principal = Principal { name, role };
    let response = if role < needed {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "token {} has role {}; {method} {path} needs {}",
                principal.name,
                role.as_str(),
                needed.as_str()
            ),
        )
        .into_response()
    } else {
        request.extensions_mut().insert(principal.clone());
        next.run(request).await
    };
    if method != Method::GET && method != Method::HEAD {
        let status = response.status().as_u16();
        if let Err(e) = state
            .data
            .catalog
            .audit(&principal.name, method.as_str(), &path, status)
        {
            tracing::error!("audit log write failed: {e:#}");
        }
    }
    response
}

fn unauthorized(message: &str) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        "Bearer".parse().expect("static header"),
    );
    response
}

/// The principal name of commands run on the server's own machine with the token it leaves
/// in the data directory.
pub const LOCAL_PRINCIPAL: &str = "local";

/// Known tokens by hash, so a busy API does not query the catalog on every request.
/// Only hits are cached, for `ttl` (the `token_cache_ttl_secs` setting). The local token
/// lives only in memory.
pub struct TokenCache {
    ttl: std::time::Duration,
    known:
        std::sync::RwLock<std::collections::HashMap<String, (String, String, std::time::Instant)>>,
    local: std::sync::OnceLock<String>,
}

impl TokenCache {
    /// A cache trusting a token found valid for `ttl` (zero: never cached).
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl,
            known: Default::default(),
            local: Default::default(),
        }
    }

    /// (name, role) of the token with this hash, from the cache or the catalog.
    pub fn lookup(
        &self,
        catalog: &crate::catalog::Catalog,
        hash: &str,
    ) -> anyhow::Result<Option<(String, String)>> {
        if self.local.get().is_some_and(|local| local == hash) {
            return Ok(Some((
                LOCAL_PRINCIPAL.to_string(),
                Role::Admin.as_str().to_string(),
            )));
        }
        if let Some((name, role, at)) = self
            .known
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(hash)
            && at.elapsed() < self.ttl
        {
            return Ok(Some((name.clone(), role.clone())));
        }
        let found = catalog.token_by_hash(hash)?;
        if let Some((name, role)) = &found {
            self.known
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(
                    hash.to_string(),
                    (name.clone(), role.clone(), std::time::Instant::now()),
                );
        }
        Ok(found)
    }

    /// Makes a fresh admin token for local commands (valid until the process ends) and
    /// returns it.
    pub fn issue_local(&self) -> anyhow::Result<String> {
        let (token, hash) = new_token()?;
        self.local
            .set(hash)
            .map_err(|_| anyhow::anyhow!("a local token was issued already"))?;
        Ok(token)
    }
}
