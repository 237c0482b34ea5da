//! Shared helpers for the integration tests.
#![allow(dead_code)]

pub mod cookbook;
pub mod generators;
pub mod judge;
pub mod latex_reader;
pub mod mutants;
pub mod pdflatex;
pub mod python;

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
        Ok(d) => matdiff::cli::render_derivation(&d),
        Err(e) => matdiff::cli::render_error(&e, "<expr>", src),
    }
}

/// A command run in process, as a user's terminal shows it: `$ matdiff
/// ARGS  (exit N)`, then its standard output and error.
pub fn transcript(args: &[&str]) -> String {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let argv = std::iter::once("matdiff").chain(args.iter().copied()).map(String::from).collect();
    let code = matdiff::cli::run(argv, &mut out, &mut err);
    format!(
        "$ matdiff {}  (exit {code})\n{}{}\n",
        args.join(" "),
        String::from_utf8(out).expect("UTF-8 output"),
        String::from_utf8(err).expect("UTF-8 errors")
    )
}

/// The printed gradient of `src` with respect to `wrt`.
pub fn gradient_text(src: &str, wrt: &str) -> String {
    let program = parse_program(src).unwrap_or_else(|e| panic!("{src}: {e:?}"));
    let d = derive(&program, &DeriveOptions::default()).unwrap_or_else(|e| panic!("{src}: {e:?}"));
    let g = d.gradients.iter().find(|g| g.wrt.to_string() == wrt);
    g.unwrap_or_else(|| panic!("{src}: no gradient in {wrt}")).expr.to_string()
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

/// Which signs the instances of [`assert_gradients_agree`] must draw.
#[derive(Clone, Copy, PartialEq)]
pub enum Signs {
    /// Every variable no function of the program restricts is drawn with
    /// both signs (nonzero counts: it still takes both).
    Both,
    /// As `check` draws them.
    AsDrawn,
}

/// Each `(program, variable, form)`: the gradient prints as `form`, and the
/// program's gradients agree with finite differences, both signs drawn.
pub fn assert_forms_agree(cases: &[(&str, &str, &str)]) {
    for &(src, wrt, want) in cases {
        assert_eq!(gradient_text(src, wrt), want, "{src}");
        assert_gradients_agree(src, 1..=4, Signs::Both);
    }
}

/// Every gradient of `case` agrees with finite differences on the
/// instances of `seeds`, whose symbolic sizes vary from seed to seed.
pub fn assert_gradients_agree(case: &str, seeds: std::ops::RangeInclusive<u64>, signs: Signs) {
    use matdiff::numeric::Sign;
    let mut sizes = std::collections::BTreeSet::new();
    for seed in seeds {
        let report = derive_and_check(case, seed).unwrap_or_else(|e| panic!("{case} (seed {seed}):\n{e}"));
        assert!(!report.results.is_empty(), "{case}: no gradient checked");
        for r in &report.results {
            assert!(r.ok(), "{case} (seed {seed}): d/d{} off by {:?} ({:?})", r.wrt, r.max_rel_err, r.reason);
        }
        if signs == Signs::Both {
            let both = report.domains.values().all(|d| matches!(d.sign, Sign::Any | Sign::NonZero));
            assert!(both, "{case}: drawn with one sign: {:?}", report.domains);
        }
        if !report.sizes.is_empty() {
            sizes.insert(format!("{:?}", report.sizes));
        }
    }
    assert!(sizes.len() != 1, "{case}: one size for every seed");
}
