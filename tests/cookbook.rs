//! Identities of The Matrix Cookbook (Petersen & Pedersen, version of
//! November 15, 2012), by equation number, and machine-learning losses with
//! their textbook gradients. For each: matdiff's gradient agrees with
//! central finite differences, equals the textbook's formula on random
//! instances, its printed form is snapshotted (`snapshots/cookbook.snap`),
//! and it is printed (expanded, without shared names) within [`SLACK`]
//! nodes of the textbook's size.
//!
//! Sizes are counted alike for both: the formula's text parsed by
//! `parse_expr`, every node of the tree one (a variable, a number, `I`,
//! `ones(…)`, each operator, transpose, power or inverse, each function):
//! `2 * X^T * (X*w - y)` is 8.

mod common;

use matdiff::numeric::{check, eval, gradient_value, relative_error, CheckMethod, CheckOptions, Instance};
use matdiff::syntax::{parse_expr, parse_var};

use common::cookbook::{IDENTITIES, LOSSES};

/// How many nodes the printed gradient may have beyond the textbook's.
const SLACK: usize = 2;

/// Nodes of a formula's text, parsed (see the module's documentation).
fn size(text: &str) -> usize {
    parse_expr(text).unwrap_or_else(|e| panic!("{text}: {e}")).size()
}

fn derived(src: &str, wrt: &str) -> matdiff::Derivation<'static> {
    // Leaked: a derivation borrows its program, and the table is static.
    let program = Box::leak(Box::new(matdiff::parse(src).unwrap_or_else(|e| panic!("{src}: {e}"))));
    let options = matdiff::DeriveOptions { wrt: vec![parse_var(wrt).unwrap()], ..Default::default() };
    matdiff::derive(program, &options).unwrap_or_else(|e| panic!("{src}: {e}"))
}

#[test]
fn cookbook_identities() {
    assert!(IDENTITIES.len() + LOSSES.len() >= 40);
    let mut text = String::new();
    for (eq, src, wrt, claimed) in IDENTITIES.iter().chain(LOSSES) {
        let d = derived(src, wrt);
        let claimed = parse_expr(claimed).unwrap();
        for seed in 1..=3 {
            let options = CheckOptions { seed, ..Default::default() };
            let report = check(&d, &options).unwrap_or_else(|e| panic!("{eq} {src}: {e}"));
            assert!(report.ok(), "{eq} {src}: {:?}", report.results);
            // Along random directions too (the method of large sizes).
            let along = CheckOptions { method: CheckMethod::Directions, ..options.clone() };
            let report = check(&d, &along).unwrap_or_else(|e| panic!("{eq} {src}: {e}"));
            assert!(report.ok(), "{eq} {src} along directions: {:?}", report.results);
            // The textbook's formula, on the same instance.
            let instance = Instance::draw(&d, &options).unwrap();
            let ours = gradient_value(&d.gradients[0], &instance.env).unwrap();
            let theirs = eval(&claimed, &instance.env, Some(ours.shape())).unwrap();
            let err = relative_error(&ours, &theirs);
            assert!(
                err < 1e-9,
                "{eq} {src}: ours {} differs from the textbook's {claimed} by {err:.1e}",
                d.gradients[0].expr
            );
        }
        text.push_str(&format!("{eq:<7} d/d{wrt} {src}\n        = {}\n", d.gradients[0].expr));
    }
    common::snapshots().bind(|| insta::assert_snapshot!("cookbook", text));
}

/// Cases the printer leaves more than [`SLACK`] nodes over the textbook,
/// each with why. Both transpose a product, `(X^-1 B A X^-1)^T`,
/// `(X B + B X)^T`, where matdiff's textbook cost keeps transposes at the
/// leaves (the Cookbook itself writes (63) so, as (124)). Whether the cost
/// should prefer the shorter form with a transposed product is open
/// (issue 21); the test fails when a case leaves this list or joins it.
const KNOWN_OVER: &[(&str, &str)] = &[
    ("(63)", "transposes at the leaves: -X^T^-1 * A^T * B^T * X^T^-1 against -(X^-1 * B * A * X^-1)^T"),
    ("(107)", "transposes at the leaves: B^T * X^T + X^T * B^T against (X * B + B * X)^T"),
];

/// The printed gradient is at most [`SLACK`] nodes larger than the
/// textbook's (both counted by [`size`]), except the cases of
/// [`KNOWN_OVER`], which are exactly those over.
#[test]
fn printed_within_two_nodes_of_the_textbook() {
    let mut over = Vec::new();
    let mut report = Vec::new();
    for (eq, src, wrt, claimed) in IDENTITIES.iter().chain(LOSSES) {
        let g = &derived(src, wrt).gradients[0];
        let (ours, theirs) = (size(&g.expr.to_string()), size(claimed));
        if ours > theirs + SLACK {
            over.push(*eq);
            report.push(format!(
                "{eq} d/d{wrt} {src}\n  printed {ours} nodes: {}\n  textbook {theirs}: {claimed}",
                g.expr
            ));
        }
    }
    let known: Vec<&str> = KNOWN_OVER.iter().map(|(eq, _)| *eq).collect();
    assert_eq!(
        over,
        known,
        "the cases over the textbook's size by more than {SLACK} nodes are not those known:\n{}",
        report.join("\n")
    );
}
