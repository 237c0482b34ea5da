//! Identities of The Matrix Cookbook (Petersen & Pedersen, version of
//! November 15, 2012), by equation number. For each: matdiff's gradient
//! agrees with central finite differences, equals the Cookbook's formula on
//! random instances, and its printed form is snapshotted
//! (`snapshots/cookbook.snap`).

mod common;

use matdiff::numeric::{check, eval, gradient_value, relative_error, CheckMethod, CheckOptions, Instance};
use matdiff::syntax::{parse_expr, parse_program, parse_var};

use common::cookbook::IDENTITIES;

#[test]
fn cookbook_identities() {
    assert!(IDENTITIES.len() >= 40);
    let mut text = String::new();
    for (eq, src, wrt, claimed) in IDENTITIES {
        let program = parse_program(src).unwrap_or_else(|e| panic!("{eq} {src}: {e}"));
        let options = matdiff::DeriveOptions { wrt: vec![parse_var(wrt).unwrap()], ..Default::default() };
        let d = matdiff::derive(&program, &options).unwrap_or_else(|e| panic!("{eq} {src}: {e}"));
        let claimed = parse_expr(claimed).unwrap();
        for seed in 1..=3 {
            let options = CheckOptions { seed, ..Default::default() };
            let report = check(&d, &options).unwrap_or_else(|e| panic!("{eq} {src}: {e}"));
            assert!(report.ok(), "{eq} {src}: {:?}", report.results);
            // Along random directions too (the method of large sizes).
            let along = CheckOptions { method: CheckMethod::Directions, ..options.clone() };
            let report = check(&d, &along).unwrap_or_else(|e| panic!("{eq} {src}: {e}"));
            assert!(report.ok(), "{eq} {src} along directions: {:?}", report.results);
            // The Cookbook's formula, on the same instance.
            let instance = Instance::draw(&d, &options).unwrap();
            let ours = gradient_value(&d.gradients[0], &instance.env).unwrap();
            let theirs = eval(&claimed, &instance.env, Some(ours.shape())).unwrap();
            let err = relative_error(&ours, &theirs);
            assert!(
                err < 1e-9,
                "{eq} {src}: ours {} differs from the Cookbook's {claimed} by {err:.1e}",
                d.gradients[0].expr
            );
        }
        let g = &d.gradients[0];
        text.push_str(&format!("{eq:<7} d/d{wrt} {src}\n        = {}\n", g.expr));
    }
    common::snapshots().bind(|| insta::assert_snapshot!("cookbook", text));
}
