//! pdflatex for the tests that compile documents: whether it is there
//! (required when `MATDIFF_REQUIRE_PDFLATEX` is set, as in CI), and a
//! compile that fails on any error, overfull box or missing glyph.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Whether `pdflatex` runs; when `MATDIFF_REQUIRE_PDFLATEX` is set it must,
/// else its absence is said and the caller skips.
pub fn available() -> bool {
    let ok = Command::new("pdflatex").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok && std::env::var_os("MATDIFF_REQUIRE_PDFLATEX").is_some() {
        panic!("pdflatex is required (MATDIFF_REQUIRE_PDFLATEX) but `pdflatex --version` fails");
    }
    if !ok {
        eprintln!("pdflatex is not installed: the documents are not compiled (set MATDIFF_REQUIRE_PDFLATEX=1 to fail instead)");
    }
    ok
}

/// Compiles `tex` as `name.tex` in a fresh directory; `Err` with the
/// offending lines of the log when pdflatex fails or reports an error, an
/// overfull box or a character the fonts lack.
pub fn compile(name: &str, tex: &str) -> Result<(), String> {
    // A directory of its own per call: tests run in parallel threads, and a
    // name shared with another test's scratch directory lost the `.aux` mid-run.
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("matdiff-pdflatex-{name}-{}-{call}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join(format!("{name}.tex")), tex).map_err(|e| e.to_string())?;
    let out = Command::new("pdflatex")
        .args(["-interaction=nonstopmode", "-halt-on-error", &format!("{name}.tex")])
        .current_dir(&dir)
        .output()
        .map_err(|e| e.to_string())?;
    let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
    std::fs::remove_dir_all(&dir).ok();
    let lines: Vec<&str> = log.lines().collect();
    let mut bad = vec![];
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with('!') || line.contains("Overfull \\hbox") || line.contains("Missing character") {
            // The line and what TeX shows of the material after it.
            bad.push(lines[i..(i + 3).min(lines.len())].join("\n"));
        }
    }
    if !out.status.success() && bad.is_empty() {
        // No error in the log (or no log): what pdflatex said instead.
        let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = said.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bad.push(format!("pdflatex exited with {}:\n{}", out.status, tail.join("\n")));
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("{name}.tex:\n{}", bad.join("\n---\n")))
    }
}
