//! Properties over generated inputs:
//! (a) printing then parsing is the identity on ASTs of the whole language;
//! (b) random chains of 1–8 factors, rectangular, with random transposes and
//!     tied factors: every gradient agrees with finite differences;
//! (c) random well-typed expressions over the foundation calculus (products,
//!     sums, negation, scalars, broadcasting, transposes, traces, I): every
//!     gradient agrees with finite differences, and `tidy` keeps the value.

mod common;

use std::rc::Rc;

use common::generators::{chains, deep_typed_programs, typed_programs};

use matdiff::numeric::{check, eval, relative_error, CheckOptions, Instance, Matrix};
use matdiff::syntax::{parse_expr, parse_program, BinOp, Expr, ExprKind, Func, Index, VarName};
use matdiff::ErrorKind;
use proptest::prelude::*;

// ------------------------------------------------------------ (a) round trip

fn index() -> impl Strategy<Value = Index> {
    (prop::collection::vec((prop::sample::select(vec!["i", "j", "n"]), -2i64..=2), 0..3), -3i64..=3).prop_map(
        |(terms, c)| {
            terms.into_iter().fold(Index::constant(c), |acc, (name, k)| {
                (0..k.abs()).fold(acc, |acc, _| {
                    if k > 0 {
                        acc.plus(&Index::symbol(name)).unwrap()
                    } else {
                        acc.minus(&Index::symbol(name)).unwrap()
                    }
                })
            })
        },
    )
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        (0u32..1000).prop_map(f64::from),
        0.0f64..10.0,
        prop::num::f64::POSITIVE | prop::num::f64::ZERO,
    ]
}

fn leaf() -> impl Strategy<Value = Expr> {
    let names = vec!["A", "W1", "x", "alpha", "W_2", "T", "tr", "prod", "scalar"];
    prop_oneof![
        prop::sample::select(names).prop_map(Expr::var),
        (prop::sample::select(vec!["W", "d"]), index()).prop_map(|(n, i)| {
            Expr::synthetic(ExprKind::Var(Rc::new(VarName { name: n.to_string(), index: Some(i) })))
        }),
        Just(Expr::identity()),
        number().prop_map(Expr::num),
    ]
}

fn any_expr() -> impl Strategy<Value = Expr> {
    let ops = vec![
        BinOp::Add,
        BinOp::Sub,
        BinOp::Mul,
        BinOp::Hadamard,
        BinOp::HadamardDiv,
        BinOp::Div,
        BinOp::Max,
        BinOp::Min,
        BinOp::Power,
        BinOp::Kron,
    ];
    leaf().prop_recursive(6, 80, 2, move |inner| {
        prop_oneof![
            inner.clone().prop_map(Expr::negate),
            inner.clone().prop_map(Expr::transpose),
            (prop::sample::select(ops.clone()), inner.clone(), inner.clone())
                .prop_map(|(op, a, b)| Expr::binary(op, a, b)),
            (inner.clone(), -4i64..=4).prop_map(|(a, k)| Expr::synthetic(ExprKind::Power(Rc::new(a), k))),
            (inner.clone(), prop::num::f64::NORMAL | prop::num::f64::ZERO)
                .prop_map(|(a, p)| Expr::synthetic(ExprKind::HadamardPower(Rc::new(a), p))),
            (prop::sample::select(Func::ALL.to_vec()), inner.clone()).prop_map(|(f, a)| Expr::call(f, a)),
            (inner, prop::sample::select(vec!["i", "k"]), index(), index()).prop_map(
                |(body, var, lo, hi)| {
                    Expr::synthetic(ExprKind::Prod(Rc::new(matdiff::syntax::Prod {
                        body: Rc::new(body),
                        var: var.to_string(),
                        lo,
                        hi,
                    })))
                }
            ),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(1000)))]
    #[test]
    fn print_then_parse_is_identity(e in any_expr()) {
        let text = e.to_string();
        let back = parse_expr(&text).map_err(|err| TestCaseError::fail(format!("{text}: {err}")))?;
        prop_assert_eq!(back, e, "{}", text);
    }
}

// ------------------------------------------------ (a') LaTeX means the same
// The LaTeX of any expression, read as a person reads it (juxtaposition a
// product, `A -B` a difference, no reading for `A B \odot C`), is the
// expression: the printer drops no bracket that changes the meaning.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(1000)))]
    #[test]
    fn latex_reads_back_as_the_expression(e in any_expr()) {
        let latex = matdiff::syntax::to_latex(&e);
        let read = common::latex_reader::read(&latex)
            .map_err(|err| TestCaseError::fail(format!("{e}\n{latex}\n{err}")))?;
        prop_assert_eq!(read, common::latex_reader::tree(&e), "{}\n{}", e, latex);
    }
}

/// The reader is strict: it refuses the forms without a single reading
/// and reads juxtaposition and signs as a person would.
#[test]
fn the_latex_reader_refuses_what_has_no_single_reading() {
    use common::latex_reader::{read, tree};
    for ambiguous in [r"A B \odot C", r"A \odot B \oslash C", r"A \cdot B \odot C"] {
        assert!(read(ambiguous).is_err(), "{ambiguous}");
    }
    let same =
        |latex: &str, text: &str| assert_eq!(read(latex), Ok(tree(&parse_expr(text).unwrap())), "{latex}");
    same(r"A -B", "A - B");
    same(r"A \cdot -B", "A * -B");
    same(r"\left(A \odot B\right) C", "(A .* B) * C");
    same(r"W_{2}^{\top} G", "W2^T * G");
    same(r"\sigma\left(x\right)", "sigmoid(x)");
    same(r"\sigma \cdot \left(x\right)", "sigma * x");
    same(r"1 \times 10^{-7} A", "1e-7 * A");
}

// --------------------------------------------------------------- (b) chains
// The generators of (b) and (c) are in tests/common/generators.rs.

fn assert_checks(src: &str) -> Result<(), TestCaseError> {
    let program = parse_program(src).map_err(|e| TestCaseError::fail(format!("{src}: {e}")))?;
    let d = matdiff::derive(&program, &Default::default())
        .map_err(|e| TestCaseError::fail(format!("{src}: {e}")))?;
    for seed in [1, 2] {
        let report = check(&d, &CheckOptions { seed, ..Default::default() })
            .map_err(|e| TestCaseError::fail(format!("{src}: {e}")))?;
        for (r, g) in report.results.iter().zip(&d.gradients) {
            // An expression that is zero everywhere (`(M - M) * A`) has
            // a zero gradient that tests nothing; anything else must agree.
            let vacuous = r.reason.as_deref() == Some(matdiff::numeric::EXACTLY_ZERO);
            prop_assert!(
                r.ok() || vacuous,
                "{}: d/d{} = {} is off by {:?} ({:?})",
                src,
                r.wrt,
                g.expr,
                r.max_rel_err,
                r.reason
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(200)))]
    #[test]
    fn chain_gradients_match_finite_differences(src in chains()) {
        assert_checks(&src)?;
    }
}

// ------------------------------------------- (c) typed random expressions

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(300)))]
    #[test]
    fn typed_gradients_match_finite_differences(src in typed_programs()) {
        assert_checks(&src)?;
    }

    /// `tidy` and the e-graph simplifier change the form, never the value.
    #[test]
    fn simplification_keeps_the_value(src in typed_programs(), seed in 0u64..1000) {
        let program = parse_program(&src).unwrap();
        let d = matdiff::derive(&program, &Default::default());
        prop_assume!(d.is_ok(), "refused: {}", src);
        let d = d.unwrap();
        let instance = Instance::draw(&d, &CheckOptions { seed, ..Default::default() }).unwrap();
        let tidy = matdiff::simplify::tidy(&program.expr, d.typing.typer()).unwrap();
        let simplified = matdiff::simplify::simplify(&program.expr, d.typing.typer(), None).unwrap().expr;
        let size = |d: matdiff::shape::Dim| match d { matdiff::shape::Dim::Const(n) => n as usize, _ => unreachable!() };
        let (rows, cols) = (size(d.typing.shape().rows), size(d.typing.shape().cols));
        let before: Matrix = eval(&program.expr, &instance.env, Some((rows, cols))).unwrap();
        for after in [&tidy, &simplified] {
            let value: Matrix = eval(after, &instance.env, Some((rows, cols))).unwrap();
            prop_assert!(relative_error(&before, &value) < 1e-10, "{} became {}", src, after);
        }
    }
}

proptest! {
    // Deep programs cost seconds each in a debug build; more with
    // PROPTEST_CASES (README, "Robustness and fuzzing").
    #![proptest_config(ProptestConfig::with_cases(common::cases(60)))]

    /// Deep programs are derived, or refused by name; a derived gradient
    /// agrees with finite differences wherever an instance is well-conditioned.
    #[test]
    fn deep_gradients_match_finite_differences_or_are_refused(src in deep_typed_programs()) {
        let program = parse_program(&src).map_err(|e| TestCaseError::fail(format!("{src}: {e}")))?;
        let d = match matdiff::derive(&program, &Default::default()) {
            Ok(d) => d,
            Err(e) if matches!(e.kind, ErrorKind::Unsupported | ErrorKind::Limit) => return Ok(()),
            Err(e) => return Err(TestCaseError::fail(format!("{src}: {e}"))),
        };
        for seed in [1, 2] {
            let report = match check(&d, &CheckOptions { seed, ..Default::default() }) {
                Ok(report) => report,
                Err(e) if e.message.contains("no well-conditioned instance") => continue,
                Err(e) => return Err(TestCaseError::fail(format!("{src}: {e}"))),
            };
            for (r, g) in report.results.iter().zip(&d.gradients) {
                // Differences too noisy to decide (a huge loss) are no evidence either way.
                prop_assert!(r.ok() || r.undecided(), "{} (seed {}): d/d{} = {} is off by {:?}", src, seed, r.wrt, g.expr, r.max_rel_err);
            }
        }
    }
}
