//! The emitted code, run: NumPy, PyTorch and JAX against matdiff's own
//! evaluator (values and gradients, at float64 and float32), PyTorch under
//! gradcheck and gradgradcheck, JAX under `check_grads(order=2)`, `jit` and
//! `vmap`, NumPy with batch axes and its shape checks. One Python process
//! (`tests/emit/driver.py`) runs every case; each target runs where its
//! package imports, and must where `MATDIFF_REQUIRE_{NUMPY,TORCH,JAX}` is set
//! (as in CI).

mod common;

use common::python::{has_module, python};

use std::path::{Path, PathBuf};
use std::process::Command;

use matdiff::calculus::Mode;
use matdiff::numeric::{run_plan, CheckOptions, Instance, Matrix};
use matdiff::plan::{compile, PlanOptions};
use matdiff::{derive, DeriveOptions};

/// The targets to run: numpy, and torch and jax where they import.
fn targets() -> Option<Vec<&'static str>> {
    if !has_module("numpy") {
        return None;
    }
    Some(["numpy", "torch", "jax"].into_iter().filter(|m| *m == "numpy" || has_module(m)).collect())
}

fn matrix_json(m: &Matrix) -> serde_json::Value {
    (0..m.nrows()).map(|i| (0..m.ncols()).map(|j| m[(i, j)]).collect::<Vec<f64>>()).collect()
}

/// One program, emitted three ways, with the evaluator's values.
struct Case {
    src: String,
    /// The value, then each gradient by variable name.
    want: Vec<(Option<String>, Matrix)>,
    json: serde_json::Value,
    /// The code, for messages.
    code: String,
}

/// What a case runs: `checks` adds gradcheck/gradgradcheck and
/// check_grads(order=2) at float64 (slower).
#[derive(Clone, Copy, PartialEq)]
enum Checks {
    Values,
    Derivatives,
}

fn case(dir: &Path, k: usize, src: &str, options: &DeriveOptions, checks: Checks) -> Result<Case, String> {
    let program = matdiff::parse(src).map_err(|e| format!("{e:?}"))?;
    let d = derive(&program, options).map_err(|e| format!("{e:?}"))?;
    case_of(dir, k, src, &d, checks)
}

/// [`case`] of a derivation made otherwise (a Hessian-vector product's).
fn case_of(dir: &Path, k: usize, src: &str, d: &matdiff::Derivation, checks: Checks) -> Result<Case, String> {
    let d = d.clone();
    let plan = compile(&d, &PlanOptions::default()).map_err(|e| format!("{e:?}"))?;
    let instance = Instance::draw(&d, &CheckOptions { seed: k as u64 + 1, ..Default::default() })
        .map_err(|e| format!("{e:?}"))?;
    let values = run_plan(&plan, &instance.env).map_err(|e| format!("{e:?}"))?;
    let upstream = match &d.mode {
        Mode::Layer { upstream } => Some(upstream),
        Mode::Scalar => None,
    };
    let title = format!("{}", d.typing.program.expr);
    let numpy = matdiff::plan::numpy(&plan, &title, None).map_err(|e| format!("{e:?}"))?;
    let torch = matdiff::plan::pytorch(&plan, &title, upstream, None).map_err(|e| format!("{e:?}"))?;
    let jax = matdiff::plan::jax(&plan, &title, upstream, None).map_err(|e| format!("{e:?}"))?;
    let path = |name: &str, code: &str| -> PathBuf {
        let p = dir.join(format!("{name}{k}.py"));
        std::fs::write(&p, code).unwrap();
        p
    };
    let mutant = jax_mutant(&jax).map(|m| path("jaxmutant", &m));
    let torch_mutant = torch_mutant(&torch).map(|m| path("torchmutant", &m));
    let inputs: Vec<String> = plan.inputs.iter().map(|i| i.var.to_string()).collect();
    let up = upstream.and_then(|u| plan.inputs.iter().position(|i| i.var == *u));
    let args: Vec<usize> = (0..inputs.len()).filter(|i| Some(*i) != up).collect();
    let wrt: Vec<String> =
        plan.outputs.iter().filter_map(|o| o.wrt.as_ref().map(|v| v.to_string())).collect();
    let json = serde_json::json!({
        "numpy": path("np", &numpy),
        "torch": path("torch", &torch),
        "jax": path("jax", &jax),
        "jax_mutant": mutant,
        "torch_mutant": torch_mutant,
        "name": "plan",
        "class": "Plan",
        "module": "PlanModule",
        "inputs": inputs,
        "args": args,
        "upstream": up,
        "wrt": wrt,
        "arrays": plan.inputs.iter().map(|i| matrix_json(&instance.env.vars[&i.var])).collect::<Vec<_>>(),
        "checks": checks == Checks::Derivatives,
    });
    // The NumPy function's default name is value_and_grads.
    let json = {
        let mut j = json;
        j["numpy_name"] = "value_and_grads".into();
        j
    };
    let want =
        plan.outputs.iter().zip(values).map(|(o, m)| (o.wrt.as_ref().map(|v| v.to_string()), m)).collect();
    Ok(Case { src: src.to_string(), want, json, code: format!("{numpy}\n{torch}\n{jax}") })
}

/// Runs the driver over the cases; the results, one per case.
fn run(dir: &Path, cases: &[Case], targets: &[&str]) -> Vec<serde_json::Value> {
    let file = dir.join("cases.json");
    let list: Vec<serde_json::Value> = cases.iter().map(|c| c.json.clone()).collect();
    std::fs::write(&file, serde_json::Value::Array(list).to_string()).unwrap();
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/emit/driver.py");
    let out = Command::new(python()).arg(&driver).arg(&file).arg(targets.join(",")).output().unwrap();
    assert!(out.status.success(), "the driver failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `got` within `tol` of `want`, relative to the largest entry of `want`.
fn close(got: &serde_json::Value, want: &Matrix, tol: f64) -> Result<(), String> {
    let rows: Vec<Vec<f64>> =
        serde_json::from_value(got.clone()).map_err(|_| format!("not a matrix: {got}"))?;
    if (rows.len(), rows.first().map_or(0, Vec::len)) != want.shape() {
        return Err(format!(
            "shape {}x{} for {:?}",
            rows.len(),
            rows.first().map_or(0, Vec::len),
            want.shape()
        ));
    }
    let scale = 1.0 + want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    for (i, row) in rows.iter().enumerate() {
        for (j, x) in row.iter().enumerate() {
            let y = want[(i, j)];
            if (x - y).abs() > tol * scale || x.is_nan() {
                return Err(format!("[{i},{j}] {x} vs {y}"));
            }
        }
    }
    Ok(())
}

/// Every target's value and gradients against the evaluator's; the
/// derivative checks where the case asked for them. The failures, as text.
fn judge(case: &Case, result: &serde_json::Value, targets: &[&str]) -> Vec<String> {
    let mut failures = vec![];
    let src = &case.src;
    for target in targets {
        for (dtype, tol) in [("float64", 1e-8), ("float32", 2e-3)] {
            let key = format!("{target}/{dtype}");
            let r = &result[&key];
            if let Some(e) = r.get("error") {
                failures.push(format!("{src}: {key} raised:\n{}", e.as_str().unwrap_or("")));
                continue;
            }
            for (wrt, want) in &case.want {
                let got = match wrt {
                    None => &r["value"],
                    Some(v) => &r["grads"][v],
                };
                if let Err(e) = close(got, want, tol) {
                    let what = wrt.as_ref().map_or("the value".to_string(), |v| format!("d/d{v}"));
                    failures.push(format!("{src}: {key}: {what} {e}"));
                }
            }
            for check in ["gradcheck", "gradgradcheck", "penalty"] {
                if r.get(check).is_some_and(|v| v != true) {
                    failures.push(format!("{src}: {key}: {check} fails"));
                }
            }
            if let Some(v) = r.get("check_grads").filter(|v| !v.is_null()) {
                failures.push(format!("{src}: {key}: check_grads(order=2) fails: {v}"));
            }
            if let Some(v) = r.get("mutant_first").filter(|v| !v.is_null()) {
                failures.push(format!("{src}: the JAX mutant's first derivatives should be right: {v}"));
            }
            if r.get("mutant_second").is_some_and(|v| v.is_null()) {
                failures
                    .push(format!("{src}: check_grads(order=2) misses the JAX mutant's constant residuals"));
            }
        }
    }
    failures
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("matdiff-emit-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Programs that exercise every kind of step: products, solves, inverses
/// used otherwise, entrywise functions, reductions, constants, layers.
const PROGRAMS: &[&str] = &[
    "W1*W2*W3*X",
    "W1 : 3x4; W2 : 4x5; W3 : 5x6; X : 6x2; W1*W2*W3*X",
    "norm(W1*W2*W3 - A)^2",
    "W*W*X",
    "W2*tanh(W1*X)",
    "norm(W2*sigmoid(W1*X) - Y)^2",
    "X : n x n; logdet(X) + tr(X^-1 * A)",
    "A : 3x3; B : 3x2; sum(A^-1 * B) + tr(B^T * A^-1 * A^-1 * B)",
    "A : 3x3; B : 3x2; A^-1 * B",
    "x : n; A : n x n; x^T*A*x",
    "A : 3x3; B : 3x3; det(A) * tr(A*B) + sum(exp(A) ./ (B .* B + 1)) + norm(A^2)",
    "a : scalar; U : 3x4; sum(sqrt(a + U .^ 2)) + a * sum(U) / 2",
    "W[i] : d[i-1] x d[i]; prod(W[i], i=1..3) * X",
    "W1 : 4x3; W2 : 2x4; X : 3x5; Y : 2x5; norm(W2*relu(W1*X) - Y)^2",
    "A : 3x4; B : 3x4; sum(max(A, B) .* min(A, 0.5) + abs(A) .* sign(B) + step(A) .* B .* B)",
    "W : 3x4; x : 4; z = W*x; sum(softplus(z) + arctan(z) + sinh(z) .* cosh(z) + log1p(z .^ 2) + tan(z / 8) + arcsin(z / 8) .* arccos(z / 8))",
    "W : 3x4; X : 4x5; sum(softmax(W*X) .* log(softmax(W*X))) + sum(logsumexp(W*X))",
    "x : 3; A : 3x3; sum(diag(x) * A) + sum(diag(A) .* x) + sum(A, 1) * x + sum(sum(A, 2))",
    "X : 3x4; p : scalar; q : scalar; sum(X .^ p) + sum(log(X) .* X .^ (2*q - p))",
    "W : 2x3; X : 3x4; mean(tanh(W*X)) + sum(mean(X, 1) .^ 2) + sum(exp(mean(X .* X, 2)))",
    "X : m x n; p : scalar; mean(X .^ p, 2)",
    "X : m x n; w : n; mean(X) * w + mean(X, 1)^T",
    "X : 2x3; Y : 3x2; C : 6x6; a : 9; tr(C * kron(X, Y)) + a^T * vec(tanh(X^T * X))",
    "X : 2x2; Y : 2x3; kron(X, Y * Y^T) + kron(Y * Y^T, X^T)",
    "x : n; y : m; A : n x m; tr(A^T * kron(x, y^T)) + sum(vec(x) .^ 2)",
];

#[test]
fn emitted_code_agrees_with_the_evaluator_and_differentiates_twice() {
    let Some(targets) = targets() else { return };
    let dir = temp_dir("programs");
    let cases: Vec<Case> = PROGRAMS
        .iter()
        .enumerate()
        .map(|(k, src)| {
            case(&dir, k, src, &DeriveOptions::default(), Checks::Derivatives)
                .unwrap_or_else(|e| panic!("{src}: {e}"))
        })
        .collect();
    let results = run(&dir, &cases, &targets);
    let failures: Vec<String> = cases.iter().zip(&results).flat_map(|(c, r)| judge(c, r, &targets)).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // The mutants are tried wherever the backward reads something.
    // A PyTorch mutant whose only stale product is forward's output is right
    // (autograd re-attaches a saved output), as for `A^-1 * B`: most are caught.
    if targets.contains(&"torch") {
        let tried: Vec<&str> = results
            .iter()
            .zip(&cases)
            .filter(|(r, _)| r["torch/float64"].get("mutant_penalty").is_some())
            .map(|(_, c)| c.src.as_str())
            .collect();
        let missed: Vec<&str> = results
            .iter()
            .zip(&cases)
            .filter(|(r, _)| r["torch/float64"]["mutant_penalty"] == true)
            .map(|(_, c)| c.src.as_str())
            .collect();
        assert!(tried.len() >= PROGRAMS.len() / 2, "{} PyTorch mutants tried", tried.len());
        assert_eq!(
            missed,
            ["A : 3x3; B : 3x2; A^-1 * B"],
            "the gradient penalty misses these PyTorch mutants"
        );
    }
    if targets.contains(&"jax") {
        let mutants = results.iter().filter(|r| r["jax/float64"].get("mutant_second").is_some()).count();
        assert!(mutants >= PROGRAMS.len() - 2, "{mutants} JAX mutants tried");
    }
    // Inverses only applied are solved, never formed; one that is a
    // gradient itself (d/dA of tr(X^-1 * A)) is formed.
    let code = |src: &str| &cases[PROGRAMS.iter().position(|p| *p == src).unwrap()].code;
    let solved = code("A : 3x3; B : 3x2; A^-1 * B");
    for call in ["np.linalg.solve(A, B)", "torch.linalg.solve(A, B)", "jnp.linalg.solve(A, B)"] {
        assert!(solved.contains(call), "{call}:\n{solved}");
    }
    assert!(!solved.contains(".inv("), "{solved}");
    assert!(code("X : n x n; logdet(X) + tr(X^-1 * A)").contains("np.linalg.inv(X)"));
    std::fs::remove_dir_all(&dir).ok();
}

/// The Hessian-vector products of `plan --order 2`, emitted, against the
/// evaluator: their NumPy functions write most entrywise steps into the
/// buffers of intermediates that die there (`out=`), which the driver holds
/// to the same values, with and without batch axes, and to arguments left
/// as they were passed.
#[test]
fn emitted_hessian_vector_products_agree_with_the_evaluator() {
    let Some(targets) = targets() else { return };
    let dir = temp_dir("hvp");
    let programs = [
        ("W1 : h x d; X : d x m; w2 : h; y : m; norm(tanh(W1*X)^T*w2 - y)^2", "W1"),
        ("X : m x n; y : m; w : n; sum(log(1 + exp(-y .* (X*w))))", "w"),
        ("W : 3x4; X : 4x5; sum(softplus(W*X) .* sigmoid(W*X)) + norm(relu(W*X) .^ 3)^2", "W"),
        ("x : n; A : n x n; x^T*A*x + sum(exp(A*x) ./ (1 + x .^ 2))", "x"),
    ];
    let cases: Vec<Case> = programs
        .iter()
        .enumerate()
        .map(|(k, (src, v))| {
            let p = matdiff::parse(src).unwrap();
            let s =
                matdiff::hessian::hessian(&p, &[matdiff::syntax::parse_var(v).unwrap()], &Default::default())
                    .unwrap_or_else(|e| panic!("{src}: {e:?}"));
            let d = s.planned(matdiff::hessian::Planned::Product).unwrap();
            case_of(&dir, k, src, &d, Checks::Values).unwrap_or_else(|e| panic!("{src}: {e}"))
        })
        .collect();
    let results = run(&dir, &cases, &targets);
    let failures: Vec<String> = cases.iter().zip(&results).flat_map(|(c, r)| judge(c, r, &targets)).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let two_layer = &cases[0].code;
    assert!(two_layer.contains("= np.tanh(S1, out=S1)"), "{two_layer}");
    let in_place = two_layer.lines().filter(|l| l.contains("out=")).count();
    assert!(in_place >= 8, "{in_place} steps in place:\n{two_layer}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The NumPy function names the variable and the dimension of a wrongly
/// shaped argument, binds a symbolic dimension by the first argument that
/// has it, and takes its arguments by keyword only.
#[test]
fn emitted_numpy_checks_shapes_by_name() {
    if !has_module("numpy") {
        return;
    }
    let emit = |src: &str| {
        let program = matdiff::parse(src).unwrap();
        let d = derive(&program, &DeriveOptions::default()).unwrap();
        let plan = compile(&d, &PlanOptions::default()).unwrap();
        matdiff::plan::numpy(&plan, src, None).unwrap()
    };
    let symbolic = emit("W1*W2*X");
    let fixed = emit("W : 3x4; X : 4x2; norm(W*X)^2");
    let program = format!(
        "import numpy as np\nns, nf = {{}}, {{}}\nexec({symbolic:?}, ns)\nexec({fixed:?}, nf)\n\
         f, g = ns['value_and_grads'], nf['value_and_grads']\n\
         z = lambda *s: np.zeros(s)\n\
         def message(call):\n\
         \x20   try:\n\
         \x20       call()\n\
         \x20   except (ValueError, TypeError) as e:\n\
         \x20       return type(e).__name__ + ': ' + str(e)\n\
         \x20   return 'no error'\n\
         for call in [\n\
         \x20   lambda: f(W1=z(3, 4), W2=z(5, 2), X=z(2, 6), G=z(3, 6)),\n\
         \x20   lambda: f(W1=z(3, 4), W2=z(4, 2), X=z(2, 6), G=z(3, 7)),\n\
         \x20   lambda: g(W=z(3, 5), X=z(4, 2)),\n\
         \x20   lambda: g(W=z(3, 4), X=z(4)),\n\
         \x20   lambda: g(W=z(3, 4)),\n\
         \x20   lambda: g(W=z(3, 4), x=z(4, 2)),\n\
         \x20   lambda: g(z(3, 4), z(4, 2)),\n\
         ]:\n\
         \x20   print(message(call))\n\
         value, grads = g(W=np.ones((3, 4), dtype=np.float32), X=np.ones((4, 2), dtype=np.float32))\n\
         print(np.asarray(value).dtype, type(value).__name__ != 'ndarray', grads['W'].dtype)\n"
    );
    let out = Command::new(python()).args(["-c", &program]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect();
    let want = [
        "ValueError: W2 has 5 rows, but d1 is 4 (from W1)",
        "ValueError: G has 7 columns, but d3 is 6 (from X)",
        "ValueError: W has 5 columns, but must have 4",
        "ValueError: X must be a 4 x 2 matrix (after any batch axes), not shape (4,)",
        "TypeError: value_and_grads() missing 1 required keyword-only argument: 'X'",
        "TypeError: value_and_grads() got an unexpected keyword argument 'x'",
        "TypeError: value_and_grads() takes 0 positional arguments but 2 were given",
        "float32 True float32",
    ];
    assert_eq!(lines, want, "\n{symbolic}\n{fixed}");
}

/// The gallery (`examples/*.matdiff`): every model's emitted code agrees
/// with the evaluator in each target and precision, and differentiates twice.
#[test]
fn emitted_code_runs_for_the_gallery() {
    let Some(targets) = targets() else { return };
    let dir = temp_dir("gallery");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "matdiff"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "the gallery has {} models", files.len());
    let cases: Vec<Case> = files
        .iter()
        .enumerate()
        .map(|(k, f)| {
            let src = std::fs::read_to_string(f).unwrap();
            case(&dir, k, &src, &DeriveOptions::default(), Checks::Derivatives)
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()))
        })
        .collect();
    let results = run(&dir, &cases, &targets);
    let failures: Vec<String> = cases.iter().zip(&results).flat_map(|(c, r)| judge(c, r, &targets)).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    std::fs::remove_dir_all(&dir).ok();
}

/// Random programs of the property tests' generator (every construct, random
/// shapes): the emitted code agrees with the evaluator in each target at
/// float64 and float32. Drawn from `PROPTEST_RNG_SEED` when it is set (CI's
/// is fixed), else a fixed seed; programs the engine refuses are skipped.
#[test]
fn emitted_code_runs_for_random_programs() {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let Some(targets) = targets() else { return };
    let dir = temp_dir("random");
    let seed: u64 = std::env::var("PROPTEST_RNG_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(2026);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = common::generators::typed_programs();
    let mut cases = vec![];
    let mut tried = 0;
    while cases.len() < 40 && tried < 400 {
        tried += 1;
        let src = strategy.new_tree(&mut runner).unwrap().current();
        // A few with the derivative checks too (gradgradcheck, check_grads).
        let checks = if cases.len() % 8 == 0 { Checks::Derivatives } else { Checks::Values };
        if let Ok(c) = case(&dir, cases.len(), &src, &DeriveOptions::default(), checks) {
            cases.push(c);
        }
    }
    assert!(cases.len() >= 30, "only {} of {tried} random programs plan", cases.len());
    let results = run(&dir, &cases, &targets);
    let failures: Vec<String> = cases.iter().zip(&results).flat_map(|(c, r)| judge(c, r, &targets)).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    std::fs::remove_dir_all(&dir).ok();
}

/// Programs whose product has symbolic length: emitted as loops over the
/// list of the members (plain, transposed, shifted members; a layer, a loss;
/// two families), each with the variables it is differentiated by (none:
/// all; `X` alone: forward-only loops, the family held constant).
const LOOPED: &[(&str, &[&str])] = &[
    ("W[i] : d[i-1] x d[i]; X : d[n] x B; prod(W[i], i=1..n) * X", &[]),
    ("W[i] : d[i-1] x d[i]; X : d[n] x B; A : m x d[0]; A * prod(W[i], i=1..n) * X", &[]),
    ("W[i] : d[i] x d[i-1]; X : d[n] x B; prod(W[i]^T, i=1..n) * X", &[]),
    ("W[i] : d[i-1] x d[i]; X : d[n] x B; Y : d[0] x B; norm(prod(W[i], i=1..n) * X - Y)^2", &[]),
    ("W[i] : d[i-1] x d[i]; X : d[n] x B; prod(W[i+1], i=0..n-1) * X", &[]),
    ("W[i] : d[i-1] x d[i]; prod(W[i], i=1..n)^T * X", &[]),
    ("W[i] : d x d; X : d x d; tr(prod(W[i], i=1..n) * X) + sum(X .* X)", &[]),
    ("W[i] : d[i-1] x d[i]; X : d[n] x B; prod(W[i], i=1..n) * X", &["X"]),
    ("W[i] : d[i-1] x d[i]; X : d[n] x B; Y : d[0] x B; norm(prod(W[i], i=1..n) * X - Y)^2", &["X"]),
    (
        "A[i] : d[i-1] x d[i]; B[i] : e[i-1] x e[i]; X : d[n] x e[0]; prod(A[i], i=1..n) * X * prod(B[i], i=1..n+1)",
        &[],
    ),
    (
        "A[i] : d x d; B[i] : d x d; X : d x m; Y : d x m; norm(prod(A[i], i=1..n) * X + prod(B[i]^T, i=1..n+1) * X - Y)^2",
        &[],
    ),
    (
        "A[i] : d x d; B[i] : d x d; X : d x m; Y : d x m; norm(prod(A[i], i=1..n) * X + prod(B[i], i=1..n) * X - Y)^2",
        &["B[j]"],
    ),
];

/// A small deterministic generator (xorshift), for sizes and entries.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The mutant JAX: what forward saved held constant in the backward rule
/// (first derivatives right, second wrong).
fn jax_mutant(jax: &str) -> Option<String> {
    let line = jax.lines().find(|l| l.ends_with(" = residuals"))?;
    let stopped = line.replace(" = residuals", " = jax.tree_util.tree_map(jax.lax.stop_gradient, residuals)");
    Some(jax.replace(line, &stopped))
}

/// The mutant PyTorch: forward's products kept in a differentiated
/// backward (no recomputation).
fn torch_mutant(torch: &str) -> Option<String> {
    let mut in_block = false;
    torch.contains("        if torch.is_grad_enabled():\n").then(|| {
        torch
            .lines()
            .filter(|l| {
                in_block = *l == "        if torch.is_grad_enabled():"
                    || (in_block && l.starts_with("            "));
                !in_block
            })
            .map(|l| format!("{l}\n"))
            .collect()
    })
}

/// A looped program at length `n`: its code, and the values and gradients
/// of the same chain instantiated (`--dims n=…`) on the evaluator, on random
/// sizes 1..5 and entries.
fn loop_case(dir: &Path, k: usize, src: &str, wrt: &[&str], n: u64) -> Result<Case, String> {
    use matdiff::numeric::Env;
    use matdiff::plan::compile_loops;
    use std::collections::HashMap;
    let program = matdiff::parse(src).map_err(|e| format!("{e:?}"))?;
    let wrt: Vec<_> = wrt.iter().map(|v| matdiff::syntax::parse_var(v).unwrap()).collect();
    let d = derive(&program, &DeriveOptions { wrt, ..Default::default() }).map_err(|e| format!("{e:?}"))?;
    let lp = compile_loops(&d, &PlanOptions::default()).map_err(|e| format!("{e:?}"))?;
    let options = PlanOptions { dims: [("n".to_string(), n)].into(), ..Default::default() };
    let plan = compile(&d, &options).map_err(|e| format!("{e:?}"))?;
    let mut draw = Draw(0x9e37_79b9_7f4a_7c15 ^ ((k as u64 + 1) * 0x1000_0001));
    let mut sizes: HashMap<String, usize> = HashMap::new();
    let mut env = Env { vars: HashMap::new(), indices: vec![("n".into(), n as i64)], ..Env::default() };
    for i in &plan.inputs {
        let mut size = |dim: &matdiff::shape::Dim| match dim {
            matdiff::shape::Dim::Const(c) => *c as usize,
            other => *sizes.entry(other.to_string()).or_insert_with(|| 1 + (draw.next() * 5.0) as usize),
        };
        let (r, c) = (size(&i.shape.rows), size(&i.shape.cols));
        env.vars.insert(i.var.clone(), Matrix::from_fn(r, c, |_, _| 2.0 * draw.next() - 1.0));
    }
    let values = run_plan(&plan, &env).map_err(|e| format!("{e:?}"))?;
    let title = format!("{}", d.typing.program.expr);
    let numpy = matdiff::plan::numpy_loops(&lp, &title, None).map_err(|e| format!("{e:?}"))?;
    let torch = matdiff::plan::pytorch_loops(&lp, &title, None).map_err(|e| format!("{e:?}"))?;
    let jax = matdiff::plan::jax_loops(&lp, &title, None).map_err(|e| format!("{e:?}"))?;
    let path = |name: &str, code: &str| -> PathBuf {
        let p = dir.join(format!("{name}{k}.py"));
        std::fs::write(&p, code).unwrap();
        p
    };
    // The keyword arguments: each family the list of its members.
    let mut params = serde_json::Map::new();
    let mut families = serde_json::Map::new();
    for i in &lp.plan.inputs {
        if lp.upstream.as_ref() == Some(&i.var) {
            continue;
        }
        match lp.chains.iter().find(|c| c.var == i.var) {
            Some(c) => {
                let last = c.last.subst("n", &matdiff::syntax::Index::constant(n as i64)).unwrap();
                let members: Vec<serde_json::Value> = (c.first..=last.as_constant().unwrap())
                    .map(|m| {
                        let v = matdiff::syntax::VarName {
                            name: c.family.clone(),
                            index: Some(matdiff::syntax::Index::constant(m)),
                        };
                        matrix_json(&env.vars[&v])
                    })
                    .collect();
                params.insert(c.family.clone(), members.into());
                families.insert(c.family.clone(), c.first.into());
            }
            None => {
                params.insert(i.var.to_string(), matrix_json(&env.vars[&i.var]));
            }
        }
    }
    let upstream = lp.upstream.as_ref().map(|u| matrix_json(&env.vars[u]));
    let wrt: Vec<String> =
        plan.outputs.iter().filter_map(|o| o.wrt.as_ref().map(|v| v.to_string())).collect();
    // The arguments not differentiated (a family none of whose members is):
    // held constant by the driver.
    let held: Vec<&String> =
        params.keys().filter(|p| !wrt.iter().any(|v| v == *p || v.starts_with(&format!("{p}[")))).collect();
    let json = serde_json::json!({
        "loop": true,
        "held": held,
        "numpy": path("np", &numpy),
        "torch": path("torch", &torch),
        "jax": path("jax", &jax),
        "jax_mutant": jax_mutant(&jax).map(|m| path("jaxmutant", &m)),
        "torch_mutant": torch_mutant(&torch).map(|m| path("torchmutant", &m)),
        "params": params,
        "families": families,
        "upstream": upstream,
        "upstream_name": lp.upstream.as_ref().map(|u| u.to_string()),
        "wrt": wrt,
    });
    let want =
        plan.outputs.iter().zip(values).map(|(o, m)| (o.wrt.as_ref().map(|v| v.to_string()), m)).collect();
    Ok(Case { src: format!("{src} (n = {n})"), want, json, code: format!("{numpy}\n{torch}\n{jax}") })
}

/// The loops over a family's members agree with the chain instantiated at
/// n = 1, 2, 5 on the evaluator, in each target at float64 and float32;
/// PyTorch passes gradcheck, gradgradcheck and the gradient penalty, JAX
/// check_grads(order=2), jit and vmap; and each mutant (saved prefixes held
/// constant in a differentiated backward) is caught.
#[test]
fn emitted_loops_agree_with_the_instantiated_chain() {
    let Some(targets) = targets() else { return };
    let dir = temp_dir("loops");
    let mut cases = vec![];
    let mut held = vec![];
    for (src, wrt) in LOOPED {
        for n in [1, 2, 5] {
            let k = cases.len();
            cases.push(loop_case(&dir, k, src, wrt, n).unwrap_or_else(|e| panic!("{src} (n = {n}): {e}")));
            held.push(!wrt.is_empty());
        }
    }
    let results = run(&dir, &cases, &targets);
    let failures: Vec<String> = cases.iter().zip(&results).flat_map(|(c, r)| judge(c, r, &targets)).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // With two members or more, the saved prefix products matter to second
    // derivatives: the mutants that hold them constant are caught.
    // (Where a family is held constant, its prefixes need not matter.)
    for ((c, r), held) in cases.iter().zip(&results).zip(held) {
        if c.src.ends_with("(n = 1)") || held {
            continue;
        }
        if targets.contains(&"torch") {
            assert_eq!(r["torch/float64"]["mutant_penalty"], false, "{}: the PyTorch mutant passes", c.src);
        }
        if targets.contains(&"jax") {
            assert!(!r["jax/float64"]["mutant_second"].is_null(), "{}: the JAX mutant passes", c.src);
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The looped functions take a family as a list and reject, naming the
/// member, a list that is not one, is empty or too long for the length
/// `--dims` gives, or whose members do not chain; the NumPy function also
/// checks each member's dimensions against the other arguments'.
#[test]
fn emitted_loops_check_their_members() {
    let Some(targets) = targets() else { return };
    let emit = |src: &str, dims: &[(&str, u64)], lib: &str| {
        let program = matdiff::parse(src).unwrap();
        let d = derive(&program, &DeriveOptions::default()).unwrap();
        let options = PlanOptions {
            dims: dims.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..Default::default()
        };
        let lp = matdiff::plan::compile_loops(&d, &options).unwrap();
        match lib {
            "numpy" => matdiff::plan::numpy_loops(&lp, src, None),
            "torch" => matdiff::plan::pytorch_loops(&lp, src, None),
            _ => matdiff::plan::jax_loops(&lp, src, None),
        }
        .unwrap()
    };
    let seed = "W[i] : d[i-1] x d[i]; X : d[n] x B; prod(W[i], i=1..n) * X";
    let transposed = "W[i] : d[i] x d[i-1]; X : d[n] x B; prod(W[i]^T, i=1..n) * X";
    let program = format!(
        "import numpy as np\nns, nt, nf = {{}}, {{}}, {{}}\nexec({:?}, ns)\nexec({:?}, nt)\nexec({:?}, nf)\n\
         f, t, fixed = ns['value_and_grads'], nt['value_and_grads'], nf['value_and_grads']\n\
         z = lambda *s: np.zeros(s)\n\
         def message(call):\n\
         \x20   try:\n\
         \x20       call()\n\
         \x20   except (ValueError, TypeError) as e:\n\
         \x20       return type(e).__name__ + ': ' + str(e)\n\
         \x20   return 'no error'\n\
         for call in [\n\
         \x20   lambda: f(W=[z(3, 4), z(5, 2)], X=z(2, 6), G=z(3, 6)),\n\
         \x20   lambda: f(W=[z(3, 4), z(4, 2)], X=z(5, 6), G=z(3, 6)),\n\
         \x20   lambda: f(W=[z(3, 4), z(4, 2)], X=z(2, 6), G=z(4, 6)),\n\
         \x20   lambda: f(W=[z(3, 4), z(4)], X=z(4, 6), G=z(3, 6)),\n\
         \x20   lambda: f(W=[], X=z(2, 6), G=z(3, 6)),\n\
         \x20   lambda: f(W=z(2, 3, 3), X=z(3, 6), G=z(3, 6)),\n\
         \x20   lambda: t(W=[z(4, 3), z(5, 2)], X=z(5, 6), G=z(3, 6)),\n\
         \x20   lambda: fixed(W=[z(3, 4), z(4, 2)], X=z(2, 6), G=z(3, 6)),\n\
         ]:\n\
         \x20   print(message(call))\n\
         value, grads = f(W=[np.ones((3, 4), dtype=np.float32)], X=np.ones((4, 2), dtype=np.float32), G=np.ones((3, 2), dtype=np.float32))\n\
         print(value.dtype, type(grads['W']).__name__, len(grads['W']), grads['W'][0].dtype, grads['W'][0].shape)\n",
        emit(seed, &[], "numpy"),
        emit(transposed, &[], "numpy"),
        emit(seed, &[("n", 3)], "numpy"),
    );
    let out = Command::new(python()).args(["-c", &program]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect();
    let want = [
        "ValueError: W[2] has 5 rows, but must have 4, the columns of W[1]: the members chain",
        "ValueError: X has 5 rows, but d[n] is 2 (from W[2])",
        "ValueError: G has 4 rows, but d[0] is 3 (from W[1])",
        "ValueError: W[2] must be a matrix (after any batch axes), not shape (4,)",
        "ValueError: W must hold at least one matrix (W[1], ..., W[n]), not 0",
        "TypeError: W must be a list of the matrices W[1], ..., W[n], not ndarray",
        "ValueError: W[2] has 2 columns, but must have 4, the rows of W[1]: the members chain",
        "ValueError: W must hold 3 matrices (W[1], ..., W[n]), not 2",
        "float32 list 1 float32 (3, 4)",
    ];
    assert_eq!(lines, want);
    // PyTorch and JAX check the list and the chain as well.
    for (lib, module) in [("torch", "torch"), ("jax", "jax")] {
        if !targets.contains(&module) {
            continue;
        }
        let program = format!(
            "import numpy as np\nns = {{}}\nexec({:?}, ns)\n\
             try:\n\
             \x20   ns['plan'](W=[np.zeros((3, 4)), np.zeros((5, 2))], X=np.zeros((2, 6)))\n\
             except ValueError as e:\n\
             \x20   print(e)\n",
            emit(seed, &[], lib).replace("import torch\n", "import torch\nimport numpy as np\n"),
        );
        let out = Command::new(python()).args(["-c", &program]).output().unwrap();
        assert!(out.status.success(), "{lib}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            String::from_utf8(out.stdout).unwrap().trim(),
            "W[2] has 5 rows, but must have 4, the columns of W[1]: the members chain",
            "{lib}"
        );
    }
}

/// One looped program as each target writes it.
#[test]
fn emitted_loop_code() {
    let src = "W[i] : d[i-1] x d[i]; X : d[n] x B; prod(W[i], i=1..n) * X";
    let program = matdiff::parse(src).unwrap();
    let d = derive(&program, &DeriveOptions::default()).unwrap();
    let lp = matdiff::plan::compile_loops(&d, &PlanOptions::default()).unwrap();
    let title = "prod(W[i], i=1..n) * X";
    let code = matdiff::plan::numpy_loops(&lp, title, None).unwrap()
        + "\n"
        + &matdiff::plan::pytorch_loops(&lp, title, None).unwrap()
        + "\n"
        + &matdiff::plan::jax_loops(&lp, title, None).unwrap();
    common::snapshots().bind(|| insta::assert_snapshot!("emit_loops", code));
}
