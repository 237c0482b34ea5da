//! `mean(X)`, `mean(X, 1)`, `mean(X, 2)` (issue 19, item 2): the sum over
//! the count of the entries summed, the count a number where the shape tells
//! it and `sum(X .^ 0)` (tied to X, so right at any size) where it is
//! symbolic. Gradients checked against finite differences on random sizes
//! and both signs, values against hand-computed means, wrong claims refused.

mod common;

use matdiff::parse as parse_program;
use matdiff::syntax::{parse_expr, parse_var};
use matdiff::verify::verify;

const CASES: &[&str] = &[
    "X : m x n; mean(X)",
    "mean(X)",
    "X : 3 x 4; mean(X)",
    "X : m x n; mean(X .* X)",
    "X : m x n; w : n; norm(mean(X, 1)^T - w)^2",
    "X : m x n; sum(sin(mean(X, 2)))",
    "X : 3 x n; sum(exp(mean(X, 1)))",
    "W : k x m; X : m x n; sum(tanh(mean(W * X, 2)))",
    "W : k x m; X : m x n; Y : k x n; mean((W * X - Y) .^ 2)",
    "X : m x n; mean(X, 1)",
    "X : m x n; mean(X, 2)",
];

#[test]
fn every_case_matches_finite_differences() {
    for case in CASES {
        common::assert_gradients_agree(case, 1..=4, common::Signs::Both);
    }
}

fn derived(src: &str) -> (String, Vec<(String, String)>) {
    let program = parse_program(src).unwrap();
    let d = matdiff::derive(&program, &Default::default()).unwrap();
    let value = program.expr.to_string();
    (value, d.gradients.iter().map(|g| (g.wrt.to_string(), g.expr.to_string())).collect())
}

/// The value as printed, and the gradient ones/count.
#[test]
fn forms() {
    let (value, grads) = derived("X : 3 x 4; mean(X)");
    assert_eq!(value, "sum(X) / 12");
    assert_eq!(grads[0].1, "ones(3, 4) / 12");
    let (value, grads) = derived("X : m x n; mean(X)");
    assert_eq!(value, "sum(X) / sum(X .^ 0)");
    assert_eq!(grads[0].1, "ones(m, n) / sum(ones(m, n))");
    assert_eq!(derived("X : 3 x n; mean(X, 1)").0, "sum(X, 1) / 3");
    assert_eq!(derived("X : m x 5; mean(X, 2)").0, "sum(X, 2) / 5");
    assert_eq!(derived("X : m x n; mean(X, 2)").0, "sum(X, 2) ./ sum(X .^ 0, 2)");
    // Every printed form is input again.
    for case in CASES {
        let program = parse_program(case).unwrap();
        let text = program.expr.to_string();
        assert_eq!(parse_expr(&text).unwrap(), program.expr, "{text}");
    }
}

/// Means by hand, on a 2x3 matrix, through the parser's count.
#[test]
fn values() {
    use matdiff::numeric::{eval, Env, Matrix};
    let mut env = Env::default();
    env.vars.insert(parse_var("X").unwrap(), Matrix::from_row_slice(2, 3, &[1., 2., 3., 4., 5., 9.]));
    let at = |src: &str| eval(&parse_program(src).unwrap().expr, &env, None).unwrap();
    assert_eq!(at("mean(X)")[(0, 0)], 4.0);
    assert_eq!(at("X : 2 x 3; mean(X)")[(0, 0)], 4.0);
    assert_eq!(at("mean(X, 1)"), Matrix::from_row_slice(1, 3, &[2.5, 3.5, 6.0]));
    assert_eq!(at("mean(X, 2)"), Matrix::from_row_slice(2, 1, &[2.0, 6.0]));
    assert_eq!(at("X : m x n; mean(X, 2)"), Matrix::from_row_slice(2, 1, &[2.0, 6.0]));
}

/// A gradient off by the count, or the sum's gradient, is refused.
#[test]
fn claims() {
    for (src, claim, want) in [
        ("X : m x n; mean(X)", "X .^ 0 / sum(X .^ 0)", true),
        ("X : m x n; mean(X)", "ones(m, n) / (m * n)", false),
        ("X : 3 x 4; mean(X)", "ones(3, 4) / 12", true),
        ("X : 3 x 4; mean(X)", "ones(3, 4) / 4", false),
        ("X : 3 x 4; mean(X)", "ones(3, 4)", false),
        ("X : m x n; sum(mean(X, 1))", "X .^ 0 / sum(ones(m))", true),
        ("X : m x n; sum(mean(X, 1))", "X .^ 0 / sum(ones(n))", false),
        ("X : 3 x n; sum(mean(X, 1))", "ones(3, n) / 3", true),
        ("X : 3 x n; sum(mean(X, 1))", "ones(3, n) / 2", false),
    ] {
        let program = parse_program(src).unwrap();
        let v = verify(&program, &parse_var("X").unwrap(), claim, &Default::default());
        let equivalent = v.as_ref().map(|v| v.equivalent()).unwrap_or(false);
        assert_eq!(equivalent, want, "{src}, d/dX claimed {claim}: {:?}", v.map(|v| v.detail));
    }
}

/// Errors say what `mean` takes.
#[test]
fn errors() {
    for (src, says) in [
        ("X : 3x4; mean(X, 3)", "the axis of `mean` is 1 or 2"),
        ("X : 3x4; mean(X, 1, 2)", "`mean` takes 1 or 2 arguments, found 3"),
        ("X : 3x4; mean()", "expected"),
    ] {
        let e = parse_program(src).unwrap_err();
        assert!(e.to_string().contains(says), "{src}: {e}");
    }
}

/// What users see.
#[test]
fn printed() {
    let mut text = String::new();
    for src in ["X : m x n; mean(X)", "X : 3 x 4; mean(X)", "W : k x m; X : m x n; sum(tanh(mean(W * X, 2)))"]
    {
        for args in [vec!["derive", src], vec!["derive", "--steps", src], vec!["derive", "--latex", src]] {
            text.push_str(&common::transcript(&args));
        }
    }
    common::snapshots().bind(|| insta::assert_snapshot!("constructs_mean", text));
}
