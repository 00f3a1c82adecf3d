//! The one error type every port returns.
//!
//! Adapters map their private errors into [`Error`]; the engines act on its kind:
//! [`Error::Conflict`] is retried after a refresh, [`Error::RateLimited`] and
//! [`Error::Transient`] are retried later, everything else is reported.

use std::fmt;
use std::time::Duration;

/// A boxed error kept as the cause of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

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
#[derive(Debug, thiserror::Error)]
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
        source: Option<BoxError>,
    },
    /// Anything else.
    #[error("{message}")]
    Other {
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
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
        Error::Other { message: message.into(), source: Some(source.into()) }
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
}
