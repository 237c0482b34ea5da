//! `verify`: true claims, and subtly false ones (a transpose moved, two
//! factors swapped, a factor 2 lost, a symmetric-only identity), decided
//! symbolically where the e-graph can and numerically otherwise.

mod common;

use matdiff::syntax::{parse_program, parse_var};
use matdiff::verify::{verify, Method};

/// (program, variable, claim, equivalent, how it must be decided).
const CLAIMS: &[(&str, &str, &str, bool, Option<Method>)] = &[
    // True claims.
    ("W1*W2*W3*X", "W2", "W1^T*G*X^T*W3^T", true, Some(Method::Symbolic)),
    ("W1*W2*W3*X", "W2", "W1^T*G*(W3*X)^T", true, Some(Method::Symbolic)),
    ("tr(A*X*B)", "X", "(B*A)^T", true, Some(Method::Symbolic)),
    ("x : n; A : n x n; x^T*A*x", "x", "A*x + A^T*x", true, Some(Method::Symbolic)),
    ("x : n; A : n x n; x^T*A*x", "x", "(A^T + A)*x", true, Some(Method::Symbolic)),
    ("W : n x n; X : n x m; W*W*X", "W", "W^T*G*X^T + G*X^T*W^T", true, Some(Method::Symbolic)),
    ("X : n x n; logdet(X)", "X", "inv(X^T)", true, Some(Method::Symbolic)),
    ("X : n x n; logdet(X)", "X", "inv(X)^T", true, Some(Method::Symbolic)),
    ("X : n x n; A : n x n; tr(X^-1*A)", "X", "-(X^-1*A*X^-1)^T", true, None),
    ("W : 3x4; X : 4x6; Y : 3x6; norm(W*X - Y)^2", "W", "2*(W*X - Y)*X^T", true, None),
    ("W : 3x4; X : 4x6; Y : 3x6; norm(W*X - Y)^2", "W", "2*W*X*X^T - 2*Y*X^T", true, None),
    ("W : 3x4; X : 4x5; sum(tanh(W*X))", "W", "(1 - tanh(W*X) .^ 2) * X^T", true, None),
    ("X : n x n; tr(X^3)", "X", "3*(X^2)^T", true, None),
    // Subtly false claims.
    ("W1*W2*W3*X", "W2", "W1^T*G*X^T*W3", false, None),
    ("W1*W2*W3*X", "W2", "W1*G*X^T*W3^T", false, None),
    ("W : n x n; X : n x m; W*W*X", "W", "W^T*G*X^T + G*X^T*W", false, None),
    ("W : n x n; X : n x m; W*W*X", "W", "G*X^T*W^T", false, None),
    ("x : n; A : n x n; x^T*A*x", "x", "2*A*x", false, Some(Method::Numeric)),
    ("x : n; A : n x n; x^T*A*x", "x", "A*x", false, Some(Method::Numeric)),
    ("X : n x n; logdet(X)", "X", "inv(X)", false, Some(Method::Numeric)),
    ("A : n x n; X : n x n; B : n x n; tr(A*X*B)", "X", "B^T*A^T", false, Some(Method::Numeric)),
    ("W : 3x4; X : 4x6; Y : 3x6; norm(W*X - Y)^2", "W", "(W*X - Y)*X^T", false, Some(Method::Numeric)),
    // Claims of the wrong shape, or in foreign variables.
    ("W : 3x4; X : 4x5; W*X", "W", "G", false, Some(Method::Symbolic)),
    ("W : 3x4; X : 4x5; W*X", "W", "G*Q^T", false, Some(Method::Symbolic)),
];

#[test]
fn claims() {
    let mut text = String::new();
    for (src, wrt, claim, want, method) in CLAIMS {
        let program = parse_program(src).unwrap();
        let v = verify(&program, &parse_var(wrt).unwrap(), claim, &Default::default())
            .unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(v.equivalent(), *want, "{src}, d/d{wrt} claimed {claim}: {}", v.detail);
        if let Some(m) = method {
            assert_eq!(v.method, *m, "{src}, d/d{wrt} claimed {claim}: {}", v.detail);
        }
        let word = v.word();
        text.push_str(&format!("{src}  d/d{wrt} = {claim}\n  {word} ({}): {}\n", v.method.name(), v.detail));
    }
    common::snapshots().bind(|| insta::assert_snapshot!("verify_claims", text));
}

#[test]
fn exit_status_and_json() {
    let run = |args: &[&str]| {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let argv = std::iter::once("matdiff").chain(args.iter().copied()).map(String::from).collect();
        let code = matdiff::cli::run(argv, &mut out, &mut err);
        (code, String::from_utf8(out).unwrap())
    };
    let (code, out) = run(&["verify", "W1*W2*W3*X", "--wrt", "W2", "--claim", "W1^T*G*X^T*W3^T", "--json"]);
    assert_eq!(code, 0);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["equivalent"], true);
    assert_eq!(doc["method"], "symbolic");
    let (code, out) = run(&["verify", "W1*W2*W3*X", "--wrt", "W2", "--claim", "W1^T*G*X^T*W3", "--json"]);
    assert_eq!(code, 1);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["equivalent"], false);
    assert!(doc["detail"].as_str().unwrap().contains("cannot multiply"), "{doc}");
    let (code, _) = run(&["verify", "W*X", "--wrt", "W", "--claim", "G *"]);
    assert_eq!(code, 2, "a claim that does not parse is a usage error");
}

/// The 64 gradients of a 64-factor chain are simplified without the
/// e-graph hitting a limit; a 40-term sum does hit one, and says so.
#[test]
fn saturation_is_reported() {
    let chain: Vec<String> = (1..=64).map(|i| format!("W{i}")).collect();
    let program = parse_program(&format!("{}*X", chain.join("*"))).unwrap();
    let d = matdiff::derive(&program, &Default::default()).unwrap();
    assert_eq!(d.gradients.len(), 65);
    assert!(d.gradients.iter().all(|g| g.saturated));

    let terms: Vec<String> = (0..40).map(|i| format!("A*x{i}")).collect();
    let src = format!("A : 3x3; {}", terms.join(" + "));
    let mut out = Vec::new();
    let argv = ["matdiff", "derive", "--json", "--wrt", "A", &src].map(String::from).to_vec();
    assert_eq!(matdiff::cli::run(argv, &mut out, &mut Vec::new()), 0);
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(doc["saturated"], false, "{doc}");
    assert_eq!(doc["gradients"][0]["saturated"], false);
    // The best form so far is still right.
    let program = parse_program(&src).unwrap();
    let wrt = vec![parse_var("A").unwrap()];
    let d = matdiff::derive(&program, &matdiff::DeriveOptions { wrt, ..Default::default() }).unwrap();
    let report = matdiff::numeric::check(&d, &Default::default()).unwrap();
    assert!(report.ok());
}

/// Runs the command line; returns the exit status and standard output.
fn run(args: &[&str]) -> (i32, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let argv = std::iter::once("matdiff").chain(args.iter().copied()).map(String::from).collect();
    let code = matdiff::cli::run(argv, &mut out, &mut err);
    (code, String::from_utf8(out).unwrap() + &String::from_utf8(err).unwrap())
}

/// The wrong verdicts of the trust issue, each with the right one now:
/// claims right only for positive inputs, claims off by a factor that a
/// tiny gradient hid under an absolute floor, a zero claim.
#[test]
fn verdicts_that_were_wrong() {
    let cases: &[(&str, &str, &str, bool)] = &[
        // σ(|z|) for σ(z): right only where z > 0.
        ("W : 3x4; X : 4x5; sum(log(1 + exp(W*X)))", "W", "sigmoid(sqrt((W*X) .^ 2))*X^T", false),
        ("W : 3x4; X : 4x5; sum(log(1 + exp(W*X)))", "W", "sigmoid(W*X)*X^T", true),
        // Ones for the sign of z.
        ("W : 3x4; X : 4x5; sum(sqrt((W*X).^2))", "W", "(W*X) .^ 0 * X^T", false),
        ("W : 3x4; X : 4x5; sum(sqrt((W*X).^2))", "W", "((W*X) ./ sqrt((W*X).^2)) * X^T", true),
        // A gradient of about 1e-28 at det X of 64: the factor det X forgotten, or all of it.
        ("X : 3x3; exp(-det(X))", "X", "(-exp(-det(X)))*inv(X)^T", false),
        ("X : 3x3; exp(-det(X))", "X", "0*X", false),
        ("X : 3x3; exp(-det(X))", "X", "0", false),
        ("X : 3x3; exp(-det(X))", "X", "-exp(-det(X))*det(X)*inv(X)^T", true),
        // Logistic regression, both halves of the loss.
        (
            "X : 5x3; w : 3; y : 5; sum(log(1 + exp(-y .* (X*w))))",
            "w",
            "-X^T * (y .* sigmoid(-y .* (X*w)))",
            true,
        ),
        (
            "X : 5x3; w : 3; y : 5; sum(log(1 + exp(-y .* (X*w))))",
            "w",
            "-X^T * (y .* sigmoid(sqrt((y .* (X*w)) .^ 2)))",
            false,
        ),
        // A bare 0 is the zero of the variable's shape.
        ("X : 3x3; tr(X - X^T)", "X", "0", true),
        ("X : 3x3; tr(X - 2*X^T)", "X", "0", false),
        // Claims and expressions that begin with a minus.
        ("U : 3x2; V : 4x2; X : 3x4; norm(X - U*V^T)^2", "U", "-2*(X - U*V^T)*V", true),
        ("P : 3x3; C : 3x3; -logdet(P) + tr(P*C)", "C", "-P^T", false),
        // |cos z| for cos z: wrong only past ±π/2, which values within ±1 never reach.
        ("M : 2x3; sin(M^T)", "M", "G^T .* sqrt(cos(M^T)^T .^ 2)", false),
        // The inverse of a sum of terms drawn dominant takes both signs.
        ("S : 1x1; T : 1x1; M : 1x3; M * (S + T)^-1", "M", "sqrt(((S + T)^-1 * G) .^ 2)", false),
        ("S : 1x1; T : 1x1; M : 1x3; M * (S + T)^-1", "M", "(S + T)^-1 * G", true),
    ];
    for (src, wrt, claim, want) in cases {
        let (code, out) = run(&["verify", src, "--wrt", wrt, "--claim", claim]);
        let word = if *want { "equivalent" } else { "not equivalent" };
        assert!(out.starts_with(word), "{src}, d/d{wrt} claimed {claim}: {out}");
        assert_eq!(code, if *want { 0 } else { 1 }, "{src}, d/d{wrt} claimed {claim}: {out}");
    }
}

/// Where no instance can tell the claim from the gradient, the verdict
/// says so (exit 1), for verify and for check alike, with the reason.
#[test]
fn undecidable_claims_are_undecided() {
    // exp(-1000 - 1000 x^2) underflows to zero everywhere: so does any claim.
    let src = "X : 2x2; sum(exp(-1000 * (X .^ 2 + 1)))";
    let (code, out) = run(&["verify", src, "--wrt", "X", "--claim", "0", "--json"]);
    assert_eq!(code, 1, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["outcome"], "undecided", "{doc}");
    assert_eq!(doc["equivalent"], false);
    assert_eq!(doc["evidence"]["decided"], 0, "{doc}");
    let (code, out) = run(&["check", src, "--json"]);
    assert_eq!(code, 1, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["results"][0]["outcome"], "undecided", "{doc}");
    assert_eq!(doc["results"][0]["reason"], matdiff::numeric::EXACTLY_ZERO, "{doc}");
    // A wrong claim is still told apart.
    let (code, out) = run(&["verify", src, "--wrt", "X", "--claim", "X"]);
    assert!(code == 1 && out.starts_with("not equivalent"), "{out}");
}

/// Every verdict carries its evidence: method, instances, tolerance,
/// domains and the worst relative error, for both outcomes.
#[test]
fn verdicts_carry_their_evidence() {
    let src = "X : 3x3; y : 3; sum(log(1 + exp(X*y))) + logdet(X)";
    for (claim, outcome) in [
        // The logistic function as 1 / (1 + e^-z), which the e-graph does not know: decided numerically.
        ("(1 ./ (1 + exp(-(X*y)))) * y^T + inv(X)^T", "equivalent"),
        ("(1 ./ (1 + exp(-(X*y)))) * y^T + inv(X)", "not equivalent"),
    ] {
        let (_, out) = run(&["verify", src, "--wrt", "X", "--claim", claim, "--json"]);
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(doc["outcome"], outcome, "{doc}");
        let e = &doc["evidence"];
        assert!(e["instances"].as_u64().unwrap() >= 1 && e["decided"].as_u64().unwrap() >= 1, "{doc}");
        assert_eq!(e["tolerance"], 1e-7);
        assert_eq!(e["domains"]["X"], "invertible", "{doc}");
        assert!(e["domains"].get("y").is_none(), "y is drawn with both signs: {doc}");
        assert!(e["worst_rel_err"].as_f64().is_some(), "{doc}");
        let (_, text) = run(&["verify", src, "--wrt", "X", "--claim", claim]);
        assert!(text.contains("random instance") && text.contains("X invertible"), "{text}");
    }
}

/// Declared domains: in declarations and as --domain, honoured by every
/// draw; refused where the expression needs what they forbid.
#[test]
fn declared_domains() {
    use matdiff::numeric::{CheckOptions, Instance};
    use matdiff::syntax::DomainSpec;
    let draws = |src: &str, extra: &[(&str, DomainSpec)]| {
        let program = parse_program(src).unwrap();
        let d = matdiff::derive(&program, &Default::default()).unwrap();
        let domains: std::collections::BTreeMap<_, _> =
            extra.iter().map(|(v, s)| (parse_var(v).unwrap(), *s)).collect();
        (1..=20)
            .map(|seed| {
                Instance::draw(&d, &CheckOptions { seed, domains: domains.clone(), ..Default::default() })
                    .unwrap()
            })
            .collect::<Vec<_>>()
    };
    let x = parse_var("X").unwrap();
    for i in draws("X : 3x3 positive; A : 3x3; tr(A*X)", &[]) {
        assert!(i.env.vars[&x].iter().all(|v| *v > 0.0));
    }
    for i in draws("X : 3x3 negative; A : 3x3; tr(A*inv(X))", &[]) {
        assert!(i.env.vars[&x].iter().all(|v| *v < 0.0), "{}", i.env.vars[&x]);
    }
    for i in draws("X : 3x3 spd; A : 3x3; tr(A*inv(X))", &[]) {
        let m = &i.env.vars[&x];
        assert!(*m == m.transpose() && m.clone().symmetric_eigenvalues().min() > 0.0, "{m}");
    }
    for i in draws("X : 3x3; A : 3x3; tr(A*X)", &[("X", DomainSpec::NonZero)]) {
        assert!(i.env.vars[&x].iter().all(|v| v.abs() >= 0.5), "{}", i.env.vars[&x]);
    }
    // Without a declaration, both signs.
    let signs = draws("X : 3x3; A : 3x3; tr(A*X)", &[]);
    assert!(signs.iter().any(|i| i.env.vars[&x].iter().any(|v| *v < 0.0)));
    assert!(signs.iter().any(|i| i.env.vars[&x].iter().any(|v| *v > 0.0)));

    let (code, out) = run(&["check", "X : 3x4 negative; sum(log(X))"]);
    assert!(code == 2 && out.contains("declared negative"), "{out}");
    let (code, out) = run(&["check", "X : 3x4; sum(log(X))", "--domain", "X=negative"]);
    assert!(code == 2 && out.contains("declared negative"), "{out}");
    let (code, out) = run(&["check", "S : 3x4 spd; sum(S)"]);
    assert!(code == 2 && out.contains("not square"), "{out}");
    let (code, out) = run(&["check", "X : 3x4; sum(X)", "--domain", "Q=positive"]);
    assert!(code == 2 && out.contains("not a variable"), "{out}");
    let (code, out) =
        run(&["verify", "X : 3x4; sum(X)", "--wrt", "X", "--claim", "X .^ 0", "--domain", "X=spd"]);
    assert!(code == 2 && out.contains("not square"), "{out}");
    // A declaration round-trips through the printer of programs' shapes.
    let program = parse_program("S : n x n spd; x : n; x^T*S*x").unwrap();
    assert_eq!(program.declarations[0].domain, Some(DomainSpec::Spd));
}

/// `check` exercises both signs wherever the expression allows them: the
/// negative-logit half of logistic regression, the negative half of a
/// quadratic, the inputs of tanh and sigmoid layers.
#[test]
fn check_draws_both_signs() {
    use matdiff::numeric::{CheckOptions, Instance};
    let cases = [
        "X : 5x3; w : 3; y : 5; sum(log(1 + exp(-y .* (X*w))))",
        "W : 3x4; X : 4x5; sum(sqrt((W*X) .^ 2))",
        "x : 4; A : 4x4; log(x^T*A^T*A*x)",
        "W1 : 4x3; W2 : 2x4; X : 3x5; Y : 2x5; sum(Y .* tanh(W2*tanh(W1*X)))",
        "A : 3x4; B : 3x4; sum(A ./ B)",
    ];
    for src in cases {
        let program = parse_program(src).unwrap();
        let d = matdiff::derive(&program, &Default::default()).unwrap();
        // Over a few draws, every variable takes both signs.
        let draws: Vec<Instance> = (1..=4)
            .map(|seed| Instance::draw(&d, &CheckOptions { seed, ..Default::default() }).unwrap())
            .collect();
        for v in draws[0].env.vars.keys() {
            let entries = || draws.iter().flat_map(|i| i.env.vars[v].iter().copied());
            assert!(entries().any(|x| x < 0.0) && entries().any(|x| x > 0.0), "{src}: {v}");
        }
        let report = matdiff::numeric::check(&d, &CheckOptions { seed: 3, ..Default::default() }).unwrap();
        assert!(report.ok(), "{src}: {:?}", report.results);
    }
}

/// A gradient that is zero but evaluates to rounding noise (a and b 1x1,
/// so a*m - m*a is zero) is never a mismatch: its own rounding counts.
#[test]
fn a_gradient_of_rounding_noise_is_no_mismatch() {
    use matdiff::numeric::{CheckOptions, Outcome};
    let src = "a : 1x1; b : 1x1; m : 2x1; (a * m - m * a) * (a * a * b)";
    let program = parse_program(src).unwrap();
    let d = matdiff::derive(&program, &Default::default()).unwrap();
    for seed in 1..=4 {
        let report = matdiff::numeric::check(&d, &CheckOptions { seed, ..Default::default() }).unwrap();
        for r in &report.results {
            assert_ne!(r.outcome, Outcome::Differ, "{src}, seed {seed}: {r:?}");
        }
    }
}

/// A loss that varies faster than finite differences' first steps resolve,
/// on top of a large value (so that the gradient's size says nothing of the
/// feature's width), is no mismatch: the steps shrink until the differences
/// settle. The same gradient doubled, or with a sign flipped, still is one.
#[test]
fn a_loss_finer_than_the_first_steps_is_no_mismatch() {
    use matdiff::numeric::{CheckOptions, Outcome};
    use matdiff::syntax::parse_expr;
    let cases = [
        "x : 3; 1e7*sum(x) + sum(sin(1e5*x))",
        "x : 3; A : 3x3; 1e6*(x^T*A*x) + sum(sin(1e4*x .* x))",
        "x : 3; sum(sin(1e6*x))",
    ];
    for src in cases {
        let program = parse_program(src).unwrap();
        let d = matdiff::derive(&program, &Default::default()).unwrap();
        for seed in 1..=3 {
            let report = matdiff::numeric::check(&d, &CheckOptions { seed, ..Default::default() }).unwrap();
            assert!(report.ok(), "{src}, seed {seed}: {:?}", report.results);
        }
        let g = &d.gradients[0];
        for wrong in [format!("2 * ({})", g.expr), format!("-({})", g.expr)] {
            let mut mutant = d.clone();
            mutant.gradients[0].expr = parse_expr(&wrong).unwrap();
            let report =
                matdiff::numeric::check(&mutant, &CheckOptions { seed: 1, ..Default::default() }).unwrap();
            assert_eq!(report.results[0].outcome, Outcome::Differ, "{src}: {wrong}");
        }
    }
}

/// In the REPL too, an expression or a claim may begin with a minus.
#[test]
fn leading_minus_in_the_repl() {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_matdiff"))
        .arg("repl")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let session = "P : 3x3\nC : 3x3\nderive -logdet(P) + tr(P*C)\nverify -logdet(P) + tr(P*C) --wrt P --claim '-inv(P)^T + C^T'\n";
    child.stdin.take().unwrap().write_all(session.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("d/dP = C^T - P^T^-1"), "{text}");
    assert!(text.contains("equivalent (symbolic)"), "{text}");
}

/// verify's e-graph knows the domains, as derive's simplifier does: an
/// `spd` variable is symmetric and the columns of a `onehot` one sum to 1,
/// so softmax regression's textbook gradient and its general form are one
/// class under the declaration (or a `--domain` given for it), decided
/// symbolically; mutants of them (transposed, negated, a term lost, the
/// difference reversed) are not, nor is the textbook form when a given
/// domain replaces the declaration.
#[test]
fn the_egraph_knows_declared_domains() {
    use matdiff::syntax::DomainSpec;
    use matdiff::verify::VerifyOptions;
    let onehot = "W : k x d; X : d x B; b : k; Y : k x B onehot; -sum(Y .* log(softmax(W*X + b)))";
    let general = "W : k x d; X : d x B; b : k; Y : k x B; -sum(Y .* log(softmax(W*X + b)))";
    let square = "W : k x k; X : k x B; b : k; Y : k x B onehot; -sum(Y .* log(softmax(W*X + b)))";
    let spd = "S : n x n spd; x : n; x^T*S*x";
    fn given(v: &'static str, d: DomainSpec) -> Vec<(&'static str, DomainSpec)> {
        vec![(v, d)]
    }
    type Case =
        (&'static str, &'static str, &'static str, Vec<(&'static str, DomainSpec)>, bool, Option<Method>);
    let cases: Vec<Case> = vec![
        (onehot, "W", "(softmax(W*X + b) - Y) * X^T", vec![], true, Some(Method::Symbolic)),
        (onehot, "b", "sum(softmax(W*X + b) - Y, 2)", vec![], true, Some(Method::Symbolic)),
        (onehot, "X", "W^T * (softmax(W*X + b) - Y)", vec![], true, Some(Method::Symbolic)),
        (
            onehot,
            "W",
            "(softmax(W*X + b) .* (ones(k) * sum(Y, 1)) - Y) * X^T",
            vec![],
            true,
            Some(Method::Symbolic),
        ),
        (onehot, "W", "(Y - softmax(W*X + b)) * X^T", vec![], false, None),
        (onehot, "W", "softmax(W*X + b) * X^T", vec![], false, None),
        (onehot, "W", "(softmax(W*X) - Y) * X^T", vec![], false, None),
        (onehot, "W", "2 * (softmax(W*X + b) - Y) * X^T", vec![], false, None),
        (onehot, "b", "sum(softmax(W*X + b) - Y, 1)^T", vec![], false, None),
        (square, "W", "(softmax(W*X + b) - Y) * X^T", vec![], true, Some(Method::Symbolic)),
        (square, "W", "X * (softmax(W*X + b) - Y)^T", vec![], false, None),
        // The domain given on the command line, or given over the declaration.
        (
            general,
            "W",
            "(softmax(W*X + b) - Y) * X^T",
            given("Y", DomainSpec::OneHot),
            true,
            Some(Method::Symbolic),
        ),
        (general, "W", "(softmax(W*X + b) - Y) * X^T", vec![], false, None),
        (onehot, "W", "(softmax(W*X + b) - Y) * X^T", given("Y", DomainSpec::Positive), false, None),
        // A symmetric S: S^T is S.
        (spd, "x", "(S + S^T) * x", vec![], true, Some(Method::Symbolic)),
        (spd, "x", "S * x + S^T * x", vec![], true, Some(Method::Symbolic)),
        (spd, "x", "S * x", vec![], false, None),
        (spd, "x", "-2 * S^T * x", vec![], false, None),
        ("S : n x n spd; logdet(S)", "S", "inv(S)^T", vec![], true, Some(Method::Symbolic)),
        ("S : n x n spd; logdet(S)", "S", "-inv(S)", vec![], false, None),
    ];
    for (src, wrt, claim, domains, want, method) in cases {
        let program = matdiff::parse(src).unwrap();
        let domains = domains.into_iter().map(|(v, d)| (parse_var(v).unwrap(), d)).collect();
        let options = VerifyOptions { domains, ..Default::default() };
        let v = verify(&program, &parse_var(wrt).unwrap(), claim, &options)
            .unwrap_or_else(|e| panic!("{src}, d/d{wrt} claimed {claim}: {e}"));
        assert_eq!(v.equivalent(), want, "{src}, d/d{wrt} claimed {claim}: {}", v.detail);
        if let Some(m) = method {
            assert_eq!(v.method, m, "{src}, d/d{wrt} claimed {claim}: {}", v.detail);
        }
    }
}
