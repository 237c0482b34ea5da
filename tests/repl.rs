//! The REPL: a piped session (snapshotted) and an interactive one through a
//! pseudo-terminal (completion, history, multi-line input, Ctrl-C).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

const SESSION: &str = "\
# declarations persist
W1 : 3x4
W2 : 4x5
W1*W2
derive W1*W2*X --wrt W2 --steps
W1*W3 + (
  W1)
W1 * W1
:shapes
verify W1*W2*X --wrt W2 --claim 'W1^T*G*X^T'
plan W1*W2*X
:reset
:shapes
:quit
W1
";

#[test]
fn piped_session() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_matdiff"))
        .arg("repl")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(SESSION.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = format!(
        "--- input\n{SESSION}--- stdout\n{}--- stderr\n{}",
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap()
    );
    assert!(text.contains("cannot multiply 3x4 by 3x4"), "the error is shown: {text}");
    assert!(text.contains("equivalent (symbolic)"), "the session goes on after the error: {text}");
    assert!(text.contains("plan for W1 * W2 * X"), "plan runs in the session: {text}");
    assert!(text.contains("H1    = W1 * W2     3x5"), "with the session's declarations: {text}");
    common::snapshots().bind(|| insta::assert_snapshot!("repl_piped", text));
}

#[test]
fn interactive_session() {
    use rexpect::session::spawn_command;
    let home = std::env::temp_dir().join(format!("matdiff-repl-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_matdiff"));
    cmd.arg("repl").env("HOME", &home).env("XDG_DATA_HOME", &home).env("NO_COLOR", "1");
    let mut p = spawn_command(cmd, Some(10_000)).unwrap();
    p.exp_string("matdiff> ").unwrap();
    p.send_line("Weights : 3x4").unwrap();
    p.exp_string("matdiff> ").unwrap();
    // Completion of a declared name.
    p.send("Weig").unwrap();
    p.send("\t").unwrap();
    p.send_line(" * Weights^T").unwrap();
    p.exp_string("3x3").unwrap();
    p.exp_string("matdiff> ").unwrap();
    // History: the previous line again.
    p.send("\x1b[A").unwrap();
    p.send_line("").unwrap();
    p.exp_string("3x3").unwrap();
    p.exp_string("matdiff> ").unwrap();
    // A multi-line expression: an open parenthesis continues the line.
    p.send_line("(Weights *").unwrap();
    p.send_line(" Weights^T)^T").unwrap();
    p.exp_string("3x3").unwrap();
    p.exp_string("matdiff> ").unwrap();
    // Ctrl-C cancels the line; the session goes on.
    p.send("Weights * nothing").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("matdiff> ").unwrap();
    p.send_line("Weights").unwrap();
    p.exp_string("3x4").unwrap();
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();
    let history = std::fs::read_to_string(home.join("matdiff").join("history")).unwrap();
    assert!(history.contains("Weights * Weights^T"), "{history}");
    std::fs::remove_dir_all(&home).unwrap();
}
