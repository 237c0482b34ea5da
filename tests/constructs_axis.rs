//! Broadcasting, `ones`, sums along an axis, `softmax` and `logsumexp`
//! (issue 19, items 1-3): every gradient checked against finite
//! differences on random instances (symbolic dimensions get random sizes,
//! entries both signs), what a user sees snapshotted, and wrong claims
//! refused by `verify`.

mod common;

use matdiff::parse as parse_program;
use matdiff::syntax::{parse_expr, parse_var};
use matdiff::verify::verify;

const CASES: &[&str] = &[
    // A column broadcast over the batch, and a row over the rows.
    "W : n x d; X : d x B; b : n; sum(tanh(W*X + b))",
    "W : n x d; X : d x B; b : n; W*X + b",
    "W : n x d; X : d x B; b : n; W*X - b",
    "X : m x B; r : 1 x B; sum(sin(X .* r))",
    "X : m x B; c : m; sum(X ./ exp(c))",
    "X : m x B; r : 1 x B; c : m; sum(sin(r + X - c))",
    // A two-layer network with biases.
    "W1 : h x d; b1 : h; W2 : k x h; b2 : k; X : d x B; Y : k x B; norm(W2*tanh(W1*X + b1) + b2 - Y)^2",
    // Ones, explicit.
    "X : m x n; sum(X .* (ones(m) * ones(1, n)))",
    // The ones matrix of sum(X), printed `ones(…)` with X's sizes: declared,
    // numbers, or the names inference gives an undeclared variable.
    "X : m x n; sum(X)",
    "X : 3 x 4; W : 4 x n; sum(X * W)",
    "sum(A * B)",
    "x : n; sum(x) * sum(x .^ 2)",
    "x : n; ones(n)^T * x",
    "X : m x n; sum(sin(X * ones(n)))",
    // Sums along an axis.
    "X : m x n; norm(sum(X, 2))^2",
    "X : m x n; sum(exp(sum(X, 1)))",
    "X : m x n; W : n x m; sum(sin(sum(X * W, 1)))",
    "X : m x n; sum(X, 1)",
    "X : m x n; sum(X, 2)",
    // Softmax and logsumexp, column-wise.
    "x : n; logsumexp(x)",
    "X : m x n; sum(sin(logsumexp(X)))",
    "X : m x n; softmax(X)",
    "Y : m x n; X : m x n; sum(Y .* softmax(X))",
    "W : k x d; X : d x B; b : k; Y : k x B; -sum(Y .* log(softmax(W*X + b)))",
    "W : k x d; X : d x B; b : k; Y : k x B onehot; -sum(Y .* log(softmax(W*X + b)))",
    "W : k x d; X : d x B; Y : k x B; sum(logsumexp(W*X)) - sum(Y .* (W*X))",
    // Single-head attention.
    "K : d x m; Q : d x q; V : e x m; s : scalar; V*softmax(K^T*Q / s)",
    "K : d x m; Q : d x q; V : e x m; s : scalar; Y : e x q; norm(V*softmax(K^T*Q / s) - Y)^2",
];

#[test]
fn every_case_matches_finite_differences() {
    for case in CASES {
        common::assert_gradients_agree(case, 1..=4, common::Signs::AsDrawn);
    }
}

/// Every printed gradient is valid input: it parses, and prints the same.
#[test]
fn printed_gradients_reparse() {
    for case in CASES {
        let program = parse_program(case).unwrap();
        let d = matdiff::derive(&program, &Default::default()).unwrap();
        for g in &d.gradients {
            let text = g.expr.to_string();
            let back = parse_expr(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(back, g.expr, "{text}");
        }
    }
}

/// The textbook forms: the bias sums the upstream over the batch, and
/// softmax regression with one-hot labels is (softmax(Z) - Y) X^T.
#[test]
fn textbook_forms() {
    let layer = "W : n x d; X : d x B; b : n; W*X + b";
    assert_eq!(common::gradient_text(layer, "b"), "sum(G, 2)");
    assert_eq!(common::gradient_text(layer, "W"), "G * X^T");
    let row = "X : m x B; r : 1 x B; X + r";
    assert_eq!(common::gradient_text(row, "r"), "sum(G, 1)");
    let softmax = "W : k x d; X : d x B; b : k; Y : k x B onehot; -sum(Y .* log(softmax(W*X + b)))";
    assert_eq!(common::gradient_text(softmax, "W"), "(softmax(W * X + b * ones(1, B)) - Y) * X^T");
    assert_eq!(common::gradient_text(softmax, "X"), "W^T * (softmax(W * X + b * ones(1, B)) - Y)");
    assert_eq!(common::gradient_text(softmax, "b"), "sum(softmax(W * X + b * ones(1, B)) - Y, 2)");
    // Without the declaration each column of Y may sum to anything: each
    // column of softmax(Z) is scaled by that column's sum of Y.
    let general = "W : k x d; X : d x B; b : k; Y : k x B; -sum(Y .* log(softmax(W*X + b)))";
    assert_eq!(
        common::gradient_text(general, "W"),
        "(softmax(W * X + b * ones(1, B)) .* (ones(k) * sum(Y, 1)) - Y) * X^T"
    );
    assert_eq!(common::gradient_text("x : n; logsumexp(x)", "x"), "softmax(x)");
}

/// The gradient of `sum(X)` is the ones matrix of X's shape, printed with
/// its sizes (numbers, declared names, or the `d0, d1, …` inference gives
/// an undeclared variable; `ones(n)` for a column); where a size is a
/// member of a family (`d[j]`) it stays `X .^ 0`. The printed forms parse
/// back and are sized by the instance where they are evaluated (the
/// finite-difference cases above).
#[test]
fn ones_matrices_print_with_their_sizes() {
    assert_eq!(common::gradient_text("X : m x n; sum(X)", "X"), "ones(m, n)");
    assert_eq!(common::gradient_text("X : 3 x 4; sum(X)", "X"), "ones(3, 4)");
    assert_eq!(common::gradient_text("x : n; sum(x)", "x"), "ones(n)");
    assert_eq!(common::gradient_text("r : 1 x n; sum(r)", "r"), "ones(1, n)");
    assert_eq!(common::gradient_text("sum(A * B)", "A"), "ones(d0, d2) * B^T");
    assert_eq!(common::gradient_text("X : 3 x 4; W : 4 x n; sum(X * W)", "W"), "X^T * ones(3, n)");
    assert_eq!(common::gradient_text("X : m x n; 2 * sum(X)", "X"), "2 * ones(m, n)");
    // The ones folds away where it multiplies entrywise.
    assert_eq!(common::gradient_text("X : m x n; sum(X .^ 2)", "X"), "2 * X");
    let chain = parse_program("W[i] : d[i-1] x d[i]; sum(prod(W[i], i=1..n))").unwrap();
    let options = matdiff::DeriveOptions { wrt: vec![parse_var("W[2]").unwrap()], ..Default::default() };
    let d = matdiff::derive(&chain, &options).unwrap();
    assert_eq!(d.gradients[0].expr.to_string(), "W[1]^T * prod(W[i], i=1..n) .^ 0 * prod(W[i], i=3..n)^T");
    // A claim in either spelling is the gradient; a ones of the wrong shape is not.
    let program = parse_program("X : m x n; sum(X)").unwrap();
    for (claim, want) in
        [("ones(m, n)", true), ("X .^ 0", true), ("ones(m) * ones(1, n)", true), ("2 * ones(m, n)", false)]
    {
        let v = verify(&program, &parse_var("X").unwrap(), claim, &Default::default()).unwrap();
        assert_eq!(v.equivalent(), want, "d/dX claimed {claim}: {}", v.detail);
    }
}

/// A sum whose simplified form would begin with a negated term begins with
/// a positive one, in text and in LaTeX.
#[test]
fn sums_begin_with_a_positive_term() {
    let logistic = "X : m x d; w : d; y : m; -sum(y .* log(sigmoid(X*w)) + (1 - y) .* log(1 - sigmoid(X*w)))";
    assert_eq!(common::gradient_text(logistic, "y"), "log(1 - sigmoid(X * w)) - log(sigmoid(X * w))");
    assert_eq!(common::gradient_text("P : 3x3; C : 3x3; -logdet(P) + tr(P*C)", "P"), "C^T - P^T^-1");
    assert_eq!(common::gradient_text("a : n; b : n; c : n; sum(-a + b + c) ", "a"), "-ones(n)");
    let program = parse_program("P : 3x3; C : 3x3; -logdet(P) + tr(P*C)").unwrap();
    let d = matdiff::derive(&program, &Default::default()).unwrap();
    let latex = matdiff::syntax::to_latex(&d.gradients[0].expr);
    assert!(latex.starts_with("C^{\\top} - "), "{latex}");
}

/// Broadcasting is decided only on known dimensions: a column against a
/// matrix whose columns are open unifies instead (no guess).
#[test]
fn broadcasting_needs_known_dimensions() {
    let program = parse_program("b : n; W : n x d; b + W*X").unwrap();
    assert!(!program.expr.to_string().contains("ones"), "{}", program.expr);
    let program = parse_program("b : n; W : n x d; X : d x B; b + W*X").unwrap();
    assert_eq!(program.expr.to_string(), "b * ones(1, B) + W * X");
    // A column against a row is not broadcast both ways.
    assert!(matdiff::shape::infer(&parse_program("c : 3; r : 1 x 4; c + r").unwrap()).is_err());
}

/// Wrong claims are refused: the bias without its sum over the batch, a
/// sum along the wrong axis, softmax regression without the one-hot
/// declaration claimed in its one-hot form.
#[test]
fn wrong_claims_are_not_equivalent() {
    let cases = [
        ("W : n x d; X : d x B; b : n; sum(tanh(W*X + b))", "b", "sum(1 - tanh(W*X + b) .^ 2, 2)", true),
        ("W : n x d; X : d x B; b : n; sum(tanh(W*X + b))", "b", "(1 - tanh(W*X + b) .^ 2) * ones(B)", true),
        ("W : n x d; X : d x B; b : n; W*X + b", "b", "sum(G, 2)", true),
        ("W : 3 x d; X : d x B; b : 3; W*X + b", "b", "sum(G, 1)^T", false),
        ("W : 3 x 2; X : 2 x 3; b : 3; W*X + b", "b", "G * ones(3) / 3", false),
        ("X : m x n; norm(sum(X, 2))^2", "X", "2 * sum(X, 2) * ones(1, n)", true),
        ("X : m x n; norm(sum(X, 2))^2", "X", "2 * ones(m) * sum(X, 1)", false),
        ("x : n; logsumexp(x)", "x", "softmax(x)", true),
        ("x : n; logsumexp(x)", "x", "exp(x)", false),
        (
            "W : k x d; X : d x B; Y : k x B onehot; -sum(Y .* log(softmax(W*X)))",
            "W",
            "(softmax(W*X) - Y) * X^T",
            true,
        ),
        (
            "W : k x d; X : d x B; Y : k x B; -sum(Y .* log(softmax(W*X)))",
            "W",
            "(softmax(W*X) - Y) * X^T",
            false,
        ),
    ];
    for (src, wrt, claim, want) in cases {
        let program = parse_program(src).unwrap();
        let v = verify(&program, &parse_var(wrt).unwrap(), claim, &Default::default())
            .unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(v.equivalent(), want, "{src}, d/d{wrt} claimed {claim}: {}", v.detail);
    }
}

/// Values: column sums, row sums, softmax columns that sum to 1, and a
/// logsumexp that does not overflow.
#[test]
fn values() {
    use matdiff::numeric::{eval, Env, Matrix};
    let mut env = Env::default();
    env.vars.insert(parse_var("X").unwrap(), Matrix::from_row_slice(2, 3, &[1., 2., 3., 4., 5., 6.]));
    let at = |src: &str| eval(&parse_expr(src).unwrap(), &env, None).unwrap();
    assert_eq!(at("sum(X, 1)"), Matrix::from_row_slice(1, 3, &[5., 7., 9.]));
    assert_eq!(at("sum(X, 2)"), Matrix::from_row_slice(2, 1, &[6., 15.]));
    assert_eq!(at("X * ones(3)"), Matrix::from_row_slice(2, 1, &[6., 15.]));
    let s = at("sum(softmax(X), 1)");
    assert!(s.iter().all(|v| (v - 1.0).abs() < 1e-15), "{s}");
    env.vars.insert(parse_var("Y").unwrap(), Matrix::from_row_slice(2, 1, &[1000., 1000.]));
    let l = eval(&parse_expr("logsumexp(Y)").unwrap(), &env, None).unwrap();
    assert!((l[(0, 0)] - (1000.0 + 2f64.ln())).abs() < 1e-9, "{l}");
}

/// What users see: derive with --steps, and LaTeX, for the dense layer
/// with a bias, softmax regression and attention.
#[test]
fn printed() {
    let mut text = String::new();
    for src in [
        "W : n x d; X : d x B; b : n; tanh(W*X + b)",
        "W : k x d; X : d x B; b : k; Y : k x B onehot; -sum(Y .* log(softmax(W*X + b)))",
        "K : d x m; Q : d x q; V : e x m; s : scalar; V*softmax(K^T*Q / s)",
    ] {
        for args in [vec!["derive", "--steps", src], vec!["derive", "--latex", src]] {
            text.push_str(&common::transcript(&args));
        }
    }
    common::snapshots().bind(|| insta::assert_snapshot!("constructs_axis", text));
}

/// Errors name what is wrong.
#[test]
fn errors() {
    for (src, says) in [
        ("X : 3x4; sum(X, 3)", "the axis of `sum` is 1 or 2"),
        ("X : 3x4; sum(X, 1, 2)", "`sum` takes 1 or 2 arguments, found 3"),
        ("X : 3x4; softmax(X, 1)", "`softmax` takes 1 argument, found 2"),
        ("X : 3x4; X + ones(0)", "a size of `ones` is a number or a dimension name"),
        ("X : 3x4; X + ones(X*X)", "a size of `ones` is a number or a dimension name"),
    ] {
        let e = parse_program(src).unwrap_err();
        assert!(e.to_string().contains(says), "{src}: {e}");
    }
}
