//! Fatal errors: the tool could not do its job (file unreadable, not a capture, unsupported link
//! type, bad filter, output unwritable). Bad *traffic* is never an error: it becomes a counted
//! anomaly or a capture warning. Every variant renders as one line naming the file and the problem.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug)]
pub enum Error {
    /// The file could not be opened (missing, permission, a directory).
    Open { path: PathBuf, reason: String },
    /// The file exists but libpcap does not recognise it as pcap or pcapng.
    NotACapture { path: PathBuf, reason: String },
    /// The capture's link-layer type is one proxyscope cannot decode.
    UnsupportedLinkType {
        path: PathBuf,
        dlt: i32,
        name: String,
    },
    /// libpcap rejected the BPF filter expression.
    Filter { expr: String, reason: String },
    /// Nothing could be read: every file was empty or unreadable.
    NoPackets { path: PathBuf, reason: String },
    /// Writing output failed (other than a closed pipe).
    Output { what: String, reason: String },
    /// A live interface could not be opened or read.
    Live { iface: String, reason: String },
    /// Invalid combination of settings.
    Usage(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Open { path, reason } => write!(f, "{}: cannot open: {}", path.display(), reason),
            Error::NotACapture { path, reason } => write!(
                f,
                "{}: not a pcap or pcapng capture ({})",
                path.display(),
                reason
            ),
            Error::UnsupportedLinkType { path, dlt, name } => write!(
                f,
                "{}: unsupported link type {} ({}); proxyscope reads Ethernet (with VLAN tags), Linux cooked SLL/SLL2, raw IP and BSD loopback",
                path.display(),
                dlt,
                name
            ),
            Error::Filter { expr, reason } => write!(f, "invalid capture filter '{}': {}", expr, reason),
            Error::NoPackets { path, reason } => write!(f, "{}: {}", path.display(), reason),
            Error::Output { what, reason } => write!(f, "cannot write {}: {}", what, reason),
            Error::Live { iface, reason } => write!(f, "interface {}: {}", iface, reason),
            Error::Usage(s) => write!(f, "{}", s),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
