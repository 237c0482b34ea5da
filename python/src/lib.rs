//! The native half of the `matdiff` Python package: one function, [`run`],
//! which runs matdiff's command line in-process (`matdiff::cli::run`, the
//! same entry point as the `matdiff` binary) and returns its exit status and
//! output. The Python half (`python/matdiff/__init__.py`) builds each call's
//! arguments, asks for `--json`, and turns the documents (docs/json.md) and
//! error objects into Python objects and exceptions; so every answer, and
//! every caret diagnostic, is the command line's own.

use pyo3::prelude::*;

/// Runs `matdiff ARGS...` in-process: returns `(status, stdout, stderr)`.
///
/// The status is the command line's: 0 success, 1 a check or verification
/// that fails, 2 an error (then `stderr` holds the rendered diagnostic and,
/// with `--json`, `stdout` the error object). The interpreter's lock is
/// released while the engine works, so other Python threads run meanwhile.
#[pyfunction]
fn run(py: Python<'_>, args: Vec<String>) -> (i32, String, String) {
    py.detach(move || {
        let mut argv = Vec::with_capacity(args.len() + 1);
        argv.push("matdiff".to_string());
        argv.extend(args);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let status = if argv.len() < 2 {
            // `matdiff` alone would start the REPL on a terminal.
            err.extend_from_slice(b"error: usage error: no command given\n");
            2
        } else {
            matdiff::cli::run(argv, &mut out, &mut err)
        };
        (status, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
    })
}

/// The version of the matdiff engine the module was built from.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The native module, `matdiff._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    Ok(())
}
