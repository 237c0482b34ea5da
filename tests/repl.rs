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

/// A scratch directory of its own for a session's history.
fn fresh_home(name: &str) -> std::path::PathBuf {
    let home = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();
    home
}

/// `matdiff repl` on a pseudo-terminal, its history under `home`, without
/// colour; each expectation waits up to `seconds`.
fn repl_on_a_terminal(home: &std::path::Path, seconds: u64) -> rexpect::session::PtySession {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_matdiff"));
    cmd.arg("repl").env("HOME", home).env("XDG_DATA_HOME", home).env("NO_COLOR", "1");
    rexpect::session::spawn_command(cmd, Some(seconds * 1000)).unwrap()
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
    let home = fresh_home("matdiff-repl");
    let mut p = repl_on_a_terminal(&home, 10);
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
    // A multi-line expression: an open parenthesis continues the line,
    // under a continuation prompt.
    p.send_line("(Weights *").unwrap();
    p.exp_string("     ...> ").unwrap();
    p.send_line(" Weights^T)^T").unwrap();
    p.exp_string("3x3").unwrap();
    p.exp_string("matdiff> ").unwrap();
    // Options complete: `--wr` is `--wrt` for derive.
    p.send("derive Weights * x --wr").unwrap();
    p.send("\t").unwrap();
    p.send_line(" x").unwrap();
    p.exp_string("d/dx = Weights^T * G").unwrap();
    p.exp_string("matdiff> ").unwrap();
    // Ctrl-C cancels the line; the session goes on.
    p.send("Weights * nothing").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("matdiff> ").unwrap();
    p.send_line("Weights").unwrap();
    p.exp_string("3x4").unwrap();
    // Ctrl-D only once the prompt is back: typed while the command still
    // runs, the editor's switch to raw mode may discard it.
    p.exp_string("matdiff> ").unwrap();
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
    let home = fresh_home("matdiff-repl-kill");
    let mut p = repl_on_a_terminal(&home, 10);
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
    let mut p = repl_on_a_terminal(&home, 10);
    p.exp_string("matdiff> ").unwrap();
    p.send_line("quit").unwrap();
    p.exp_eof().unwrap();
    std::fs::remove_dir_all(&home).unwrap();
}

/// Ctrl-C during a long command stops that command, not the session: the
/// prompt comes back with the declarations and the history kept. An error
/// points at the line as typed; a declaration is echoed, and one of a name
/// the session has replaces it, saying so.
#[test]
fn ctrl_c_stops_the_command_not_the_session() {
    let home = fresh_home("matdiff-repl-int");
    let mut p = repl_on_a_terminal(&home, 20);
    p.exp_string("matdiff> ").unwrap();
    p.send_line("A : 40x40; B : 40x40").unwrap();
    p.exp_string("B : 40x40").unwrap();
    p.exp_string("matdiff> ").unwrap();
    // Entry by entry at 40x40: the check would run to its 30 s limit.
    p.send_line("check tr(inv(A)*B) --method entries").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let asked = std::time::Instant::now();
    p.send_control('c').unwrap();
    p.exp_string("error: interrupted: the command was stopped before it finished").unwrap();
    p.exp_string("the session's declarations are kept").unwrap();
    p.exp_string("matdiff> ").unwrap();
    assert!(asked.elapsed().as_secs() < 10, "stopped after {:?}", asked.elapsed());
    p.send_line("A * B").unwrap();
    p.exp_string("40x40").unwrap();
    p.exp_string("matdiff> ").unwrap();
    // Errors in the user's coordinates: the typed line, not a hidden program.
    p.send_line("derive A * ones(3, 1) --wrt A").unwrap();
    p.exp_string("<input>:1:10").unwrap();
    p.exp_string("derive A * ones(3, 1) --wrt A").unwrap();
    p.exp_string("matdiff> ").unwrap();
    p.send_line("A : 3x3").unwrap();
    p.exp_string("A : 3x3").unwrap();
    p.exp_string("note: `A : 3x3` replaces `A : 40x40`").unwrap();
    p.exp_string("matdiff> ").unwrap();
    p.send_line("quit").unwrap();
    p.exp_eof().unwrap();
    let history = std::fs::read_to_string(home.join("matdiff").join("history")).unwrap();
    assert!(history.contains("check tr(inv(A)*B) --method entries\nA * B\n"), "{history}");
    std::fs::remove_dir_all(&home).unwrap();
}

/// A declaration typed again replaces the old one, saying so; one the
/// session would not type with is refused and the session stays as it was.
/// `:save` writes the declarations as a script that a piped session replays.
#[test]
fn redeclaration_and_save() {
    let dir = std::env::temp_dir().join(format!("matdiff-repl-save-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("session.txt");
    let session = format!("W : 3x4; X : 4x2\nZ = W * X\nW : 5x4\nW : 3x3\nZ\n:save {}\n", file.display());
    let out = piped(&session);
    let (stdout, stderr) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    // Piped, a kept declaration is not echoed (standard output is the
    // commands'); a replacement is said on standard error.
    assert!(stdout.starts_with("5x2\n"), "{stdout}");
    assert!(stderr.contains("note: `W : 5x4` replaces `W : 3x4`"), "{stderr}");
    // `W : 3x3` would break `Z = W * X`: refused, pointing at Z's statement.
    assert!(stderr.contains("cannot multiply 3x3 by 4x2"), "{stderr}");
    assert!(stderr.contains("<statement 3>"), "{stderr}");
    assert!(stderr.contains("a <statement K> is the K-th declaration"), "{stderr}");
    assert!(stderr.contains("not kept: the session is as it was"), "{stderr}");
    assert!(stderr.contains("line 4 failed"), "{stderr}");
    assert!(stdout.contains("saved 3 statements to"), "{stdout}");
    let script = std::fs::read_to_string(&file).unwrap();
    assert!(script.ends_with("W : 5x4\nX : 4x2\nZ = W * X\n"), "{script}");
    let replayed = piped(&format!("{script}Z\n"));
    assert_eq!(replayed.status.code(), Some(0));
    assert!(String::from_utf8(replayed.stdout).unwrap().ends_with("5x2\n"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// In the REPL an unknown option is named with the one most likely meant,
/// and usage lines name the REPL's command, not the binary.
#[test]
fn options_are_corrected() {
    let (code, err) =
        status_and_errors("derive W*x --wtr W\nverify W*x --wrt W --cliam W\nverify W*x --claim W\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("`--wtr` is not an option of derive; did you mean `--wrt`?"), "{err}");
    assert!(err.contains("`--cliam` is not an option of verify; did you mean `--claim`?"), "{err}");
    assert!(err.contains("Usage: verify --wrt"), "{err}");
    assert!(!err.contains("Usage: matdiff"), "{err}");
}

/// Colour only on a terminal, and never under `NO_COLOR`: derived results'
/// names in bold, error reports in ariadne's colours, `error:` in lower case.
#[test]
fn colour_on_a_terminal_unless_no_color() {
    use rexpect::session::spawn_command;
    let run = |args: &[&str], no_color: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_matdiff"));
        cmd.args(args).env("TERM", "xterm-256color").env_remove("NO_COLOR");
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let mut p = spawn_command(cmd, Some(10_000)).unwrap();
        p.exp_eof().unwrap()
    };
    let derive = ["derive", "W : 3x4; W*x", "--wrt", "W"];
    let coloured = run(&derive, false);
    assert!(coloured.contains("\x1b[1md/dW\x1b[0m = G * x^T"), "{coloured:?}");
    let plain = run(&derive, true);
    assert!(plain.contains("d/dW = G * x^T") && !plain.contains('\x1b'), "{plain:?}");
    let wrong = ["derive", "W : 3x4; W*W"];
    let coloured = run(&wrong, false);
    assert!(coloured.contains("error:") && coloured.contains("\x1b["), "{coloured:?}");
    assert!(!coloured.contains("Error:"), "{coloured:?}");
    let plain = run(&wrong, true);
    assert!(plain.starts_with("error: shape error") && !plain.contains('\x1b'), "{plain:?}");
    // Piped (not a terminal): plain, whatever the environment says.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_matdiff"))
        .args(derive)
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(!String::from_utf8(out.stdout).unwrap().contains('\x1b'));
}

/// A long check shows what it is doing on a terminal's standard error
/// (after half a second), and the bar is cleared before the results.
#[test]
fn long_work_shows_its_progress() {
    use rexpect::session::spawn_command;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_matdiff"));
    cmd.args(["check", "A : 40x40; B : 40x40; tr(inv(A)*B)", "--method", "entries"]).env("NO_COLOR", "1");
    let mut p = spawn_command(cmd, Some(15_000)).unwrap();
    p.exp_string("checking d/dA (1 of 2, instance 1)").unwrap();
    p.process_mut().kill(rexpect::process::Signal::SIGKILL).unwrap();
    // A quick command shows none.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_matdiff"));
    cmd.args(["check", "A : 3x3; B : 3x3; tr(inv(A)*B)"]).env("NO_COLOR", "1");
    let mut p = spawn_command(cmd, Some(15_000)).unwrap();
    let all = p.exp_eof().unwrap();
    assert!(!all.contains("checking d/d") && all.contains("ok: 2 gradient(s) agree"), "{all}");
}

/// A `--json` error in the REPL places its labels in the line as typed,
/// as its text does (`<input>`), not in the session's program.
#[test]
fn json_errors_point_into_the_typed_line() {
    let line = "derive W1*W2 --json";
    let out = piped(&format!("W1 : 3x4\nW2 : 5x6\n{line}\n"));
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let label = &doc["labels"][0];
    assert_eq!(label["source"], "<input>", "{doc}");
    let (start, end) = (label["start"].as_u64().unwrap() as usize, label["end"].as_u64().unwrap() as usize);
    assert_eq!(&line[start..end], "*", "{doc}");
}
