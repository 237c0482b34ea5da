//! Chains of symbolic length: `prod(W[i], i=1..n)` and the gradient of W[j]
//! for every j, snapshotted, checked, and compared with concrete chains.

mod common;

use matdiff::numeric::{check, eval, gradient_value, relative_error, CheckOptions, Env, Instance, Matrix};
use matdiff::syntax::{parse_program, parse_var};
use proptest::prelude::*;

const SEED: &str = "W[i] : d[i-1] x d[i]; X : d[n] x B; prod(W[i], i=1..n) * X";

/// The seed, a chain with a fixed prefix, dL/dX, transposed factors.
const PROGRAMS: &[&str] = &[
    SEED,
    "W[i] : d[i-1] x d[i]; X : d[n] x B; A : m x d[0]; A * prod(W[i], i=1..n) * X",
    "W[i] : d[i] x d[i-1]; X : d[n] x B; prod(W[i]^T, i=1..n) * X",
    "W[i] : d[i-1] x d[i]; X : d[n] x B; Y : d[0] x B; norm(prod(W[i], i=1..n) * X - Y)^2",
];

#[test]
fn printed_and_checked() {
    let mut text = String::new();
    for src in PROGRAMS {
        let program = parse_program(src).unwrap();
        let d = matdiff::derive(&program, &Default::default()).unwrap_or_else(|e| panic!("{src}: {e}"));
        for seed in 1..=6 {
            let report = check(&d, &CheckOptions { seed, ..Default::default() }).unwrap();
            assert!(report.ok(), "{src} (seed {seed}): {:?} {:?}", report.indices, report.results);
        }
        text.push_str(&format!("$ matdiff derive '{src}'\n{}\n", matdiff::cli::render_derivation(&d, false)));
    }
    let program = parse_program(SEED).unwrap();
    let d = matdiff::derive(&program, &Default::default()).unwrap();
    let wj = d.gradients.iter().find(|g| g.wrt.to_string() == "W[j]").unwrap();
    assert_eq!(wj.expr.to_string(), "prod(W[i], i=1..j-1)^T * G * X^T * prod(W[i], i=j+1..n)^T");
    assert_eq!(wj.shape.to_string(), "d[j-1] x d[j]");
    assert_eq!(wj.differential.conditions[0].to_string(), "1 <= j <= n");
    common::snapshots().bind(|| insta::assert_snapshot!("symbolic_chains", text));
}

#[test]
fn json_carries_the_condition() {
    let mut out = Vec::new();
    let argv = ["matdiff", "derive", "--json", "--wrt", "W[j]", SEED].map(String::from).to_vec();
    assert_eq!(matdiff::cli::run(argv, &mut out, &mut Vec::new()), 0);
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(doc["gradients"][0]["condition"], "1 <= j <= n");
    assert_eq!(doc["gradients"][0]["shape"], serde_json::json!(["d[j-1]", "d[j]"]));
}

#[test]
fn verify_symbolic_claims() {
    let program = parse_program(SEED).unwrap();
    let wj = parse_var("W[j]").unwrap();
    let grouped = "prod(W[i], i=1..j-1)^T * G * (prod(W[i], i=j+1..n) * X)^T";
    let v = matdiff::verify::verify(&program, &wj, grouped, &Default::default()).unwrap();
    assert!(v.equivalent(), "{}", v.detail);
    // An off-by-one in a range has the wrong shape; a missing transpose too.
    for wrong in [
        "prod(W[i], i=1..j)^T * G * X^T * prod(W[i], i=j+1..n)^T",
        "prod(W[i], i=1..j-1) * G * X^T * prod(W[i], i=j+1..n)^T",
    ] {
        let v = matdiff::verify::verify(&program, &wj, wrong, &Default::default()).unwrap();
        assert!(!v.equivalent(), "{wrong}: {}", v.detail);
    }
    // With square factors the shapes agree and only the numbers can refute.
    let square = parse_program("W[i] : d x d; X : d x B; prod(W[i], i=1..n) * X").unwrap();
    let off_by_one = "prod(W[i], i=1..j)^T * G * X^T * prod(W[i], i=j+2..n)^T";
    let v = matdiff::verify::verify(&square, &wj, off_by_one, &Default::default()).unwrap();
    assert!(!v.equivalent() && v.method == matdiff::verify::Method::Numeric, "{}", v.detail);
}

/// The concrete chain W1 ⋯ Wn X with the same matrices as a symbolic
/// instance: its gradient of Wj, derived on its own.
fn concrete_gradient(n: usize, j: usize, env: &Env) -> Matrix {
    let factors: Vec<String> = (1..=n).map(|i| format!("W{i}")).collect();
    let src = format!("{}*X", factors.join("*"));
    let program = parse_program(&src).unwrap();
    let wrt = vec![parse_var(&format!("W{j}")).unwrap()];
    let d = matdiff::derive(&program, &matdiff::DeriveOptions { wrt, ..Default::default() }).unwrap();
    let mut concrete = Env::default();
    for i in 1..=n {
        concrete.vars.insert(
            parse_var(&format!("W{i}")).unwrap(),
            env.vars[&parse_var(&format!("W[{i}]")).unwrap()].clone(),
        );
    }
    for v in ["X", "G"] {
        concrete.vars.insert(parse_var(v).unwrap(), env.vars[&parse_var(v).unwrap()].clone());
    }
    let value = concrete.vars[&d.gradients[0].wrt].clone();
    eval(&d.gradients[0].expr, &concrete, Some(value.shape())).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]
    /// For n = 1..7 and random sizes, the symbolic formula at every j equals
    /// the concrete derivation of the n-factor chain.
    #[test]
    fn symbolic_formula_equals_concrete_chains(n in 1usize..=7, seed in 0u64..1000) {
        let program = parse_program(SEED).unwrap();
        let wrt = vec![parse_var("W[j]").unwrap()];
        let d = matdiff::derive(&program, &matdiff::DeriveOptions { wrt, ..Default::default() }).unwrap();
        for j in 1..=n {
            let dims = [("n".to_string(), n), ("j".to_string(), j)].into_iter().collect();
            let instance = Instance::draw(&d, &CheckOptions { seed, dims, ..Default::default() }).unwrap();
            let symbolic = gradient_value(&d.gradients[0], &instance.env).unwrap();
            let concrete = concrete_gradient(n, j, &instance.env);
            prop_assert!(relative_error(&symbolic, &concrete) < 1e-12, "n={} j={}", n, j);
        }
    }
}
