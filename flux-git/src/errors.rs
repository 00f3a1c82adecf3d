//! Turning gix, git and I/O failures into `flux_core::Error` kinds, with secrets redacted.

use flux_core::Error;

use crate::remote::Redactor;

/// A failed talk with the remote: `Unauthorized` when credentials or the host key were refused,
/// `NotFound` when the repository does not exist, `Transient` otherwise. The cause is kept only
/// as redacted text, so no secret can leak through `source()`.
pub(crate) fn remote_error(redactor: &Redactor, what: &str, cause: &dyn std::fmt::Display) -> Error {
    let text = redactor.redact(&format!("{what}: {cause:#}"));
    let lower = text.to_lowercase();
    if ["host key verification failed", "remote host identification has changed", "no matching host key"]
        .iter()
        .any(|s| lower.contains(s))
    {
        return Error::unauthorized(format!("{text} (the server's host key is not trusted)"));
    }
    if ["permission denied", "authentication", "401", "403", "could not read username", "access denied"]
        .iter()
        .any(|s| lower.contains(s))
    {
        return Error::unauthorized(text);
    }
    if ["does not appear to be a git repository", "repository not found", "not found"].iter().any(|s| lower.contains(s))
    {
        return Error::not_found(text);
    }
    Error::transient(text)
}

/// A failure in the local mirror (object database, refs): nothing the caller can fix by retrying.
pub(crate) fn local_error(what: &str, cause: &dyn std::fmt::Display) -> Error {
    Error::other(format!("{what}: {cause:#}"))
}

/// A blocking task that panicked or was cancelled.
pub(crate) fn join_error(e: tokio::task::JoinError) -> Error {
    Error::other_with("a git task failed to complete", e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_message() {
        let r = Redactor::default();
        assert!(matches!(remote_error(&r, "fetch", &"Host key verification failed."), Error::Unauthorized { .. }));
        assert!(matches!(remote_error(&r, "fetch", &"Permission denied (publickey)."), Error::Unauthorized { .. }));
        assert!(remote_error(&r, "fetch", &"connection refused").is_retryable());
    }
}
