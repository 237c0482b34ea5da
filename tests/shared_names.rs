//! Shared names (docs/cli.md, Shared names): a subexpression repeated
//! across the gradients is printed once as `T1 = …`. The named form, with
//! its definitions pasted before it, must be the expanded gradient exactly
//! once parsed, and pass the numeric check as the gradient; names never
//! collide with the program's; nothing is named where nothing repeats.
//! The LaTeX snapshot is rendered by KaTeX in CI (tests/katex/render.js).

mod common;

use matdiff::numeric::{check, CheckOptions};
use matdiff::{derive, Derivation, DeriveOptions, Gradient, Sharing};

/// Programs whose gradients repeat a subexpression.
const SHARING: &[&str] = &[
    "W : k x m; x : m; b : k; y : k; norm(sigmoid(W*x + b) - y)^2",
    "W : k x m; X : m x B; Y : k x B; norm(sigmoid(W*X) - Y)^2",
    "W1 : h x d; b1 : h; W2 : k x h; b2 : k; X : d x m; Y : k x m; H = relu(W1*X + b1); norm(W2*H + b2 - Y)^2",
    "W1 : h x n; W2 : k x h; X : n x B; Y : k x B; norm(W2*relu(W1*X) - Y)^2",
    "W : k x d; X : d x B; b : k; Y : k x B onehot; -sum(Y .* log(softmax(W*X + b)))",
    "W1 : 4x3; W2 : 2x4; X : 3x5; Y : 2x5; sum(Y .* tanh(W2*tanh(W1*X)))",
    "H = tanh(W1*X); Y = W2*H",
    "W : 3x4; X : 4x6; Y : 3x6; norm(W*X - Y)",
    "A : 3x3; B : 3x3; (A + B)^T*(A - B)",
    "W1 : 4x3; W2 : 2x4; b1 : 4; X : 3; W2*sigmoid(W1*X + b1)",
    // A name's transpose (`T1^T` for `x^T - mu^T`) and its negation as a
    // factor (`-S^-1 * T1`, not `S^-1 * -T1`).
    "S : 3x3; x : 3; mu : 3; logdet(S) + (x - mu)^T * S^-1 * (x - mu)",
    "S : 3x3 spd; x : 3; mu : 3; 0.5 * logdet(S) + 0.5 * (x - mu)^T * S^-1 * (x - mu)",
    // One sum, simplified apart in two gradients in two orders of its terms.
    "W1 : d x d; W2 : d x d; X : d x m; Y : d x m; norm(X + W2*tanh(W1*X) - Y)^2",
];

/// Programs whose gradients repeat nothing worth a name.
const NOT_SHARING: &[&str] = &[
    "W1*W2*W3*X",
    "x : n; A : n x n; x^T*A*x",
    "X : n x n; logdet(X)",
    "w : d; X : m x d; y : m; sum(softplus(X*w))",
    "W : 3x3; X : 3x3; tr(W*X)",
];

fn derived(src: &str, sharing: Sharing) -> (matdiff::syntax::Program, DeriveOptions) {
    let program = matdiff::parse(src).unwrap_or_else(|e| panic!("{src}: {e:?}"));
    (program, DeriveOptions { sharing, ..Default::default() })
}

/// The declarations and definitions of `src` (all but the expression).
fn prefix(src: &str) -> String {
    match src.rfind(';') {
        Some(i) => format!("{};", &src[..i]),
        None => String::new(),
    }
}

/// `e` with its signs in one canonical place, so that the named form
/// pasted back compares with the gradient exactly: `-T1` stands for `b - a`
/// beside `T1 = a - b`, a product's sign is moved to its first factor, and
/// `T1^T` pastes back as `(x - mu)^T`, printed `x^T - mu^T`. Transposes go
/// to the leaves; a difference that is a factor (or negated) is ordered by
/// its printed operands and its sign, with every factor's, goes in front
/// of the product; `a + -b` is `a - b`, `a - -b` is `a + b`.
fn plain(e: &matdiff::syntax::Expr) -> matdiff::syntax::Expr {
    use matdiff::syntax::{BinOp, Expr, ExprKind};
    use std::rc::Rc;
    fn transposed(a: Expr) -> Expr {
        match &a.kind {
            ExprKind::Transpose(b) => (**b).clone(),
            ExprKind::Neg(b) => Expr::negate(transposed((**b).clone())),
            ExprKind::Binary { op: op @ (BinOp::Add | BinOp::Sub | BinOp::Hadamard), lhs, rhs, .. } => {
                Expr::binary(*op, transposed((**lhs).clone()), transposed((**rhs).clone()))
            }
            ExprKind::Binary { op: BinOp::Mul, lhs, rhs, .. } => {
                Expr::product(transposed((**rhs).clone()), transposed((**lhs).clone()))
            }
            _ => Expr::transpose(a),
        }
    }
    /// The sign (true: negative) and the unsigned rest.
    fn signed(e: &Expr) -> (bool, Expr) {
        match &e.kind {
            ExprKind::Neg(a) => {
                let (s, core) = signed(a);
                (!s, core)
            }
            ExprKind::Binary { op: BinOp::Sub, lhs, rhs, .. } if lhs.to_string() > rhs.to_string() => {
                (true, Expr::minus(rhs.clone(), lhs.clone()))
            }
            ExprKind::Binary { op: op @ (BinOp::Mul | BinOp::Hadamard), lhs, rhs, .. } => {
                let ((sl, l), (sr, r)) = (signed(lhs), signed(rhs));
                (sl != sr, Expr::binary(*op, l, r))
            }
            _ => (false, e.clone()),
        }
    }
    let e = e.map_children(|c| Rc::new(plain(c)));
    let e = match &e.kind {
        ExprKind::Transpose(a) => match transposed((**a).clone()) {
            t @ Expr { kind: ExprKind::Transpose(_), .. } => t,
            t => plain(&t),
        },
        ExprKind::Binary { op: BinOp::Add, lhs, rhs, .. } => match &rhs.kind {
            ExprKind::Neg(r) => Expr::minus(lhs.clone(), r.clone()),
            _ => e.clone(),
        },
        ExprKind::Binary { op: BinOp::Sub, lhs, rhs, .. } => match &rhs.kind {
            ExprKind::Neg(r) => Expr::plus(lhs.clone(), r.clone()),
            _ => e.clone(),
        },
        _ => e.clone(),
    };
    match &e.kind {
        ExprKind::Neg(_) | ExprKind::Binary { op: BinOp::Sub | BinOp::Mul | BinOp::Hadamard, .. } => {
            match signed(&e) {
                (true, core) => Expr::negate(core),
                (false, core) => core,
            }
        }
        _ => e,
    }
}

/// The named form of gradient `k` as a program: `src`'s declarations, the
/// shared definitions, the formula.
fn pasted(src: &str, d: &Derivation, k: usize) -> String {
    let shared = d.shared.as_ref().expect("something is shared");
    let defs: Vec<String> = shared.definitions.iter().map(|n| format!("{} = {}", n.name, n.expr)).collect();
    format!("{} {}; {}", prefix(src), defs.join("; "), shared.gradients[k])
}

#[test]
fn named_forms_reparse_to_the_expanded_gradients() {
    for src in SHARING {
        let (program, options) = derived(src, Sharing::Named);
        let d = derive(&program, &options).unwrap();
        let shared = d.shared.as_ref().unwrap_or_else(|| panic!("{src}: nothing named"));
        assert!(!shared.definitions.is_empty());
        // The text output is valid input: its definitions lines parse as such.
        let text = matdiff::cli::render_derivation(&d);
        for n in &shared.definitions {
            assert!(text.contains(&format!("{} = {}\n", n.name, n.expr)), "{src}:\n{text}");
        }
        for (k, g) in d.gradients.iter().enumerate() {
            let source = pasted(src, &d, k);
            let back = matdiff::syntax::parse_program(&source).unwrap_or_else(|e| panic!("{source}: {e:?}"));
            assert_eq!(plain(&back.expr), plain(&g.expr), "{source}\n  is not d/d{} = {}", g.wrt, g.expr);
        }
        // Every name is used somewhere.
        for n in &shared.definitions {
            let used = shared
                .gradients
                .iter()
                .chain(shared.definitions.iter().map(|m| &m.expr))
                .any(|e| e.mentions(&matdiff::syntax::VarName::plain(&n.name)));
            assert!(used, "{src}: {} is never used", n.name);
        }
    }
}

/// The pasted named form, as the gradient of the derivation, passes the
/// numeric check on random instances; a wrong definition fails it.
#[test]
fn named_forms_are_the_gradients_numerically() {
    for src in SHARING {
        let (program, options) = derived(src, Sharing::Named);
        let d = derive(&program, &options).unwrap();
        for (k, g) in d.gradients.iter().enumerate() {
            let source = pasted(src, &d, k);
            let back = matdiff::syntax::parse_program(&source).unwrap();
            let ask = |formula: &matdiff::syntax::Expr| {
                let one = Derivation {
                    typing: d.typing.clone(),
                    mode: d.mode.clone(),
                    gradients: vec![Gradient { expr: formula.clone(), ..g.clone() }],
                    shared: None,
                };
                let options = CheckOptions { seed: 7 + k as u64, ..Default::default() };
                check(&one, &options).unwrap()
            };
            let report = ask(&back.expr);
            assert!(report.ok(), "{source}: {:?}", report.results);
        }
        // A definition changed (by a factor) makes some gradient wrong.
        let shared = d.shared.as_ref().unwrap();
        let last = shared.definitions.last().unwrap();
        let wrong: Vec<String> = shared
            .definitions
            .iter()
            .map(|n| {
                if n == last {
                    format!("{} = 1.001 * ({})", n.name, n.expr)
                } else {
                    format!("{} = {}", n.name, n.expr)
                }
            })
            .collect();
        let mut caught = false;
        for (k, g) in d.gradients.iter().enumerate() {
            if !shared.gradients[k].mentions(&matdiff::syntax::VarName::plain(&last.name)) {
                continue;
            }
            let source = format!("{} {}; {}", prefix(src), wrong.join("; "), shared.gradients[k]);
            let back = matdiff::syntax::parse_program(&source).unwrap();
            let one = Derivation {
                typing: d.typing.clone(),
                mode: d.mode.clone(),
                gradients: vec![Gradient { expr: back.expr.clone(), ..g.clone() }],
                shared: None,
            };
            let report = check(&one, &CheckOptions { seed: 3, ..Default::default() }).unwrap();
            caught |= !report.ok();
        }
        assert!(caught, "{src}: a wrong {} passed", last.name);
    }
}

#[test]
fn nothing_is_named_where_nothing_repeats() {
    for src in NOT_SHARING {
        let (program, options) = derived(src, Sharing::Named);
        let d = derive(&program, &options).unwrap();
        assert!(d.shared.is_none(), "{src}: {:?}", d.shared.as_ref().map(|s| s.definitions_text()));
    }
    // --expanded: never, and the gradients are the same.
    for src in SHARING {
        let (program, options) = derived(src, Sharing::Expanded);
        let d = derive(&program, &options).unwrap();
        assert!(d.shared.is_none(), "{src}");
        let named = derive(&program, &DeriveOptions::default()).unwrap();
        for (a, b) in d.gradients.iter().zip(&named.gradients) {
            assert_eq!(a.expr, b.expr, "{src}");
        }
    }
}

/// A program that uses T1, T2 and T4 (as variables, a dimension, a
/// definition) gets T3, T5, …
#[test]
fn names_never_collide_with_the_program() {
    let src = "T1 : k x m; x : m; T2 : k; y : k; T4 = T1*x + T2; norm(sigmoid(T4) - y)^2";
    let (program, options) = derived(src, Sharing::Named);
    let d = derive(&program, &options).unwrap();
    let names: Vec<&str> = d.shared.as_ref().unwrap().definitions.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names[..2], ["T3", "T5"], "{names:?}");
    for k in 0..d.gradients.len() {
        let back = matdiff::syntax::parse_program(&pasted(src, &d, k)).unwrap();
        assert_eq!(back.expr, d.gradients[k].expr);
    }
    let src = "W : T1 x m; x : m; b : T1; y : T1; norm(sigmoid(W*x + b) - y)^2";
    let (program, options) = derived(src, Sharing::Named);
    let d = derive(&program, &options).unwrap();
    assert_eq!(d.shared.as_ref().unwrap().definitions[0].name, "T2");
}

fn cli(args: &[&str]) -> String {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let argv: Vec<String> =
        std::iter::once("matdiff").chain(args.iter().copied()).map(String::from).collect();
    let code = matdiff::cli::run(argv, &mut out, &mut err);
    assert_eq!(code, 0, "{args:?}: {}", String::from_utf8_lossy(&err));
    String::from_utf8(out).unwrap()
}

const SNAPSHOT_CASES: [&str; 3] = [SHARING[0], SHARING[2], SHARING[6]];

#[test]
fn shared_names_as_text_and_json() {
    let mut text = String::new();
    for src in SNAPSHOT_CASES {
        text.push_str(&format!("$ matdiff derive '{src}'\n{}\n", cli(&["derive", src])));
    }
    text.push_str(&format!(
        "$ matdiff derive '{0}' --expanded\n{1}\n",
        SNAPSHOT_CASES[0],
        cli(&["derive", SNAPSHOT_CASES[0], "--expanded"])
    ));
    for src in SNAPSHOT_CASES {
        text.push_str(&format!("$ matdiff derive '{src}' --json\n{}\n", cli(&["derive", src, "--json"])));
    }
    common::snapshots().bind(|| insta::assert_snapshot!("shared_names", text));
}

#[test]
fn shared_names_as_latex() {
    let mut text = String::new();
    for src in SNAPSHOT_CASES {
        text.push_str(&format!("$ matdiff derive '{src}' --latex\n{}\n", cli(&["derive", src, "--latex"])));
    }
    common::snapshots().bind(|| insta::assert_snapshot!("shared_names_latex", text));
}

/// `b - a` beside `T1 = a - b` is `-T1`, one name for both signs
/// (least squares' `d/dY`), and the named form still reparses to the
/// expanded gradient (above).
#[test]
fn a_swapped_difference_is_the_negated_name() {
    let src = "W : m x n; X : n x k; Y : m x k; norm(W*X - Y)^2 / 2";
    let (program, options) = derived(src, Sharing::Named);
    let d = derive(&program, &options).unwrap();
    let text = matdiff::cli::render_derivation(&d);
    assert!(text.starts_with("T1 = W * X - Y\n"), "{text}");
    assert!(text.contains("d/dY = -T1 "), "{text}");
    assert_eq!(d.gradients.iter().find(|g| g.wrt.name == "Y").unwrap().expr.to_string(), "Y - W * X");
}

#[test]
fn a_transposed_name_and_a_negated_factor() {
    let src = "S : 3x3 spd; x : 3; mu : 3; 0.5 * logdet(S) + 0.5 * (x - mu)^T * S^-1 * (x - mu)";
    let (program, options) = derived(src, Sharing::Named);
    let d = derive(&program, &options).unwrap();
    let text = matdiff::cli::render_derivation(&d);
    assert!(text.starts_with("T1 = x - mu\n"), "{text}");
    assert!(text.contains("* T1 * T1^T *"), "{text}");
    assert!(text.contains("d/dmu = -S^-1 * T1 "), "{text}");
}

/// A sum that two gradients hold with their terms in different orders
/// (the residual block's `X + W2*T1 - Y`) is written in one order, in the
/// gradients as in the names, and named once.
#[test]
fn a_sum_in_two_orders_is_one_name() {
    let src = "W1 : d x d; W2 : d x d; X : d x m; Y : d x m; norm(X + W2*tanh(W1*X) - Y)^2";
    let (program, options) = derived(src, Sharing::Named);
    let d = derive(&program, &options).unwrap();
    let text = matdiff::cli::render_derivation(&d);
    let sums: Vec<&str> = text.lines().filter(|l| l.contains(" - Y") && !l.starts_with("L = ")).collect();
    assert_eq!(sums, ["T2 = X + W2 * T1 - Y"], "{text}");
    let (program, options) = derived(src, Sharing::Expanded);
    let d = derive(&program, &options).unwrap();
    for g in &d.gradients {
        let e = g.expr.to_string();
        assert!(e.contains("X + W2 * tanh(W1 * X) - Y"), "d/d{}: {e}", g.wrt);
        assert!(!e.contains("tanh(W1 * X) + X"), "d/d{}: {e}", g.wrt);
    }
}
