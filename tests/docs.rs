//! The documentation is part of the contract: every example in `docs/*.md`
//! and README.md runs through the binary and must print what the page shows.
//!
//! Three kinds of fenced block are read (every other block is prose):
//!
//! - ```` ```console ````: sessions. A line `$ matdiff ARGS` runs the binary
//!   with ARGS split as a shell would (single and double quotes, which may
//!   span lines; `< FILE` is not supported). The lines after it, up to the next `$` line or the end
//!   of the block, are what it prints, standard output then standard error.
//!   In them, a line `...` stands for any number of lines and `[..]` for any
//!   text within a line; a last line `[exit N]` is the exit status, which is
//!   0 when none is shown. For `$ matdiff repl`, the lines that begin with
//!   the prompt `matdiff> ` are the input (piped, so the REPL prints no
//!   prompts) and the other lines are the output.
//! - ```` ```text accepted ````: one program per line, which
//!   `matdiff derive` answers (exit status 0).
//! - ```` ```text refused ````: one program per line, which `matdiff derive`
//!   refuses by name (exit status 2, a message on standard error, nothing on
//!   standard output).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn matdiff(args: &[String], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_matdiff"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("MATDIFF_HISTORY_SIZE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run matdiff");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Splits a command line as a shell would: words separated by blanks,
/// `'…'` literal, `"…"` literal but for `\"` and `\\`.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    w.push(c);
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => w.push(chars.next().unwrap_or('\\')),
                        c => w.push(c),
                    }
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// Whether a quote is open at the end of `line`.
fn open_quote(line: &str) -> bool {
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some('"'), '\\') => {
                chars.next();
            }
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
    }
    quote.is_some()
}

/// Whether `line` matches `pattern`, where `[..]` in the pattern stands for
/// any text.
fn line_matches(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split("[..]").collect();
    if parts.len() == 1 {
        return pattern == line;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !line.starts_with(first) || !line[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &line[first.len()..line.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// Whether the output `lines` match the `expected` lines, where a line
/// `...` stands for any number of lines.
fn lines_match(expected: &[&str], lines: &[&str]) -> bool {
    match expected.split_first() {
        None => lines.is_empty(),
        Some((&"...", rest)) => (0..=lines.len()).any(|k| lines_match(rest, &lines[k..])),
        Some((first, rest)) => {
            !lines.is_empty() && line_matches(first, lines[0]) && lines_match(rest, &lines[1..])
        }
    }
}

/// One example of a page: where it is, the arguments, standard input, the
/// expected output and exit status.
struct Example {
    at: String,
    args: Vec<String>,
    stdin: String,
    expected: Vec<String>,
    code: i32,
}

/// A fenced block: its info string, first line number, and lines.
struct Block {
    info: String,
    line: usize,
    body: Vec<String>,
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (n, line) in text.lines().enumerate() {
        let fence = line.trim_start().starts_with("```");
        match (&mut open, fence) {
            (None, true) => {
                let info = line.trim_start().trim_start_matches('`').trim().to_string();
                open = Some(Block { info, line: n + 2, body: Vec::new() });
            }
            (Some(_), true) => out.push(open.take().unwrap()),
            (Some(b), false) => b.body.push(line.to_string()),
            (None, false) => {}
        }
    }
    assert!(open.is_none(), "a fenced block is not closed");
    out
}

fn console_examples(page: &str, block: &Block) -> Vec<Example> {
    let mut out: Vec<Example> = Vec::new();
    let mut lines = block.body.iter().enumerate();
    while let Some((k, line)) = lines.next() {
        let at = format!("{page}:{}", block.line + k);
        if let Some(command) = line.strip_prefix("$ ") {
            // A quote left open continues the command on the next line.
            let mut command = command.to_string();
            while open_quote(&command) {
                let (_, next) = lines.next().unwrap_or_else(|| panic!("{at}: a quote is not closed"));
                command.push('\n');
                command.push_str(next);
            }
            let words = shell_words(&command);
            assert_eq!(
                words.first().map(String::as_str),
                Some("matdiff"),
                "{at}: not a matdiff command: {line}"
            );
            out.push(Example {
                at,
                args: words[1..].to_vec(),
                stdin: String::new(),
                expected: vec![],
                code: 0,
            });
            continue;
        }
        let ex = out.last_mut().unwrap_or_else(|| panic!("{at}: output before any `$ matdiff` line"));
        if ex.args.first().map(String::as_str) == Some("repl") {
            if let Some(input) = line.strip_prefix("matdiff> ") {
                ex.stdin.push_str(input);
                ex.stdin.push('\n');
                continue;
            }
        }
        ex.expected.push(line.clone());
    }
    for ex in &mut out {
        while ex.expected.last().is_some_and(|l| l.trim().is_empty()) {
            ex.expected.pop();
        }
        let status =
            ex.expected.last().and_then(|l| l.strip_prefix("[exit ")?.strip_suffix(']')?.parse().ok());
        if let Some(code) = status {
            ex.code = code;
            ex.expected.pop();
        }
    }
    out
}

fn program_examples(page: &str, block: &Block, code: i32) -> Vec<Example> {
    let mut out = Vec::new();
    for (k, line) in block.body.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.push(Example {
            at: format!("{page}:{}", block.line + k),
            args: vec!["derive".into(), line.clone()],
            stdin: String::new(),
            expected: vec![],
            code,
        });
    }
    out
}

/// The pages whose examples are run: README.md and docs/*.md.
fn pages() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    pages.insert(0, root.join("README.md"));
    pages
}

/// Every example of every page; each kind of block must occur.
fn examples() -> Vec<(Example, &'static str)> {
    let mut out = Vec::new();
    for path in pages() {
        let page = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap().display().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        for block in blocks(&text) {
            match block.info.as_str() {
                "console" => out.extend(console_examples(&page, &block).into_iter().map(|e| (e, "console"))),
                "text accepted" => {
                    out.extend(program_examples(&page, &block, 0).into_iter().map(|e| (e, "accepted")))
                }
                "text refused" => {
                    out.extend(program_examples(&page, &block, 2).into_iter().map(|e| (e, "refused")))
                }
                _ => {}
            }
        }
    }
    out
}

#[test]
fn every_example_in_the_docs_prints_what_it_shows() {
    let examples = examples();
    for kind in ["console", "accepted", "refused"] {
        let n = examples.iter().filter(|(_, k)| *k == kind).count();
        assert!(n >= 5, "only {n} examples of kind {kind} in docs/");
    }
    let mut failures = Vec::new();
    for (ex, kind) in &examples {
        let r = matdiff(&ex.args, &ex.stdin);
        let printed = format!("{}{}", r.stdout, r.stderr);
        let mut lines: Vec<&str> = printed.lines().map(str::trim_end).collect();
        while lines.last() == Some(&"") {
            lines.pop();
        }
        let expected: Vec<&str> = ex.expected.iter().map(|l| l.trim_end()).collect();
        let ok = match *kind {
            "console" => r.code == ex.code && lines_match(&expected, &lines),
            "accepted" => r.code == 0,
            _ => r.code == 2 && r.stdout.is_empty() && !r.stderr.is_empty() && !r.stderr.contains("panicked"),
        };
        if !ok {
            failures.push(format!(
                "{}: matdiff {:?}\n  exit status {} (the page says {})\n--- the page shows:\n{}\n--- it printed:\n{}",
                ex.at,
                ex.args,
                r.code,
                ex.code,
                expected.join("\n"),
                printed
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} example(s) differ from the pages:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The pages say what the code does: the clap help of every command is
/// quoted in docs/cli.md, so that a new option cannot go undocumented.
#[test]
fn the_cli_page_quotes_the_help_of_every_command() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cli.md")).unwrap();
    for command in ["derive", "verify", "check", "plan", "hessian", "jacobian", "latex", "repl", "demo"] {
        assert!(
            text.contains(&format!("$ matdiff {command} --help\n")),
            "docs/cli.md does not quote `matdiff {command} --help`"
        );
    }
    assert!(text.contains("$ matdiff --help\n"), "docs/cli.md does not quote `matdiff --help`");
}

/// No file of the project cites the contract's old home outside the
/// repository.
#[test]
fn no_file_cites_the_shared_directory() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut stack = vec![root.to_path_buf()];
    let mut citing = Vec::new();
    let needle = ["..", "shared"].join("/");
    let section = ["SPEC", "§"].join(" ");
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if name != ".git" && name != "target" {
                    stack.push(path);
                }
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                if text.contains(&needle) || text.contains(&section) {
                    citing.push(path.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
    }
    citing.sort();
    assert!(citing.is_empty(), "these files cite {needle} or {section}: {citing:?}");
}

#[test]
fn the_matchers_mean_what_the_module_doc_says() {
    assert_eq!(
        shell_words(r#"derive 'W : 3x4; W*X' --wrt "W" x"y"'z'"#),
        ["derive", "W : 3x4; W*X", "--wrt", "W", "xyz"]
    );
    assert!(line_matches("d/dW  max rel err [..]  ok", "d/dW  max rel err 3.1e-15  ok"));
    assert!(!line_matches("d/dW  max rel err [..]  ok", "d/dW  max rel err 3.1e-15  MISMATCH"));
    assert!(open_quote("derive 'W : 3x4") && !open_quote(r#"derive 'W' "x\"""#));
    assert!(lines_match(&["a", "...", "d"], &["a", "b", "c", "d"]));
    assert!(lines_match(&["a", "...", "b"], &["a", "b"]));
    assert!(!lines_match(&["a", "b"], &["a", "b", "c"]));
}
