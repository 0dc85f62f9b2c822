use std::fmt;

use crate::abi::{Code, DecodeError};

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error of the SDK: a host function's error result, a message of yours,
/// or a malformed encoding.
///
/// Its text is what the host receives when a handler returns it, and it
/// matches the Go SDK's word for word (`streamrt: store_open "counts":
/// unknown store`), so that a stage's dead-letter records read the same
/// whichever language it is written in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    repr: Repr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Repr {
    Host {
        func: &'static str,
        name: String,
        code: Code,
    },
    IteratorClosed,
    Decode(DecodeError),
    Message(String),
}

impl Error {
    /// An error with the given text, such as a handler's reason to fail a
    /// record.
    pub fn new(msg: impl Into<String>) -> Error {
        Error {
            repr: Repr::Message(msg.into()),
        }
    }

    pub(crate) fn host(func: &'static str, name: &str, rc: i32) -> Error {
        let code = Code::from_result(rc).unwrap_or(Code::Other(rc));
        Error {
            repr: Repr::Host {
                func,
                name: name.to_string(),
                code,
            },
        }
    }

    pub(crate) fn iterator_closed() -> Error {
        Error {
            repr: Repr::IteratorClosed,
        }
    }

    /// The host's error code, for an error a host function returned:
    /// `err.code() == Some(Code::UnknownStore)`.
    pub fn code(&self) -> Option<Code> {
        match &self.repr {
            Repr::Host { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The host function that failed, such as `"store_put"`.
    pub fn host_function(&self) -> Option<&'static str> {
        match &self.repr {
            Repr::Host { func, .. } => Some(func),
            _ => None,
        }
    }

    /// Whether the error is an iterator used after the batch that opened it
    /// ended.
    pub fn is_iterator_closed(&self) -> bool {
        matches!(self.repr, Repr::IteratorClosed)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            // emit_batch concerns no one output.
            Repr::Host { func, code, .. } if *func == crate::abi::FUNC_EMIT_BATCH => {
                write!(f, "streamrt: {}: {}", func, code)
            }
            Repr::Host { func, name, code } => {
                write!(f, "streamrt: {} ", func)?;
                write_quoted(f, name)?;
                write!(f, ": {}", code)
            }
            Repr::IteratorClosed => f.write_str("streamrt: iterator used after its batch ended"),
            Repr::Decode(e) => e.fmt(f),
            Repr::Message(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.repr {
            Repr::Decode(e) => Some(e),
            _ => None,
        }
    }
}

impl From<String> for Error {
    fn from(s: String) -> Error {
        Error::new(s)
    }
}

impl From<&str> for Error {
    fn from(s: &str) -> Error {
        Error::new(s)
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Error {
        Error {
            repr: Repr::Decode(e),
        }
    }
}

/// Quotes s the way Go's strconv.Quote does for the names stages use, so
/// that error texts match the Go SDK's.
fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            c if (c as u32) < 0x20 || c as u32 == 0x7f => write!(f, "\\x{:02x}", c as u32)?,
            c => write!(f, "{}", c)?,
        }
    }
    f.write_str("\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_match_the_go_sdk() {
        assert_eq!(
            Error::host("store_open", "counts", -2).to_string(),
            "streamrt: store_open \"counts\": unknown store"
        );
        assert_eq!(
            Error::host("emit", "a\"b\n", -3).to_string(),
            "streamrt: emit \"a\\\"b\\n\": unknown output"
        );
        assert_eq!(
            Error::host("store_get", "s", -77).to_string(),
            "streamrt: store_get \"s\": code -77"
        );
        assert_eq!(
            Error::host("store_get", "s", -77).code(),
            Some(Code::Other(-77))
        );
        assert_eq!(
            Error::host("emit_batch", "", -5).to_string(),
            "streamrt: emit_batch: invalid argument"
        );
        assert_eq!(Error::from("bad record").to_string(), "bad record");
        assert_eq!(
            Error::iterator_closed().to_string(),
            "streamrt: iterator used after its batch ended"
        );
    }
}
