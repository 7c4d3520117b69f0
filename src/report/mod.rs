//! Output: terminal tables (comfy-table), JSON (serde), Markdown, HTML. Every string that may come
//! from the capture goes through `escape` on its way out. Owns its own output types,
//! separate from the domain types, so the JSON wire format changes only on purpose. Must not
//! compute anything new: it formats what the pipeline produced.

pub mod analyze;
pub mod escape;
pub mod flows;
pub mod html;
pub mod live_events;
pub mod metrics;
pub mod sha256;

use std::io::{self, Write};

/// Writes to stdout (or a file) and turns a closed pipe into a quiet stop.
pub fn is_broken_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

/// `ip:port`, IPv6 in brackets (`[::1]:80`), as `SocketAddr`'s Display already does.
pub fn endpoint(a: &std::net::SocketAddr) -> String {
    a.to_string()
}

/// Flushes, mapping errors to `io::Error` for the caller.
pub fn finish<W: Write>(mut w: W) -> io::Result<()> {
    w.flush()
}
