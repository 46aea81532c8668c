//! Bearer tokens with roles: `viewer` reads, `operator` also changes assignments, `admin` also
//! manages providers and plugins.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::AppState;

pub use crate::config::Role;

/// A configured control-plane token.
#[derive(Clone)]
pub struct ApiToken {
    /// Name recorded as the actor in audit records.
    pub name: String,
    /// Role.
    pub role: Role,
    digest: [u8; 32],
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl ApiToken {
    /// Creates a token; only its SHA-256 digest is kept in memory.
    pub fn new(name: impl Into<String>, role: Role, secret: &SecretString) -> Self {
        Self {
            name: name.into(),
            role,
            digest: digest(secret.expose_secret()),
        }
    }

    /// Returns whether `presented` is this token, in time independent of where it differs.
    pub fn verify(&self, presented: &str) -> bool {
        self.matches(&digest(presented))
    }

    fn matches(&self, presented: &[u8; 32]) -> bool {
        // Comparing fixed-size digests byte by byte without an early exit keeps the time
        // independent of where a guess differs.
        self.digest
            .iter()
            .zip(presented)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// The authenticated caller, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Token name.
    pub name: String,
    /// Role.
    pub role: Role,
}

/// Returns the role a request needs.
fn required_role(method: &Method, path: &str) -> Role {
    if path.starts_with("/v1/plugins")
        || path.starts_with("/v1/admin")
        || path.ends_with("/freeze-override")
    {
        return Role::Admin;
    }
    if method == Method::GET || method == Method::HEAD {
        return Role::Viewer;
    }
    if path.starts_with("/v1/assignments")
        || path.starts_with("/v1/plan")
        || path.starts_with("/v1/promote")
        || path.starts_with("/v1/environments/")
    {
        return Role::Operator;
    }
    Role::Admin
}

/// Middleware: authenticates `/v1` requests (except the agent channel, which has its own
/// tokens) and checks the role.
pub async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if !path.starts_with("/v1/") || path.starts_with("/v1/agent/") || path == "/v1/openapi.json" {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let Some(presented) = presented.filter(|t| !t.is_empty()) else {
        return ApiError::unauthorized("missing bearer token; send Authorization: Bearer <token>")
            .into_response();
    };
    let presented = digest(presented);
    let mut found = None;
    for token in &state.tokens {
        if token.matches(&presented) {
            found = Some(token);
        }
    }
    let Some(token) = found else {
        return ApiError::unauthorized("unknown bearer token").into_response();
    };
    let needed = required_role(request.method(), &path);
    if token.role < needed {
        return ApiError::forbidden(format!(
            "token {:?} has role {}, and {} {} needs {}",
            token.name,
            token.role.as_str(),
            request.method(),
            path,
            needed.as_str()
        ))
        .into_response();
    }
    request.extensions_mut().insert(Caller {
        name: token.name.clone(),
        role: token.role,
    });
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gets_need_viewer() {
        assert_eq!(
            required_role(&Method::GET, "/v1/assignments/a"),
            Role::Viewer
        );
    }

    #[test]
    fn assignment_writes_need_operator() {
        assert_eq!(
            required_role(&Method::PUT, "/v1/assignments/a"),
            Role::Operator
        );
        assert_eq!(
            required_role(&Method::POST, "/v1/assignments/a/rollback"),
            Role::Operator
        );
    }

    #[test]
    fn other_writes_need_admin() {
        assert_eq!(
            required_role(&Method::POST, "/v1/providers/x/check"),
            Role::Admin
        );
    }

    #[test]
    fn token_debug_hides_secret() {
        let token = ApiToken::new("cp", Role::Operator, &SecretString::from("s3cr3t-value"));
        assert!(!format!("{token:?}").contains("s3cr3t"));
    }
}
