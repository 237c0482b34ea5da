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
        text.push_str(&format!("$ matdiff derive '{src}'\n{}\n", matdiff::cli::render_derivation(&d)));
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

/// A product whose members are shifted (`prod(W[i+1], i=0..n-1)`, or
/// counting from 2 with `W[i-1]`) has the members W[1]..W[n], as the plain
/// one does, declared or not (an undeclared family's members all have the
/// one square shape its factor was typed with): `check` draws those members
/// and agrees, and each gradient equals the plain product's on the same
/// instance. A family that nothing sizes is named, at its product.
#[test]
fn shifted_members_check_like_plain_ones() {
    let pairs = [
        ("prod(W[i], i=1..n) * X", "prod(W[i+1], i=0..n-1) * X"),
        ("W[i] : d x d; prod(W[i], i=1..n) * X", "W[i] : d x d; prod(W[i+1], i=0..n-1) * X"),
        (SEED, "W[i] : d[i-1] x d[i]; X : d[n] x B; prod(W[i-1], i=2..n+1) * X"),
        (SEED, "W[i] : d[i-1] x d[i]; X : d[n] x B; prod(W[i+1], i=0..n-1) * X"),
    ];
    for (plain, shifted) in pairs {
        let (p, s) = (parse_program(plain).unwrap(), parse_program(shifted).unwrap());
        let (dp, ds) = (
            matdiff::derive(&p, &Default::default()).unwrap(),
            matdiff::derive(&s, &Default::default()).unwrap(),
        );
        for n in [1usize, 2, 4] {
            for j in 1..=n {
                let dims = [("n".to_string(), n), ("j".to_string(), j)].into_iter().collect();
                let options = CheckOptions { seed: (n * 10 + j) as u64, dims, ..Default::default() };
                let report = check(&ds, &options).unwrap_or_else(|e| panic!("{shifted} (n = {n}): {e}"));
                assert!(report.ok(), "{shifted} (n = {n}, j = {j}): {:?}", report.results);
                let instance = Instance::draw(&ds, &options).unwrap();
                let mut members: Vec<String> =
                    instance.env.vars.keys().map(|v| v.to_string()).filter(|v| v.starts_with("W[")).collect();
                members.sort();
                let want: Vec<String> = (1..=n).map(|k| format!("W[{k}]")).collect();
                assert_eq!(members, want, "{shifted} (n = {n})");
                for (gs, gp) in ds.gradients.iter().zip(&dp.gradients) {
                    assert_eq!(gs.wrt, gp.wrt);
                    let (a, b) = (
                        gradient_value(gs, &instance.env).unwrap(),
                        gradient_value(gp, &instance.env).unwrap(),
                    );
                    assert!(relative_error(&a, &b) < 1e-12, "{shifted} (n = {n}, j = {j}): d/d{}", gs.wrt);
                }
            }
        }
    }
    // A wrong range (one member too many) is no longer the same product.
    let (long, plain) = (
        parse_program("prod(W[i+1], i=0..n) * X").unwrap(),
        parse_program("prod(W[i], i=1..n) * X").unwrap(),
    );
    let p = matdiff::derive(&long, &Default::default()).unwrap();
    let q = matdiff::derive(&plain, &Default::default()).unwrap();
    let options = CheckOptions {
        seed: 3,
        dims: [("n".to_string(), 2), ("j".to_string(), 1)].into(),
        ..Default::default()
    };
    let instance = Instance::draw(&p, &options).unwrap();
    assert_eq!(instance.env.vars.keys().filter(|v| v.name == "W").count(), 3);
    let x = parse_var("X").unwrap();
    let gx = |d: &matdiff::Derivation| d.gradients.iter().find(|g| g.wrt == x).unwrap().clone();
    assert!(
        relative_error(
            &gradient_value(&gx(&p), &instance.env).unwrap(),
            &gradient_value(&gx(&q), &instance.env).unwrap()
        ) > 1e-3
    );

    let (mut out, mut err) = (Vec::new(), Vec::new());
    let argv = ["matdiff", "check", "prod(W[i+1], i=0..n-1)", "--dims", "n=2"].map(String::from).to_vec();
    assert_eq!(matdiff::cli::run(argv, &mut out, &mut err), 2);
    let err = String::from_utf8(err).unwrap();
    assert!(err.contains("the shape of the members of `W` is undetermined"), "{err}");
    assert!(err.contains("this product") && err.contains('^'), "{err}");
    assert!(err.contains("`W[i] : d[i-1] x d[i]`"), "{err}");
}

/// Members of an undeclared family take the shape the product typed for
/// it, never open sizes (`?6 x ?7`), in the gradient and in the plan.
#[test]
fn undeclared_members_are_sized_as_the_product_types_them() {
    let text = common::transcript(&["derive", "prod(W[i], i=1..n) * X"]);
    assert!(text.contains(": d0 x d0   for 1 <= j <= n"), "{text}");
    let text = common::transcript(&["plan", "prod(W[i], i=1..n) * X", "--dims", "n=2"]);
    assert!(!text.contains('?'), "{text}");
    assert!(text.contains("S1    = W[2] * X      d0 x d1"), "{text}");
}
