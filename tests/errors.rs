//! The exact messages a user sees for parse, shape and usage errors, and for
//! constructs whose derivative is refused by name.

mod common;

use matdiff::ErrorKind;

/// (program, the kind of error it must raise).
const CASES: &[(&str, ErrorKind)] = &[
    // Parse errors.
    ("W1 * (W2 + ", ErrorKind::Parse),
    ("W1 ** W2", ErrorKind::Parse),
    ("A^2.5", ErrorKind::Parse),
    ("W : 3x; W", ErrorKind::Parse),
    ("A*B; C", ErrorKind::Parse),
    ("W : 3x4", ErrorKind::Parse),
    ("", ErrorKind::Parse),
    ("Z = Z*W; Z", ErrorKind::Parse),
    ("I : 3x3; I", ErrorKind::Parse),
    // Functions: unknown ones named with what was meant, arity, prod's form.
    ("X : 3x3; trace(X)", ErrorKind::Parse),
    ("X : 3x3; transpose(X)", ErrorKind::Parse),
    ("X : 3x3; sigmod(X)", ErrorKind::Parse),
    ("W : 3x3; X : 3x3; W (X + X)", ErrorKind::Parse),
    ("A : 3x3; B : 3x3; tr(A, B)", ErrorKind::Parse),
    ("W[i] : 3x3; prod(W[i])", ErrorKind::Parse),
    // A definition after a use of its name.
    ("H1 = H2*X; H2 = W; sum(H1)", ErrorKind::Parse),
    // Shape errors: at the operator, naming both shapes.
    ("W1 : 3x4; W2 : 5x6; W1*W2", ErrorKind::Shape),
    ("A : 3x4; B : 4x3; A + B", ErrorKind::Shape),
    ("A : 3x4; B : 4x3; A .* B", ErrorKind::Shape),
    ("A : d0 x d1; B : d0 x d1; A*B", ErrorKind::Shape),
    ("W : 3x4; tr(W)", ErrorKind::Shape),
    ("W : 3x4; x : 4; y : 5; W*x + y", ErrorKind::Shape),
    ("W : 3x4; W : 4x4; W", ErrorKind::Shape),
    ("A : 3x4; B : 3x4; A / B", ErrorKind::Shape),
    ("A : 3x4; A^2", ErrorKind::Shape),
    ("Z : 3x3; A : 3x4; Z = A*A^T*A; Z", ErrorKind::Shape),
    ("A : 0x3; sum(A)", ErrorKind::Shape),
    ("x : 3; y : 3; x*y", ErrorKind::Shape),
    // Usage errors in the program.
    ("A : 3x3 positive; A : 3x3 negative; tr(A)", ErrorKind::Usage),
    // Refused by name: what the language cannot write, limits, later issues.
    ("a : 1x1; M : n x n; tr(a + M)", ErrorKind::Unsupported),
    ("A : 2x2; A^100", ErrorKind::Limit),
    ("W[i] : n x n; prod(W[i], i=1..n) * prod(W[i], i=1..m)", ErrorKind::Unsupported),
    ("W[i] : n x n; A : n x n; prod(W[i] * A, i=1..n)", ErrorKind::Unsupported),
    ("W[i] : n x n; W[k] * prod(W[i], i=1..n)", ErrorKind::Unsupported),
];

#[test]
fn messages() {
    let mut text = String::new();
    for (src, kind) in CASES {
        let program = matdiff::syntax::parse_program(src);
        let err = match program {
            Err(e) => e,
            Ok(p) => match matdiff::derive(&p, &Default::default()) {
                Err(e) => e,
                Ok(_) => panic!("{src}: expected an error"),
            },
        };
        assert_eq!(err.kind, *kind, "{src}: {}", err.message);
        text.push_str(&format!(
            "$ matdiff derive '{src}'\n{}\n",
            matdiff::cli::render_error(&err, "<expr>", src)
        ));
    }
    common::snapshots().bind(|| insta::assert_snapshot!("error_messages", text));
}

#[test]
fn unknown_wrt_and_clashing_upstream_are_usage_errors() {
    let p = matdiff::syntax::parse_program("W*X").unwrap();
    let wrt = vec![matdiff::syntax::parse_var("Q").unwrap()];
    let e = matdiff::derive(&p, &matdiff::DeriveOptions { wrt, ..Default::default() }).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Usage);
    assert!(e.message.contains("`Q` does not occur"), "{}", e.message);

    let p = matdiff::syntax::parse_program("G*X").unwrap();
    let e = matdiff::derive(&p, &Default::default()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Usage);
    let ok =
        matdiff::derive(&p, &matdiff::DeriveOptions { upstream: Some("H".into()), ..Default::default() })
            .unwrap();
    assert_eq!(ok.gradients[0].expr.to_string(), "H * X^T");
}

/// Brackets nested past the limit are refused before pest recurses.
#[test]
fn deep_nesting_is_refused_by_name() {
    let deep = format!("{}A{}", "(".repeat(10_000), ")".repeat(10_000));
    let e = matdiff::syntax::parse_program(&deep).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Limit);
    assert!(e.message.contains(&matdiff::syntax::MAX_NESTING.to_string()));
    let ok = format!("{}A{}", "(".repeat(100), ")".repeat(100));
    assert!(matdiff::syntax::parse_program(&ok).is_ok());
}

/// Definitions that double at every line are stopped at the node limit.
#[test]
fn exponential_definitions_hit_the_node_limit() {
    let mut src = String::from("A0 = X*X");
    for i in 1..40 {
        src.push_str(&format!("; A{i} = A{}*A{}", i - 1, i - 1));
    }
    let e = matdiff::syntax::parse_program(&src).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Limit, "{}", e.message);
}
