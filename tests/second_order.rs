//! Second order (issue 20): `hessian`, `jacobian`, `check --order 2`,
//! `check --jacobian`, `verify --order 2`, `verify --jacobian`. The forms
//! printed, their agreement with finite differences of the derived
//! gradient on random instances (random sizes, both signs), symmetry of
//! Hessians, claims with a transpose or a factor 2 wrong rejected, and the
//! refusals.

mod common;

use proptest::prelude::*;

fn run(args: &[&str]) -> (i32, String, String) {
    let mut argv = vec!["matdiff"];
    argv.extend_from_slice(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = matdiff::cli::run(argv, &mut out, &mut err);
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no line `{prefix}` in\n{out}"))
}

/// The formula of a `NAME = FORMULA  : SHAPE` line.
fn formula<'a>(out: &'a str, prefix: &str) -> &'a str {
    let l = line(out, prefix);
    let rhs = l.split_once(" = ").unwrap().1;
    rhs.rsplit_once("  : ").unwrap().0.trim_end()
}

const QUADRATIC: &str = "x : n; A : n x n; x^T*A*x";
const LEAST_SQUARES: &str = "A : m x n; x : n; b : m; norm(A*x - b)^2";
const LOGISTIC: &str =
    "X : m x d; w : d; y : m; -sum(y .* log(sigmoid(X*w)) + (1 - y) .* log(1 - sigmoid(X*w)))";

/// (program, variable, the Hessian's matrix as printed)
const HESSIANS: &[(&str, &str, &str)] = &[
    (QUADRATIC, "x", "A + A^T"),
    (LEAST_SQUARES, "x", "2 * A^T * A"),
    (LOGISTIC, "w", "X^T * diag(sigmoid(X * w) .* (1 - sigmoid(X * w))) * X"),
    ("x : n; x^T*x", "x", "2 * I"),
    ("x : n; sum(exp(x))", "x", "diag(exp(x))"),
    ("x : n; sum(tanh(x))", "x", "-2 * diag(tanh(x) .* (1 - tanh(x) .^ 2))"),
    ("x : n; logsumexp(x)", "x", "diag(softmax(x)) - softmax(x) * softmax(x)^T"),
    (
        "X : n x d; w : d; y : n; lambda : scalar; norm(X*w - y)^2 + lambda * norm(w)^2",
        "w",
        "2 * X^T * X + 2 * lambda * I",
    ),
    ("s : scalar; x : n; s^2 * x^T * x", "s", "2 * x^T * x"),
    ("S : n x n spd; x : n; mu : n; 0.5 * logdet(S) + 0.5 * (x - mu)^T * inv(S) * (x - mu)", "x", "S^-1"),
];

#[test]
fn hessians_print_in_textbook_form() {
    for (program, v, want) in HESSIANS {
        let (code, out, err) = run(&["hessian", program, "--wrt", v]);
        assert_eq!(code, 0, "{program}: {err}");
        assert_eq!(formula(&out, &format!("d2L/d{v} d{v}^T = ")), *want, "{program}\n{out}");
        assert!(line(&out, &format!("H[d{v}] = ")).contains(&format!("d{v}")), "{out}");
    }
}

#[test]
fn matrix_variables_give_the_map() {
    let (code, out, _) = run(&["hessian", "X : n x m; A : n x n; tr(X^T*A*X)", "--wrt", "X"]);
    assert_eq!(code, 0);
    assert_eq!(formula(&out, "H[dX] = "), "(A + A^T) * dX");
    assert!(!out.contains("d2L/dX"), "no matrix form for a matrix variable: {out}");
    // The Kronecker/vec form beside it (checked numerically in constructs_kron.rs).
    assert_eq!(formula(&out, "d2L/dvec(X) dvec(X)^T = "), "kron(diag(ones(m)), A + A^T)");
    let (code, out, _) = run(&["hessian", "Y : m x n; U : m x k; V : k x n; norm(Y - U*V)^2", "--wrt", "U"]);
    assert_eq!(code, 0);
    assert_eq!(formula(&out, "H[dU] = "), "2 * dU * V * V^T");
}

#[test]
fn mixed_second_derivatives() {
    let (code, out, _) = run(&["hessian", "x : n; y : m; A : n x m; x^T*A*y", "--wrt", "x", "--wrt", "y"]);
    assert_eq!(code, 0);
    assert_eq!(formula(&out, "d2L/dx dy^T = "), "A");
    let (code, out, _) = run(&["hessian", "s : scalar; x : n; s^2 * x^T * x", "--wrt", "x", "--wrt", "s"]);
    assert_eq!(code, 0);
    assert_eq!(formula(&out, "d2L/dx ds^T = "), "4 * s * x");
}

/// `dx^T * ones(n)` in a map is printed `sum(dx)`; the matrix is read off
/// before (`2 * ones(n, n)`), and the map still agrees with differences.
#[test]
fn maps_print_sums_of_the_direction() {
    let program = "x : n; sum(x)^2 + sum(exp(x))";
    let (code, out, _) = run(&["hessian", program, "--wrt", "x"]);
    assert_eq!(code, 0);
    assert_eq!(formula(&out, "H[dx] = "), "2 * sum(dx) * ones(n) + dx .* exp(x)");
    assert_eq!(formula(&out, "d2L/dx dx^T = "), "2 * ones(n, n) + diag(exp(x))");
    let (code, out, err) = run(&["check", program, "--wrt", "x", "--order", "2", "--seed", "2"]);
    assert_eq!(code, 0, "{out}{err}");
    // A matrix x: x^T * ones(n) is a row of column sums, not sum(x).
    let (code, out, _) = run(&["hessian", "X : n x k; sum(sum(X, 1) .^ 2)", "--wrt", "X"]);
    assert_eq!(code, 0);
    assert!(!formula(&out, "H[dX] = ").contains("sum(dX)"), "{out}");
}

/// `verify --order 2` with two variables decides a claimed mixed second
/// derivative: its matrix or its map; a transpose or a factor 2 is refused.
#[test]
fn verify_order_2_decides_mixed_claims() {
    let program = "x : n; y : n; A : n x n; x^T*A*y + sum(exp(x))";
    let verdict = |claim: &str| {
        let (code, out, err) =
            run(&["verify", program, "--wrt", "x", "--wrt", "y", "--order", "2", "--claim", claim]);
        assert!(code == 0 || code == 1, "{claim}: {out}{err}");
        code
    };
    assert_eq!(verdict("A"), 0);
    assert_eq!(verdict("A * dy"), 0);
    assert_eq!(verdict("A^T"), 1);
    assert_eq!(verdict("2 * A"), 1);
    assert_eq!(verdict("A^T * dy"), 1);
    // The other order is the transpose.
    let (code, _, _) =
        run(&["verify", program, "--wrt", "y", "--wrt", "x", "--order", "2", "--claim", "A^T"]);
    assert_eq!(code, 0);
    // Two variables at first order are refused by name.
    let (code, _, err) = run(&["verify", program, "--wrt", "x", "--wrt", "y", "--claim", "A * y"]);
    assert_eq!(code, 2);
    assert!(err.contains("verify takes one --wrt, found 2"), "{err}");
}

/// (program, variable, the Jacobian's matrix or None for a matrix case, the differential dZ)
const JACOBIANS: &[(&str, &str, Option<&str>, &str)] = &[
    ("A : m x n; x : n; A*x", "x", Some("A"), "A * dx"),
    (
        "W : m x n; x : n; tanh(W*x)",
        "x",
        Some("diag(1 - tanh(W * x) .^ 2) * W"),
        "(W * dx) .* (1 - tanh(W * x) .^ 2)",
    ),
    ("x : n; softmax(x)", "x", Some("diag(softmax(x)) - softmax(x) * softmax(x)^T"), ""),
    ("W : m x n; X : n x B; W*X", "X", None, "W * dX"),
    ("W : m x n; X : n x B; Z = W*X; Z", "W", None, "dW * X"),
];

#[test]
fn jacobians_print_the_matrix_or_the_differential() {
    for (program, v, matrix, map) in JACOBIANS {
        let (code, out, err) = run(&["jacobian", program, "--wrt", v]);
        assert_eq!(code, 0, "{program}: {err}");
        if !map.is_empty() {
            assert_eq!(formula(&out, "dZ = "), *map, "{program}\n{out}");
        }
        match matrix {
            Some(m) => assert_eq!(formula(&out, &format!("dZ/d{v} = ")), *m, "{program}\n{out}"),
            None => assert!(!out.contains(&format!("dZ/d{v}")), "{out}"),
        }
    }
}

/// Every case, on seeds whose sizes vary: the first derivative against
/// differences of the expression, the second against differences of the
/// first, and the matrix against the map; both signs where allowed.
#[test]
fn second_derivatives_agree_with_differences_of_the_gradient() {
    let mut cases: Vec<(&str, Vec<&str>, &str)> =
        HESSIANS.iter().map(|(p, v, _)| (*p, vec![*v], "--order")).collect();
    cases.push(("X : n x m; A : n x n; tr(X^T*A*X)", vec!["X"], "--order"));
    cases.push(("x : n; y : m; A : n x m; x^T*A*y", vec!["x", "y"], "--order"));
    cases.push(("x : n; y : m; A : n x m; sum(tanh(A*y) .* x) + sum(exp(x))", vec!["x", "y"], "--order"));
    cases.push((
        "W1 : h x d; W2 : k x h; X : d x m; Y : k x m; norm(W2*tanh(W1*X) - Y)^2",
        vec!["W1"],
        "--order",
    ));
    for (p, v, _, _) in JACOBIANS {
        cases.push((p, vec![v], "--jacobian"));
    }
    cases.push(("W : m x n; b : m; x : n; sigmoid(W*x + b)", vec!["x"], "--jacobian"));
    for (program, wrt, flag) in cases {
        let mut sizes = std::collections::BTreeSet::new();
        for seed in 1..=3u64 {
            let seed_text = seed.to_string();
            let mut args = vec!["check", program, "--seed", &seed_text, "--json"];
            for v in &wrt {
                args.extend_from_slice(&["--wrt", v]);
            }
            if flag == "--order" {
                args.extend_from_slice(&["--order", "2"]);
            } else {
                args.push("--jacobian");
            }
            let (code, out, err) = run(&args);
            assert_eq!(code, 0, "{program} {wrt:?} seed {seed}: {out}{err}");
            let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(doc["ok"], true);
            sizes.insert(doc["first"]["sizes"].to_string());
            if !program.contains("log") && !program.contains("spd") {
                let domains = doc["first"]["domains"].to_string();
                assert!(
                    !domains.contains("positive") && !domains.contains("negative"),
                    "{program}: {domains}"
                );
            }
        }
        assert!(sizes.len() > 1, "{program}: one size for every seed");
    }
}

#[test]
fn hessians_are_symmetric() {
    for (program, v, m) in HESSIANS {
        // M^T is the Hessian too: the e-graph or the numbers say so.
        let claim = format!("({m})^T");
        let (code, out, err) = run(&["verify", program, "--wrt", v, "--order", "2", "--claim", &claim]);
        assert_eq!(code, 0, "{program}: {claim}: {out}{err}");
    }
}

#[test]
fn verify_order_2_accepts_the_hessian_and_rejects_mutants() {
    let square = "A : n x n; x : n; b : n; norm(A*x - b)^2";
    let accepted: &[(&str, &str, &str)] = &[
        (square, "x", "2*A^T*A"),
        (QUADRATIC, "x", "A^T + A"),
        (LOGISTIC, "w", "X^T * diag(sigmoid(X*w) .* (1 - sigmoid(X*w))) * X"),
        ("X : n x m; A : n x n; tr(X^T*A*X)", "X", "A*dX + A^T*dX"),
    ];
    for (program, v, claim) in accepted {
        let (code, out, err) = run(&["verify", program, "--wrt", v, "--order", "2", "--claim", claim]);
        assert_eq!(code, 0, "{program}: {claim}: {out}{err}");
    }
    let rejected: &[(&str, &str, &str)] = &[
        (square, "x", "2*A*A^T"),        // a transpose wrong
        (square, "x", "A^T*A"),          // a factor 2 wrong
        (square, "x", "4*A^T*A"),        // a factor 2 wrong
        (QUADRATIC, "x", "2*A"),         // A taken symmetric
        (QUADRATIC, "x", "A"),           // a factor 2 wrong (and a transpose)
        (LEAST_SQUARES, "x", "2*A*A^T"), // a transpose wrong: the shape
        (LOGISTIC, "w", "2 * X^T * diag(sigmoid(X*w) .* (1 - sigmoid(X*w))) * X"),
        (LOGISTIC, "w", "X^T * diag(sigmoid(X*w)) * X"),
        ("X : n x m; A : n x n; tr(X^T*A*X)", "X", "2*A*dX"),
        ("X : n x m; A : n x n; tr(X^T*A*X)", "X", "A*dX + dX*A"),
    ];
    for (program, v, claim) in rejected {
        let (code, out, err) = run(&["verify", program, "--wrt", v, "--order", "2", "--claim", claim]);
        assert_eq!(code, 1, "{program}: {claim} was not rejected: {out}{err}");
        assert!(out.contains("not equivalent"), "{out}");
    }
}

#[test]
fn verify_jacobian_rejects_a_transposed_jacobian() {
    let program = "W : n x n; x : n; tanh(W*x)";
    let right = "diag(1 - tanh(W*x) .^ 2) * W";
    let (code, out, _) = run(&["verify", program, "--wrt", "x", "--jacobian", "--claim", right]);
    assert_eq!(code, 0, "{out}");
    for wrong in
        ["W^T * diag(1 - tanh(W*x) .^ 2)", "2 * diag(1 - tanh(W*x) .^ 2) * W", "W * diag(1 - tanh(W*x) .^ 2)"]
    {
        let (code, out, _) = run(&["verify", program, "--wrt", "x", "--jacobian", "--claim", wrong]);
        assert_eq!(code, 1, "{wrong}: {out}");
    }
}

#[test]
fn steps_latex_and_json() {
    let (code, out, _) = run(&["hessian", QUADRATIC, "--wrt", "x", "--steps"]);
    assert_eq!(code, 0);
    assert!(out.contains("First, the gradient with respect to x."), "{out}");
    assert!(out.contains("Then the gradient of tr(dx^T d/dx) with respect to x"), "{out}");
    assert!(out.contains("Read off: H[dx] = (A + A^T) * dx, so d2L/dx dx^T = A + A^T"), "{out}");
    let (code, out, _) = run(&["hessian", QUADRATIC, "--wrt", "x", "--latex"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("\\frac{\\partial^2 \\mathcal{L}}{\\partial x \\, \\partial x^{\\top}} = A + A^{\\top}"),
        "{out}"
    );
    let (code, out, _) = run(&["jacobian", "W : m x n; x : n; tanh(W*x)", "--wrt", "x", "--json", "--steps"]);
    assert_eq!(code, 0);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["kind"], "jacobian");
    assert_eq!(doc["matrix"], "diag(1 - tanh(W * x) .^ 2) * W");
    assert_eq!(doc["matrix_shape"], serde_json::json!(["m", "n"]));
    assert_eq!(doc["direction_shape"], serde_json::json!(["n", 1]));
    assert!(doc["steps"]["second"].is_object(), "{out}");
}

#[test]
fn kinks_are_named_and_the_second_derivative_holds_off_them() {
    let program = "X : n x d; w : d; y : n; sum(max(0, 1 - y .* (X*w))) + norm(w)^2";
    let (code, out, _) = run(&["hessian", program, "--wrt", "w"]);
    assert_eq!(code, 0);
    assert_eq!(formula(&out, "d2L/dw dw^T = "), "2 * I");
    assert!(out.contains("note: d/dw has step or sign"), "{out}");
    let (code, out, err) = run(&["check", program, "--wrt", "w", "--order", "2"]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn refusals_name_what_is_wrong() {
    let cases: &[(&[&str], &str)] = &[
        (&["hessian", "W : m x n; x : n; W*x", "--wrt", "x"], "a Hessian is of a scalar expression"),
        (&["hessian", QUADRATIC, "--wrt", "x", "--wrt", "A", "--wrt", "x"], "one or two variables"),
        (&["hessian", QUADRATIC, "--wrt", "z"], "`z` does not occur"),
        (
            &["hessian", "W[i] : d[i-1] x d[i]; X : d[3] x B; sum(prod(W[i], i=1..3) * X)", "--wrt", "W[2]"],
            "member of a family",
        ),
        (&["check", QUADRATIC, "--order", "2"], "needs the variable"),
    ];
    for (args, want) in cases {
        let (code, out, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn a_first_derivative_without_the_variable_gives_zero() {
    let program = "X : n x d; w : d; y : n; lambda : scalar; norm(X*w - y)^2 + lambda * norm(w)^2";
    let (code, out, _) = run(&["hessian", program, "--wrt", "lambda"]);
    assert_eq!(code, 0);
    assert_eq!(formula(&out, "d2L/dlambda dlambda^T = "), "0");
    let (code, out, _) = run(&["check", program, "--wrt", "lambda", "--order", "2"]);
    assert_eq!(code, 0, "{out}");
}

// ------------------------------------------------------- random programs

fn smooth() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["exp", "tanh", "sigmoid", "sin", "cos"])
}

/// A random smooth scalar loss of a vector x (and a matrix A).
fn losses() -> impl Strategy<Value = String> {
    let inner = prop::sample::select(vec!["A*x", "A*x + b", "A^T*x", "x .* (A*x)", "A*(x .* x)"]);
    let outer = prop::sample::select(vec!["sum(F)", "norm(F)^2", "b^T*F", "sum(F .* F)"]);
    (smooth(), inner, outer, any::<bool>()).prop_map(|(f, inner, outer, twice)| {
        let z = format!("{f}({inner})");
        let z = if twice { format!("{z} + A*x") } else { z };
        format!("A : n x n; x : n; b : n; {}", outer.replace('F', &format!("({z})")))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(12), failure_persistence: None, ..ProptestConfig::default() })]

    /// The Hessian of a random smooth loss agrees with differences of its
    /// gradient, and its matrix is symmetric (its transpose is verified as
    /// the Hessian too).
    #[test]
    fn random_hessians_agree_and_are_symmetric(program in losses(), seed in 1u64..1000) {
        let seed_text = seed.to_string();
        let (code, out, err) = run(&["check", &program, "--wrt", "x", "--order", "2", "--seed", &seed_text]);
        prop_assert_eq!(code, 0, "{}: {}{}", program, out, err);
        let (code, out, err) = run(&["hessian", &program, "--wrt", "x"]);
        prop_assert_eq!(code, 0, "{}", err);
        if let Some(l) = out.lines().find(|l| l.starts_with("d2L/dx dx^T = ")) {
            let m = l.split_once(" = ").unwrap().1.rsplit_once("  : ").unwrap().0.trim_end();
            let claim = format!("({m})^T");
            let (code, out, err) = run(&["verify", &program, "--wrt", "x", "--order", "2", "--claim", &claim]);
            prop_assert_eq!(code, 0, "{}: {} is not symmetric: {}{}", program, m, out, err);
        }
    }
}

#[test]
fn plan_order_2_is_the_hessian_vector_product_beside_the_gradient() {
    let (code, out, err) = run(&["plan", LOGISTIC, "--wrt", "w", "--order", "2"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("# The Hessian-vector product H[dw] = "), "{out}");
    // sigmoid(X * w) is computed once, for the gradient and the product.
    let sigmoids = out.lines().filter(|l| l.starts_with("  ") && l.contains("sigmoid(")).count();
    assert_eq!(sigmoids, 1, "{out}");
    let (code, out, err) = run(&["plan", LOGISTIC, "--wrt", "w", "--order", "2", "--emit", "numpy"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("def ") && out.contains("dw"), "{out}");
}

#[test]
fn plan_full_is_the_hessian_matrix_beside_the_gradient() {
    let (code, out, err) = run(&["plan", LOGISTIC, "--wrt", "w", "--order", "2", "--full"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("# The Hessian d2L/dw dw^T = X^T * diag("), "{out}");
    assert!(out.lines().any(|l| l.trim_start().starts_with("dw ") && l.contains("d x d")), "{out}");
    // A matrix variable has no matrix form: refused by name.
    let (code, _, err) =
        run(&["plan", "X : n x m; A : n x n; tr(X^T*A*X)", "--wrt", "X", "--order", "2", "--full"]);
    assert_eq!(code, 2);
    assert!(err.contains("no matrix form"), "{err}");
}

/// The slips of the whole Hessian (the mutants of tests/common): twice it,
/// its negative, 0 and 1.0001 times it are rejected; its transpose, the
/// same matrix since a Hessian is symmetric, is accepted. Every mutant
/// inside gets a verdict (exit 0 or 1), never an error.
#[test]
fn verify_order_2_decides_the_mutants_of_each_hessian() {
    use common::mutants::{mutants, Kind};
    for (program, v, m) in HESSIANS {
        let formula = matdiff::syntax::parse_expr(m).unwrap();
        let mut rejected = 0;
        for mutant in mutants(&formula) {
            let claim = mutant.expr.to_string();
            let (code, out, err) = run(&["verify", program, "--wrt", v, "--order", "2", "--claim", &claim]);
            let whole = mutant.at == "the whole";
            match mutant.kind {
                Kind::Double | Kind::FlipSign | Kind::Zero | Kind::Scale if whole => {
                    assert_eq!(code, 1, "{program}: {claim} ({:?}) accepted: {out}", mutant.kind)
                }
                Kind::AddTranspose | Kind::DropTranspose if whole => {
                    assert_eq!(code, 0, "{program}: {claim} (symmetric) rejected: {out}{err}")
                }
                _ => assert!(code == 0 || code == 1, "{program}: {claim}: {out}{err}"),
            }
            rejected += usize::from(code == 1);
        }
        assert!(rejected >= 4, "{program}: only {rejected} mutants rejected");
    }
}

// ------------------------------------------------ the full Hessian's plan

/// The Hessian of `program` by `v` by central differences of the derived
/// gradient (`s.first`, evaluated by the evaluator, not the plan), column j
/// from the gradient at v ± h e_j.
fn hessian_by_differences(
    s: &matdiff::hessian::SecondOrder,
    env: &matdiff::numeric::Env,
) -> matdiff::numeric::Matrix {
    use matdiff::numeric::{eval, Matrix};
    let x = env.vars[&s.wrt].clone();
    let n = x.nrows() * x.ncols();
    let mut h = Matrix::zeros(n, n);
    for j in 0..n {
        let step = 1e-5 * (1.0 + x[j].abs());
        let at = |sign: f64| {
            let mut env = env.clone();
            env.vars.get_mut(&s.wrt).unwrap()[j] += sign * step;
            eval(&s.first, &env, Some((n, 1))).unwrap()
        };
        let column = (at(1.0) - at(-1.0)) / (2.0 * step);
        h.set_column(j, &column.column(0));
    }
    h
}

/// The plan of `--order 2 --full` with the Hessian `m` in place (the
/// derived one, or a mutant), run by the plan's evaluator on `env`.
fn full_plan_hessian(
    s: &matdiff::hessian::SecondOrder,
    m: Option<&matdiff::syntax::Expr>,
    env: &matdiff::numeric::Env,
) -> matdiff::Result<(matdiff::plan::Plan, matdiff::numeric::Matrix)> {
    let mut d = s.planned(matdiff::hessian::Planned::Matrix)?;
    if let Some(m) = m {
        d.gradients[0].expr = m.clone();
    }
    let plan = matdiff::plan::compile(&d, &Default::default())?;
    let out = matdiff::numeric::run_plan(&plan, env)?;
    Ok((plan, out[1].clone()))
}

/// `plan --order 2 --full` computes the Hessian: its plan, run on random
/// instances (random sizes, every variable of either sign), against central
/// differences of the derived gradient; a slip in the Hessian (twice it, its
/// negative, 1.0001 times it, and any other mutant that changes it) makes the
/// same comparison fail; and the emitted NumPy function returns what the
/// plan does (the Hessian in its own shape, not summed to its variable's).
#[test]
fn full_hessian_plans_agree_with_differences_of_the_gradient() {
    use common::mutants::{mutants, Kind};
    use matdiff::numeric::{relative_error, CheckOptions, Instance};
    let numpy = common::python::has_module("numpy");
    let dir = std::env::temp_dir().join(format!("matdiff-full-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let extra = [
        ("W1 : h x d; X : d x m; w2 : h; y : m; norm(tanh(W1*X)^T*w2 - y)^2", "w2"),
        ("A : n x n; x : n; b : n; b^T*tanh(A*x) + sum(exp(A^T*x))", "x"),
    ];
    let cases = HESSIANS.iter().map(|(p, v, _)| (*p, *v)).chain(extra);
    for (k, (program, v)) in cases.enumerate() {
        let p = matdiff::parse(program).unwrap();
        let s = matdiff::hessian::hessian(&p, &[matdiff::syntax::parse_var(v).unwrap()], &Default::default())
            .unwrap();
        let m = s.matrix.clone().unwrap_or_else(|| panic!("{program}: no matrix"));
        // The instance of the program the plans read (drawn for the product's
        // derivation: the Hessian's has an output of another shape than its variable).
        let d = s.planned(matdiff::hessian::Planned::Product).unwrap();
        let mut caught = 0;
        for seed in 1..=3u64 {
            let instance =
                Instance::draw(&d, &CheckOptions { seed: seed + 10 * k as u64, ..Default::default() })
                    .unwrap();
            let env = &instance.env;
            let want = hessian_by_differences(&s, env);
            let (plan, got) = full_plan_hessian(&s, None, env).unwrap();
            let err = relative_error(&got, &want);
            assert!(
                err < 1e-6,
                "{program}: the plan's Hessian is off by {err:e} ({:?})\n{plan}",
                instance.sizes
            );
            // The mutants on one instance (each is a plan to compile and run).
            for mutant in mutants(&m).into_iter().filter(|_| seed == 1) {
                let Ok((_, wrong)) = full_plan_hessian(&s, Some(&mutant.expr), env) else {
                    continue; // a mutant of another shape: no plan to run
                };
                if wrong.shape() != want.shape() {
                    caught += 1;
                    continue;
                }
                let err = relative_error(&wrong, &want);
                let whole = mutant.at == "the whole";
                if whole && matches!(mutant.kind, Kind::Double | Kind::FlipSign | Kind::Scale) {
                    assert!(err > 1e-5, "{program}: the mutant {} passes ({err:e})", mutant.expr);
                }
                caught += usize::from(err > 1e-5);
            }
            if numpy && seed == 1 {
                let code = matdiff::plan::numpy(&plan, program, None).unwrap();
                let emitted = run_numpy(&dir, k, &code, &plan, env);
                let err = relative_error(&emitted, &want);
                assert!(err < 1e-6, "{program}: the emitted Hessian is off by {err:e}\n{code}");
            }
        }
        assert!(caught >= 3, "{program}: only {caught} mutants caught");
    }
}

/// The `v` entry of the emitted NumPy function's gradients, on `env`.
fn run_numpy(
    dir: &std::path::Path,
    k: usize,
    code: &str,
    plan: &matdiff::plan::Plan,
    env: &matdiff::numeric::Env,
) -> matdiff::numeric::Matrix {
    let json = |m: &matdiff::numeric::Matrix| {
        serde_json::Value::Array(
            m.row_iter().map(|r| serde_json::Value::from(r.iter().copied().collect::<Vec<f64>>())).collect(),
        )
    };
    // In the plan's input order: the function's keyword parameters (renamed
    // where a variable's name is a Python keyword).
    let arrays: Vec<serde_json::Value> = plan.inputs.iter().map(|i| json(&env.vars[&i.var])).collect();
    let module = dir.join(format!("full{k}.py"));
    std::fs::write(&module, code).unwrap();
    let arrays_path = dir.join(format!("full{k}.json"));
    std::fs::write(&arrays_path, serde_json::Value::Array(arrays).to_string()).unwrap();
    let wrt = plan.outputs[1].wrt.as_ref().unwrap().to_string();
    let driver = format!(
        "import inspect, json, sys, numpy as np\nsys.path.insert(0, {dir:?})\nfrom full{k} import value_and_grads\n\
         names = list(inspect.signature(value_and_grads).parameters)\n\
         arrays = dict(zip(names, (np.array(v, dtype=np.float64) for v in json.load(open({arrays:?})))))\n\
         value, grads = value_and_grads(**arrays)\nprint(json.dumps(np.asarray(grads[{wrt:?}]).tolist()))\n",
        dir = dir.display().to_string(),
        arrays = arrays_path.display().to_string(),
    );
    let out = std::process::Command::new(common::python::python()).args(["-c", &driver]).output().unwrap();
    assert!(out.status.success(), "{code}\n{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Vec<f64>> = serde_json::from_slice(&out.stdout).unwrap();
    let (r, c) = (rows.len(), rows[0].len());
    matdiff::numeric::Matrix::from_fn(r, c, |i, j| rows[i][j])
}

/// The library judges second derivatives as data: `hessian::check` and
/// `hessian::verify`, each claim read as what it is (a matrix, the map in
/// the direction, the vec form), a slipped transpose or factor refused.
#[test]
fn the_library_judges_second_derivatives_as_data() {
    use matdiff::hessian::{check, hessian, verify, Compared};
    let var = |v: &str| matdiff::syntax::parse_var(v).unwrap();
    let (domains, control) = (Default::default(), Default::default());
    let p = matdiff::parse(QUADRATIC).unwrap();
    let s = hessian(&p, &[var("x")], &control).unwrap();
    let found = check(&p, &s, &Default::default()).unwrap();
    assert!(found.ok() && found.second.is_some() && found.matrix.is_some());
    let doc = serde_json::to_value(&found).unwrap();
    assert_eq!(doc["kind"], "hessian");
    assert_eq!(doc["ok"], true);
    let judged = |s: &matdiff::hessian::SecondOrder, claim: &str| {
        let v = verify(s, claim, &domains, &control).unwrap();
        (v.verdict.equivalent(), v.compared)
    };
    assert_eq!(judged(&s, "A + A^T"), (true, Compared::MatrixAsMap));
    assert_eq!(judged(&s, "2 * A"), (false, Compared::MatrixAsMap));
    assert_eq!(judged(&s, "A*dx + A^T*dx"), (true, Compared::Map));
    assert_eq!(judged(&s, "A^T*dx + A^T*dx"), (false, Compared::Map));
    let p = matdiff::parse("X : 3x2; A : 3x3; tr(X^T*A*X)").unwrap();
    let s = hessian(&p, &[var("X")], &control).unwrap();
    assert_eq!(judged(&s, "kron(diag(ones(2)), A + A^T)"), (true, Compared::VecForm));
    assert_eq!(judged(&s, "kron(diag(ones(2)), 2*A)"), (false, Compared::VecForm));
    let p = matdiff::parse("s : scalar; s^3").unwrap();
    let s = hessian(&p, &[var("s")], &control).unwrap();
    assert_eq!(judged(&s, "6*s"), (true, Compared::Matrix));
    assert_eq!(judged(&s, "3*s"), (false, Compared::Matrix));
}
