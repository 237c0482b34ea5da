//! The front ends (feature `cli`): the command line (docs/cli.md) — `derive`,
//! `verify`, `check`, `plan`, `hessian`, `jacobian`, `latex`, `repl`, `demo` — and the REPL.
//!
//! Entry point: [`run`], which returns the exit status: 0 on success, 1 when
//! a check fails, 2 on a parse, shape, usage or unsupported-construct error.
//! Both front ends parse into a [`Command`] and run it through [`execute`];
//! the engine's [`Error`](crate::Error)s are rendered here ([`render_error`]),
//! and mapped to exit statuses ([`exit_code`]).
//!
//! The modules depend forward only: `run` → [`repl`] → `command` →
//! `render`, `report`.

mod command;
mod demo;
mod progress;
mod render;
pub mod repl;
mod report;
mod second;

use std::ffi::OsString;
use std::io::Write;

pub use command::{execute, parse, Command, Emit, Input, Target, MAX_INPUT_BYTES};
pub use render::{plan as render_plan, render_check, render_derivation, PlanOutput};
pub use report::{error_json, exit_code, render_error, with_hints, Style};

/// Runs the command line with these arguments (the program name first, as
/// `std::env::args_os` gives them; a `Vec<String>` or a `Vec<OsString>`);
/// returns the exit status. Output goes to `out`, errors (rendered against
/// the source) to `err`; a `--json` command that fails also prints its error
/// as a JSON object on `out`. An argument that is not UTF-8 is refused by
/// name (exit status 2), except a file name (`-f`), which is a path.
///
/// (A `Vec`, not any iterator: `run(iter.collect(), ..)` then still knows
/// what to collect into.)
pub fn run<T>(args: Vec<T>, out: &mut dyn Write, err: &mut dyn Write) -> i32
where
    T: Into<OsString> + Clone,
{
    run_in(args.into_iter().map(Into::into).collect(), out, err, Style::Plain, &crate::Control::default())
}

/// The binary's entry point: [`run`] on the process's standard output and
/// error, in colour where they are terminals that want it ([`Style::of`]):
/// error reports as ariadne colours them, derived results' names in bold;
/// long work shows a progress bar on a terminal's standard error.
pub fn main(args: Vec<OsString>) -> i32 {
    // (Standard error unlocked: the bar's ticks write to it from their thread.)
    let (stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    let style = Style::of(&stderr);
    let bar = progress::Bar::new();
    let control = bar.listen(crate::Control::default());
    let mut lock = stdout.lock();
    let mut highlighted;
    let out: &mut dyn Write = match Style::of(&stdout) {
        Style::Colour => {
            highlighted = report::Highlighted::new(&mut lock);
            &mut highlighted
        }
        Style::Plain => &mut lock,
    };
    let mut out = progress::Cleared::new(&bar, out);
    let mut err = progress::Cleared::new(&bar, &mut stderr);
    run_in(args, &mut out, &mut err, style, &control)
}

fn run_in(
    args: Vec<OsString>,
    out: &mut dyn Write,
    err: &mut dyn Write,
    style: Style,
    control: &crate::Control,
) -> i32 {
    if args.len() == 1 && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return repl::run();
    }
    let json = args.iter().skip(1).take_while(|a| *a != "--").any(|a| a == "--json");
    match parse(args) {
        Ok(Command::Repl) => repl::run(),
        Ok(command) => command::execute_in(command, control, out, err, style),
        Err(e) => report::clap_failure(&e, json, out, err, style),
    }
}
