//! Second order: Hessians, mixed second derivatives and Jacobians
//! (`matdiff::hessian`), their forms and their agreement with finite
//! differences of the derived gradient.

mod common;

use matdiff::hessian::{hessian, jacobian};
use matdiff::syntax::parse_var;

fn h(src: &str, wrt: &[&str]) -> matdiff::hessian::SecondOrder {
    let p = matdiff::parse(src).unwrap();
    let wrt: Vec<_> = wrt.iter().map(|w| parse_var(w).unwrap()).collect();
    hessian(&p, &wrt).unwrap_or_else(|e| panic!("{src}: {}", e.message))
}

fn j(src: &str, wrt: &str) -> matdiff::hessian::SecondOrder {
    let p = matdiff::parse(src).unwrap();
    jacobian(&p, &parse_var(wrt).unwrap()).unwrap_or_else(|e| panic!("{src}: {}", e.message))
}

fn show(s: &matdiff::hessian::SecondOrder) -> String {
    format!(
        "map {} : {} | matrix {:?} : {:?} | {:?}",
        s.map,
        s.map_shape,
        s.matrix.as_ref().map(|m| m.to_string()),
        s.matrix_shape.as_ref().map(|m| m.to_string()),
        s.no_matrix
    )
}

#[test]
fn scratch() {
    for (src, wrt) in [
        ("x : n; A : n x n; x^T*A*x", vec!["x"]),
        ("A : m x n; x : n; b : m; norm(A*x - b)^2", vec!["x"]),
        (
            "X : m x n; w : n; y : m; -sum(y .* log(sigmoid(X*w)) + (1 - y) .* log(1 - sigmoid(X*w)))",
            vec!["w"],
        ),
        ("X : n x m; A : n x n; tr(X^T*A*X)", vec!["X"]),
        ("x : n; x^T*x", vec!["x"]),
        ("x : n; y : m; A : n x m; x^T*A*y", vec!["x", "y"]),
        ("s : scalar; x : n; s^2 * x^T * x", vec!["s"]),
        ("s : scalar; x : n; s^2 * x^T * x", vec!["x", "s"]),
        ("x : n; sum(exp(x))", vec!["x"]),
        ("x : n; sum(tanh(x))", vec!["x"]),
        ("x : n; logsumexp(x)", vec!["x"]),
    ] {
        println!("{src} {wrt:?}: {}", show(&h(src, &wrt)));
    }
    for (src, wrt) in [
        ("A : m x n; x : n; A*x", "x"),
        ("W : m x n; x : n; tanh(W*x)", "x"),
        ("W : m x n; X : n x B; W*X", "X"),
        ("x : n; sum(exp(x))", "x"),
        ("x : n; softmax(x)", "x"),
    ] {
        println!("{src} {wrt}: {}", show(&j(src, wrt)));
    }
}
