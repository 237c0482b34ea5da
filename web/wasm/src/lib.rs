//! matdiff's engine in the browser: one function per command of the web
//! playground (web/), each returning the JSON document the command line
//! prints with `--json` (docs/json.md) inside an envelope
//! `{"status": S, "output": DOC}`, where `S` is the command line's exit
//! status (0 ok, 1 a check or verification that fails, 2 an error, DOC then
//! the error object). The functions run synchronously: the page calls them
//! from a Web Worker (web/worker.js), so long work never freezes it; only
//! its first answer, before the worker is up, comes from its own thread,
//! from [`shapes`] and [`derive_within`] (bounded by a deadline). The
//! engine's own limits (the e-graph's and the checks' time limits, node and
//! size limits) hold here as on the command line.

use std::collections::HashMap;

use matdiff::numeric::CheckOptions;
use matdiff::plan::{Language, PlanOptions};
use matdiff::syntax::{self, VarName};
use matdiff::{DeriveOptions, Error, ErrorKind, Hint, Steps};
use serde::Serialize;
use wasm_bindgen::prelude::*;

/// The envelope of every answer.
#[derive(Serialize)]
struct Answer<T: Serialize> {
    status: i32,
    output: T,
}

fn answer(status: i32, output: &impl Serialize) -> String {
    // Values go through serde_json::Value so that keys come out in order, as
    // the command line prints them.
    match serde_json::to_value(output).and_then(|v| serde_json::to_string(&Answer { status, output: v })) {
        Ok(text) => text,
        Err(e) => failure(&Error::new(ErrorKind::Internal, format!("cannot serialize the result: {e}"))),
    }
}

/// An error as the command line's JSON error object, its hints phrased for
/// the page (the command line names its options instead).
fn failure(e: &Error) -> String {
    let mut e = e.clone();
    for h in std::mem::take(&mut e.hints) {
        e.notes.push(match h {
            Hint::GiveSize(example) => format!("give it in the sizes field, e.g. {example}"),
            Hint::SmallerLength => {
                "a length given in the sizes field: give it a smaller value, or leave it out for the symbolic plan"
                    .to_string()
            }
            Hint::FewerTargets => "ask for fewer gradients, or other variables, in the wrt field".to_string(),
            Hint::NameUpstream => "name the upstream gradient in the upstream field".to_string(),
            Hint::Claim => "type the claimed gradient in the claim field".to_string(),
        });
    }
    let value = serde_json::to_value(&e).unwrap_or(serde_json::Value::Null);
    serde_json::to_string(&Answer { status: 2, output: value })
        .unwrap_or_else(|_| r#"{"status":2,"output":null}"#.to_string())
}

/// Most levels an expression may nest in the browser. The engine's walks
/// recurse once per level; natively they grow their stack as they go
/// (src/stack.rs), but a browser runs wasm on its JavaScript thread's stack,
/// about 1 MB, which some 1000 levels exhaust (measured: 500 levels of
/// negations, products or sums derive with steps, 1000 levels of negations
/// do not; a plan or a check of 400 levels of a gradient runs). Deeper
/// input, or a gradient deeper than [`MAX_GRADIENT_DEPTH`] to plan or check
/// (the product rule on n factors gives a gradient twice as deep), is
/// refused by name instead of trapping.
pub const MAX_DEPTH: usize = 200;

/// Most levels a gradient may nest for a plan or a check in the browser.
pub const MAX_GRADIENT_DEPTH: usize = 400;

/// An error past `limit` levels of `e` (`what` it is).
fn shallow(e: &matdiff::syntax::Expr, limit: usize, what: &str) -> matdiff::Result<()> {
    // Depth-first with an explicit stack: no recursion here.
    let mut todo = vec![(e, 1usize)];
    while let Some((e, depth)) = todo.pop() {
        if depth > limit {
            return Err(Error::new(
                ErrorKind::Limit,
                format!("{what} nests deeper than {limit} levels, the limit in the browser"),
            )
            .note("a browser gives the engine a stack of about 1 MB; the command line (`matdiff`) takes any depth"));
        }
        todo.extend(e.children().map(|c| (c, depth + 1)));
    }
    Ok(())
}

/// The program, parsed, or a limit error past [`MAX_DEPTH`] levels.
fn parse(source: &str) -> matdiff::Result<matdiff::syntax::Program> {
    let program = matdiff::parse(source)?;
    shallow(&program.expr, MAX_DEPTH, "the expression")?;
    Ok(program)
}

/// The derivation, or a limit error where a gradient is deeper than
/// [`MAX_GRADIENT_DEPTH`] levels (before a plan or a check walks it).
fn derive_shallow<'p>(
    program: &'p matdiff::syntax::Program,
    options: &DeriveOptions,
) -> matdiff::Result<matdiff::Derivation<'p>> {
    let derivation = matdiff::derive(program, options)?;
    for g in &derivation.gradients {
        shallow(&g.expr, MAX_GRADIENT_DEPTH, &format!("the gradient d/d{}", g.wrt))?;
    }
    Ok(derivation)
}

fn run(f: impl FnOnce() -> matdiff::Result<String>) -> String {
    f().unwrap_or_else(|e| failure(&e))
}

/// `a, b` (commas or spaces): the variables, none for all of them.
fn variables(wrt: &str) -> matdiff::Result<Vec<VarName>> {
    wrt.split([',', ' ']).map(str::trim).filter(|w| !w.is_empty()).map(syntax::parse_var).collect()
}

fn options(wrt: &str, upstream: &str, steps: Steps) -> matdiff::Result<DeriveOptions> {
    let upstream = Some(upstream.trim()).filter(|u| !u.is_empty()).map(str::to_string);
    Ok(DeriveOptions { wrt: variables(wrt)?, upstream, steps, ..Default::default() })
}

/// `d0=64, n=8`: sizes within `1..=max`, as the command line's `--dims`.
fn sizes(text: &str, max: u64) -> matdiff::Result<HashMap<String, u64>> {
    let usage = |m: String| Error::new(ErrorKind::Usage, m);
    let mut out = HashMap::new();
    for part in text.split([',', ' ']).map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) =
            part.split_once('=').ok_or_else(|| usage(format!("`{part}` is not NAME=SIZE")))?;
        let n: u64 = value.trim().parse().map_err(|_| usage(format!("`{value}` is not a size")))?;
        if n == 0 || n > max {
            return Err(usage(format!("size {n} of `{name}` is outside 1..={max}")));
        }
        out.insert(name.trim().to_string(), n);
    }
    Ok(out)
}

/// The shapes of a program as it is typed: the expression's and every
/// variable's, `{expr, shape, variables: [{name, shape}]}` (the page's own
/// document; the command line has no such command).
#[wasm_bindgen]
pub fn shapes(source: &str) -> String {
    run(|| {
        #[derive(Serialize)]
        struct Variable {
            name: String,
            shape: Option<matdiff::shape::Shape>,
        }
        #[derive(Serialize)]
        struct Shapes {
            expr: String,
            shape: matdiff::shape::Shape,
            variables: Vec<Variable>,
        }
        let program = parse(source)?;
        let typing = matdiff::shape::infer(&program)?;
        let variables = typing
            .variables()
            .iter()
            .map(|v| Variable { name: v.to_string(), shape: typing.var_shape(v) })
            .collect();
        Ok(answer(0, &Shapes { expr: program.expr.to_string(), shape: typing.shape(), variables }))
    })
}

/// `derive --json` (with `steps`: `derive --steps --json`) of the gradients
/// with respect to `wrt` (comma-separated; empty: all), the upstream gradient
/// named `upstream` (empty: the default).
#[wasm_bindgen]
pub fn derive(source: &str, wrt: &str, upstream: &str, steps: bool) -> String {
    run(|| {
        let options = options(wrt, upstream, if steps { Steps::Record } else { Steps::Skip })?;
        let program = parse(source)?.with_definitions_kept(&options.wrt);
        let derivation = matdiff::derive(&program, &options)?;
        Ok(if steps {
            answer(0, &matdiff::explain::Explained::new(&derivation))
        } else {
            answer(0, &derivation)
        })
    })
}

/// `derive --json` without steps, as [`derive`], ended by a limit error
/// once `limit_ms` milliseconds have passed: the page's first answer, which
/// it computes in its own thread while its worker starts, must not hold the
/// page longer than that (the page asks the worker instead when the limit
/// is hit).
#[wasm_bindgen]
pub fn derive_within(source: &str, wrt: &str, upstream: &str, limit_ms: u32) -> String {
    run(|| {
        let control = matdiff::Control::default()
            .with_deadline(std::time::Duration::from_millis(u64::from(limit_ms)));
        let options = DeriveOptions { control, ..options(wrt, upstream, Steps::Skip)? };
        let program = parse(source)?.with_definitions_kept(&options.wrt);
        Ok(answer(0, &matdiff::derive(&program, &options)?))
    })
}

/// `verify --json`: whether `claim` is the gradient with respect to `wrt`.
#[wasm_bindgen]
pub fn verify(source: &str, wrt: &str, claim: &str, upstream: &str) -> String {
    run(|| {
        let wrt = variables(wrt)?;
        let [wrt] = wrt.as_slice() else {
            return Err(Error::new(
                ErrorKind::Usage,
                format!("verify takes one variable, found {}", wrt.len()),
            ));
        };
        let program = parse(source)?;
        let upstream = Some(upstream.trim()).filter(|u| !u.is_empty()).map(str::to_string);
        let options = matdiff::verify::VerifyOptions { upstream, ..Default::default() };
        let verdict = matdiff::verify::verify(&program, wrt, claim, &options)?;
        Ok(answer(if verdict.equivalent() { 0 } else { 1 }, &verdict))
    })
}

/// `check --json`: every gradient against finite differences, the sizes
/// `dims` (`d0=3, n=5`; the others random) and the random values drawn from `seed`.
#[wasm_bindgen]
pub fn check(source: &str, wrt: &str, upstream: &str, dims: &str, seed: u64) -> String {
    run(|| {
        let options = options(wrt, upstream, Steps::Skip)?;
        let dims = sizes(dims, 10_000)?.into_iter().map(|(k, v)| (k, v as usize)).collect();
        let program = parse(source)?.with_definitions_kept(&options.wrt);
        let derivation = derive_shallow(&program, &options)?;
        let report =
            matdiff::numeric::check(&derivation, &CheckOptions { dims, seed, ..Default::default() })?;
        Ok(answer(if report.ok() { 0 } else { 1 }, &report))
    })
}

/// `plan --json`: the value and the gradients as one plan, its multiply-adds
/// for the sizes `dims` (`d0=64, B=65536`; symbolic where not given).
#[wasm_bindgen]
pub fn plan(source: &str, wrt: &str, upstream: &str, dims: &str) -> String {
    run(|| {
        let options = options(wrt, upstream, Steps::Skip)?;
        let plan_options = PlanOptions { dims: sizes(dims, 1 << 40)?, ..Default::default() };
        let program = parse(source)?.with_definitions_kept(&options.wrt);
        let derivation = derive_shallow(&program, &options)?;
        if matdiff::plan::symbolic_length(&derivation, &plan_options.dims) {
            return Ok(answer(0, &matdiff::plan::compile_symbolic(&derivation)?));
        }
        Ok(answer(0, &matdiff::plan::compile(&derivation, &plan_options)?))
    })
}

/// `plan --emit LANGUAGE`: the plan as code (`numpy`, `pytorch` or `jax`),
/// the output the code as a string.
#[wasm_bindgen]
pub fn emit(source: &str, wrt: &str, upstream: &str, dims: &str, language: &str) -> String {
    run(|| {
        let language = match language {
            "numpy" => Language::Numpy,
            "pytorch" => Language::Pytorch,
            "jax" => Language::Jax,
            other => {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!("`{other}` is not a language; the languages are numpy, pytorch, jax"),
                ))
            }
        };
        let options = options(wrt, upstream, Steps::Skip)?;
        let plan_options = PlanOptions { dims: sizes(dims, 1 << 40)?, ..Default::default() };
        let program = parse(source)?.with_definitions_kept(&options.wrt);
        let derivation = derive_shallow(&program, &options)?;
        Ok(answer(0, &matdiff::plan::code(&derivation, &plan_options, language, None)?))
    })
}
