//! Hostile input through the binary (issue 27): argv that is not UTF-8,
//! integers at the edge of i64 and of f64, identifiers of 64 KiB, names that
//! Python or LaTeX reserve. Every run exits 0, 1 or 2 within [`TIME_CAP`],
//! never with a panic (101) or a signal, and what it prints means what the
//! input said.

mod common;

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proptest::prelude::*;

/// Longest a run may take; past it the process is killed and the test fails.
const TIME_CAP: Duration = Duration::from_secs(10);

/// What a run of the binary printed, and its exit status.
struct Run {
    code: i32,
    out: String,
    err: String,
}

/// Runs the binary on raw arguments (bytes allowed), killing it at the cap.
fn run_os(args: &[OsString]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_matdiff"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn matdiff");
    // Pipes are drained while the child runs, so a large output cannot block it.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > TIME_CAP {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} ran past {TIME_CAP:?}", shown(args));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    let Some(code) = status.code() else {
        panic!("{} ended by a signal ({status})\n{err}", shown(args));
    };
    assert!(matches!(code, 0..=2), "{} exited {code}\n{err}", shown(args));
    Run { code, out, err }
}

fn run(args: &[&str]) -> Run {
    run_os(&args.iter().map(OsString::from).collect::<Vec<_>>())
}

/// The arguments as a reader sees them in a failure message (truncated).
fn shown(args: &[OsString]) -> String {
    let text = format!("{args:?}");
    match text.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text,
    }
}

fn bytes(b: &[u8]) -> OsString {
    OsStr::from_bytes(b).to_os_string()
}

// ---------------------------------------------------------------- argv

#[test]
fn an_expression_that_is_not_utf8_is_refused_by_name() {
    let r = run_os(&[bytes(b"derive"), bytes(b"A*B\xff")]);
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(r.err.contains("[EXPR] is not UTF-8") && r.err.contains("0xFF at offset 3"), "{}", r.err);
    assert!(r.err.contains("A*B\\xFF\n     ^^^^"), "a caret under the byte:\n{}", r.err);
}

#[test]
fn every_text_option_that_is_not_utf8_is_refused_by_name() {
    let cases: &[(&[&[u8]], &str)] = &[
        (&[b"derive", b"A*B", b"--wrt", b"A\xfe"], "--wrt"),
        (&[b"derive", b"A*B", b"--upstream", b"\xc3"], "--upstream"),
        (&[b"verify", b"A*B", b"--wrt", b"A", b"--claim", b"G*B^T\x80"], "--claim"),
        (&[b"check", b"A*B", b"--dims", b"d0=\xff"], "--dims"),
        (&[b"plan", b"A*B", b"--dims", b"d\xff=3"], "--dims"),
        (&[b"latex", b"\xffA"], "[EXPR]"),
    ];
    for (args, name) in cases {
        let args: Vec<OsString> = args.iter().map(|a| bytes(a)).collect();
        let r = run_os(&args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.err);
        assert!(
            r.err.contains(&format!("argument {name}")) && r.err.contains("is not UTF-8"),
            "{args:?}: {}",
            r.err
        );
    }
    // A subcommand or flag that is not UTF-8 is clap's usage error.
    assert_eq!(run_os(&[bytes(b"der\xffive"), bytes(b"A")]).code, 2);
    assert_eq!(run_os(&[bytes(b"derive"), bytes(b"--\xff"), bytes(b"A")]).code, 2);
}

#[test]
fn a_file_name_that_is_not_utf8_is_a_path() {
    let dir = std::env::temp_dir().join(format!("matdiff-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut name = dir.clone().into_os_string().into_vec();
    name.extend_from_slice(b"/layer\xff.txt");
    let path = OsString::from_vec(name);
    std::fs::write(&path, "W : 3x4; W*X\n").unwrap();
    let r = run_os(&[bytes(b"derive"), bytes(b"-f"), path.clone()]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("d/dW = G * X^T"), "{}", r.out);
    // A missing one is a usage error.
    let r = run_os(&[bytes(b"derive"), bytes(b"-f"), bytes(b"/nonexistent/bad\xff.txt")]);
    assert_eq!(r.code, 2);
    assert!(r.err.contains("cannot read"), "{}", r.err);
    // Contents that are not UTF-8 are refused.
    std::fs::write(&path, b"W : 3x4; W*X\xff\n").unwrap();
    let r = run_os(&[bytes(b"derive"), bytes(b"-f"), path]);
    assert_eq!(r.code, 2);
    assert!(r.err.contains("UTF-8"), "{}", r.err);
    std::fs::remove_dir_all(&dir).ok();
}

// ------------------------------------------------- 64 KiB identifiers

/// An identifier longer than std's largest formatting width (u16::MAX).
fn long_name() -> String {
    "A".repeat(70_000)
}

#[test]
fn tables_with_a_64kib_name_are_printed() {
    let a = long_name();
    let layer = format!("{a}*B");
    let symbolic = format!("W[i] : d[i-1] x d[i]; prod(W[i], i=1..n) * {a}");
    let runs: Vec<Vec<&str>> = vec![
        vec!["plan", &layer],
        vec!["plan", "--json", &layer],
        vec!["plan", "--emit", "numpy", &layer],
        vec!["check", &layer],
        vec!["plan", &symbolic],
        vec!["derive", "--steps", &layer],
        vec!["derive", "--latex", &layer],
    ];
    for args in runs {
        let r = run(&args);
        assert_eq!(r.code, 0, "{} {}: {}", args[0], args[1], r.err);
        assert!(r.out.contains(&a), "{} {}: the name is printed", args[0], args[1]);
        // Alignment stops at 100 characters: no row is padded to the long name.
        let padded = r.out.lines().filter(|l| !l.contains(&a) && l.len() > a.len()).count();
        assert_eq!(padded, 0, "{} {}: rows padded to the long name", args[0], args[1]);
    }
}

// ------------------------------------------- exponents and indices in i64

#[test]
fn exponents_at_the_edge_of_i64_are_refused_by_the_power_limit() {
    for src in [
        "X : n x n; tr(X^-9223372036854775808)",
        "X : n x n; tr(X^9223372036854775807)",
        "s : scalar; s^-9223372036854775808",
        "s : scalar; s^9223372036854775807",
        "X : n x n; tr(X^65)",
    ] {
        let r = run(&["derive", src]);
        assert_eq!(r.code, 2, "{src}: {}{}", r.out, r.err);
        assert!(r.err.contains("up to |k| = 64") && r.err.contains("-- power"), "{src}: {}", r.err);
    }
    // At the limit, the power is derived.
    let r = run(&["derive", "s : scalar; s^-64"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("d/ds = -64 * s^-65"), "{}", r.out);
}

#[test]
fn index_arithmetic_past_i64_is_refused_with_a_caret() {
    let refused = [
        ("W[9223372036854775807+1]*X", "`9223372036854775807` + `1`"),
        ("W[-9223372036854775807-2]*X", "`-9223372036854775807` - `2`"),
        ("W[-9223372036854775807-1]*X", "`-9223372036854775807` - `1`"),
        ("W[1-9223372036854775807-9223372036854775807]*X", "- `9223372036854775807`"),
        // A family's dimensions at a member: 3 times 25 copies of j.
        (
            "W[i] : d[i+i+i] x d[i+i+i+1]; W[j+j+j+j+j+j+j+j+j+j+j+j+j+j+j+j+j+j+j+j+j+j+j+j+j]*X",
            "for `i` in `i+i+i`",
        ),
        // Splitting a product at W[j]: j - c - 1 for a member W[i + c].
        ("W[i] : d[i-1] x d[i]; prod(W[i+9223372036854775807], i=0..n)*X", "`j-9223372036854775807` - `1`"),
    ];
    for (src, what) in refused {
        let r = run(&["derive", src, "--wrt", if src.contains("prod") { "W[j]" } else { "X" }]);
        assert_eq!(r.code, 2, "{src}: {}{}", r.out, r.err);
        assert!(r.err.contains("index arithmetic out of range") && r.err.contains(what), "{src}: {}", r.err);
        assert!(r.err.contains("-- "), "{src}: a labelled caret\n{}", r.err);
    }
    // The extremes themselves are indices, and print as text that re-parses.
    for src in ["W[9223372036854775807]*X", "W[-9223372036854775807]*X", "W[0-9223372036854775807]*X"] {
        let r = run(&["derive", src]);
        assert_eq!(r.code, 0, "{src}: {}", r.err);
        let printed = r.out.lines().next().unwrap().trim_start_matches("Z = ").split("  :").next().unwrap();
        let again = run(&["derive", printed]);
        assert_eq!((again.code, &again.out), (0, &r.out), "{src} printed as {printed}");
    }
}

// ------------------------------------------- exponents and literals, exact

/// The formula of each gradient line (`d/dX = F  : shape` gives F).
fn formulas(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.starts_with("d/d"))
        .map(|l| l.split_once(" = ").unwrap().1.rsplit_once("  :").unwrap().0.trim().to_string())
        .collect()
}

#[test]
fn integer_exponents_stay_exact_through_the_egraph() {
    let src = "X : n x n; Y : n x n; tr(X^9007199254740993*Y)";
    let r = run(&["derive", src, "--wrt", "Y"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(formulas(&r.out), ["X^T^9007199254740993"], "{}", r.out);
    // The neighbour 2^53 is another claim, however it is then decided.
    let r = run(&["verify", src, "--wrt", "Y", "--claim", "X^T^9007199254740992"]);
    assert!(!r.out.contains("equivalent (symbolic)"), "{}", r.out);
    let r = run(&["verify", src, "--wrt", "Y", "--claim", "(X^9007199254740993)^T"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("equivalent (symbolic)"), "{}", r.out);
    // Inverses are still exponents the rules know (-1).
    let r = run(&["derive", "A : n x n; B : n x n; tr(inv(A*B)^T * B^-1)", "--wrt", "B"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("^-1"), "{}", r.out);
}

#[test]
fn literals_a_double_cannot_hold_are_refused_not_rounded() {
    for (src, what) in [
        ("A .^ 9007199254740993", "exponent `9007199254740993`"),
        ("9007199254740993 * A", "number `9007199254740993`"),
        ("A .^ -9007199254740993", "exponent `-9007199254740993`"),
        ("1e-400 * A", "number `1e-400`"),
        ("0.10000000000000000001 * A", "number `0.10000000000000000001`"),
        ("123456789012345678 * A", "number `123456789012345678`"),
    ] {
        let r = run(&["derive", src]);
        assert_eq!(r.code, 2, "{src}: {}", r.out);
        assert!(r.err.contains(&format!("{what} is not exactly representable")), "{src}: {}", r.err);
        assert!(r.err.contains("a double holds"), "{src}: a labelled caret\n{}", r.err);
    }
    // Every literal a double holds as written is accepted, in any spelling.
    for src in ["0.1 * A", "1.50 * A", "1e3 * A", ".5 * A", "0e999999999999999999999 * A", "A .^ 1e-5"] {
        assert_eq!(run(&["derive", src]).code, 0, "{src}");
    }
}

#[test]
fn entrywise_exponents_print_back_exactly() {
    // p and p - 1 are printed as given, and the output re-parses to itself.
    for (p, q) in [
        ("9007199254740992", "9007199254740991"),
        ("-9007199254740991", "-9007199254740992"),
        ("0.1", "-0.9"),
        ("0.3", "-0.7"),
        ("1e15", "999999999999999"),
        ("2.25", "1.25"),
    ] {
        let r = run(&["derive", &format!("A .^ {p}")]);
        assert_eq!(r.code, 0, "{p}: {}", r.err);
        let grad = formulas(&r.out).remove(0);
        let number = |s: &str| s.parse::<f64>().unwrap();
        let shown: Vec<f64> = grad.split([' ', '(', ')']).filter_map(|w| w.parse::<f64>().ok()).collect();
        assert!(shown.contains(&number(p)) && shown.contains(&number(q)), "{p}: {grad}");
        let again = run(&["latex", "--", &grad.replace('G', "B")]);
        assert_eq!(again.code, 0, "{grad} re-parses: {}", again.err);
    }
    // An exponent whose p - 1 no double is, is refused by name.
    for p in ["1e17", "1e-20", "1.5e300"] {
        let r = run(&["derive", &format!("A .^ {p}")]);
        assert_eq!(r.code, 2, "{p}: {}", r.out);
        assert!(
            r.err.contains("which no double is exactly") && r.err.contains("this power"),
            "{p}: {}",
            r.err
        );
    }
}

#[test]
fn sizes_past_2_to_53_never_become_rounded_literals() {
    // tr(I) folds to its size only where a double holds it.
    let r = run(&["derive", "X : 9007199254740993 x 9007199254740993; s : scalar; s * tr(X * X^-1)"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(!r.out.contains("9007199254740992"), "{}", r.out);
    let r = run(&["derive", "X : 5 x 5; s : scalar; s * tr(X * X^-1)", "--wrt", "s"]);
    assert_eq!(formulas(&r.out), ["5"], "{}", r.out);
    // A broadcast scalar in a trace is n times its adjoint: refused past 2^53.
    let r = run(&["derive", "s : scalar; X : 9007199254740993 x 9007199254740993; tr(s + X)"]);
    assert_eq!(r.code, 2, "{}", r.out);
    assert!(r.err.contains("past 2^53"), "{}", r.err);
    let r = run(&["derive", "s : scalar; X : 9007199254740992 x 9007199254740992; tr(s + X)", "--wrt", "s"]);
    assert_eq!(formulas(&r.out), ["9007199254740992.0"], "{}", r.out);
}

// ---------------------------------------------------- multiply-add counts

#[test]
fn multiply_add_counts_past_u128_say_so() {
    let max = u128::MAX.to_string();
    let src =
        "A : 9223372036854775807 x 9223372036854775807; B : 9223372036854775807 x 9223372036854775807; A*B*A";
    let r = run(&["plan", src]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains(&format!("multiply-adds: more than {max}")), "{}", r.out);
    // No count is printed as if it were exact at the bound.
    let exact = r.out.lines().filter(|l| l.trim_end().ends_with(&max) && !l.contains("more than")).count();
    assert_eq!(exact, 0, "{}", r.out);
    let r = run(&["plan", "--json", src]);
    let doc: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(doc["total_madds"], format!("more than {max}"));
    // Under the bound and past u64 a count is exact: its digits, not a rounded float.
    let big = "d0=1099511627776,d1=1099511627776,d2=1099511627776";
    let r = run(&["plan", "--json", "A*B", "--dims", big]);
    let doc: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(doc["total_madds"], (3u128 << 120).to_string(), "{}", r.out);
    let r = run(&["plan", "--json", "A*B", "--dims", "d0=2,d1=3,d2=5"]);
    let doc: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(doc["total_madds"], 90, "{}", r.out);
}

// ------------------------------------------------- names in emitted code

/// A torch stand-in on NumPy, enough for the emitted `Plan`: its forward
/// and backward run without PyTorch (which is not installed here).
const FAKE_TORCH: &str = r#"
import sys, types, numpy as np
class T(np.ndarray):
    def expand_as(self, other): return np.broadcast_to(self, np.shape(other)).view(T)
    def clone(self): return np.array(self).view(T)
    @property
    def device(self): return None
    @property
    def mT(self): return np.swapaxes(self, -1, -2).view(T)
    def sum(self, *args, dim=None, keepdim=False, **kw):
        if dim is not None: return np.asarray(self).sum(axis=dim, keepdims=keepdim).view(T)
        return np.ndarray.sum(self, *args, **kw)
def t(x): return np.asarray(x, dtype=np.float64).view(T)
torch = types.ModuleType('torch')
torch.autograd = types.SimpleNamespace(Function=object)
torch.nn = types.SimpleNamespace(Module=object, Parameter=lambda x: x)
torch.diagonal = lambda a, dim1, dim2: t(np.diagonal(a, axis1=dim1, axis2=dim2))
torch.float64 = np.float64
# As under create_graph: the backward recomputes what forward saved.
torch.is_grad_enabled = lambda: True
for f in ['exp', 'log', 'sqrt', 'sin', 'cos', 'tanh', 'trace', 'sum']:
    setattr(torch, f, (lambda g: lambda a: t(g(a)))(getattr(np, f)))
torch.sigmoid = lambda a: t(1.0 / (1.0 + np.exp(-a)))
torch.eye = lambda n, dtype=None, device=None: t(np.eye(n))
torch.full = lambda shape, x, dtype=None, device=None: t(np.full(shape, x))
torch.linalg = types.SimpleNamespace(
    inv=lambda a: t(np.linalg.inv(a)), det=lambda a: t(np.linalg.det(a)),
    slogdet=lambda a: tuple(t(x) for x in np.linalg.slogdet(a)), norm=lambda a: t(np.linalg.norm(a)))
sys.modules['torch'] = torch
class Ctx:
    def save_for_backward(self, *xs): self.saved_tensors = xs
"#;

/// Every name Python reserves (keywords, soft keywords, builtins) and every
/// name the emitted code itself uses (read off emitted programs with
/// Python's `ast`), that is a matdiff identifier.
fn hostile_python_names(samples: &[String]) -> Vec<String> {
    let program = format!(
        "import ast, builtins, json, keyword\n\
         names = set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(builtins))\n\
         for code in json.loads({:?}):\n\
         \x20   for node in ast.walk(ast.parse(code)):\n\
         \x20       if isinstance(node, ast.Name): names.add(node.id)\n\
         \x20       if isinstance(node, ast.arg): names.add(node.arg)\n\
         \x20       if isinstance(node, (ast.FunctionDef, ast.ClassDef)): names.add(node.name)\n\
         \x20       if isinstance(node, ast.alias): names.add(node.asname or node.name)\n\
         print(json.dumps(sorted(names)))\n",
        serde_json::to_string(samples).unwrap()
    );
    let names: Vec<String> = serde_json::from_str(&common::python::run(&program)).unwrap();
    let legal = |n: &String| {
        n.starts_with(|c: char| c.is_ascii_alphabetic())
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && n != "I"
    };
    let mut names: Vec<String> = names.into_iter().filter(legal).collect();
    // Gradient steps are `d` + the variable: `el` gives `del`, `ict` gives `dict`.
    let steps: Vec<String> = names
        .iter()
        .filter_map(|n| n.strip_prefix('d'))
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    names.extend(steps.into_iter().filter(|s| legal(s)));
    // A variable named like a renamed one (`float` is `float_`), and names
    // Python code conventionally binds.
    names.extend(["float_", "np_", "grad_output_", "self", "cls"].map(String::from));
    names.sort();
    names.dedup();
    names
}

fn matrix_json(m: &matdiff::numeric::Matrix) -> serde_json::Value {
    (0..m.nrows()).map(|i| (0..m.ncols()).map(|j| m[(i, j)]).collect::<Vec<f64>>()).collect()
}

/// One program of the test: its text, the upstream's name (a layer), the
/// instance's arrays, and the value and gradients the evaluator gives.
struct Case {
    src: String,
    upstream: Option<String>,
    arrays: serde_json::Map<String, serde_json::Value>,
    value: matdiff::numeric::Matrix,
    grads: Vec<(String, matdiff::numeric::Matrix)>,
    /// The arguments of `Plan.apply`, in order (every input but the upstream).
    args: Vec<String>,
    /// Every input of the plan, in order: the NumPy function's parameters.
    inputs: Vec<String>,
}

fn case(src: String, upstream: Option<&str>, seed: u64) -> Case {
    use matdiff::numeric::{eval, gradient_value, CheckOptions, Instance};
    let program = matdiff::syntax::parse_program(&src)
        .unwrap_or_else(|e| panic!("{}", matdiff::cli::render_error(&e, "<expr>", &src)));
    let options = matdiff::DeriveOptions { upstream: upstream.map(String::from), ..Default::default() };
    let d = matdiff::derive(&program, &options)
        .unwrap_or_else(|e| panic!("{}", matdiff::cli::render_error(&e, "<expr>", &src)));
    let instance = Instance::draw(&d, &CheckOptions { seed, ..Default::default() }).unwrap();
    let env = &instance.env;
    let value = eval(&program.expr, env, None).unwrap();
    let grads = d.gradients.iter().map(|g| (g.wrt.to_string(), gradient_value(g, env).unwrap())).collect();
    let plan = matdiff::plan::compile(&d, &Default::default()).unwrap();
    let inputs: Vec<String> = plan.inputs.iter().map(|i| i.var.to_string()).collect();
    let args = inputs.iter().filter(|v| Some(v.as_str()) != upstream).cloned().collect();
    let arrays = env.vars.iter().map(|(v, m)| (v.to_string(), matrix_json(m))).collect();
    Case { src, upstream: upstream.map(String::from), arrays, value, grads, args, inputs }
}

fn assert_close(got: &serde_json::Value, want: &matdiff::numeric::Matrix, what: &str) {
    let rows: Vec<Vec<f64>> = serde_json::from_value(got.clone()).unwrap_or_else(|_| panic!("{what}: {got}"));
    assert_eq!((rows.len(), rows[0].len()), want.shape(), "{what}");
    for (i, row) in rows.iter().enumerate() {
        for (j, x) in row.iter().enumerate() {
            let y = want[(i, j)];
            assert!((x - y).abs() <= 1e-9 * (1.0 + y.abs()), "{what}[{i},{j}]: {x} vs {y}");
        }
    }
}

/// Variables named like every Python keyword and builtin, and like every
/// name of the generated code (`grad_output`, `ctx`, `float`, `np`, ...):
/// the emitted NumPy runs and gives the evaluator's value and gradients,
/// and the emitted PyTorch (on a NumPy stand-in for torch) gives them too.
#[test]
fn emitted_code_runs_for_every_reserved_name() {
    if !common::python::has_module("numpy") {
        return;
    }
    let samples: Vec<String> = [
        ["plan", "--emit", "numpy", "tr(A*B) + sum(exp(A) .* B) + norm(A)^2"],
        ["plan", "--emit", "pytorch", "tr(A*B) + sum(exp(A) .* B) + norm(A)^2"],
        ["plan", "--emit", "numpy", "A*B*C"],
        ["plan", "--emit", "pytorch", "A*B*C"],
    ]
    .iter()
    .map(|args| run(args).out)
    .collect();
    let names = hostile_python_names(&samples);
    for must in
        ["grad_output", "ctx", "float", "np", "torch", "lambda", "in", "sum", "len", "None", "self", "del"]
    {
        assert!(names.iter().any(|n| n == must), "`{must}` is among the names tested");
    }
    let dir = std::env::temp_dir().join(format!("matdiff-hostile-names-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cases = vec![];
    for (k, chunk) in names.chunks(12).enumerate() {
        let decls: String = chunk.iter().map(|n| format!("{n} : 2x2; ")).collect();
        let product = chunk.join(" * ");
        let (first, last) = (&chunk[0], &chunk[chunk.len() - 1]);
        // A scalar loss (the NumPy `float(...)`, PyTorch's own grad_output) and
        // a layer whose upstream is a reserved name too.
        let upstream = names.iter().find(|n| !chunk.contains(n) && n.as_str() != "G").unwrap();
        cases.push(case(format!("{decls}tr({product}) + sum(exp({first}) .* {last})"), None, k as u64 + 1));
        cases.push(case(format!("{decls}{product}"), Some(upstream), k as u64 + 1));
    }
    // The code, through the binary; one Python process runs all of it.
    let mut driver = format!("{FAKE_TORCH}\nimport importlib.util, inspect, json\nout = []\n");
    for (k, c) in cases.iter().enumerate() {
        let mut args = vec!["plan".to_string(), "--emit".into(), "numpy".into(), c.src.clone()];
        if let Some(u) = &c.upstream {
            args.extend(["--upstream".to_string(), u.clone()]);
        }
        let numpy = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(numpy.code, 0, "{}: {}", c.src, numpy.err);
        args[2] = "pytorch".into();
        let torch = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(torch.code, 0, "{}: {}", c.src, torch.err);
        // The scalar loss's backward takes the upstream as `grad_output`,
        // which no variable is any more.
        if c.upstream.is_none() {
            assert!(torch.out.contains("def backward(ctx, grad_output):"), "{}", torch.out);
            assert!(!torch.out.contains("def forward(ctx, grad_output,"), "{}", torch.out);
        }
        std::fs::write(dir.join(format!("np{k}.py")), &numpy.out).unwrap();
        std::fs::write(dir.join(format!("torch{k}.py")), &torch.out).unwrap();
        let arrays = serde_json::Value::Object(c.arrays.clone()).to_string();
        let upstream = match &c.upstream {
            Some(u) => format!("t(arrays[{u:?}])"),
            None => "t(1.0)".to_string(),
        };
        let args: Vec<String> = c.args.iter().map(|a| format!("t(arrays[{a:?}])")).collect();
        driver.push_str(&format!(
            "arrays = {{k: np.array(v) for k, v in json.loads({arrays:?}).items()}}\n\
             def load(name):\n\
             \x20   spec = importlib.util.spec_from_file_location(name, {dir:?} + '/' + name + '.py')\n\
             \x20   m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); return m\n\
             f = load('np{k}').value_and_grads\n\
             names = dict(zip({inputs:?}, inspect.signature(f).parameters))\n\
             value, grads = f(**{{names[k]: v for k, v in arrays.items()}})\n\
             Plan = load('torch{k}').Plan\n\
             ctx = Ctx()\n\
             tvalue = Plan.forward(ctx, {args})\n\
             tgrads = Plan.backward(ctx, {upstream})\n\
             tgrads = tgrads if isinstance(tgrads, tuple) else (tgrads,)\n\
             out.append({{'value': np.atleast_2d(value).tolist(), 'grads': {{k: np.asarray(g).tolist() for k, g in grads.items()}},\n\
             \x20   'tvalue': np.atleast_2d(tvalue).tolist(), 'tgrads': [np.atleast_2d(g).tolist() for g in tgrads]}})\n",
            dir = dir.display().to_string(),
            args = args.join(", "),
            inputs = c.inputs,
        ));
    }
    driver.push_str("print(json.dumps(out))\n");
    let results: Vec<serde_json::Value> = serde_json::from_str(&common::python::run(&driver)).unwrap();
    for (c, got) in cases.iter().zip(&results) {
        assert_close(&got["value"], &c.value, &format!("{}: numpy value", c.src));
        assert_close(&got["tvalue"], &c.value, &format!("{}: torch value", c.src));
        for (name, want) in &c.grads {
            assert_close(&got["grads"][name], want, &format!("{}: numpy d/d{name}", c.src));
            let at = c.args.iter().position(|a| a == name).unwrap();
            assert_close(&got["tgrads"][at], want, &format!("{}: torch d/d{name}", c.src));
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The renaming at the level of the text, with no Python needed: the
/// backward's `grad_output` and `ctx` are the generated ones, the variables
/// are renamed, and the dict keys keep the variables' own names.
#[test]
fn emitted_code_renames_reserved_names() {
    let src = "grad_output : 2x2; ctx : 2x2; float : 2x2; float_ : 2x2; lambda : 2x2; \
               tr(grad_output * ctx * float * float_ * lambda)";
    let torch = run(&["plan", "--emit", "pytorch", src]);
    assert_eq!(torch.code, 0, "{}", torch.err);
    assert!(
        torch.out.contains("def forward(ctx, grad_output_, ctx_, float_, float__, lambda_):"),
        "{}",
        torch.out
    );
    assert!(torch.out.contains("def backward(ctx, grad_output):"), "{}", torch.out);
    assert!(torch.out.contains("return grad_output * "), "{}", torch.out);
    assert!(torch.out.contains("# Renamed here, as Python or this code reserves the name: grad_output is grad_output_, ctx is ctx_, float is float_, float_ is float__, lambda is lambda_"), "{}", torch.out);
    let numpy = run(&["plan", "--emit", "numpy", src]);
    assert!(
        numpy.out.contains("    float_ = _matdiff_argument(\"float\", float_, dtype, (2, 2), sizes)"),
        "{}",
        numpy.out
    );
    assert!(
        numpy.out.contains("    lambda_ = _matdiff_argument(\"lambda\", lambda_, dtype, (2, 2), sizes)"),
        "{}",
        numpy.out
    );
    assert!(numpy.out.contains("grads[\"lambda\"] = "), "{}", numpy.out);
    assert!(numpy.out.contains("return value[..., 0, 0][()], grads"), "{}", numpy.out);
    assert!(
        numpy.out.contains("def value_and_grads(*, grad_output_, ctx_, float_, float__, lambda_):"),
        "{}",
        numpy.out
    );
    // A step named `d` + a variable is renamed too: `el` gives `del_`, not `del`.
    let r = run(&["plan", "--emit", "numpy", "el * ef"]);
    assert!(
        r.out.contains("del_ = ") && r.out.contains("def_ = ") && !r.out.contains("    del = "),
        "{}",
        r.out
    );
    // Where Python is, every such program compiles (NumPy is not needed for that).
    let compiles = Command::new(common::python::python())
        .args(["-c", "pass"])
        .output()
        .is_ok_and(|o| o.status.success());
    if compiles {
        for code in [&torch.out, &numpy.out, &r.out] {
            common::python::run(&format!("compile({code:?}, 'emitted', 'exec')"));
        }
    }
}

// ------------------------------------------------------ names in LaTeX

/// Identifiers whose underscores once made LaTeX that TeX and KaTeX reject
/// (`x_` gave `\mathit{x_}`, `W__` gave `W_{_}`), with names of LaTeX
/// commands and Greek letters.
const LATEX_NAMES: &[&str] = &[
    "x_", "W__", "a_b_c", "my_var_", "a___b", "W_1_", "x__1", "lambda_", "theta_2_", "frac", "mathit",
    "left", "end", "alpha", "d", "dW",
];

/// What TeX needs of `_` in math: a subscript argument after it (a group or
/// one character), unless it is the text underscore `\_`; and braces that
/// balance.
fn assert_tex_subscripts(tex: &str) {
    let bytes = tex.as_bytes();
    let mut depth = 0i64;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'{' if i == 0 || bytes[i - 1] != b'\\' => depth += 1,
            b'}' if i == 0 || bytes[i - 1] != b'\\' => depth -= 1,
            b'_' if i > 0 && bytes[i - 1] == b'\\' => {}
            b'_' => {
                let next = bytes.get(i + 1).copied();
                assert!(
                    next.is_some_and(|c| c == b'{' || c.is_ascii_alphanumeric()),
                    "a bare `_` at {i} in {tex}"
                );
            }
            _ => {}
        }
        assert!(depth >= 0, "unbalanced braces in {tex}");
    }
    assert_eq!(depth, 0, "unbalanced braces in {tex}");
}

#[test]
fn latex_of_every_identifier_compiles() {
    let decls: String = LATEX_NAMES.iter().map(|n| format!("{n} : 2x2; ")).collect();
    let loss = LATEX_NAMES.iter().map(|n| format!("tr({n} * {n})")).collect::<Vec<_>>().join(" + ");
    let family = "W[i_] : d_[i_-1] x d_[i_]; prod(W[i_], i_=1..n_) * X";
    let runs = [
        run(&["derive", "--latex", &format!("{decls}{loss}")]),
        run(&["derive", "--latex", "--steps", &format!("{decls}{loss}"), "--wrt", "x_", "--wrt", "W__"]),
        run(&["latex", &format!("{decls}{loss}")]),
        run(&["derive", "--latex", family, "--wrt", "W[j_]"]),
    ];
    let mut text = String::new();
    for r in &runs {
        assert_eq!(r.code, 0, "{}", r.err);
        for block in r.out.split("\\[").skip(1) {
            assert_tex_subscripts(block.split("\\]").next().unwrap());
        }
        text.push_str(&r.out);
    }
    assert!(text.contains(r"\mathit{x\_}") && text.contains(r"W_{\_}"), "{text}");
    // CI renders every block of this snapshot with KaTeX (tests/katex/render.js).
    common::snapshots().bind(|| insta::assert_snapshot!("hostile_latex", text));
    // And, where pdflatex is, the standalone document compiles, every line
    // within the margin.
    if !common::pdflatex::available() {
        return;
    }
    let doc = run(&["derive", "--latex", "--steps", "--standalone", &format!("{decls}{loss}")]);
    if let Err(e) = common::pdflatex::compile("hostile-names", &doc.out) {
        panic!("{e}");
    }
}

// ------------------------------------------------ adversarial programs

/// Integer exponents at the edges: of i64, of 2^53, of the power limit,
/// and past i64 (refused as too large).
const INTEGERS: &[&str] = &[
    "-9223372036854775808",
    "-9223372036854775807",
    "-9007199254740993",
    "-9007199254740992",
    "-65",
    "-64",
    "-2",
    "-1",
    "0",
    "1",
    "2",
    "3",
    "64",
    "65",
    "9007199254740991",
    "9007199254740992",
    "9007199254740993",
    "9223372036854775806",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "99999999999999999999999",
];

/// Number literals and entrywise exponents: near 2^53, past a double's
/// precision or range, and ordinary decimals.
const REALS: &[&str] = &[
    "2",
    "0.5",
    "-1.5",
    "0.1",
    "3",
    "9007199254740992",
    "9007199254740993",
    "-9007199254740991",
    "1e17",
    "1e-20",
    "1e308",
    "1e309",
    "4.9e-324",
    "1e-400",
    "0.10000000000000000001",
    "123456789012345678",
];

/// Indices: at the edges of i64, and past them by arithmetic.
const INDICES: &[&str] = &[
    "1",
    "0",
    "-1",
    "9223372036854775807",
    "-9223372036854775807",
    "9223372036854775807+1",
    "-9223372036854775807-1",
    "-9223372036854775807-2",
    "9223372036854775807-9223372036854775807",
    "j+j",
    "n+9223372036854775807",
];

/// Matrix names: Python's and the generated code's, LaTeX's underscores,
/// matdiff's own function names, and one of 70 000 characters.
fn matrix_name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(vec![
            "A", "B", "X_", "W__", "a_b_c", "float", "grad_output", "lambda", "ctx", "np", "None", "sum", "self",
            "del", "el", "value_and_grads", "tr_", "prod_",
        ])
        .prop_map(String::from),
        1 => Just(format!("L{}", "o".repeat(70_000))),
    ]
}

fn scalar_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["s", "s_", "True", "in", "len", "float_"]).prop_map(String::from)
}

/// One term of a scalar loss, and the declarations it needs.
fn term() -> impl Strategy<Value = (String, Vec<String>)> {
    let int = || prop::sample::select(INTEGERS);
    let real = || prop::sample::select(REALS);
    let index = prop::sample::select(INDICES);
    let family = prop::sample::select(vec!["W", "V_", "def"]);
    prop_oneof![
        (matrix_name(), matrix_name(), int())
            .prop_map(|(a, b, k)| (format!("tr({a}^{k} * {b})"), vec![a, b])),
        (matrix_name(), real()).prop_map(|(a, p)| (format!("sum({a} .^ {p})"), vec![a])),
        (real(), matrix_name(), matrix_name())
            .prop_map(|(c, a, b)| (format!("{c} * tr({a} * {b})"), vec![a, b])),
        (family, index, matrix_name())
            .prop_map(|(w, i, b)| (format!("tr({w}[{i}] * {b})"), vec![format!("{w}[]"), b])),
        (scalar_name(), int()).prop_map(|(s, k)| (format!("{s}^{k}"), vec![format!("{s}:")])),
    ]
}

/// A program of one to three terms: matrices n x n, scalars, families.
fn adversarial_program() -> impl Strategy<Value = String> {
    prop::collection::vec(term(), 1..=3).prop_map(|terms| {
        let mut decls: Vec<String> = vec![];
        for (_, names) in &terms {
            for n in names {
                let decl = match (n.strip_suffix("[]"), n.strip_suffix(':')) {
                    (Some(w), _) => format!("{w}[i] : n x n"),
                    (_, Some(s)) => format!("{s} : scalar"),
                    _ => format!("{n} : n x n"),
                };
                if !decls.contains(&decl) {
                    decls.push(decl);
                }
            }
        }
        let loss: Vec<&str> = terms.iter().map(|(t, _)| t.as_str()).collect();
        format!("{}; {}", decls.join("; "), loss.join(" + "))
    })
}

/// The integer exponents and the entrywise ones of an expression.
fn exponents(e: &matdiff::syntax::Expr, ints: &mut Vec<i64>, reals: &mut Vec<f64>) {
    use matdiff::syntax::ExprKind;
    match &e.kind {
        ExprKind::Power(_, k) => ints.push(*k),
        ExprKind::HadamardPower(_, p) => reals.push(*p),
        _ => {}
    }
    for c in e.children() {
        exponents(c, ints, reals);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(48)))]

    /// Adversarial programs (huge literals, exponents at the edges of i64
    /// and 2^53, indices past i64, hostile and long names, a byte that is
    /// not UTF-8): every run exits 0, 1 or 2 in time; where `derive`
    /// answers, the expression is printed as given and every gradient
    /// re-parses, with its exponents those of the input.
    #[test]
    fn adversarial_programs_are_answered_exactly_or_refused(
        src in adversarial_program(),
        command in 0usize..10,
        bad_byte in prop::option::weighted(0.15, any::<prop::sample::Index>()),
    ) {
        let mut text = src.clone().into_bytes();
        if let Some(at) = bad_byte {
            text.insert(at.index(text.len() + 1), 0xff);
        }
        // Past Linux's 128 KiB for one argument, the program is a file.
        let file = std::env::temp_dir().join(format!("matdiff-hostile-program-{}", std::process::id()));
        let arg: Vec<OsString> = if text.len() > 100_000 {
            std::fs::write(&file, &text).unwrap();
            vec!["-f".into(), file.clone().into_os_string()]
        } else {
            vec![bytes(&text)]
        };
        let mut args: Vec<OsString> = match command {
            0 => vec!["plan".into()],
            1 => vec!["latex".into()],
            2 => vec!["plan".into(), "--emit".into(), "numpy".into()],
            _ => vec!["derive".into()],
        };
        args.extend(arg);
        let r = run_os(&args);
        std::fs::remove_file(&file).ok();
        if bad_byte.is_some() {
            prop_assert_eq!(r.code, 2);
            prop_assert!(r.err.contains("UTF-8"), "{}", r.err);
            return Ok(());
        }
        if command < 3 || r.code != 0 {
            prop_assert!(r.code != 0 || r.err.is_empty(), "{}", r.err);
            return Ok(());
        }
        let program = matdiff::syntax::parse_program(&src).unwrap();
        let echo = r.out.lines().next().unwrap().strip_prefix("L = ").unwrap();
        prop_assert!(matdiff::syntax::parse_expr(echo).unwrap() == program.expr, "printed as {}", echo);
        let (mut ints, mut reals) = (vec![], vec![]);
        exponents(&program.expr, &mut ints, &mut reals);
        for f in formulas(&r.out) {
            let g = matdiff::syntax::parse_expr(&f);
            prop_assert!(g.is_ok(), "`{}` does not re-parse", f);
            let (mut gi, mut gr) = (vec![], vec![]);
            exponents(&g.unwrap(), &mut gi, &mut gr);
            // Powers past the limit of the power rule are copied, never changed.
            for k in gi.iter().filter(|k| k.unsigned_abs() > 65) {
                prop_assert!(ints.contains(k), "exponent {} in `{}` is not the input's", k, f);
            }
            // Entrywise exponents are p, p - 1 (exactly), or 0 and 2 of the rules.
            for q in gr {
                let known = reals.iter().any(|&p| q == p || q == p - 1.0) || q == 0.0 || q == 2.0;
                prop_assert!(known, "exponent {} in `{}` is not the input's", q, f);
            }
        }
    }
}
