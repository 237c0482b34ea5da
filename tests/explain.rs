//! Explanations (`derive --steps`), as text and LaTeX, snapshotted; the
//! LaTeX snapshots are rendered by KaTeX in CI (tests/katex/render.js).

mod common;

use matdiff::cli::run;

/// The seed, a tied case, logdet, a tanh layer, an inverse.
const PROGRAMS: &[(&str, &[&str])] = &[
    ("W1 : 3x4; W2 : 4x5; W3 : 5x6; X : 6x2; W1*W2*W3*X", &["W2", "X"]),
    ("W : 4x4; X : 4x3; W*W*X", &["W"]),
    ("X : n x n; logdet(X)", &["X"]),
    ("W : 3x4; X : 4x5; Z = tanh(W*X); Z", &["W"]),
    ("W : 3x4; X : 4x5; sum(tanh(W*X))", &["W"]),
    ("A : n x n; X : n x n; B : n x n; tr(A * X^-1 * B)", &["X"]),
];

fn cli(args: &[&str]) -> String {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut argv = vec!["matdiff".to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    let code = run(argv, &mut out, &mut err);
    assert_eq!(code, 0, "{args:?}: {}", String::from_utf8_lossy(&err));
    String::from_utf8(out).unwrap()
}

fn with_wrt<'a>(base: &[&'a str], src: &'a str, wrt: &[&'a str]) -> Vec<&'a str> {
    let mut args = base.to_vec();
    args.push(src);
    for w in wrt {
        args.push("--wrt");
        args.push(w);
    }
    args
}

#[test]
fn steps_as_text() {
    let mut text = String::new();
    for (src, wrt) in PROGRAMS {
        text.push_str(&format!("$ matdiff derive --steps '{src}'\n"));
        text.push_str(&cli(&with_wrt(&["derive", "--steps"], src, wrt)));
        text.push('\n');
    }
    assert!(text.contains("cyclic rotation of the trace"));
    assert!(text.contains("(batch)"));
    common::snapshots().bind(|| insta::assert_snapshot!("explain_steps", text));
}

#[test]
fn steps_as_latex() {
    let mut text = String::new();
    for (src, wrt) in PROGRAMS {
        text.push_str(&format!("% matdiff derive --steps --latex '{src}'\n"));
        text.push_str(&cli(&with_wrt(&["derive", "--steps", "--latex"], src, wrt)));
        text.push_str(&format!("% matdiff derive --latex '{src}'\n"));
        text.push_str(&cli(&with_wrt(&["derive", "--latex"], src, wrt)));
    }
    for src in [
        "norm(W*X - Y)^2 + tr(A^-1) .* sigmoid(B) ./ C",
        "prod(W[i], i=1..j-1)^T * G * X^T",
        "x^T * A * x / s",
    ] {
        text.push_str(&format!("% matdiff latex '{src}'\n"));
        text.push_str(&cli(&["latex", src]));
    }
    assert!(text.contains(r"\prod_{i=1}^{j-1} W_{i}"), "{text}");
    common::snapshots().bind(|| insta::assert_snapshot!("explain_latex", text));
}

#[test]
fn standalone_is_a_complete_document() {
    let doc = cli(&["derive", "--latex", "--standalone", "--steps", "X : n x n; logdet(X)"]);
    assert!(doc.starts_with("\\documentclass[11pt]{article}\n"), "{doc}");
    for needle in ["\\usepackage{amsmath", "\\allowdisplaybreaks", "\\begin{document}", "\\begin{align*}"] {
        assert!(doc.contains(needle), "{needle} in {doc}");
    }
    // A heading per gradient, with the variable in math.
    assert!(doc.contains("\\subsection*{The gradient with respect to $X$}"), "{doc}");
    // Reasons as sentences: words, and formulas in math.
    assert!(
        doc.contains("\\shortintertext{\\small read off: $\\operatorname{tr}(A^{\\top} \\mathrm{d}X)$ gives"),
        "{doc}"
    );
    assert!(doc.trim_end().ends_with("\\end{document}"));
}

#[test]
fn steps_in_json() {
    let doc: serde_json::Value =
        serde_json::from_str(&cli(&["derive", "--json", "--steps", "W1*W2*X"])).unwrap();
    let steps = doc["gradients"][1]["steps"].as_array().unwrap();
    assert!(steps.len() >= 5, "{steps:?}");
    assert_eq!(steps.last().unwrap()["expr"], "W1^T * G * X^T");
    assert!(doc["gradients"][1]["shape_check"][0].as_str().unwrap().contains("shape of W2"));
}
