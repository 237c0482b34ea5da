//! Properties over generated inputs:
//! (a) printing then parsing is the identity on ASTs of the whole language;
//! (b) random chains of 1–8 factors, rectangular, with random transposes and
//!     tied factors: every gradient agrees with finite differences;
//! (c) random well-typed expressions over the foundation calculus (products,
//!     sums, negation, scalars, broadcasting, transposes, traces, I): every
//!     gradient agrees with finite differences, and `tidy` keeps the value.

mod common;

use std::collections::BTreeMap;
use std::rc::Rc;

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
    let ops = vec![BinOp::Add, BinOp::Sub, BinOp::Mul, BinOp::Hadamard, BinOp::HadamardDiv, BinOp::Div];
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

// --------------------------------------------------------------- (b) chains

/// A chain program: for factor i of shape d[i] x d[i+1], reuse a variable
/// of that shape (tied) or of the transposed shape, or declare a new one
/// (stored transposed when asked).
fn chain_program(dims: &[usize], choices: &[(u8, bool)], trace: bool) -> String {
    let mut vars: Vec<(String, usize, usize)> = vec![];
    let mut factors = vec![];
    for (i, &(reuse, transpose)) in choices.iter().enumerate() {
        let (r, c) = (dims[i], dims[i + 1]);
        let fits: Vec<String> = vars
            .iter()
            .filter_map(|(n, vr, vc)| {
                if (*vr, *vc) == (r, c) {
                    Some(n.clone())
                } else if (*vr, *vc) == (c, r) {
                    Some(format!("{n}^T"))
                } else {
                    None
                }
            })
            .collect();
        if reuse % 2 == 1 && !fits.is_empty() {
            factors.push(fits[reuse as usize % fits.len()].clone());
        } else {
            let name = format!("W{}", vars.len() + 1);
            if transpose {
                vars.push((name.clone(), c, r));
                factors.push(format!("{name}'"));
            } else {
                vars.push((name.clone(), r, c));
                factors.push(name);
            }
        }
    }
    let decls: Vec<String> = vars.iter().map(|(n, r, c)| format!("{n} : {r}x{c}")).collect();
    let chain = factors.join("*");
    let body = if trace && dims[0] == dims[dims.len() - 1] { format!("tr({chain})") } else { chain };
    format!("{}; {body}", decls.join("; "))
}

fn chains() -> impl Strategy<Value = String> {
    (1usize..=8)
        .prop_flat_map(|k| {
            (
                prop::collection::vec(1usize..=3, k + 1),
                prop::collection::vec((any::<u8>(), any::<bool>()), k),
                any::<bool>(),
            )
        })
        .prop_map(|(dims, choices, trace)| chain_program(&dims, &choices, trace))
}

fn assert_checks(src: &str) -> Result<(), TestCaseError> {
    let program = parse_program(src).map_err(|e| TestCaseError::fail(format!("{src}: {e}")))?;
    let d = matdiff::derive(&program, &Default::default())
        .map_err(|e| TestCaseError::fail(format!("{src}: {e}")))?;
    for seed in [1, 2] {
        let report = check(&d, &CheckOptions { seed, ..Default::default() })
            .map_err(|e| TestCaseError::fail(format!("{src}: {e}")))?;
        for (r, g) in report.results.iter().zip(&d.gradients) {
            prop_assert!(r.ok, "{}: d/d{} = {} is off by {:.2e}", src, r.wrt, g.expr, r.max_rel_err);
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

/// Builds a random expression of a required shape from a tape of choices,
/// over the whole language, declaring variables as it needs them. Logs,
/// square roots and divisors get positive arguments, inverses and
/// determinants positive definite ones, so every instance is defined.
struct Gen {
    tape: Vec<u32>,
    at: usize,
    vars: BTreeMap<String, (usize, usize)>,
}

impl Gen {
    fn pick(&mut self, n: u32) -> u32 {
        let v = self.tape.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        v % n
    }

    fn var(&mut self, prefix: &str, r: usize, c: usize) -> String {
        let name = format!("{prefix}{r}{c}{}", ["a", "b"][self.pick(2) as usize]);
        self.vars.insert(name.clone(), (r, c));
        name
    }

    fn expr(&mut self, r: usize, c: usize, depth: u32) -> String {
        if depth == 0 {
            return if self.pick(3) == 0 {
                format!("{}^T", self.var("M", c, r))
            } else {
                self.var("M", r, c)
            };
        }
        let d = depth - 1;
        let k = 1 + self.pick(3) as usize;
        match self.pick(24) {
            0 => self.var("M", r, c),
            1 => format!("({} * {})", self.expr(r, k, d), self.expr(k, c, d)),
            2 => format!("({} + {})", self.expr(r, c, d), self.expr(r, c, d)),
            3 => format!("({} - {})", self.expr(r, c, d), self.expr(r, c, d)),
            4 => format!("(-{})", self.expr(r, c, d)),
            5 | 6 => format!("({} * {})", self.expr(r, k, d), self.expr(k, c, d)),
            7 => match self.pick(2) {
                0 => format!("({} * {})", self.expr(1, 1, d), self.expr(r, c, d)),
                _ => format!("({} * {})", ["2", "0.5", "3"][self.pick(3) as usize], self.expr(r, c, d)),
            },
            8 if (r, c) != (1, 1) => format!("({} + {})", self.expr(1, 1, d), self.expr(r, c, d)),
            9 => format!("({})^T", self.expr(c, r, d)),
            10 => format!("({} .* {})", self.expr(r, c, d), self.expr(r, c, d)),
            11 => format!("({} ./ {})", self.expr(r, c, d), self.positive(r, c, d)),
            // exp of a variable only: exp(exp(exp(x))) overflows near x = 2.
            12 => match self.pick(5) {
                0 => format!("exp({})", self.var("M", r, c)),
                f => format!("{}({})", ["sin", "cos", "tanh", "sigmoid"][f as usize - 1], self.expr(r, c, d)),
            },
            13 => {
                let f = ["log", "sqrt"][self.pick(2) as usize];
                format!("{f}({})", self.positive(r, c, d))
            }
            14 => match self.pick(3) {
                0 => format!("({} .^ 2)", self.expr(r, c, d)),
                1 => format!("({} .^ 0.5)", self.positive(r, c, d)),
                _ => format!("({} .^ -1.5)", self.positive(r, c, d)),
            },
            15 => format!("({} / {})", self.expr(r, c, d), self.positive(1, 1, d)),
            16 if r == c => format!("({})^-1", self.spd(r, d)),
            17 if r == c => format!("({})^2", self.expr(r, c, d)),
            18 if r == c => format!("({})^-2", self.spd(r, d)),
            19 if (r, c) == (1, 1) => format!("tr({})", self.expr(k, k, d)),
            20 if (r, c) == (1, 1) => match self.pick(3) {
                0 => format!("sum({})", self.expr(k, k + 1, d)),
                1 => format!("norm({})", self.positive(k, k + 1, d)),
                _ => format!("norm({})^2", self.expr(k, k + 1, d)),
            },
            21 if (r, c) == (1, 1) => match self.pick(2) {
                0 => format!("det({})", self.spd(k, d)),
                _ => format!("logdet({})", self.spd(k, d)),
            },
            // `s + I` with a 1×1 s broadcasts s over an I of any size.
            22 if r == c && r > 1 => match self.pick(2) {
                0 => format!("({} + I)", self.expr(r, c, d)),
                _ => format!("(I * {})", self.expr(r, c, d)),
            },
            _ => format!("({} - {})", self.expr(r, c, d), self.expr(r, c, d)),
        }
    }

    /// An expression with positive entries.
    fn positive(&mut self, r: usize, c: usize, depth: u32) -> String {
        if depth == 0 {
            return self.var("P", r, c);
        }
        let d = depth - 1;
        match self.pick(7) {
            0 | 1 => self.var("P", r, c),
            2 => format!("exp({})", self.var("M", r, c)),
            3 => format!("sigmoid({})", self.expr(r, c, d)),
            4 => format!("({} + {})", self.positive(r, c, d), self.positive(r, c, d)),
            5 => format!("({} .* {})", self.positive(r, c, d), self.positive(r, c, d)),
            _ => format!("(2 * {})", self.positive(r, c, d)),
        }
    }

    /// A symmetric positive definite n×n expression.
    fn spd(&mut self, n: usize, depth: u32) -> String {
        if depth == 0 {
            return self.var("S", n, n);
        }
        let d = depth - 1;
        match self.pick(4) {
            0 | 1 => self.var("S", n, n),
            2 if n > 1 => {
                let m = 1 + self.pick(3) as usize;
                let x = self.expr(m, n, d);
                format!("(({x})^T * ({x}) + I)")
            }
            _ => format!("({} + {})", self.spd(n, d), self.spd(n, d)),
        }
    }
}

fn typed_programs() -> impl Strategy<Value = String> {
    programs(256, 1..=5)
}

/// Deeper programs: up to depth 12, as long as a tape of 512 choices lasts
/// (past its end every choice is a variable, which ends the expression).
fn deep_typed_programs() -> impl Strategy<Value = String> {
    programs(512, 6..=12)
}

fn programs(tape: usize, depth: std::ops::RangeInclusive<u32>) -> impl Strategy<Value = String> {
    (prop::collection::vec(any::<u32>(), tape), 1usize..=3, 1usize..=3, depth).prop_map(
        |(tape, r, c, depth)| {
            let mut g = Gen { tape, at: 0, vars: BTreeMap::new() };
            let body = g.expr(r, c, depth);
            let decls: Vec<String> = g.vars.iter().map(|(n, (r, c))| format!("{n} : {r}x{c}")).collect();
            format!("{}; {body}", decls.join("; "))
        },
    )
}

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
                prop_assert!(r.ok || r.undecided(), "{} (seed {}): d/d{} = {} is off by {:.2e}", src, seed, r.wrt, g.expr, r.max_rel_err);
            }
        }
    }
}
