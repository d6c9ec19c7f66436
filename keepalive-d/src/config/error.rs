//! Configuration errors: each names the file, the line and column, and what was expected.

use std::fmt;

/// A position in the configuration file (1-based line and column, in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Line, starting at 1.
    pub line: u64,
    /// Column, starting at 1.
    pub column: u64,
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, as given by the caller.
    pub file: String,
    /// Where in the file; `None` for problems with the file as a whole (unreadable, too big).
    pub position: Option<Position>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(Position { line, column }) => {
                write!(f, "{}:{}:{}: {}", self.file, line, column, self.message)
            }
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration file (at least one), sorted by position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// Wraps a list of errors, sorting them by position (file-level errors first).
    pub(crate) fn new(mut errors: Vec<ConfigError>) -> Self {
        errors.sort_by_key(|e| e.position);
        errors.dedup();
        Self { errors }
    }

    /// The errors, sorted by position.
    pub fn errors(&self) -> &[ConfigError] {
        &self.errors
    }

    /// Consumes the collection and returns the errors.
    pub fn into_vec(self) -> Vec<ConfigError> {
        self.errors
    }
}

impl fmt::Display for ConfigErrors {
    /// One error per line, `FILE:LINE:COL: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
