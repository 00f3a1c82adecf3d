//! Every error found in a revision's manifests, collected.

use std::fmt;

use crate::error::{Error, Location};

/// All the errors found while reading a revision's manifests, each an
/// [`Error::InvalidInput`] naming a file and, when known, a line.
///
/// Any error makes the whole revision unusable: nothing read from it may be applied or pruned.
#[derive(Debug, Default)]
pub struct ManifestErrors {
    errors: Vec<Error>,
}

impl ManifestErrors {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an error at `location`.
    pub fn push(&mut self, location: Location, message: impl Into<String>) {
        self.errors.push(Error::invalid(location, message));
    }

    /// Adds an error that is already located (any other kind is kept as it is).
    pub fn push_error(&mut self, error: Error) {
        self.errors.push(error);
    }

    /// Adds all of `other`'s errors.
    pub fn extend(&mut self, other: ManifestErrors) {
        self.errors.extend(other.errors);
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// The errors, in the order they were found.
    pub fn errors(&self) -> &[Error] {
        &self.errors
    }

    /// Every error, owned.
    pub fn into_errors(self) -> Vec<Error> {
        self.errors
    }

    /// `Ok(value)` if there are no errors, else `Err(self)`.
    pub fn into_result<T>(self, value: T) -> Result<T, ManifestErrors> {
        if self.is_empty() { Ok(value) } else { Err(self) }
    }

    /// Orders the errors by file, then line (stable for errors at the same place).
    pub fn sort(&mut self) {
        let key = |e: &Error| match e {
            Error::InvalidInput { location, .. } => (location.file.clone(), location.line.unwrap_or(0)),
            _ => (String::new(), 0),
        };
        self.errors.sort_by_key(key);
    }

    /// The location of the first error, if it has one.
    pub fn first_location(&self) -> Option<&Location> {
        self.errors.iter().find_map(|e| match e {
            Error::InvalidInput { location, .. } => Some(location),
            _ => None,
        })
    }
}

impl From<Error> for ManifestErrors {
    fn from(error: Error) -> Self {
        ManifestErrors { errors: vec![error] }
    }
}

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(f, "{n} error{} in the manifests; this revision is unusable", if n == 1 { "" } else { "s" })?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestErrors {}

impl From<ManifestErrors> for Error {
    /// [`Error::InvalidInput`] at the first error's location, its message followed by how many
    /// errors there are in all and that the revision is unusable.
    fn from(errors: ManifestErrors) -> Error {
        let total = errors.len();
        let location = errors.first_location().cloned().unwrap_or_default();
        let first = match errors.errors.first() {
            Some(Error::InvalidInput { message, .. }) => message.clone(),
            Some(other) => other.to_string(),
            None => "no manifests error recorded".to_owned(),
        };
        let more = match total {
            0 | 1 => String::new(),
            n => format!(" (and {} more error{})", n - 1, if n == 2 { "" } else { "s" }),
        };
        Error::invalid(location, format!("{first}{more}; {total} error(s) in total, this revision is unusable"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_to_one_error_at_the_first_location() {
        let mut errors = ManifestErrors::new();
        errors.push(Location::line("a.yaml", 3), "bad");
        errors.push(Location::line("b.yaml", 1), "worse");
        assert!(errors.to_string().starts_with("2 errors in the manifests; this revision is unusable"));
        assert!(errors.to_string().contains("b.yaml:1: worse"));
        let e: Error = errors.into();
        assert_eq!(e.to_string(), "a.yaml:3: bad (and 1 more error); 2 error(s) in total, this revision is unusable");
    }
}
