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
    let out = piped(SESSION);
    // The worst status of its lines: `W1 * W1` is a shape error.
    assert_eq!(out.status.code(), Some(2));
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

/// Runs a piped session.
fn piped(session: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_matdiff"))
        .arg("repl")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(session.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// Its exit status and standard error.
fn status_and_errors(session: &str) -> (Option<i32>, String) {
    let out = piped(session);
    (out.status.code(), String::from_utf8(out.stderr).unwrap())
}

/// A script of checks gates: its exit status is the worst of its lines'
/// (1 for a verification that did not pass, 2 for an error), and the lines
/// that failed are named.
#[test]
fn piped_sessions_gate() {
    let passing = "W1 : 3x4\ncheck W1*X\nverify W1*X --wrt X --claim 'W1^T*G'\n";
    assert_eq!(status_and_errors(passing), (Some(0), String::new()));
    let (code, err) = status_and_errors("W1 : 3x4\n\nverify W1*X --wrt X --claim 'W1*G'\ncheck W1*X\n");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("repl: line 3 did not pass (status 1); exit status 1"), "{err}");
    // An error outranks a failed verification, and a continued input is
    // named by its first line.
    let (code, err) = status_and_errors("verify W1*X --wrt X \\\n  --claim 'W1*G'\nW1 : 3x4\nW1 *\n  W1\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("line 1 did not pass (status 1), line 4 failed (status 2); exit status 2"), "{err}");
    // `:quit` ends the session with the status so far; unfinished input is an error.
    assert_eq!(status_and_errors("verify W1*X --wrt X --claim 'W1*G'\n:quit\nW1\n").0, Some(1));
    assert_eq!(status_and_errors("W1 * (\n").0, Some(2));
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

/// The history is written as each line is entered: a session killed in the
/// middle of a command keeps the lines typed before. `help` and `quit`,
/// alone on a line, are commands, not undeclared variables.
#[test]
fn history_survives_a_killed_session() {
    use rexpect::session::spawn_command;
    let home = std::env::temp_dir().join(format!("matdiff-repl-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_matdiff"));
    cmd.arg("repl").env("HOME", &home).env("XDG_DATA_HOME", &home).env("NO_COLOR", "1");
    let mut p = spawn_command(cmd, Some(10_000)).unwrap();
    p.exp_string("matdiff> ").unwrap();
    p.send_line("help").unwrap();
    p.exp_string("Declarations persist").unwrap();
    p.exp_string("matdiff> ").unwrap();
    p.send_line("Kept : 3x4").unwrap();
    p.exp_string("matdiff> ").unwrap();
    p.send_line("Kept * Kept^T").unwrap();
    p.exp_string("3x3").unwrap();
    p.exp_string("matdiff> ").unwrap();
    // Killed, as a closed terminal or a second Ctrl-C would.
    p.process_mut().kill(rexpect::process::Signal::SIGKILL).unwrap();
    let history = std::fs::read_to_string(home.join("matdiff").join("history")).unwrap();
    assert!(history.starts_with("#V2\n"), "{history}");
    assert!(history.contains("Kept : 3x4\nKept * Kept^T\n"), "{history}");
    // And `quit` ends a session.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_matdiff"));
    cmd.arg("repl").env("HOME", &home).env("XDG_DATA_HOME", &home).env("NO_COLOR", "1");
    let mut p = spawn_command(cmd, Some(10_000)).unwrap();
    p.exp_string("matdiff> ").unwrap();
    p.send_line("quit").unwrap();
    p.exp_eof().unwrap();
    std::fs::remove_dir_all(&home).unwrap();
}
