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
        let v =
            verify(&program, &parse_var(wrt).unwrap(), claim, None).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(v.equivalent, *want, "{src}, d/d{wrt} claimed {claim}: {}", v.detail);
        if let Some(m) = method {
            assert_eq!(v.method, *m, "{src}, d/d{wrt} claimed {claim}: {}", v.detail);
        }
        let word = if v.equivalent { "equivalent" } else { "not equivalent" };
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
