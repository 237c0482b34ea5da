//! Shared helpers for the integration tests.
#![allow(dead_code)]

pub mod cookbook;
pub mod generators;
pub mod judge;
pub mod latex_reader;
pub mod mutants;

use matdiff::numeric::{check, CheckOptions, CheckReport};
use matdiff::parse as parse_program;
use matdiff::{derive, DeriveOptions};

/// insta settings: snapshots live in the top-level `snapshots/` directory.
pub fn snapshots() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("../snapshots");
    s.set_prepend_module_to_snapshot(false);
    s
}

/// `derive` output as text, or the rendered error.
pub fn derive_text(src: &str) -> String {
    let program = match parse_program(src) {
        Ok(p) => p,
        Err(e) => return matdiff::cli::render_error(&e, "<expr>", src),
    };
    match derive(&program, &DeriveOptions::default()) {
        Ok(d) => matdiff::cli::render_derivation(&d, false),
        Err(e) => matdiff::cli::render_error(&e, "<expr>", src),
    }
}

/// Derives every gradient and checks each against finite differences.
pub fn derive_and_check(src: &str, seed: u64) -> Result<CheckReport, String> {
    let program = parse_program(src).map_err(|e| matdiff::cli::render_error(&e, "<expr>", src))?;
    let d = derive(&program, &DeriveOptions::default())
        .map_err(|e| matdiff::cli::render_error(&e, "<expr>", src))?;
    check(&d, &CheckOptions { seed, ..Default::default() })
        .map_err(|e| matdiff::cli::render_error(&e, "<expr>", src))
}

/// `n` cases of a property, or `PROPTEST_CASES` when set: an explicit
/// `ProptestConfig::with_cases` would otherwise ignore the variable, and
/// the long runs (README) set it.
pub fn cases(n: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(n)
}
