//! The one error type every port returns.
//!
//! Adapters map their private errors into [`Error`]; the engines act on its kind:
//! [`Error::Conflict`] is retried after a refresh, [`Error::RateLimited`] and
//! [`Error::Transient`] are retried later, everything else is reported.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A boxed error kept as the cause of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The cause behind an [`Error`], shared: errors are cloneable (a report or a job keeps one and
/// hands out copies) without losing what caused them.
pub type SharedError = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of every port.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where in the user's input a problem is: a file and, when known, a line (1-based).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct Location {
    /// A path relative to the repository root, an image reference, or a workload id.
    pub file: String,
    /// The 1-based line in `file`, when the input has lines.
    pub line: Option<usize>,
}

impl Location {
    /// A location with no line.
    pub fn file(file: impl Into<String>) -> Self {
        Location { file: file.into(), line: None }
    }

    /// A location at `line` (1-based) of `file`.
    pub fn line(file: impl Into<String>, line: usize) -> Self {
        Location { file: file.into(), line: Some(line) }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}", self.file, line),
            None => f.write_str(&self.file),
        }
    }
}

/// Everything that can go wrong behind a port, by what the caller can do about it.
///
/// Messages never carry credentials: adapters redact them before building an error.
///
/// It is cloneable (its causes are shared) and serialisable as `{"kind", ...its fields}` (kinds in
/// snake case; a cause is written into the message, as text), so reports and job results keep
/// the kind and location up to the API.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The thing asked for does not exist (a revision, a file, a tag, an object).
    #[error("not found: {what}")]
    NotFound {
        /// What was looked for, e.g. `file deploy/app.yaml at 1a2b3c`.
        what: String,
    },
    /// Someone else changed the target meanwhile; refresh and try again.
    #[error("conflict: {message}")]
    Conflict {
        /// What conflicted.
        message: String,
    },
    /// The credentials were refused or are missing.
    #[error("unauthorized: {message}")]
    Unauthorized {
        /// What was refused (never the credential itself).
        message: String,
    },
    /// The backend asked us to slow down.
    #[error("rate limited{}", .retry_after.map(|d| format!(", retry after {d:?}")).unwrap_or_default())]
    RateLimited {
        /// How long the backend asked us to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// The user's input is wrong; the location says where.
    #[error("{location}: {message}")]
    InvalidInput {
        /// The file and line, image or workload at fault.
        location: Location,
        /// What is wrong with it.
        message: String,
    },
    /// A passing failure (network, timeout, 5xx); the same call may succeed later.
    #[error("transient: {message}")]
    Transient {
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<SharedError>,
    },
    /// Anything else.
    #[error("{message}")]
    Other {
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<SharedError>,
    },
}

impl Error {
    /// [`Error::NotFound`] for `what`.
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    /// [`Error::Conflict`] with `message`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Error::Conflict { message: message.into() }
    }

    /// [`Error::Unauthorized`] with `message`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Error::Unauthorized { message: message.into() }
    }

    /// [`Error::InvalidInput`] at `location`.
    pub fn invalid(location: Location, message: impl Into<String>) -> Self {
        Error::InvalidInput { location, message: message.into() }
    }

    /// [`Error::Transient`] with `message` and no cause.
    pub fn transient(message: impl Into<String>) -> Self {
        Error::Transient { message: message.into(), source: None }
    }

    /// [`Error::Other`] with `message` and no cause.
    pub fn other(message: impl Into<String>) -> Self {
        Error::Other { message: message.into(), source: None }
    }

    /// [`Error::Other`] with `message` and `source` as its cause.
    pub fn other_with(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Other { message: message.into(), source: Some(Arc::from(source.into())) }
    }

    /// Whether the same call may succeed if made again later, unchanged
    /// ([`Error::RateLimited`] and [`Error::Transient`]).
    /// [`Error::Conflict`] is not: it needs a refresh first.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::RateLimited { .. } | Error::Transient { .. })
    }

    /// Whether this is [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// Whether this is [`Error::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }
}

impl Error {
    /// The same error, its message prefixed with `context` (`listing tags of x: ...`); the kind,
    /// location and cause are kept.
    pub fn context(self, context: impl fmt::Display) -> Self {
        let prefix = |message: String| format!("{context}: {message}");
        match self {
            Error::NotFound { what } => Error::NotFound { what: prefix(what) },
            Error::Conflict { message } => Error::Conflict { message: prefix(message) },
            Error::Unauthorized { message } => Error::Unauthorized { message: prefix(message) },
            Error::InvalidInput { location, message } => Error::InvalidInput { location, message: prefix(message) },
            Error::Transient { message, source } => Error::Transient { message: prefix(message), source },
            Error::Other { message, source } => Error::Other { message: prefix(message), source },
            Error::RateLimited { retry_after } => {
                let message = prefix(Error::RateLimited { retry_after }.to_string());
                Error::Transient { message, source: None }
            }
        }
    }

    /// The kind, in snake case: `not_found`, `conflict`, `unauthorized`, `rate_limited`,
    /// `invalid_input`, `transient`, `other`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "not_found",
            Error::Conflict { .. } => "conflict",
            Error::Unauthorized { .. } => "unauthorized",
            Error::RateLimited { .. } => "rate_limited",
            Error::InvalidInput { .. } => "invalid_input",
            Error::Transient { .. } => "transient",
            Error::Other { .. } => "other",
        }
    }
}

/// The serialised form of an [`Error`].
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum ErrorRepr {
    NotFound { what: String },
    Conflict { message: String },
    Unauthorized { message: String },
    RateLimited { retry_after_ms: Option<u64> },
    InvalidInput { location: Location, message: String },
    Transient { message: String },
    Other { message: String },
}

/// `message`, then its cause's text (a serialised error keeps the cause as text only).
fn with_cause(message: &str, source: Option<&SharedError>) -> String {
    match source {
        Some(source) => format!("{message}: {source}"),
        None => message.to_owned(),
    }
}

impl serde::Serialize for Error {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let repr = match self {
            Error::NotFound { what } => ErrorRepr::NotFound { what: what.clone() },
            Error::Conflict { message } => ErrorRepr::Conflict { message: message.clone() },
            Error::Unauthorized { message } => ErrorRepr::Unauthorized { message: message.clone() },
            Error::RateLimited { retry_after } => ErrorRepr::RateLimited {
                retry_after_ms: retry_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            },
            Error::InvalidInput { location, message } => {
                ErrorRepr::InvalidInput { location: location.clone(), message: message.clone() }
            }
            Error::Transient { message, source } => {
                ErrorRepr::Transient { message: with_cause(message, source.as_ref()) }
            }
            Error::Other { message, source } => ErrorRepr::Other { message: with_cause(message, source.as_ref()) },
        };
        repr.serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Error {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        Ok(match ErrorRepr::deserialize(deserializer)? {
            ErrorRepr::NotFound { what } => Error::NotFound { what },
            ErrorRepr::Conflict { message } => Error::Conflict { message },
            ErrorRepr::Unauthorized { message } => Error::Unauthorized { message },
            ErrorRepr::RateLimited { retry_after_ms } => {
                Error::RateLimited { retry_after: retry_after_ms.map(Duration::from_millis) }
            }
            ErrorRepr::InvalidInput { location, message } => Error::InvalidInput { location, message },
            ErrorRepr::Transient { message } => Error::Transient { message, source: None },
            ErrorRepr::Other { message } => Error::Other { message, source: None },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_input_names_file_and_line() {
        let e = Error::invalid(Location::line("apps/web.yaml", 12), "missing kind");
        assert_eq!(e.to_string(), "apps/web.yaml:12: missing kind");
    }

    #[test]
    fn retryable_kinds() {
        assert!(Error::RateLimited { retry_after: None }.is_retryable());
        assert!(Error::transient("timeout").is_retryable());
        assert!(!Error::conflict("moved").is_retryable());
        assert_eq!(
            Error::RateLimited { retry_after: Some(Duration::from_secs(3)) }.to_string(),
            "rate limited, retry after 3s"
        );
    }

    #[test]
    fn errors_clone_and_serialise_with_their_kind_and_location() {
        let invalid = Error::invalid(Location::line("apps/web.yaml", 12), "missing kind").context("reading rev 1a2b");
        assert_eq!(invalid.to_string(), "apps/web.yaml:12: reading rev 1a2b: missing kind");
        let json = serde_json::to_value(&invalid).unwrap();
        assert_eq!(json["kind"], "invalid_input");
        assert_eq!(json["location"]["line"], 12);
        let back: Error = serde_json::from_value(json).unwrap();
        assert!(matches!(&back, Error::InvalidInput { location, .. } if location.line == Some(12)));
        let caused = Error::other_with("cannot apply", std::io::Error::other("reset by peer"));
        let copy = caused.clone();
        assert!(std::error::Error::source(&copy).is_some(), "the cause is shared, not lost");
        let back: Error = serde_json::from_value(serde_json::to_value(&copy).unwrap()).unwrap();
        assert_eq!(back.to_string(), "cannot apply: reset by peer");
        let limited: Error = serde_json::from_str(r#"{"kind":"rate_limited","retry_after_ms":3000}"#).unwrap();
        assert!(limited.is_retryable());
        assert_eq!(Error::not_found("tag x").context("listing").kind(), "not_found");
    }
}
