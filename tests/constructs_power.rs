//! Entrywise powers by a scalar expression, `X .^ p` with `p : scalar`
//! (issue 19, item 4): both gradients, in X and in p, checked against
//! finite differences on random instances and sizes (X drawn positive, as
//! X^p = exp(p log X) needs; the exponent of either sign), what a user sees
//! snapshotted, wrong claims refused by `verify`, and a non-scalar exponent
//! refused with a caret at it.

mod common;

use matdiff::numeric::Sign;
use matdiff::parse as parse_program;
use matdiff::syntax::{parse_expr, parse_var, BinOp, ExprKind};
use matdiff::verify::verify;

const CASES: &[&str] = &[
    "X : m x n; p : scalar; sum(X .^ p)",
    "X : m x n; p : 1x1; sum(log(X .^ p))",
    "X : m x n; q : scalar; sum(X .^ (2*q))",
    "x : n; p : scalar; x^T * x .^ -p",
    "W : k x m; X : m x n; q : scalar; W * X .^ q",
    "X : m x n; a : scalar; b : scalar; sum(sin(X .^ (a - b)))",
    "x : n; y : n; p : scalar; norm(x .^ p - y)^2",
    "a : scalar; b : scalar; (a * b) .^ (a + b)",
    "X : m x n; p : scalar; sum(X .^ p .^ p)",
];

/// Every case agrees with finite differences, its sizes varying by seed; the
/// base is drawn positive and every exponent variable with both signs.
#[test]
fn every_case_matches_finite_differences() {
    for case in CASES {
        for seed in 1..=4 {
            let report = common::derive_and_check(case, seed).unwrap_or_else(|e| panic!("{case}:\n{e}"));
            assert!(!report.results.is_empty(), "{case}: no gradient checked");
            for r in &report.results {
                assert!(
                    r.ok(),
                    "{case} (seed {seed}): d/d{} off by {:?} ({:?})",
                    r.wrt,
                    r.max_rel_err,
                    r.reason
                );
            }
            let program = parse_program(case).unwrap();
            program.expr.for_each(|e| {
                if let ExprKind::Binary { op: BinOp::Power, lhs, rhs, .. } = &e.kind {
                    // (A compound base may be positive by itself: `X .^ p .^ p`.)
                    if let ExprKind::Var(v) = &lhs.kind {
                        let sign = report.domains.get(&**v).map(|d| d.sign);
                        assert_eq!(sign, Some(Sign::Positive), "{case}: base {v} drawn {sign:?}");
                    }
                    rhs.for_each(|v| match &v.kind {
                        ExprKind::Var(v) if !lhs.mentions(v) => {
                            // Not listed: drawn of either sign.
                            let sign = report.domains.get(&**v).map_or(Sign::Any, |d| d.sign);
                            assert_eq!(sign, Sign::Any, "{case}: exponent {v} drawn {sign:?}");
                        }
                        _ => {}
                    });
                }
            });
        }
    }
}

/// The textbook forms, and a number exponent, however written, is the
/// literal power as before.
#[test]
fn textbook_forms() {
    let src = "X : m x n; p : scalar; sum(X .^ p)";
    assert_eq!(common::gradient_text(src, "X"), "p * X .^ (p - 1)");
    assert_eq!(common::gradient_text(src, "p"), "sum(X .^ p .* log(X))");
    assert_eq!(common::gradient_text("X : m x n; sum(X .^ 2)", "X"), "2 * X");
    assert_eq!(common::gradient_text("X : m x n; sum(X .^ (3 - 1))", "X"), "2 * X");
    assert_eq!(common::gradient_text("X : m x n; sum(X .^ (2.5))", "X"), "2.5 * X .^ 1.5");
    // `.^ 2` with a literal parses as before; a bracketed exponent is an expression.
    assert!(matches!(parse_expr("X .^ 2").unwrap().kind, ExprKind::HadamardPower(_, p) if p == 2.0));
    assert!(matches!(parse_expr("X .^ -0.5").unwrap().kind, ExprKind::HadamardPower(_, p) if p == -0.5));
    assert!(matches!(parse_expr("X .^ (2)").unwrap().kind, ExprKind::Binary { op: BinOp::Power, .. }));
}

/// Text round-trips: what is printed parses back to the same tree.
#[test]
fn printed_forms_reparse() {
    for src in [
        "X .^ p",
        "X .^ -p",
        "X .^ (2 * q)",
        "X .^ (2)",
        "X .^ (-2)",
        "X .^ sum(y)",
        "X .^ p .^ q",
        "(X .^ p)^T",
        "(-X) .^ p",
        "(A * B) .^ (p - 1) .* C",
        "X .^ -(p + q)",
        "X .^ -prod(W[i], i=1..n)",
    ] {
        let e = parse_expr(src).unwrap();
        let text = e.to_string();
        assert_eq!(parse_expr(&text).unwrap(), e, "{src} printed {text}");
    }
    for case in CASES {
        let program = parse_program(case).unwrap();
        let d = matdiff::derive(&program, &Default::default()).unwrap();
        for g in &d.gradients {
            let text = g.expr.to_string();
            assert_eq!(parse_expr(&text).unwrap_or_else(|e| panic!("{text}: {e}")), g.expr, "{text}");
        }
    }
}

/// Wrong claims are refused, right ones accepted.
#[test]
fn claims() {
    let src = "X : m x n; p : scalar; sum(X .^ p)";
    for (wrt, claim, want) in [
        ("X", "p * X .^ (p - 1)", true),
        ("X", "p * X .^ p", false),
        ("X", "(p - 1) * X .^ (p - 1)", false),
        ("p", "sum(X .^ p .* log(X))", true),
        ("p", "sum(X .^ (p - 1) .* log(X))", false),
        ("p", "sum(X .^ p)", false),
    ] {
        let program = parse_program(src).unwrap();
        let v = verify(&program, &parse_var(wrt).unwrap(), claim, &Default::default())
            .unwrap_or_else(|e| panic!("{claim}: {e}"));
        assert_eq!(v.equivalent(), want, "d/d{wrt} claimed {claim}: {}", v.detail);
    }
}

/// Values on a known instance.
#[test]
fn values() {
    use matdiff::numeric::{eval, Env, Matrix};
    let mut env = Env::default();
    env.vars.insert(parse_var("X").unwrap(), Matrix::from_row_slice(1, 3, &[1., 4., 9.]));
    env.vars.insert(parse_var("p").unwrap(), Matrix::from_element(1, 1, 0.5));
    let v = eval(&parse_expr("X .^ p").unwrap(), &env, None).unwrap();
    assert_eq!(v, Matrix::from_row_slice(1, 3, &[1., 2., 3.]));
    let v = eval(&parse_expr("X .^ (2 * p)").unwrap(), &env, None).unwrap();
    assert_eq!(v, Matrix::from_row_slice(1, 3, &[1., 4., 9.]));
}

/// An exponent that is not a scalar is a shape error at the exponent,
/// saying what to write instead.
#[test]
fn errors() {
    for (src, at, says) in [
        ("p : 3; X : 3 x 4; sum(X .^ p)", "p)", "the exponent of `.^` must be a scalar, but `p` is 3x1"),
        ("P : 3 x 4; X : 3 x 4; sum(X .^ (2*P))", "(2*P)", "`2 * P` is 3x4"),
    ] {
        let program = parse_program(src).unwrap();
        let e = matdiff::shape::infer(&program).unwrap_err();
        assert!(e.to_string().contains(says), "{src}: {e}");
        let rendered = common::derive_text(src);
        assert!(rendered.contains("declare"), "{rendered}");
        let column = src.rfind(at).unwrap();
        let caret_line = rendered.lines().find(|l| l.contains('|') && l.contains("exponent")).unwrap_or("");
        assert!(!caret_line.is_empty(), "{rendered}");
        let span = e.labels.first().map(|l| l.span).unwrap();
        assert!(span.start >= column, "{src}: label at {span:?}, exponent at {column}");
    }
    let e = parse_program("X .^ ").unwrap_err();
    assert!(e.to_string().contains("exponent"), "{e}");
    // A matrix power by a scalar expression: `.^` suggested, the caret at it.
    for (src, at, write) in [
        ("A : n x n; a : scalar; sum(A^a)", "a)", "`.^ a`"),
        ("A : n x n; a : scalar; sum(A^(a + 1))", "(a", "`.^ (…)`"),
    ] {
        let e = parse_program(src).unwrap_err();
        assert!(e.to_string().contains("the exponent of a matrix power `^` is an integer"), "{src}: {e}");
        assert!(e.notes.iter().any(|n| n.contains(write)), "{src}: {:?}", e.notes);
        assert_eq!(e.labels[0].span.start, src.rfind(at).unwrap(), "{src}");
    }
}

/// What users see: derive, --steps and LaTeX.
#[test]
fn printed() {
    let mut text = String::new();
    for src in ["X : m x n; p : scalar; sum(X .^ p)", "x : n; q : scalar; x^T * x .^ (2*q)"] {
        for args in [vec!["derive", src], vec!["derive", "--steps", src], vec!["derive", "--latex", src]] {
            text.push_str(&common::transcript(&args));
        }
    }
    text.push_str(&common::derive_text("p : 3; X : 3 x 4; sum(X .^ p)"));
    common::snapshots().bind(|| insta::assert_snapshot!("constructs_power", text));
}
