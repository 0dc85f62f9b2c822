use std::fmt;

use crate::abi;
use crate::sys;

/// A log message's severity, as the host's `log` function numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    /// The level's number in the ABI.
    pub fn raw(self) -> i32 {
        match self {
            Level::Debug => abi::level::DEBUG,
            Level::Info => abi::level::INFO,
            Level::Warn => abi::level::WARN,
            Level::Error => abi::level::ERROR,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        })
    }
}

/// Sends `msg` to the host's log at `level`. To fail a record, return an
/// error from the handler instead.
pub fn log(level: Level, msg: &str) {
    let (p, n) = sys::arg(msg.as_bytes());
    unsafe { sys::log(level.raw(), p, n) }
}

/// Logs at [`Level::Debug`], formatting like `format!`.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log($crate::Level::Debug, &::std::format!($($arg)*)) };
}

/// Logs at [`Level::Info`], formatting like `format!`.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log($crate::Level::Info, &::std::format!($($arg)*)) };
}

/// Logs at [`Level::Warn`], formatting like `format!`.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log($crate::Level::Warn, &::std::format!($($arg)*)) };
}

/// Logs at [`Level::Error`], formatting like `format!`. It does not fail the
/// record: return an error from the handler for that.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log($crate::Level::Error, &::std::format!($($arg)*)) };
}
