#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

/// One scratch directory per fuzzing process for `mlpolicy.yaml`.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("mlpolicy-fuzz-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| mlpolicy::fuzz::settings(dir(), data));
