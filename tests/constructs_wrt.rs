//! Gradients with respect to a definition (`--wrt H`, the backprop signal
//! dL/dH) and to a member of a chain whose factors are any body F(W[i])
//! (`prod(I + W[i], i=1..n)`), for every j and for a constant member of a
//! chain of symbolic length: checked numerically, against the concrete
//! chains, by verify, and snapshotted.

mod common;

use matdiff::numeric::{check, eval, gradient_value, relative_error, CheckOptions, Env, Instance, Matrix};
use matdiff::syntax::{parse_program, parse_var, Program, VarName};
use matdiff::DeriveOptions;

/// Programs with a definition H asked for (symbolic sizes: each check draws
/// its own), scalar losses and layers.
const INTERMEDIATE: &[(&str, &str)] = &[
    ("W1 : 4x3; X : 3x5; H = W1*X; sum(sigmoid(H))", "H"),
    ("H = W1*X; Y : d x B; sum(tanh(H) .* Y)", "H"),
    ("H = W1*X; Z = W2*H; norm(Z - Y)^2", "H"),
    ("H = W1*X; Z = W2*tanh(H); Z", "H"),
    ("H = W1*X; A = tanh(H); Z = W2*A; sum(exp(Z)) + sum(A .* A)", "A"),
    ("H = W1*X; Z = W2*H; Z + W3*H", "H"),
    ("H = W1*X; Z = W2*H; sum(Z .* Z)", "Z"),
];

fn derive_wrt<'p>(program: &'p Program, wrt: &str) -> matdiff::Derivation<'p> {
    let options = DeriveOptions { wrt: vec![parse_var(wrt).unwrap()], ..Default::default() };
    matdiff::derive(program, &options).unwrap_or_else(|e| panic!("{wrt}: {e}"))
}

fn kept(src: &str, wrt: &str) -> Program {
    parse_program(src).unwrap().with_definitions_kept(&[parse_var(wrt).unwrap()])
}

#[test]
fn intermediate_gradients_agree_with_finite_differences() {
    for (src, wrt) in INTERMEDIATE {
        let program = kept(src, wrt);
        let d = derive_wrt(&program, wrt);
        for seed in 1..=5 {
            let report = check(&d, &CheckOptions { seed, ..Default::default() }).unwrap();
            assert!(report.ok(), "{src} wrt {wrt} (seed {seed}): {:?}", report.results);
        }
    }
}

/// dL/dH at H = its definition's value, against central differences in H
/// computed here (the other inputs fixed), on random sizes.
#[test]
fn intermediate_gradient_is_the_derivative_in_h() {
    for (src, wrt) in INTERMEDIATE.iter().filter(|(s, _)| !s.ends_with("Z") && !s.ends_with("W3*H")) {
        let original = parse_program(src).unwrap();
        let all = matdiff::derive(&original, &DeriveOptions::default()).unwrap();
        let program = kept(src, wrt);
        let d = derive_wrt(&program, wrt);
        let def = original.definitions.iter().rev().find(|x| x.name == *wrt).unwrap();
        for seed in 1..=4 {
            let instance = Instance::draw(&all, &CheckOptions { seed, ..Default::default() }).unwrap();
            let mut env = instance.env.clone();
            let h = parse_var(wrt).unwrap();
            let value = eval(&def.expr, &env, None).unwrap();
            env.vars.insert(h.clone(), value.clone());
            let grad = gradient_value(&d.gradients[0], &env).unwrap();
            let loss = |env: &Env| eval(&program.expr, env, None).unwrap()[(0, 0)];
            let mut fd = Matrix::zeros(value.nrows(), value.ncols());
            let step = 1e-6;
            for k in 0..value.len() {
                let mut at = env.clone();
                at.vars.get_mut(&h).unwrap()[k] += step;
                let up = loss(&at);
                at.vars.get_mut(&h).unwrap()[k] -= 2.0 * step;
                fd[k] = (up - loss(&at)) / (2.0 * step);
            }
            assert!(relative_error(&grad, &fd) < 1e-6, "{src} wrt {wrt} (seed {seed}): {grad} vs {fd}");
        }
    }
}

#[test]
fn a_wrong_intermediate_gradient_is_not_equivalent() {
    let src = "H = W1*X; Z = W2*tanh(H); Z";
    let program = parse_program(src).unwrap();
    let h = parse_var("H").unwrap();
    let right = "(W2^T * G) .* (1 - tanh(H) .^ 2)";
    let v = matdiff::verify::verify(&program, &h, right, &Default::default()).unwrap();
    assert!(v.equivalent(), "{}", v.detail);
    for wrong in ["W2^T * G", "(W2^T * G) .* (1 - tanh(H))", "(W2 * G^T)^T .* tanh(H)"] {
        let v = matdiff::verify::verify(&program, &h, wrong, &Default::default()).unwrap();
        assert!(!v.equivalent(), "{wrong}: {}", v.detail);
    }
}

/// `prod(F(W[i]), i=1..n) * X` for a body template F (`{}` for W[i]), its
/// square factors and the concrete chain F(W1) ⋯ F(Wn) X.
const BODIES: &[&str] = &["I + {}", "tanh({})", "{}^T * A", "{}", "{}^T", "sigmoid({}) .* A"];

fn chain(body: &str) -> String {
    format!("W[i] : d x d; A : d x d; X : d x B; prod({}, i=1..n) * X", body.replace("{}", "W[i]"))
}

/// The concrete chain's gradient of Wj with the symbolic instance's values.
fn concrete_gradient(body: &str, n: usize, j: usize, env: &Env) -> Matrix {
    let factors: Vec<String> =
        (1..=n).map(|i| format!("({})", body.replace("{}", &format!("W{i}")))).collect();
    let src = format!("A : d x d; X : d x B; {} * X", factors.join(" * "));
    let program = parse_program(&src).unwrap();
    let wrt = vec![parse_var(&format!("W{j}")).unwrap()];
    let d = matdiff::derive(&program, &DeriveOptions { wrt, ..Default::default() }).unwrap();
    let mut concrete = Env::default();
    for i in 1..=n {
        let member = env.vars[&parse_var(&format!("W[{i}]")).unwrap()].clone();
        concrete.vars.insert(parse_var(&format!("W{i}")).unwrap(), member);
    }
    for v in ["X", "G", "A"] {
        if let Some(m) = env.vars.get(&parse_var(v).unwrap()) {
            concrete.vars.insert(parse_var(v).unwrap(), m.clone());
        }
    }
    let value = concrete.vars[&d.gradients[0].wrt].clone();
    eval(&d.gradients[0].expr, &concrete, Some(value.shape())).unwrap()
}

#[test]
fn general_bodies_at_every_j_equal_the_concrete_chains() {
    for body in BODIES {
        let program = parse_program(&chain(body)).unwrap();
        let d = derive_wrt(&program, "W[j]");
        assert_eq!(d.gradients[0].differential.conditions[0].to_string(), "1 <= j <= n", "{body}");
        for n in 1..=4usize {
            for j in 1..=n {
                for seed in 1..=2 {
                    let dims = [("n".to_string(), n), ("j".to_string(), j)].into_iter().collect();
                    let instance =
                        Instance::draw(&d, &CheckOptions { seed, dims, ..Default::default() }).unwrap();
                    let symbolic = gradient_value(&d.gradients[0], &instance.env).unwrap();
                    let concrete = concrete_gradient(body, n, j, &instance.env);
                    let err = relative_error(&symbolic, &concrete);
                    assert!(err < 1e-10, "{body} n={n} j={j}: {err}");
                }
            }
        }
        for seed in 1..=4 {
            let report = check(&d, &CheckOptions { seed, ..Default::default() }).unwrap();
            assert!(report.ok(), "{body} (seed {seed}): {:?}", report.results);
        }
    }
}

/// A residual chain of known length plans, one gradient per member, and
/// the plan agrees with finite differences.
#[test]
fn residual_chain_of_known_length_plans_and_checks() {
    let src = "W[i] : d x d; X : d x B; prod(I + W[i], i=1..3) * X";
    let program = parse_program(src).unwrap();
    let d = derive_wrt(&program, "W[j]");
    let plan = matdiff::plan::compile(&d, &Default::default()).unwrap();
    let outputs: Vec<String> =
        plan.outputs.iter().filter_map(|o| o.wrt.as_ref()).map(|v| v.to_string()).collect();
    assert_eq!(outputs, ["W[1]", "W[2]", "W[3]"]);
    for seed in 1..=4 {
        let report = check(&d, &CheckOptions { seed, ..Default::default() }).unwrap();
        assert!(report.ok(), "seed {seed}: {:?}", report.results);
    }
}

#[test]
fn a_constant_member_of_a_symbolic_chain() {
    let src = "W[i] : d x d; X : d x B; prod(W[i], i=1..n) * X";
    let program = parse_program(src).unwrap();
    let d = derive_wrt(&program, "W[2]");
    let g = &d.gradients[0];
    assert_eq!(g.expr.to_string(), "W[1]^T * G * X^T * prod(W[i], i=3..n)^T");
    assert_eq!(g.differential.conditions[0].to_string(), "2 <= n");
    for seed in 1..=6 {
        let report = check(&d, &CheckOptions { seed, ..Default::default() }).unwrap();
        assert!(report.ok(), "seed {seed}: {:?} {:?}", report.indices, report.results);
        assert!(report.indices.iter().all(|(k, v)| k != "n" || *v >= 2), "{:?}", report.indices);
    }
    // The same member of W[j]'s formula at j = 2.
    let wj = derive_wrt(&program, "W[j]");
    for n in 2..=5usize {
        let dims = [("n".to_string(), n), ("j".to_string(), 2)].into_iter().collect();
        let instance = Instance::draw(&wj, &CheckOptions { seed: 3, dims, ..Default::default() }).unwrap();
        let a = gradient_value(g, &instance.env).unwrap();
        let b = gradient_value(&wj.gradients[0], &instance.env).unwrap();
        assert!(relative_error(&a, &b) < 1e-12, "n={n}");
    }
}

fn run(args: &[&str]) -> (i32, String) {
    let argv: Vec<String> =
        std::iter::once("matdiff").chain(args.iter().copied()).map(String::from).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = matdiff::cli::run(argv, &mut out, &mut err);
    (code, String::from_utf8(out).unwrap() + &String::from_utf8(err).unwrap())
}

#[test]
fn what_users_see() {
    let mut text = String::new();
    let cases: &[&[&str]] = &[
        &["derive", "W1 : 4x3; X : 3x5; H = W1*X; sum(sigmoid(H))", "--wrt", "H"],
        &["derive", "H = W1*X; Z = W2*tanh(H); Z", "--wrt", "H"],
        &["derive", "--json", "H = W1*X; Z = W2*tanh(H); Z", "--wrt", "H"],
        &["derive", "H = W1*X; Z = W2*tanh(H); Z", "--wrt", "H", "--wrt", "W1"],
        &["derive", "W[i] : d x d; X : d x B; prod(I + W[i], i=1..n) * X", "--wrt", "W[j]"],
        &["derive", "W[i] : d x d; X : d x B; prod(tanh(W[i]), i=1..n) * X", "--wrt", "W[j]"],
        &["derive", "W[i] : d x d; A : d x d; X : d x B; prod(W[i]^T * A, i=1..n) * X", "--wrt", "W[j]"],
        &["derive", "W[i] : d x d; X : d x B; prod(I + W[i], i=1..3) * X", "--wrt", "W[2]", "--steps"],
        &["derive", "W[i] : d x d; X : d x B; prod(W[i], i=1..n) * X", "--wrt", "W[2]"],
        &["derive", "W[i] : d x d; X : d x B; prod(I + W[i], i=1..3) * X", "--wrt", "W[5]"],
        &["derive", "W[i] : d x d; X : d x B; prod(W[i] * W[i], i=1..n) * X", "--wrt", "W[j]"],
        &["plan", "W[i] : d x d; X : d x B; prod(I + W[i], i=1..3) * X", "--wrt", "W[j]"],
        &["plan", "H = W1*X; Z = W2*tanh(H); Z", "--wrt", "H", "--emit", "numpy"],
    ];
    for args in cases {
        let (code, out) = run(args);
        let shown: Vec<String> =
            args.iter().map(|a| if a.contains(' ') { format!("'{a}'") } else { a.to_string() }).collect();
        text.push_str(&format!("$ matdiff {}   (exit {code})\n{out}\n", shown.join(" ")));
    }
    common::snapshots().bind(|| insta::assert_snapshot!("constructs_wrt", text));
}

#[test]
fn kept_definitions_are_found_where_inlined() {
    let p = parse_program("H = W1*X; Z = W2*H; sum(tanh(Z)) + sum(W1*X) + sum(H)").unwrap();
    let k = p.with_definitions_kept(&[parse_var("H").unwrap()]);
    assert_eq!(k.expr.to_string(), "sum(tanh(W2 * H)) + sum(W1 * X) + sum(H)");
    let vars: Vec<VarName> = matdiff::shape::infer(&k).unwrap().variables().to_vec();
    assert!(vars.contains(&parse_var("H").unwrap()));
    // A name that is not a definition leaves the program as it was.
    assert_eq!(p.with_definitions_kept(&[parse_var("W1").unwrap()]).expr, p.expr);
}
