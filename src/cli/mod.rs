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
mod render;
pub mod repl;
mod report;
mod second;

use std::ffi::OsString;
use std::io::Write;

pub use command::{execute, parse, Command, Emit, Input, Target, MAX_INPUT_BYTES};
pub use render::{plan as render_plan, render_check, render_derivation, PlanOutput};
pub use report::{error_json, exit_code, render_error, with_hints};

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
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    if args.len() == 1 && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return repl::run();
    }
    let json = args.iter().skip(1).take_while(|a| *a != "--").any(|a| a == "--json");
    match parse(args) {
        Ok(Command::Repl) => repl::run(),
        Ok(command) => execute(command, out, err),
        Err(e) => report::clap_failure(&e, json, out, err),
    }
}
