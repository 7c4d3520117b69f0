//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

mod skip;
#[allow(unused_imports)]
pub use skip::{in_ci, skip, skip_dir};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/corpus` beside the checkout, or None when it is absent, as on a user's clone: then
/// the calling test's corpus part is recorded as skipped (`skip`), and under `CI=true` (CI has
/// `../shared`) the test fails instead.
pub fn shared_corpus() -> Option<PathBuf> {
    let p = repo().join("..").join("shared").join("corpus");
    if p.is_dir() {
        Some(p)
    } else {
        skip(&format!(
            "{} is absent (only developers and CI have the shared corpus)",
            p.display()
        ));
        None
    }
}

/// `captures/expected.toml` followed by every `captures/expected-*.toml` (sorted): the ground
/// truth files of the lab captures, all in the same format.
pub fn expected_toml_files() -> Vec<PathBuf> {
    let dir = repo().join("captures");
    let mut extra: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {}", dir.display(), e))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("expected-") && n.ends_with(".toml")
        })
        .collect();
    extra.sort();
    let mut files = vec![dir.join("expected.toml")];
    files.extend(extra);
    files
}

/// Parses every ground-truth file (`expected_toml_files`) as `T` and returns (file name, T).
pub fn load_expected_tomls<T: serde::de::DeserializeOwned>() -> Vec<(String, T)> {
    expected_toml_files()
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
            let v = toml::from_str(&text)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().to_string(), v)
        })
        .collect()
}

/// tshark is the oracle; tests that need it fail loudly when it is missing.
pub fn require_tshark() {
    let ok = Command::new("tshark")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "tshark is not installed: run `apt-get install -y tshark` (the README's test command and .ci/run do)");
}

/// The release-or-debug binary built by cargo for integration tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_proxyscope"))
}

/// Runs `tshark -n -r FILE -T fields` with the given fields; one Vec per frame, one String per
/// field (multi-valued fields keep tshark's comma-separated text).
pub fn tshark_fields(path: &std::path::Path, fields: &[&str]) -> Vec<Vec<String>> {
    tshark_fields_with(path, &[], fields)
}

/// `tshark_fields` with extra tshark options (`-o pref:value`, `-d decode-as`).
pub fn tshark_fields_with(
    path: &std::path::Path,
    extra: &[&str],
    fields: &[&str],
) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"])
        .arg(path)
        .args(extra)
        .args(["-T", "fields", "-E", "separator=|"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

/// The `.pcap` / `.pcapng` files of a directory, sorted.
pub fn pcap_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {}", dir.display(), e))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    files.sort();
    files
}

/// A file path under the temp directory, unique per test process and name, removed on drop.
pub struct TempPath(PathBuf);

impl TempPath {
    pub fn new(test: &str, suffix: &str) -> TempPath {
        let p = std::env::temp_dir().join(format!(
            "proxyscope-test-{}-{}{}",
            std::process::id(),
            test,
            suffix
        ));
        let _ = std::fs::remove_file(&p);
        TempPath(p)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
