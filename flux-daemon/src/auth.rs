//! The daemon's secrets: the API's bearer token (compared in constant time) and the secret of
//! GitHub webhooks (HMAC-SHA256 signatures). Neither ever shows in `Debug` output.

use std::path::Path;

use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

/// The API token. Its `Debug` hides it.
#[derive(Clone)]
pub struct ApiToken(String);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(***)")
    }
}

impl ApiToken {
    /// The token from `file`, else from env `FLUX_API_TOKEN`; an empty token is refused.
    ///
    /// # Errors
    /// When neither is there, the file cannot be read, or the token is empty.
    pub fn load(file: Option<&Path>) -> Result<Self, String> {
        let token = match file {
            Some(file) => std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read the API token file {}: {e}", file.display()))?,
            None => std::env::var("FLUX_API_TOKEN")
                .map_err(|_| "no API token: give --api-token-file or set FLUX_API_TOKEN".to_owned())?,
        };
        Self::new(token)
    }

    /// `token`, trimmed.
    ///
    /// # Errors
    /// When it is empty.
    pub fn new(token: impl Into<String>) -> Result<Self, String> {
        let token = token.into().trim().to_owned();
        if token.is_empty() {
            return Err("the API token is empty".into());
        }
        Ok(ApiToken(token))
    }

    /// Whether `presented` is the token, in time independent of where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

/// Who may use the API: the holder of the bearer token and, when opted in, any client on the
/// loopback interface (127.0.0.1, ::1: `kubectl port-forward`, a sidecar), as Flux v1's
/// token-less API was reached. Without a token and without that opt-in, nobody may.
#[derive(Debug, Clone)]
pub struct ApiAuth {
    /// The bearer token, if there is one.
    pub token: Option<ApiToken>,
    /// Let requests from a loopback address through without a token.
    pub allow_unauthenticated_loopback: bool,
}

impl ApiAuth {
    /// Requests need `token`.
    pub fn token(token: ApiToken) -> Self {
        ApiAuth { token: Some(token), allow_unauthenticated_loopback: false }
    }

    /// Whether a request from `peer` (unknown: `None`) presenting `bearer` is let through; the
    /// error says why not.
    ///
    /// # Errors
    /// A text for the 401 answer.
    pub fn check(&self, peer: Option<std::net::IpAddr>, bearer: Option<&str>) -> Result<(), &'static str> {
        let loopback = peer.is_some_and(|ip| match ip {
            std::net::IpAddr::V4(v4) => v4.is_loopback(),
            std::net::IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        });
        if self.allow_unauthenticated_loopback && loopback {
            return Ok(());
        }
        match (&self.token, bearer) {
            (None, _) => Err("this fluxd has no API token: only loopback clients may use the API"),
            (Some(token), Some(p)) if token.matches(p.trim()) => Ok(()),
            (Some(_), Some(_)) => Err("wrong API token"),
            (Some(_), None) => Err("missing Authorization: Bearer <token>"),
        }
    }
}

/// The shared secret of GitHub webhooks. Its `Debug` hides it.
#[derive(Clone)]
pub struct GithubSecret(Vec<u8>);

impl std::fmt::Debug for GithubSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GithubSecret(***)")
    }
}

impl GithubSecret {
    /// The secret in `file`, trimmed.
    ///
    /// # Errors
    /// When the file cannot be read.
    pub fn load(file: &std::path::Path) -> Result<Self, String> {
        let s = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read the GitHub webhook secret {}: {e}", file.display()))?;
        Ok(GithubSecret(s.trim().as_bytes().to_vec()))
    }

    /// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `body` (checked in constant time).
    pub fn verifies(&self, body: &[u8], signature: &str) -> bool {
        let Some(hex) = signature.strip_prefix("sha256=") else { return false };
        let Some(expected) = decode_hex(hex) else { return false };
        let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(&self.0) else { return false };
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
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

    #[test]
    fn loopback_needs_no_token_only_when_opted_in() {
        let token = ApiToken::new("t0ken").expect("token");
        let (v4, v6, mapped, remote) = (
            Some("127.0.0.1".parse().expect("ip")),
            Some("::1".parse().expect("ip")),
            Some("::ffff:127.0.0.1".parse().expect("ip")),
            Some("10.1.2.3".parse().expect("ip")),
        );
        let strict = ApiAuth::token(token.clone());
        assert!(strict.check(v4, None).is_err(), "off by default");
        assert!(strict.check(v4, Some("t0ken")).is_ok());
        let open = ApiAuth { token: Some(token), allow_unauthenticated_loopback: true };
        for peer in [v4, v6, mapped] {
            assert!(open.check(peer, None).is_ok(), "{peer:?}");
        }
        assert_eq!(open.check(remote, None), Err("missing Authorization: Bearer <token>"));
        assert_eq!(open.check(remote, Some("nope")), Err("wrong API token"));
        assert!(open.check(remote, Some("t0ken")).is_ok());
        assert!(open.check(None, None).is_err(), "an unknown peer is not loopback");
        let tokenless = ApiAuth { token: None, allow_unauthenticated_loopback: true };
        assert!(tokenless.check(v6, None).is_ok());
        assert!(tokenless.check(remote, Some("anything")).is_err());
    }

    #[test]
    fn github_signatures_are_checked() {
        let secret = GithubSecret(b"It's a Secret to Everybody".to_vec());
        // GitHub's documented example of X-Hub-Signature-256.
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(secret.verifies(b"Hello, World!", sig));
        assert!(!secret.verifies(b"Hello, World?", sig));
        assert!(!secret.verifies(b"Hello, World!", "sha256=00"));
        assert!(!secret.verifies(b"Hello, World!", ""));
        assert!(!format!("{secret:?}").contains("Secret to"));
    }
}
