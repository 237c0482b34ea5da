//! Norms and diagonals: `norm1(x)` (also `norm(x, 1)`), `norm(x, 2)` of a
//! vector, `diag(x)` of a vector and `diag(A)` of a square matrix. Each
//! derivative is checked against finite differences on random instances of
//! random sizes (the symbolic dimensions are drawn per seed), with both
//! signs; wrong gradients are caught by `check` and `verify`; what users
//! see is snapshotted.

mod common;

use std::process::Command;

use matdiff::numeric::{check, CheckOptions};
use matdiff::syntax::{parse_expr, parse_program, parse_var};
use matdiff::{derive, DeriveOptions};

/// One program per construct (and a few together), with symbolic
/// dimensions, so that every seed draws other sizes.
const CASES: &[&str] = &[
    "x : n; A : m x n; y : m; norm1(A*x - y)",
    "x : n; A : m x n; y : m; norm(A*x - y, 1)",
    "W : m x n; X : n x b; norm1(W*X)",
    "x : n; A : m x n; y : m; norm(A*x - y, 2)",
    "x : 1 x n; A : n x m; norm(x*A, 2)^2",
    "x : n; A : n x n; tr(A*diag(x))",
    "x : 1 x n; A : n x n; B : n x n; tr(A*B*diag(x))",
    "x : n; A : m x n; y : m; norm(A*diag(x)*x - y)^2",
    "X : n x n; y : n; y^T * diag(X)",
    "X : n x n; A : m x n; sum(A * diag(X*X))",
    "x : n; y : n; y^T * diag(diag(x)) + tr(diag(x))",
    "x : n; X : n x n; norm1(diag(X) - x) + norm(diag(x) * X)^2",
    // A layer (the upstream G) through each kind.
    "x : n; X : n x n; diag(x) * X + diag(diag(X))",
    "X : n x n; diag(X)",
];

#[test]
fn every_derivative_matches_finite_differences() {
    for case in CASES {
        common::assert_gradients_agree(case, 1..=6, common::Signs::Both);
    }
}

/// The forms a textbook prints.
#[test]
fn textbook_forms() {
    let cases = [
        ("x : 3; A : 3x3; tr(A*diag(x))", "x", "diag(A)"),
        ("x : 3; A : 3x3; tr(A*diag(x))", "A", "diag(x)"),
        ("x : 1x3; A : 3x3; tr(A*diag(x))", "x", "diag(A)^T"),
        ("x : n; A : n x n; B : n x n; tr(A*B*diag(x))", "x", "diag(A * B)"),
        ("X : n x n; y : n; y^T * diag(X)", "X", "diag(y)"),
        ("x : n; tr(diag(x))", "x", "ones(n)"),
        ("x : n; s : scalar; s * tr(diag(x))", "s", "sum(x)"),
        ("x : n; y : n; y^T * diag(diag(x))", "x", "y"),
        ("x : n; A : m x n; y : m; norm1(A*x - y)", "x", "A^T * sign(A * x - y)"),
        ("x : n; A : m x n; y : m; norm(A*x - y, 1)", "A", "sign(A * x - y) * x^T"),
        ("x : n; norm(x, 2)", "x", "x / norm(x)"),
        ("x : n; norm(x, 2)^2", "x", "2 * x"),
    ];
    for (src, wrt, want) in cases {
        let program = parse_program(src).unwrap();
        let options = DeriveOptions { wrt: vec![parse_var(wrt).unwrap()], ..Default::default() };
        let d = derive(&program, &options).unwrap();
        assert_eq!(d.gradients[0].expr.to_string(), want, "{src}");
    }
}

/// Every construct prints in one canonical form that parses back to the
/// same tree: `norm(x, 1)` is `norm1(x)`.
#[test]
fn printed_forms_reparse() {
    for (src, printed) in [
        ("norm(x, 1) + norm1(y)", "norm1(x) + norm1(y)"),
        ("norm(x, 2) * norm(A)", "norm(x, 2) * norm(A)"),
        ("diag(x)^T * diag(A * B) + sign(C)", "diag(x)^T * diag(A * B) + sign(C)"),
    ] {
        let e = parse_expr(src).unwrap();
        assert_eq!(e.to_string(), printed);
        assert_eq!(parse_expr(&e.to_string()).unwrap(), e);
    }
    for program in CASES {
        let program = parse_program(program).unwrap();
        let d = derive(&program, &DeriveOptions::default()).unwrap();
        for g in &d.gradients {
            let text = g.expr.to_string();
            assert_eq!(parse_expr(&text).unwrap(), g.expr, "{text}");
        }
    }
}

/// A wrong gradient is caught by the check (its numbers differ) and by
/// verify (not equivalent, exit 1).
#[test]
fn wrong_gradients_are_not_equivalent() {
    let cases = [
        // The factors of the diagonal in the wrong order.
        ("x : 3; A : 3x3; B : 3x3; tr(A*B*diag(x))", "x", "diag(B * A)"),
        // The diagonal matrix taken for the full one.
        ("X : 3x3; y : 3; y^T * diag(X)", "X", "y * y^T"),
        ("x : 3; A : 3x3; tr(A*diag(x))", "A", "x * x^T"),
        // The derivative of |u| taken as 1, or as u.
        ("x : 4; A : 3x4; y : 3; norm1(A*x - y)", "x", "A^T * (A * x - y) .^ 0"),
        ("x : 4; A : 3x4; y : 3; norm1(A*x - y)", "x", "A^T * (A * x - y)"),
        // The square of the norm's derivative.
        ("x : 4; norm(x, 2)", "x", "x"),
    ];
    for (src, wrt, wrong) in cases {
        let program = parse_program(src).unwrap();
        let mut d = derive(&program, &DeriveOptions::default()).unwrap();
        let g = d.gradients.iter_mut().find(|g| g.wrt.to_string() == wrt).unwrap();
        g.expr = parse_expr(wrong).unwrap();
        for seed in 1..=3 {
            let report = check(&d, &CheckOptions { seed, ..Default::default() }).unwrap();
            let r = report.results.iter().find(|r| r.wrt.to_string() == wrt).unwrap();
            assert!(!r.ok(), "{src}: `{wrong}` passed the check (seed {seed}, error {:?})", r.max_rel_err);
        }
        let run = matdiff(&["verify", src, "--wrt", wrt, "--claim", wrong]);
        assert_eq!(run.0, 1, "{src}: verify `{wrong}`:\n{}{}", run.1, run.2);
        assert!(run.1.starts_with("not equivalent"), "{src}: verify `{wrong}`:\n{}", run.1);
    }
    // And the right ones, in other spellings, are equivalent.
    for (src, wrt, right) in [
        ("x : 3; A : 3x3; tr(A*diag(x))", "x", "diag(A^T)"),
        ("x : 3; A : 3x3; B : 3x3; tr(A*B*diag(x))", "x", "diag(B^T * A^T)"),
        ("x : 4; norm(x, 2)", "x", "x / norm(x, 2)"),
    ] {
        let run = matdiff(&["verify", src, "--wrt", wrt, "--claim", right]);
        assert_eq!(run.0, 0, "{src}: verify `{right}`:\n{}{}", run.1, run.2);
    }
}

/// Refusals by name: the spectral norm, other p, a diag whose argument
/// may be a vector or a matrix, a diag of a non-square matrix; arity.
#[test]
fn refusals_name_what_is_wrong() {
    for (src, says) in [
        ("W : 3x4; norm(W, 2)", "spectral norm"),
        ("W : 3x4; norm(W, 2)", "norm(A) is the Frobenius norm"),
        ("x : 3; norm(x, 3)", "p must be 1 or 2"),
        ("x : 3; norm(x, p)", "p must be 1 or 2"),
        ("x : 3; norm(x, 1, 2)", "`norm` takes 1 argument, found 3"),
        ("diag(X)", "does not tell a vector from a square matrix"),
        ("diag(X)", "declare it"),
        ("X : 3x4; diag(X)", "diag needs a vector or a square matrix, but `X` is 3x4"),
        ("x : 3; diag(x, 2)", "`diag` takes 1 argument, found 2"),
        ("x : 3; norm1()", "expected"),
    ] {
        let run = matdiff(&["derive", src]);
        assert_eq!(run.0, 2, "{src}:\n{}{}", run.1, run.2);
        assert!(run.2.contains(says), "{src}: wanted {says:?} in\n{}", run.2);
    }
    // A kink of norm1 that no draw can leave is named, not judged.
    let run = matdiff(&["check", "x : 3; norm1(1e-9 * x) * sum(x)"]);
    assert_eq!(run.0, 2, "{}{}", run.1, run.2);
}

fn matdiff(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_matdiff")).args(args).output().expect("run matdiff");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// What users see: the steps through norm1 and both diags, the LaTeX of
/// every construct, the plan and its NumPy and PyTorch code.
#[test]
fn what_users_see() {
    let mut text = String::new();
    for args in [
        &["derive", "x : 3; A : 3x3; tr(A*diag(x))", "--steps"][..],
        &["derive", "X : 3x3; y : 3; y^T * diag(X)", "--steps"],
        &["derive", "x : 4; A : 3x4; y : 3; norm(A*x - y, 1) + norm(x, 2)", "--steps", "--wrt", "x"],
        &["derive", "W : 3x4; norm(W, 2)"],
        &["derive", "diag(X)"],
        &["latex", "x : n; A : n x n; y : n; norm1(x) + norm(x, 2) + norm(A) + tr(diag(x)) * sign(y) + y^T * diag(A)"],
        &["derive", "norm(x, 2)"],
        &["plan", "x : 3; A : 3x3; tr(A*diag(x)) + norm1(diag(A))"],
        &["plan", "x : 3; A : 3x3; tr(A*diag(x)) + norm1(diag(A))", "--emit", "numpy"],
        &["plan", "x : 3; A : 3x3; tr(A*diag(x)) + norm1(diag(A))", "--emit", "pytorch"],
    ] {
        let (code, out, err) = matdiff(args);
        text.push_str(&format!("$ matdiff {}\n[exit {code}]\n{out}{err}\n", args.join(" ")));
    }
    common::snapshots().bind(|| insta::assert_snapshot!("constructs_norm_diag", text));
}
