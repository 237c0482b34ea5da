//! The Python that runs emitted code: `MATDIFF_PYTHON`, or `python3`.

use std::process::Command;

/// The interpreter to run emitted code with.
pub fn python() -> String {
    std::env::var("MATDIFF_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Whether `module` imports; when `MATDIFF_REQUIRE_<MODULE>` is set, as in
/// CI, it must.
pub fn has_module(module: &str) -> bool {
    let ok = Command::new(python())
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    let require = format!("MATDIFF_REQUIRE_{}", module.to_uppercase());
    if !ok && std::env::var_os(&require).is_some() {
        panic!("{module} is required ({require}) but `{} -c 'import {module}'` fails", python());
    }
    if !ok {
        eprintln!("{module} is not installed for {}: skipping the run of emitted code", python());
    }
    ok
}

/// Runs a Python program; its standard output (the test fails with its
/// standard error when it fails).
pub fn run(program: &str) -> String {
    let out = Command::new(python()).args(["-c", program]).output().expect("run python");
    assert!(out.status.success(), "python failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("python printed UTF-8")
}
