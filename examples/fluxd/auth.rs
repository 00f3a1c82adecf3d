//! The daemon's secrets: the API's bearer token (compared in constant time) and the secret of
//! GitHub webhooks (HMAC-SHA256 signatures). Neither ever shows in `Debug` output.

use std::path::Path;

use hmac::{Hmac, Mac};
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

/// The shared secret of GitHub webhooks. Its `Debug` hides it.
#[derive(Clone)]
pub(crate) struct GithubSecret(Vec<u8>);

impl std::fmt::Debug for GithubSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GithubSecret(***)")
    }
}

impl GithubSecret {
    /// The secret in `file`, trimmed.
    pub(crate) fn load(file: &std::path::Path) -> Result<Self, String> {
        let s = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read the GitHub webhook secret {}: {e}", file.display()))?;
        Ok(GithubSecret(s.trim().as_bytes().to_vec()))
    }

    /// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `body` (checked in constant time).
    pub(crate) fn verifies(&self, body: &[u8], signature: &str) -> bool {
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
