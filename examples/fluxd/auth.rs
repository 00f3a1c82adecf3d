//! API authentication: `Authorization: Bearer <token>`, compared in constant time.

use std::path::Path;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

/// The API token. Its `Debug` hides it.
#[derive(Clone)]
pub(crate) struct ApiToken(String);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(***)")
    }
}

impl ApiToken {
    /// The token from `file`, else from env `FLUX_API_TOKEN`; an empty token is refused.
    pub(crate) fn load(file: Option<&Path>) -> Result<Self, String> {
        let token = match file {
            Some(file) => std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read the API token file {}: {e}", file.display()))?,
            None => std::env::var("FLUX_API_TOKEN")
                .map_err(|_| "no API token: give --api-token-file or set FLUX_API_TOKEN".to_owned())?,
        };
        let token = token.trim().to_owned();
        if token.is_empty() {
            return Err("the API token is empty".into());
        }
        Ok(ApiToken(token))
    }

    /// Whether `presented` is the token, in time independent of where they differ.
    pub(crate) fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

/// Lets a request through only with the right bearer token.
pub(crate) async fn require_token(State(token): State<ApiToken>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(p) if token.matches(p.trim()) => next.run(request).await,
        Some(_) => crate::api::error(StatusCode::UNAUTHORIZED, "wrong API token").into_response(),
        None => crate::api::error(StatusCode::UNAUTHORIZED, "missing Authorization: Bearer <token>").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly_and_never_print() {
        let token = ApiToken("s3cret-value".into());
        assert!(token.matches("s3cret-value"));
        assert!(!token.matches("s3cret-valuE"));
        assert!(!token.matches("s3cret"));
        assert!(!token.matches(""));
        assert!(!format!("{token:?}").contains("s3cret"));
    }
}
