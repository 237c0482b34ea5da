//! How `check` compares: entry by entry at small sizes, along random
//! directions where entries would cost too much (issue 25), and which one
//! it used, in the report, the text and the JSON.

use matdiff::numeric::{check, CheckMethod, CheckOptions, Compared, DIRECTIONS};
use matdiff::syntax::parse_program;
use std::process::Command;

/// The 8-factor layer of the seed problem at widths 64 and batch 64.
fn layer_at_64() -> String {
    let mut src: String = (1..=8).map(|k| format!("W{k} : 64 x 64; ")).collect();
    src.push_str("X : 64 x 64; W1*W2*W3*W4*W5*W6*W7*W8*X");
    src
}

#[test]
fn real_sizes_are_compared_along_directions() {
    let program = parse_program(&layer_at_64()).unwrap();
    let d = matdiff::derive(&program, &Default::default()).unwrap();
    let report = check(&d, &CheckOptions { seed: 1, ..Default::default() }).unwrap();
    assert!(report.ok(), "{:?}", report.results);
    assert_eq!(report.results.len(), 9);
    for r in &report.results {
        assert_eq!(r.compared, Compared::Directions(DIRECTIONS), "{}", r.wrt);
    }
    // Entry by entry, asked for, is refused before it starts: it would take hours.
    let e =
        check(&d, &CheckOptions { seed: 1, method: CheckMethod::Entries, ..Default::default() }).unwrap_err();
    assert!(e.to_string().contains("multiply-adds"), "{e}");
    assert!(e.notes.iter().any(|n| n.contains("--method directions")), "{:?}", e.notes);
}

#[test]
fn small_sizes_are_compared_entry_by_entry() {
    let program = parse_program("W1*W2*X").unwrap();
    let d = matdiff::derive(&program, &Default::default()).unwrap();
    let report = check(&d, &CheckOptions { seed: 1, ..Default::default() }).unwrap();
    assert!(report.results.iter().all(|r| r.compared == Compared::Entries && r.ok()));
    let report =
        check(&d, &CheckOptions { seed: 1, method: CheckMethod::Directions, ..Default::default() }).unwrap();
    assert!(report.results.iter().all(|r| r.compared == Compared::Directions(DIRECTIONS) && r.ok()));
}

/// `d` with one gradient only, `g`, its formula replaced by `formula`.
fn claiming<'a>(
    d: &matdiff::Derivation<'a>,
    g: &matdiff::Gradient,
    formula: &str,
) -> matdiff::Derivation<'a> {
    matdiff::Derivation {
        typing: d.typing.clone(),
        mode: d.mode.clone(),
        gradients: vec![matdiff::Gradient {
            expr: matdiff::syntax::parse_expr(formula).unwrap(),
            ..g.clone()
        }],
        shared: None,
    }
}

/// A gradient wrong at a real size is a mismatch along directions: one
/// with the transpose of a factor dropped, and one off by 1e-4.
#[test]
fn directions_catch_wrong_gradients_at_real_sizes() {
    let program = parse_program(&layer_at_64()).unwrap();
    let d = matdiff::derive(&program, &Default::default()).unwrap();
    let g = d.gradients.iter().find(|g| g.wrt.to_string() == "W8").unwrap();
    let right = g.expr.to_string();
    let dropped = right.replacen("^T", "", 1);
    assert_ne!(dropped, right);
    for wrong in [dropped, format!("1.0001 * ({right})")] {
        let report =
            check(&claiming(&d, g, &wrong), &CheckOptions { seed: 1, ..Default::default() }).unwrap();
        let r = &report.results[0];
        assert_eq!(r.compared, Compared::Directions(DIRECTIONS));
        assert_eq!(r.outcome, matdiff::numeric::Outcome::Differ, "{wrong}: {r:?}");
    }
}

#[test]
fn the_method_is_named_in_text_and_json() {
    let bin = env!("CARGO_BIN_EXE_matdiff");
    let run = |args: &[&str]| {
        let out = Command::new(bin).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let text = run(&["check", "W1*W2*X", "--method", "directions"]);
    assert!(text.contains("d/dW1  max rel err") && text.contains("along 4 random directions  ok"), "{text}");
    let text = run(&["check", "W1*W2*X"]);
    assert!(!text.contains("directions"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&run(&["check", "W1*W2*X", "--method", "directions", "--json"])).unwrap();
    for r in json["results"].as_array().unwrap() {
        assert_eq!(r["compared"], "directions");
        assert_eq!(r["directions"], 4);
    }
    let json: serde_json::Value = serde_json::from_str(&run(&["check", "W1*W2*X", "--json"])).unwrap();
    assert_eq!(json["results"][0]["compared"], "entries");
    assert!(json["results"][0]["directions"].is_null());
}

fn mlp(width: usize) -> String {
    let w = width;
    format!("W1 : {w} x {w}; W2 : {w} x {w}; W3 : {w} x {w}; X : {w} x {w}; Y : {w} x {w}; norm(W3*tanh(W2*tanh(W1*X)) - Y)^2")
}

/// A 3-layer tanh network's loss at widths 256 and batch 256 gets a verdict
/// (issue 25), along directions; a mutant of one layer's gradient there is
/// told apart. Twice as wide it is refused before it starts, by name.
#[test]
fn the_mlp_at_widths_256_gets_a_verdict() {
    let program = parse_program(&mlp(256)).unwrap();
    let d = matdiff::derive(&program, &Default::default()).unwrap();
    let report = check(&d, &CheckOptions { seed: 1, ..Default::default() }).unwrap();
    assert!(report.ok(), "{:?}", report.results);
    assert!(report.results.iter().all(|r| r.compared == Compared::Directions(DIRECTIONS)));
    let g = d.gradients.iter().find(|g| g.wrt.to_string() == "W2").unwrap();
    let mutated = claiming(&d, g, &format!("1.0001 * ({})", g.expr));
    let report = check(&mutated, &CheckOptions { seed: 1, ..Default::default() }).unwrap();
    assert_eq!(report.results[0].outcome, matdiff::numeric::Outcome::Differ, "{:?}", report.results);

    let program = parse_program(&mlp(512)).unwrap();
    let d = matdiff::derive(&program, &Default::default()).unwrap();
    let e = check(&d, &CheckOptions { seed: 1, ..Default::default() }).unwrap_err();
    assert_eq!(e.kind, matdiff::ErrorKind::Limit, "{e}");
    assert!(e.to_string().contains("4 directions for each of 5 gradients"), "{e}");
}
