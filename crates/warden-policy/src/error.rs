//! The one error type of this crate: why a policy set or a policy test file was refused.
//!
//! Every variant names the file (or the `origin` given to [`crate::PolicySet::from_str`]) so
//! an operator can fix the right file; parse and validation errors also carry the line and
//! column when Cedar reports a source span. Decisions never fail with this type: a request
//! that cannot be evaluated is a [`crate::Effect::Deny`] with the reason in
//! [`crate::Decision::errors`].

use std::fmt;
use std::path::PathBuf;

/// Why policies or policy tests could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{file}` is {size} bytes, more than the limit of {limit}")]
    TooLarge { file: String, size: u64, limit: u64 },
    #[error("{at}: {reason}")]
    Parse { at: Location, reason: String },
    #[error("{at}: policy `{policy}` does not match the Warden schema: {reason}")]
    Validation {
        at: Location,
        policy: String,
        reason: String,
    },
    #[error("`{file}`: policy id `{id}` is used twice")]
    DuplicateId { file: String, id: String },
    #[error("`{file}`: {reason}")]
    Unsupported { file: String, reason: String },
    #[error("the embedded Warden schema is invalid: {0}")]
    Schema(String),
    #[error("policy test file `{file}`: {reason}")]
    TestFile { file: String, reason: String },
}

/// A place in a policy file: the file, and the 1-based line and column when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line_column: Option<(usize, usize)>,
}

impl Location {
    /// The location of byte `offset` in `text`, the contents of `file`.
    pub(crate) fn at_offset(file: &str, text: &str, offset: Option<usize>) -> Self {
        let line_column = offset.map(|offset| {
            let before = text.get(..offset).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
            (line, column)
        });
        Self {
            file: file.to_owned(),
            line_column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line_column {
            Some((line, column)) => write!(f, "`{}`:{line}:{column}", self.file),
            None => write!(f, "`{}`", self.file),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_columns() {
        let text = "ab\ncdé\nf";
        let at = |o| Location::at_offset("x.cedar", text, o).line_column;
        assert_eq!(at(Some(0)), Some((1, 1)));
        assert_eq!(at(Some(3)), Some((2, 1)));
        assert_eq!(at(Some(7)), Some((2, 4)));
        assert_eq!(at(Some(8)), Some((3, 1)));
        assert_eq!(at(None), None);
        assert_eq!(
            Location::at_offset("x.cedar", text, Some(3)).to_string(),
            "`x.cedar`:2:1"
        );
    }
}
