//! Mapping kube's errors into flux-core's kinds, and telling per-object refusals from failures of
//! the whole call.

use flux_core::Error;
use kube::core::Status;

/// What a request to the API server gave instead of a success.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The server refused this one object (invalid, forbidden, conflict, not found...): the
    /// others can go on.
    Object(Box<Status>),
    /// The whole call cannot go on (connection lost, credentials refused, rate limited).
    Fatal(Error),
}

impl Refusal {
    /// The HTTP code of an object refusal, 0 for fatal ones.
    pub(crate) fn code(&self) -> u16 {
        match self {
            Refusal::Object(s) => s.code,
            Refusal::Fatal(_) => 0,
        }
    }

    /// The reason to report for the object.
    pub(crate) fn reason(&self) -> String {
        match self {
            Refusal::Object(s) => describe(s),
            Refusal::Fatal(e) => e.to_string(),
        }
    }

    /// Into a flux-core error, for calls where any failure is the call's.
    pub(crate) fn into_error(self, what: &str) -> Error {
        match self {
            Refusal::Object(s) if s.code == 404 => Error::not_found(what.to_owned()),
            Refusal::Object(s) if s.code == 409 => Error::conflict(format!("{what}: {}", describe(&s))),
            Refusal::Object(s) if s.code == 403 => Error::unauthorized(format!("{what}: {}", describe(&s))),
            Refusal::Object(s) => Error::other(format!("{what}: {}", describe(&s))),
            Refusal::Fatal(e) => e,
        }
    }
}

/// A status as one line: its message, or its reason and code.
fn describe(status: &Status) -> String {
    if status.message.is_empty() { format!("{} ({})", status.reason, status.code) } else { status.message.clone() }
}

/// Sorts an API status code: which failures end the whole call.
///
/// Only what says the server cannot take requests from us at all ends the call: refused
/// credentials (401), rate limiting (429), and the server (or a proxy in front of it) being
/// unavailable or timing out (502 and above). Everything else is about the one request: 4xx, and
/// a 500, which the API server answers for a body it cannot process (e.g. `failed to convert new
/// object to proper version: ... quantities must match the regular expression`, with no reason,
/// or `InternalError` from an admission webhook): that object is `Failed`, the others go on.
pub(crate) fn refusal(status: Status) -> Refusal {
    match status.code {
        401 => Refusal::Fatal(Error::unauthorized(format!(
            "the API server refused the credentials: {}",
            describe(&status)
        ))),
        429 => Refusal::Fatal(Error::RateLimited { retry_after: None }),
        code if code >= 502 => {
            Refusal::Fatal(Error::transient(format!("the API server failed: {}", describe(&status))))
        }
        _ => Refusal::Object(Box::new(status)),
    }
}

/// Maps any kube error.
pub(crate) fn from_kube(error: kube::Error) -> Refusal {
    match error {
        kube::Error::Api(status) => refusal(*status),
        e @ (kube::Error::HyperError(_) | kube::Error::Service(_)) => Refusal::Fatal(Error::Transient {
            message: format!("cannot reach the API server: {e}"),
            source: Some(std::sync::Arc::new(e)),
        }),
        e => Refusal::Fatal(Error::other_with("Kubernetes client error", e)),
    }
}

/// Maps any kube error into a flux-core error about `what`.
pub(crate) fn kube_error(what: &str, error: kube::Error) -> Error {
    from_kube(error).into_error(what)
}

/// Whether an object refusal says an immutable field was changed.
pub(crate) fn is_immutable(status: &Status) -> bool {
    status.code == 422 && (status.message.contains("immutable") || status.message.contains("may not change once set"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, reason: &str, message: &str) -> Status {
        Status::failure(message, reason).with_code(code)
    }

    #[test]
    fn a_request_the_server_cannot_process_fails_only_its_object() {
        // What a v1.20 API server answers to a ResourceQuota with `pods: "ten"`.
        let quota = status(500, "", "failed to convert new object to proper version: quantities must match");
        assert!(matches!(refusal(quota), Refusal::Object(s) if s.message.contains("quantities")));
        assert!(matches!(refusal(status(500, "InternalError", "webhook failed")), Refusal::Object(_)));
        assert!(matches!(refusal(status(422, "Invalid", "bad name")), Refusal::Object(_)));
        assert!(matches!(refusal(status(403, "Forbidden", "no")), Refusal::Object(_)));
    }

    #[test]
    fn credentials_rate_limits_and_an_unavailable_server_end_the_call() {
        assert!(matches!(refusal(status(401, "Unauthorized", "")), Refusal::Fatal(Error::Unauthorized { .. })));
        assert!(matches!(refusal(status(429, "TooManyRequests", "")), Refusal::Fatal(Error::RateLimited { .. })));
        for code in [502, 503, 504] {
            assert!(matches!(refusal(status(code, "ServiceUnavailable", "")), Refusal::Fatal(Error::Transient { .. })));
        }
    }
}
