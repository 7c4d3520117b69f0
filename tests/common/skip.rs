// The skip registry: a test that cannot run (not root, no `../shared/corpus`, …) says so where
// `scripts/test` shows it, instead of passing silently.
//
// `skip(reason)` prints `SKIPPED: <binary> <test>: <reason>` and appends that line to
// `target/test-skips/skipped.txt` (or `$PROXYSCOPE_TEST_SKIPS/skipped.txt`); `scripts/test` clears
// the directory before the run and prints a summary at the end. Under `CI=true` every skip is a
// failure: all the prerequisites behind these skips (root, `../shared/corpus`)
// are ones CI is supposed to have.
//
// Shared by the integration tests (`tests/common/mod.rs`) and the unit tests of
// `src/capture/live.rs` (through `include!`), so it uses only `std` and has no inner attributes.

use std::io::Write;
use std::path::PathBuf;

/// The directory holding `skipped.txt`.
pub fn skip_dir() -> PathBuf {
    match std::env::var_os("PROXYSCOPE_TEST_SKIPS") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join("test-skips"),
    }
}

/// `CI=true` (or `CI=1`): missing prerequisites fail instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The running test's name: libtest runs every test on a thread named after it.
fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("<unknown test>")
        .to_string()
}

/// The test binary, without cargo's hash (`live-0123abcd` -> `live`).
fn binary_name() -> String {
    let exe = std::env::current_exe().ok();
    let stem = exe
        .as_ref()
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    // Linux names a binary rebuilt while it runs `<path> (deleted)`.
    let stem = stem.trim_end_matches(" (deleted)").to_string();
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_string(),
        _ => stem,
    }
}

/// Records that (part of) the current test did not run, and why. The caller then returns.
/// Under `CI=true` this panics: CI is supposed to provide every prerequisite these tests skip on.
#[track_caller]
pub fn skip(reason: &str) {
    let line = format!("{} {}: {}", binary_name(), test_name(), reason);
    if in_ci() {
        panic!("CI=true and a prerequisite CI must have is missing: {line}");
    }
    println!("SKIPPED: {line}");
    eprintln!("SKIPPED: {line}");
    let dir = skip_dir();
    let written = std::fs::create_dir_all(&dir).and_then(|_| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("skipped.txt"))?;
        // One write per line: O_APPEND keeps concurrent test threads' lines whole.
        f.write_all(format!("{line}\n").as_bytes())
    });
    if let Err(e) = written {
        // The skip must not go unreported: failing is better than passing silently.
        panic!("cannot record the skip in {}: {e} ({line})", dir.display());
    }
}
