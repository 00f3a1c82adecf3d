//! Turning gix, git and I/O failures into `flux_core::Error` kinds, with secrets redacted.

use flux_core::Error;

use crate::remote::Redactor;

/// A failed talk with the remote: `Unauthorized` when credentials or the host key were refused,
/// `NotFound` when the repository does not exist, `Transient` otherwise. The kind is read from
/// the words of the failure with the remote's `url` taken out: a repository, host or port can
/// hold any word or number (`auth-service.git`, port 40351). The cause is kept only as redacted
/// text, so no secret can leak through `source()`.
pub(crate) fn remote_error(redactor: &Redactor, url: &str, what: &str, cause: &dyn std::fmt::Display) -> Error {
    let text = redactor.redact(&format!("{what}: {cause:#}"));
    let lower = if url.is_empty() { text.clone() } else { text.replace(url, "<remote>") }.to_lowercase();
    if ["host key verification failed", "remote host identification has changed", "no matching host key"]
        .iter()
        .any(|s| lower.contains(s))
    {
        return Error::unauthorized(format!("{text} (the server's host key is not trusted)"));
    }
    if ["permission denied", "authentication", "could not read username", "access denied"]
        .iter()
        .any(|s| lower.contains(s))
        || ["401", "403"].iter().any(|code| has_status(&lower, code))
    {
        return Error::unauthorized(text);
    }
    if ["does not appear to be a git repository", "repository not found", "not found"].iter().any(|s| lower.contains(s))
    {
        return Error::not_found(text);
    }
    Error::transient(text)
}

/// Whether `code` stands alone in `text`, as an HTTP status does ("returned error: 403", "HTTP
/// 401"), not as part of a port, an address, a path or a longer number.
fn has_status(text: &str, code: &str) -> bool {
    let glued = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || matches!(c, ':' | '.' | '/' | '_' | '-'));
    text.match_indices(code)
        .any(|(at, _)| !glued(text[..at].chars().next_back()) && !glued(text[at + code.len()..].chars().next()))
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
        let url = "git://127.0.0.1:9418/repo.git";
        let kind = |cause: &str| remote_error(&r, url, "fetch", &cause);
        assert!(matches!(kind("Host key verification failed."), Error::Unauthorized { .. }));
        assert!(matches!(kind("Permission denied (publickey)."), Error::Unauthorized { .. }));
        assert!(matches!(kind("The requested URL returned error: 403"), Error::Unauthorized { .. }));
        assert!(matches!(kind("HTTP 401 Unauthorized"), Error::Unauthorized { .. }));
        assert!(kind("connection refused").is_retryable());
    }

    /// CI found this: a server going down mid-handshake on port 40351 read as "403".
    #[test]
    fn the_remote_url_and_numbers_within_others_say_nothing_of_the_kind() {
        let r = Redactor::default();
        for url in ["git://127.0.0.1:40351/repo.git", "https://git.example.com/team/authentication.git"] {
            let err =
                remote_error(&r, url, &format!("listing refs of {url}"), &"Transport handshake failed: Broken pipe");
            assert!(err.is_retryable(), "{url}: {err:?}");
            assert!(err.to_string().contains(url), "the error still names the remote: {err}");
        }
        let at = "/tmp/.tmp4031x/mirror";
        assert!(remote_error(&r, "", "fetch", &format!("reading {at}: Connection reset by peer")).is_retryable());
        assert!(remote_error(&r, "", "fetch", &"error: RPC failed; HTTP 4030 curl 22").is_retryable());
    }
}
