//! `matdiff repl`: declarations that persist, bare expressions that print
//! their shape, and every subcommand with the same options.
//!
//! Entry point: [`run`]. On a terminal it uses a line editor (history kept
//! across runs, Ctrl-R search, completion, multi-line input); otherwise it
//! reads standard input line by line without prompts, so sessions can be
//! scripted (`matdiff repl < session.txt`).

use std::cell::RefCell;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::rc::Rc;

use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Editor, Helper};

use crate::syntax::{parse_program, Func};

const HELP: &str = "\
Declarations persist:   W1 : 3x4      x : n      a : scalar      Z = W1*X
A bare expression prints its shape:   W1*W2*X
Commands take the same options as on the command line:
  derive EXPR [--wrt V]... [--steps] [--latex] [--json]
  verify EXPR --wrt V --claim FORMULA
  check EXPR [--wrt V]... [--dims d0=3] [--seed N]
  plan EXPR [--dims d0=64,B=65536] [--json] [--emit numpy|pytorch]
  latex EXPR
  :help   :shapes (declared and inferred shapes)   :reset   :quit
A line ending in \\ or with an open parenthesis continues on the next line.";

const COMMANDS: [&str; 9] = ["derive", "verify", "check", "plan", "latex", ":help", ":shapes", ":reset", ":quit"];

/// The session: the declarations and definitions so far.
#[derive(Default)]
pub struct Session {
    statements: Vec<String>,
}

/// What a line did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Continue,
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
    pub fn line(&mut self, input: &str, out: &mut dyn Write, err: &mut dyn Write) -> Outcome {
        let line = input.replace("\\\n", " ").replace('\n', " ").trim().to_string();
        if line.is_empty() || line.starts_with('#') {
            return Outcome::Continue;
        }
        let first = line.split_whitespace().next().unwrap_or("");
        match first {
            ":quit" | ":q" | ":exit" => return Outcome::Quit,
            ":help" => {
                let _ = writeln!(out, "{HELP}");
            }
            ":reset" => {
                self.statements.clear();
                let _ = writeln!(out, "declarations cleared");
            }
            ":shapes" => self.shapes(out, err),
            "derive" | "verify" | "check" | "plan" | "latex" => self.command(first, &line[first.len()..], out, err),
            _ if first.starts_with(':') => {
                let _ = writeln!(err, "unknown command `{first}`; :help lists them");
            }
            _ => self.statement(&line, out, err),
        }
        Outcome::Continue
    }

    /// A declaration or definition (kept, if it types), or an expression
    /// (its shape is printed).
    fn statement(&mut self, line: &str, out: &mut dyn Write, err: &mut dyn Write) {
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
            }
            Ok(shape) => {
                let _ = writeln!(out, "{shape}");
            }
            Err(e) => {
                let _ = write!(err, "{}", e.render("<repl>", &text));
            }
        }
    }

    /// A subcommand: the expression is everything before the first option.
    fn command(&self, name: &str, rest: &str, out: &mut dyn Write, err: &mut dyn Write) {
        let words: Vec<String> = split_words(rest);
        let at = words.iter().position(|w| w.starts_with("--")).unwrap_or(words.len());
        let expr = words[..at].join(" ");
        let mut argv = vec!["matdiff".to_string(), name.to_string(), self.program(&expr)];
        argv.extend(words[at..].iter().cloned());
        crate::cli::run(argv, out, err);
    }

    fn shapes(&self, out: &mut dyn Write, err: &mut dyn Write) {
        let text = self.program("0");
        let program = match parse_program(&text) {
            Ok(p) => p,
            Err(e) => {
                let _ = write!(err, "{}", e.render("<repl>", &text));
                return;
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

/// Whether an input continues on the next line: a trailing `\` or an open
/// parenthesis.
pub fn incomplete(input: &str) -> bool {
    let depth: i64 = input
        .chars()
        .map(|c| match c {
            '(' | '[' => 1,
            ')' | ']' => -1,
            _ => 0,
        })
        .sum();
    input.trim_end().ends_with('\\') || depth > 0
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
        let functions =
            Func::ALL.iter().map(|f| f.name().to_string()).chain(["prod".to_string(), "inv".to_string()]);
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
        let mut pending = String::new();
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            pending.push_str(&line);
            pending.push('\n');
            if incomplete(&pending) {
                continue;
            }
            let input = std::mem::take(&mut pending);
            if session.line(&input, &mut stdout.lock(), &mut stderr.lock()) == Outcome::Quit {
                break;
            }
        }
        return 0;
    }
    let names = Rc::new(RefCell::new(vec![]));
    let mut editor: Editor<ReplHelper, DefaultHistory> = match Editor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot start the line editor: {e}");
            return 2;
        }
    };
    editor.set_helper(Some(ReplHelper { names: names.clone() }));
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    let colour = std::env::var_os("NO_COLOR").is_none();
    let prompt = if colour { "\x1b[1mmatdiff>\x1b[0m " } else { "matdiff> " };
    println!("matdiff {} — :help for help, Ctrl-D to quit", env!("CARGO_PKG_VERSION"));
    loop {
        match editor.readline(prompt) {
            Ok(input) => {
                let _ = editor.add_history_entry(input.as_str());
                let outcome = session.line(&input, &mut stdout.lock(), &mut stderr.lock());
                *names.borrow_mut() = session.names();
                if outcome == Outcome::Quit {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(_) => break,
        }
    }
    if let Some(path) = &history {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = editor.save_history(path);
    }
    0
}
