//! The `.dnn` files of a folder, for the tests that run over every example, fixture or
//! diagnostic case.

use std::path::PathBuf;

/// The `.dnn` files directly in `dir` (relative to the crate root), sorted by path.
pub fn dnn_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("folder {dir}: {e}"))
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "dnn"))
        .collect();
    files.sort();
    files
}
