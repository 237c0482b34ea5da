//! Properties over generated inputs:
//! (a) printing then parsing is the identity on ASTs of the whole language;
//! (b) random chains of 1–8 factors, rectangular, with random transposes and
//!     tied factors: every gradient agrees with finite differences;
//! (c) random well-typed expressions over the foundation calculus (products,
//!     sums, negation, scalars, broadcasting, transposes, traces, I): every
//!     gradient agrees with finite differences, and `tidy` keeps the value.

use std::collections::BTreeMap;
use std::rc::Rc;

use matdiff::numeric::{check, eval, relative_error, CheckOptions, Env, Matrix};
use matdiff::syntax::{parse_expr, parse_program, BinOp, Expr, ExprKind, Func, Index, VarName};
use proptest::prelude::*;

// ------------------------------------------------------------ (a) round trip

fn index() -> impl Strategy<Value = Index> {
    (
        prop::collection::vec((prop::sample::select(vec!["i", "j", "n"]), -2i64..=2), 0..3),
        -3i64..=3,
    )
        .prop_map(|(terms, c)| {
            terms
                .into_iter()
                .fold(Index::constant(c), |acc, (name, k)| {
                    (0..k.abs()).fold(acc, |acc, _| {
                        if k > 0 {
                            acc.plus(&Index::symbol(name))
                        } else {
                            acc.minus(&Index::symbol(name))
                        }
                    })
                })
        })
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
            Expr::synthetic(ExprKind::Var(VarName {
                name: n.to_string(),
                index: Some(i),
            }))
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
    ];
    leaf().prop_recursive(6, 80, 2, move |inner| {
        prop_oneof![
            inner.clone().prop_map(Expr::negate),
            inner.clone().prop_map(Expr::transpose),
            (
                prop::sample::select(ops.clone()),
                inner.clone(),
                inner.clone()
            )
                .prop_map(|(op, a, b)| Expr::binary(op, a, b)),
            (inner.clone(), -4i64..=4)
                .prop_map(|(a, k)| Expr::synthetic(ExprKind::Power(Rc::new(a), k))),
            (inner.clone(), prop::num::f64::NORMAL | prop::num::f64::ZERO)
                .prop_map(|(a, p)| Expr::synthetic(ExprKind::HadamardPower(Rc::new(a), p))),
            (prop::sample::select(Func::ALL.to_vec()), inner.clone())
                .prop_map(|(f, a)| Expr::call(f, a)),
            (
                inner,
                prop::sample::select(vec!["i", "k"]),
                index(),
                index()
            )
                .prop_map(|(body, var, lo, hi)| {
                    Expr::synthetic(ExprKind::Prod {
                        body: Rc::new(body),
                        var: var.to_string(),
                        lo,
                        hi,
                    })
                }),
        ]
    })
}

proptest! {
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
    let decls: Vec<String> = vars
        .iter()
        .map(|(n, r, c)| format!("{n} : {r}x{c}"))
        .collect();
    let chain = factors.join("*");
    let body = if trace && dims[0] == dims[dims.len() - 1] {
        format!("tr({chain})")
    } else {
        chain
    };
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
        let report = check(
            &d,
            &CheckOptions {
                seed,
                ..Default::default()
            },
        )
        .map_err(|e| TestCaseError::fail(format!("{src}: {e}")))?;
        for (r, g) in report.results.iter().zip(&d.gradients) {
            prop_assert!(
                r.ok,
                "{}: d/d{} = {} is off by {:.2e}",
                src,
                r.wrt,
                g.expr,
                r.max_rel_err
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn chain_gradients_match_finite_differences(src in chains()) {
        assert_checks(&src)?;
    }
}

// ------------------------------------------- (c) typed random expressions

/// Builds a random expression of a required shape from a tape of choices,
/// declaring variables as it needs them.
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

    fn var(&mut self, r: usize, c: usize) -> String {
        let name = format!("M{r}{c}{}", ["a", "b"][self.pick(2) as usize]);
        self.vars.insert(name.clone(), (r, c));
        name
    }

    fn expr(&mut self, r: usize, c: usize, depth: u32) -> String {
        if depth == 0 {
            return if self.pick(3) == 0 {
                format!("{}^T", self.var(c, r))
            } else {
                self.var(r, c)
            };
        }
        let d = depth - 1;
        match self.pick(11) {
            0 | 1 => self.var(r, c),
            2 => format!("({} + {})", self.expr(r, c, d), self.expr(r, c, d)),
            3 => format!("({} - {})", self.expr(r, c, d), self.expr(r, c, d)),
            4 => format!("(-{})", self.expr(r, c, d)),
            5 | 6 => {
                let k = 1 + self.pick(3) as usize;
                format!("({} * {})", self.expr(r, k, d), self.expr(k, c, d))
            }
            7 => match self.pick(2) {
                0 => format!("({} * {})", self.expr(1, 1, d), self.expr(r, c, d)),
                _ => format!(
                    "({} * {})",
                    ["2", "0.5", "3"][self.pick(3) as usize],
                    self.expr(r, c, d)
                ),
            },
            8 if r == 1 && c == 1 => {
                let n = 1 + self.pick(3) as usize;
                format!("tr({})", self.expr(n, n, d))
            }
            8 if r == c => match self.pick(2) {
                0 => format!("({} + I)", self.expr(r, c, d)),
                _ => format!("(I * {})", self.expr(r, c, d)),
            },
            9 if (r, c) != (1, 1) => format!("({} + {})", self.expr(1, 1, d), self.expr(r, c, d)),
            _ => format!("({})^T", self.expr(c, r, d)),
        }
    }
}

fn typed_programs() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(any::<u32>(), 256),
        1usize..=3,
        1usize..=3,
        1u32..=4,
    )
        .prop_map(|(tape, r, c, depth)| {
            let mut g = Gen {
                tape,
                at: 0,
                vars: BTreeMap::new(),
            };
            let body = g.expr(r, c, depth);
            let decls: Vec<String> = g
                .vars
                .iter()
                .map(|(n, (r, c))| format!("{n} : {r}x{c}"))
                .collect();
            format!("{}; {body}", decls.join("; "))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn typed_gradients_match_finite_differences(src in typed_programs()) {
        assert_checks(&src)?;
    }

    #[test]
    fn tidy_keeps_the_value(src in typed_programs(), seed in 0u64..1000) {
        use rand::SeedableRng;
        let program = parse_program(&src).unwrap();
        let typing = matdiff::shape::infer(&program).unwrap();
        let tidy = matdiff::simplify::tidy(&program.expr, typing.typer()).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut env = Env::default();
        let sizes = BTreeMap::new();
        for v in typing.variables() {
            let shape = typing.var_shape(v).unwrap();
            env.vars.insert(v.clone(), matdiff::numeric::random_matrix(&shape, &sizes, &mut rng).unwrap());
        }
        let rows = match typing.shape().rows { matdiff::shape::Dim::Const(n) => n as usize, _ => unreachable!() };
        let before: Matrix = eval(&program.expr, &env, Some(rows)).unwrap();
        let after: Matrix = eval(&tidy, &env, Some(rows)).unwrap();
        prop_assert!(relative_error(&before, &after) < 1e-12, "{} became {}", src, tidy);
    }
}
