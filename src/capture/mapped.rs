//! A regular capture file mapped read-only, so that records are borrowed straight from the page
//! cache: no `read` copy into a buffer, no second copy by stdio and libpcap.
//!
//! Owns: the mapping's lifetime, handing pages already read back to the kernel, and what happens
//! when the file shrinks under the mapping. Must not: parse records (`stream::RecordReader`
//! does, over `bytes`).
//!
//! Invariants:
//! - Resident memory is bounded: pages before the reader's position are released every
//!   `RELEASE_BYTES`, so a 1 GB file adds at most that much (plus the kernel's read-ahead) to
//!   the resident set, never its size.
//! - A file truncated by another program while mapped would make the next access fault
//!   (`SIGBUS`). That ends the run with a one-line error and exit code 2, like every unusable
//!   input, instead of a crash.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Pages behind the reader are released in steps of this many bytes (a multiple of any page
/// size in use).
const RELEASE_BYTES: usize = 256 << 10;

/// Mappings alive: the `SIGBUS` handler only claims a fault while there is one.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// A whole file mapped read-only.
pub struct Mapped {
    ptr: *mut libc::c_void,
    len: usize,
    /// Bytes from the start already handed back (`release_before`).
    released: usize,
}

// SAFETY: the mapping is private to this value (read-only, never aliased mutably); moving it to
// the reader thread with its reader is sound.
unsafe impl Send for Mapped {}

impl Mapped {
    /// Maps `file` (a regular file of `len` bytes, `len > 0`).
    pub fn new(file: &File, len: u64) -> io::Result<Mapped> {
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l > 0)
            .ok_or_else(|| io::Error::other("file size not mappable"))?;
        install_sigbus_handler();
        // SAFETY: a read-only private mapping of a file descriptor we hold open; the result is
        // checked against MAP_FAILED before any use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        LIVE.fetch_add(1, Ordering::SeqCst);
        // SAFETY: advice on our own mapping; failure only loses the hint. No huge pages: the kernel
        // would map page-cache folios of 2 MiB whole, and the resident set with them.
        unsafe {
            libc::madvise(ptr, len, libc::MADV_SEQUENTIAL);
            libc::madvise(ptr, len, libc::MADV_NOHUGEPAGE);
        };
        Ok(Mapped {
            ptr,
            len,
            released: 0,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes for as long as `self` lives. Released pages
        // read back from the file when touched again (MADV_DONTNEED on a file mapping).
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }

    /// Hands the pages wholly before `pos` back to the kernel, every `RELEASE_BYTES`. Nothing
    /// before `pos` may be borrowed any more (the reader's previous record is finished).
    pub fn release_before(&mut self, pos: usize) {
        let upto = pos / RELEASE_BYTES * RELEASE_BYTES;
        if upto > self.released {
            // SAFETY: a page-aligned range inside our mapping that nobody borrows; the pages stay
            // in the page cache, only our mapping of them goes.
            unsafe {
                libc::madvise(
                    (self.ptr as *mut u8).add(self.released).cast(),
                    upto - self.released,
                    libc::MADV_DONTNEED,
                )
            };
            self.released = upto;
        }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`, once.
        unsafe { libc::munmap(self.ptr, self.len) };
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Installs (once) a `SIGBUS` handler that ends the run with a one-line error while a capture is
/// mapped; at any other time it restores the default action, so the signal kills as before.
fn install_sigbus_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction with a valid handler and an empty mask is well-formed.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigbus as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
        }
    });
}

extern "C" fn on_sigbus(_sig: libc::c_int, _info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    const MSG: &[u8] = b"proxyscope: an input file shrank while it was being read (another \
program truncated or rewrote it); read a copy of it instead\n";
    if LIVE.load(Ordering::SeqCst) > 0 {
        // SAFETY: write and _exit are async-signal-safe; MSG is a static buffer.
        unsafe {
            libc::write(2, MSG.as_ptr().cast(), MSG.len());
            libc::_exit(2);
        }
    }
    // Not ours: the default action, taken when the faulting access runs again.
    // SAFETY: signal with SIG_DFL is async-signal-safe.
    unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn maps_the_whole_file_and_releases_behind() {
        let mut f = tempfile();
        let data: Vec<u8> = (0..(RELEASE_BYTES * 2 + 123))
            .map(|i| (i % 251) as u8)
            .collect();
        f.write_all(&data).unwrap();
        let mut m = Mapped::new(&f, data.len() as u64).unwrap();
        assert_eq!(m.bytes(), &data[..]);
        m.release_before(RELEASE_BYTES + 5);
        assert_eq!(m.released, RELEASE_BYTES);
        m.release_before(RELEASE_BYTES * 2 + 100);
        assert_eq!(m.released, RELEASE_BYTES * 2);
        // Released pages read back from the file.
        assert_eq!(m.bytes(), &data[..]);
    }

    /// Resident pages of the mapping starting at `addr`, from `/proc/self/smaps` (KiB).
    fn mapping_rss_kib(addr: usize) -> Option<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let head = format!("{:x}-", addr);
        let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&head));
        lines.next()?;
        // The first `Rss:` after the mapping's header line is its own (every mapping has one).
        lines
            .find_map(|l| l.strip_prefix("Rss:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Reading a whole file through the mapping leaves only the last stretch resident: memory
    /// follows the reader's position, never the file's size.
    #[test]
    fn reading_through_keeps_the_resident_set_small() {
        let mut f = tempfile();
        let len = 64 << 20;
        f.write_all(&vec![7u8; len]).unwrap();
        let mut m = Mapped::new(&f, len as u64).unwrap();
        assert!(
            mapping_rss_kib(m.ptr as usize).is_some(),
            "the mapping is not in /proc/self/smaps"
        );
        let mut sum = 0u64;
        for pos in (0..len).step_by(4096) {
            m.release_before(pos);
            sum += m.bytes()[pos] as u64;
        }
        assert_eq!(sum, 7 * (len as u64 / 4096));
        let rss = mapping_rss_kib(m.ptr as usize).unwrap();
        assert!(
            rss <= 4 * 1024,
            "{} KiB of a 64 MiB file resident after reading it through",
            rss
        );
    }

    #[test]
    fn an_empty_file_is_not_mapped() {
        let f = tempfile();
        assert!(Mapped::new(&f, 0).is_err());
    }

    fn tempfile() -> File {
        let dir = std::env::temp_dir();
        let p = dir.join(format!(
            "proxyscope-mapped-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        let _ = std::fs::remove_file(&p);
        f
    }
}
