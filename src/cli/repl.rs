//! `matdiff repl`: declarations that persist, bare expressions that print
//! their shape, and every subcommand with the same options.
//!
//! Entry point: [`run`]. On a terminal it uses a line editor (history kept
//! across runs, Ctrl-R search, completion, multi-line input); otherwise it
//! reads standard input line by line without prompts, so sessions can be
//! scripted (`matdiff repl < session.txt`).

use std::cell::RefCell;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Editor, Helper};

use super::command::{self, Command, MAX_INPUT_BYTES};
use super::report::{self, render_error};
use crate::syntax::parse_program;

const HELP: &str = "\
Declarations persist:   W1 : 3x4      x : n      a : scalar      Z = W1*X
A bare expression prints its shape:   W1*W2*X
Commands take the same options as on the command line:
  derive EXPR [--wrt V]... [--steps] [--latex] [--json]
  verify EXPR --wrt V --claim FORMULA
  check EXPR [--wrt V]... [--dims d0=3] [--seed N]
  plan EXPR [--dims d0=64,B=65536] [--json] [--emit numpy|pytorch|jax]
  hessian EXPR --wrt V [--wrt U]      jacobian EXPR --wrt X
  latex EXPR
  :help   :shapes (declared and inferred shapes)   :reset   :clear   :quit
  (help, clear, quit and exit alone on a line work too)
A line ending in \\, or one the parser finds unfinished (an open parenthesis,
a trailing operator), continues on the next line.";

const COMMANDS: [&str; 12] = [
    "derive", "verify", "check", "plan", "hessian", "jacobian", "latex", ":help", ":shapes", ":reset",
    ":clear", ":quit",
];

/// The session: the declarations and definitions so far.
#[derive(Default)]
pub struct Session {
    statements: Vec<String>,
}

/// What the session does after a line.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading lines; the line's exit status, as the command line's
    /// (0 success, 1 a check or verification that did not pass, 2 an error).
    Continue(i32),
    /// End the session (`:quit`).
    Quit,
}

impl Session {
    /// The program text of the session's statements and `expr`.
    fn program(&self, expr: &str) -> String {
        let mut parts = self.statements.clone();
        parts.push(expr.to_string());
        parts.join("\n")
    }

    /// Names declared or defined so far, for completion.
    pub fn names(&self) -> Vec<String> {
        let text = self.program("0");
        match parse_program(&text) {
            Ok(p) => p
                .declarations
                .iter()
                .map(|d| d.name.clone())
                .chain(p.definitions.iter().map(|d| d.name.clone()))
                .collect(),
            Err(_) => vec![],
        }
    }

    /// Runs one (possibly multi-line) input; output and errors go to the writers.
    pub fn line(&mut self, input: &str, out: &mut dyn Write, err: &mut dyn Write) -> Flow {
        let line = join_lines(input).trim().to_string();
        if line.is_empty() {
            return Flow::Continue(0);
        }
        let first = line.split_whitespace().next().unwrap_or("");
        // The words a newcomer types first, alone on a line, are commands,
        // not undeclared variables whose shape would be printed.
        let first = match line.as_str() {
            "help" | "quit" | "exit" | "clear" => line.as_str(),
            _ => first,
        };
        let status = match first {
            ":quit" | ":q" | ":exit" | "quit" | "exit" => return Flow::Quit,
            "clear" | ":clear" => {
                // ANSI: clear the screen, cursor home.
                let _ = write!(out, "\x1b[2J\x1b[H");
                0
            }
            ":help" | "help" => {
                let _ = writeln!(out, "{HELP}");
                0
            }
            ":reset" => {
                self.statements.clear();
                let _ = writeln!(out, "declarations cleared");
                0
            }
            ":shapes" => self.shapes(out, err),
            "derive" | "verify" | "check" | "plan" | "hessian" | "jacobian" | "latex" => {
                self.command(first, &line[first.len()..], out, err)
            }
            _ if first.starts_with(':') => {
                let _ = writeln!(err, "unknown command `{first}`; :help lists them");
                2
            }
            _ => self.statement(&line, out, err),
        };
        Flow::Continue(status)
    }

    /// A declaration or definition (kept, if it types), or an expression
    /// (its shape is printed).
    fn statement(&mut self, line: &str, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
        let probe = self.program(&format!("{line}\n0"));
        let keeps = parse_program(&probe).is_ok_and(|p| p.expr.kind == crate::syntax::ExprKind::Num(0.0))
            && (line.contains(':') || line.contains('='));
        let text = if keeps { probe } else { self.program(line) };
        let typed = parse_program(&text).and_then(|p| {
            let t = crate::shape::infer(&p)?;
            Ok(t.shape())
        });
        match typed {
            Ok(shape) if keeps => {
                self.statements.push(line.to_string());
                let _ = shape;
                0
            }
            Ok(shape) => {
                let _ = writeln!(out, "{shape}");
                0
            }
            Err(e) => {
                let _ = write!(err, "{}", render_error(&e, "<repl>", &text));
                2
            }
        }
    }

    /// A subcommand: the expression is everything before the first option.
    /// The options are parsed as on the command line; the command, given
    /// the session's program, runs through the command line's executor.
    fn command(&self, name: &str, rest: &str, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
        let words: Vec<String> = split_words(rest);
        let at = words.iter().position(|w| w.starts_with("--")).unwrap_or(words.len());
        let expr = words[..at].join(" ");
        let options = &words[at..];
        let json = options.iter().any(|w| w == "--json");
        let args = ["matdiff", name].into_iter().map(str::to_string).chain(options.iter().cloned());
        let mut command = match command::parse(args.map(Into::into).collect()) {
            Ok(command) => command,
            Err(e) => {
                return report::clap_failure(&e, json, out, err);
            }
        };
        if let Some(input) = command.input_mut() {
            let misplaced = match (&input.expr, &input.file) {
                (Some(e), _) => Some(format!("`{e}` follows the options; the expression comes before them")),
                (None, Some(_)) => {
                    Some("the expression is written on the line, not read with -f".to_string())
                }
                (None, None) => None,
            };
            if let Some(message) = misplaced {
                let e = crate::Error::new(crate::ErrorKind::Usage, message);
                return report::fail(&e, "", "", json, out, err);
            }
            input.expr = Some(self.program(&expr));
        }
        debug_assert!(!matches!(command, Command::Repl | Command::Demo { .. }));
        command::execute(command, out, err)
    }

    fn shapes(&self, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
        let text = self.program("0");
        let program = match parse_program(&text) {
            Ok(p) => p,
            Err(e) => {
                let _ = write!(err, "{}", render_error(&e, "<repl>", &text));
                return 2;
            }
        };
        let mut typer = crate::shape::Typer::new();
        for d in &program.declarations {
            if d.binder.is_none() && typer.declare(&d.name, None, &d.shape, d.span).is_ok() {
                if let Some(s) = typer.var_shape(&crate::syntax::VarName::plain(&d.name)) {
                    let _ = writeln!(out, "{} : {s}", d.name);
                }
            } else if let Some(b) = &d.binder {
                let _ = writeln!(out, "{}[{b}] : declared family", d.name);
            }
        }
        for def in &program.definitions {
            if let Ok(s) = typer.infer(&def.expr) {
                let _ = writeln!(out, "{} = {}  : {}", def.name, def.expr, typer.resolve(s));
            }
        }
        if program.declarations.is_empty() && program.definitions.is_empty() {
            let _ = writeln!(out, "no declarations yet");
        }
        0
    }
}

/// Splits a command line into words; single or double quotes group.
fn split_words(s: &str) -> Vec<String> {
    let mut words = vec![];
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                    any = false;
                }
            }
            (None, c) => current.push(c),
        }
    }
    if any || !current.is_empty() {
        words.push(current);
    }
    words
}

/// A line without its comment: from a `#` outside quotes to the end.
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (None, '#') => return &line[..i],
            _ => {}
        }
    }
    line
}

/// An input of one or more lines as one line: each line without its
/// comment (which would otherwise swallow the lines after it) and its
/// trailing `\`, the lines joined by a space.
fn join_lines(input: &str) -> String {
    input
        .split('\n')
        .map(|l| {
            let l = strip_comment(l).trim_end();
            l.strip_suffix('\\').unwrap_or(l)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The text of a (joined) input that the parser reads: the expression of
/// a command (its words before the first option), or a statement; `None`
/// for a `:` command.
fn parsed_part(line: &str) -> Option<String> {
    let line = line.trim();
    let first = line.split_whitespace().next().unwrap_or("");
    match first {
        _ if first.starts_with(':') => None,
        "derive" | "verify" | "check" | "plan" | "hessian" | "jacobian" | "latex" => {
            let words = split_words(&line[first.len()..]);
            let at = words.iter().position(|w| w.starts_with("--")).unwrap_or(words.len());
            Some(words[..at].join(" "))
        }
        _ => Some(line.to_string()),
    }
}

/// Whether an input continues on the next line: its last line ends in
/// `\`, or the parser finds it unfinished ([`crate::syntax::unfinished`]:
/// `W * (`, `W +`). Parentheses in comments and quoted options do not
/// count.
pub fn incomplete(input: &str) -> bool {
    let last = input.trim_end_matches('\n').rsplit('\n').next().unwrap_or("");
    if strip_comment(last).trim_end().ends_with('\\') {
        return true;
    }
    parsed_part(&join_lines(input)).is_some_and(|text| crate::syntax::unfinished(&text))
}

/// Runs a session on piped input, without prompts. Lines are numbered from
/// 1 in messages. No line is lost without a word: a line that is not UTF-8
/// is an error for that line (and the input it continued), and an input
/// still unfinished at the end is an error that names its first line.
/// The exit status is the worst of the inputs' (2 over 1 over 0), so that
/// a script of checks can gate, and the lines that failed are named last.
fn piped(session: &mut Session, input: impl BufRead, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let mut failed: Vec<(usize, i32)> = vec![];
    read_piped(session, input, out, err, &mut failed);
    let worst = failed.iter().map(|&(_, status)| status).max().unwrap_or(0);
    if !failed.is_empty() {
        let lines: Vec<String> = failed
            .iter()
            .map(|(line, status)| {
                let what = if *status == 1 { "did not pass" } else { "failed" };
                format!("line {line} {what} (status {status})")
            })
            .collect();
        let _ = writeln!(err, "repl: {}; exit status {worst}", lines.join(", "));
    }
    worst
}

/// The loop of [`piped`]: each input's first line and status where it is not 0.
fn read_piped(
    session: &mut Session,
    mut input: impl BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
    failed: &mut Vec<(usize, i32)>,
) {
    let cap = MAX_INPUT_BYTES;
    let mut pending = String::new();
    let (mut first, mut number) = (0usize, 0usize);
    let mut bytes = Vec::new();
    loop {
        bytes.clear();
        match std::io::Read::take(&mut input, cap as u64 + 1).read_until(b'\n', &mut bytes) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                let _ = writeln!(err, "error: cannot read standard input after line {number}: {e}");
                failed.push((number + 1, 2));
                return;
            }
        }
        number += 1;
        if bytes.len() > cap {
            let _ = writeln!(
                err,
                "error: limit reached: line {number} is longer than {} MiB; the rest of the input is not read",
                cap >> 20
            );
            failed.push((number, 2));
            return;
        }
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        let line = match std::str::from_utf8(&bytes) {
            Ok(line) => line,
            Err(e) => {
                let dropped = if pending.trim().is_empty() {
                    String::new()
                } else {
                    format!("; so is the input from line {first} that it continued")
                };
                let _ = writeln!(
                    err,
                    "error: line {number} is not UTF-8 text (byte {} is not); it is skipped{dropped}",
                    e.valid_up_to() + 1
                );
                failed.push((number, 2));
                pending.clear();
                continue;
            }
        };
        if pending.is_empty() {
            first = number;
        }
        if pending.len() + line.len() > cap {
            let _ = writeln!(
                err,
                "error: limit reached: the input from line {first} is longer than {} MiB; it is skipped",
                cap >> 20
            );
            failed.push((first, 2));
            pending.clear();
            continue;
        }
        pending.push_str(line);
        pending.push('\n');
        if incomplete(&pending) {
            continue;
        }
        match session.line(&std::mem::take(&mut pending), out, err) {
            Flow::Quit => return,
            Flow::Continue(0) => {}
            Flow::Continue(status) => failed.push((first, status)),
        }
    }
    if !pending.trim().is_empty() {
        let _ = writeln!(err, "error: the input from line {first} is unfinished at the end of the input");
        failed.push((first, 2));
        if let Some(Err(e)) =
            parsed_part(&join_lines(&pending)).map(|text| parse_program(&text).map(|_| text))
        {
            let text = parsed_part(&join_lines(&pending)).unwrap_or_default();
            let _ = write!(err, "{}", render_error(&e, "<repl>", &text));
        }
    }
}

/// Completion of commands, functions and the names declared so far.
struct ReplHelper {
    names: Rc<RefCell<Vec<String>>>,
}

impl Completer for ReplHelper {
    type Candidate = String;

    fn complete(&self, line: &str, pos: usize, _: &Context<'_>) -> rustyline::Result<(usize, Vec<String>)> {
        let start = line[..pos]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .map_or(0, |i| i + 1);
        let word = &line[start..pos];
        if word.is_empty() {
            return Ok((pos, vec![]));
        }
        let functions = crate::syntax::function_names().into_iter().map(str::to_string);
        let mut candidates: Vec<String> = COMMANDS
            .iter()
            .map(|c| c.to_string())
            .chain(functions)
            .chain(self.names.borrow().iter().cloned())
            .filter(|c| c.starts_with(word) && c != word)
            .collect();
        candidates.sort();
        candidates.dedup();
        Ok((start, candidates))
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(if incomplete(ctx.input()) { ValidationResult::Incomplete } else { ValidationResult::Valid(None) })
    }
}

impl Helper for ReplHelper {}

/// Entries the history keeps, unless `MATDIFF_HISTORY_SIZE` says another
/// number (the oldest go first).
pub const HISTORY_SIZE: usize = 10_000;

/// Largest history file read; a larger one is neither read nor written.
const MAX_HISTORY_BYTES: u64 = 16 << 20;

/// The history's length: `MATDIFF_HISTORY_SIZE`, or [`HISTORY_SIZE`].
fn history_size() -> usize {
    match std::env::var("MATDIFF_HISTORY_SIZE") {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| {
            eprintln!("note: MATDIFF_HISTORY_SIZE=`{text}` is not a number; the history keeps {HISTORY_SIZE} entries");
            HISTORY_SIZE
        }),
        Err(_) => HISTORY_SIZE,
    }
}

/// Whether the history may be read from and saved to `path`: a regular
/// file of at most [`MAX_HISTORY_BYTES`], or no file yet. (A link to
/// /dev/zero was read until memory ran out; a FIFO blocked the start.)
fn history_file(path: &Path) -> std::result::Result<bool, String> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        Ok(m) if !m.is_file() => Err(format!("{} is not a regular file", path.display())),
        Ok(m) if m.len() > MAX_HISTORY_BYTES => {
            Err(format!("{} is larger than {} MiB", path.display(), MAX_HISTORY_BYTES >> 20))
        }
        Ok(_) => Ok(true),
    }
}

/// A history line of rustyline's format 2 (`\n` a line feed, `\\` a
/// backslash); a line with another escape is kept as it is, as rustyline does.
/// A history entry as a line of rustyline's `#V2` file: `\` and newlines escaped.
fn escape(entry: &str) -> String {
    entry.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Appends `entry` to the history file as it is entered, so that a session
/// that ends abruptly (Ctrl-C during a command, a closed terminal) keeps its
/// lines; the file is rewritten whole, and trimmed, when the session ends.
fn append_history_entry(path: &Path, entry: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut head = [0u8; 3];
    let v2 = std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head)).is_ok()
        && &head == b"#V2";
    let fresh = std::fs::metadata(path).map_or(true, |m| m.len() == 0);
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    if fresh {
        writeln!(file, "#V2")?;
    }
    // (A file of the old format, without the header, takes the entry on one line.)
    let line = if v2 || fresh { escape(entry) } else { entry.replace('\n', " ") };
    writeln!(file, "{line}")
}

fn unescape(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            _ => return line.to_string(),
        }
    }
    out
}

/// Loads the history file into the editor, line by line: a line that is
/// not UTF-8 is skipped (and named), not the rest of the file, which the
/// next save would then have cut off. Returns whether the history may be
/// saved to `path`; what is not done is said on standard error.
fn load_history(editor: &mut Editor<ReplHelper, DefaultHistory>, path: &Path, size: usize) -> bool {
    let not_kept = |why: String| eprintln!("note: history: {why}; the history is neither read nor saved");
    match history_file(path) {
        Ok(false) => return true,
        Ok(true) => {}
        Err(why) => {
            not_kept(why);
            return false;
        }
    }
    let mut bytes = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| {
        std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_HISTORY_BYTES + 1), &mut bytes)
    });
    if let Err(e) = read {
        not_kept(format!("cannot read {}: {e}", path.display()));
        return false;
    }
    if bytes.len() as u64 > MAX_HISTORY_BYTES {
        not_kept(format!("{} is larger than {} MiB", path.display(), MAX_HISTORY_BYTES >> 20));
        return false;
    }
    let mut lines = bytes.split(|&b| b == b'\n').enumerate().peekable();
    let v2 = lines.peek().is_some_and(|(_, first)| *first == b"#V2");
    let (mut entries, mut bad) = (0usize, vec![]);
    for (i, line) in lines.skip(usize::from(v2)) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        match std::str::from_utf8(line) {
            Ok(text) => {
                let _ = editor.add_history_entry(if v2 { unescape(text) } else { text.to_string() });
                entries += 1;
            }
            Err(_) => bad.push(i + 1),
        }
    }
    if !bad.is_empty() {
        let shown: Vec<String> = bad.iter().take(5).map(|n| n.to_string()).collect();
        let more = if bad.len() > 5 { ", …" } else { "" };
        eprintln!(
            "note: history: skipped {} line(s) of {} that are not UTF-8 text (line {}{more}); the other lines are kept",
            bad.len(),
            path.display(),
            shown.join(", ")
        );
    }
    if entries > size {
        eprintln!(
            "note: history: keeping the newest {size} of its {entries} entries (MATDIFF_HISTORY_SIZE sets the number)"
        );
    }
    true
}

fn history_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("share")))?;
    Some(base.join("matdiff").join("history"))
}

/// Runs the REPL on standard input; returns the exit status.
pub fn run() -> i32 {
    let mut session = Session::default();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    if !std::io::stdin().is_terminal() {
        return piped(&mut session, std::io::stdin().lock(), &mut stdout.lock(), &mut stderr.lock());
    }
    let names = Rc::new(RefCell::new(vec![]));
    let size = history_size();
    let config = rustyline::Config::builder().max_history_size(size).map(|b| b.build()).unwrap_or_default();
    let mut editor: Editor<ReplHelper, DefaultHistory> = match Editor::with_config(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot start the line editor: {e}");
            return 2;
        }
    };
    editor.set_helper(Some(ReplHelper { names: names.clone() }));
    // (Kept only in a regular file, or where there is none yet.)
    let history = history_path().filter(|path| load_history(&mut editor, path, size));
    let colour = std::env::var_os("NO_COLOR").is_none();
    let prompt = if colour { "\x1b[1mmatdiff>\x1b[0m " } else { "matdiff> " };
    println!("matdiff {} — :help for help, Ctrl-D to quit", env!("CARGO_PKG_VERSION"));
    loop {
        match editor.readline(prompt) {
            Ok(input) => {
                let _ = editor.add_history_entry(input.as_str());
                if let Some(path) = history.as_deref().filter(|path| history_file(path).is_ok()) {
                    if let Err(e) = append_history_entry(path, &input) {
                        eprintln!("note: history: cannot append to {}: {e}", path.display());
                    }
                }
                let outcome = session.line(&input, &mut stdout.lock(), &mut stderr.lock());
                *names.borrow_mut() = session.names();
                if outcome == Flow::Quit {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(_) => break,
        }
    }
    // (Unless something other than a regular file took its place meanwhile.)
    if let Some(path) = history.filter(|path| history_file(path).is_ok()) {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = editor.save_history(&path) {
            eprintln!("note: history: cannot save {}: {e}", path.display());
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parser decides: an open parenthesis or a trailing operator
    /// continues, one in a comment or a quoted option does not.
    #[test]
    fn inputs_continue_where_the_parser_wants_more() {
        for (input, more) in [
            ("W * (\n", true),
            ("W +\n", true),
            ("W : 3 x\n", true),
            ("W1 * \\\n", true),
            ("derive W1 * (W2\n", true),
            ("W * W  # an open ( here\n", false),
            ("# (\n", false),
            ("verify W*X --wrt W --claim '(G*X^T'\n", false),
            ("W)\n", false),
            (":shapes (\n", false),
            ("W * (  # open\n  W)\n", false),
        ] {
            assert_eq!(incomplete(input), more, "{input:?}");
        }
        assert_eq!(join_lines("W * (  # open\n  W)\n"), "W * (   W) ");
    }
}
