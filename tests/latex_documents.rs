//! The documents a student keeps, `derive --steps --latex --standalone`,
//! `hessian`/`jacobian --latex --standalone` and
//! `demo --latex`, compile with pdflatex with no error and no overfull box:
//! long formulas are broken to the page. Skipped, saying so, where pdflatex
//! is not installed, unless `MATDIFF_REQUIRE_PDFLATEX` is set (CI sets it).

mod common;

use common::pdflatex;

fn cli(args: &[&str]) -> String {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut argv = vec!["matdiff".to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    let code = matdiff::cli::run(argv, &mut out, &mut err);
    assert_eq!(code, 0, "{args:?}: {}", String::from_utf8_lossy(&err));
    String::from_utf8(out).unwrap()
}

/// The derivation document of `src` compiles cleanly.
fn derivation_compiles(name: &str, src: &str) {
    let doc = cli(&["derive", "--steps", "--latex", "--standalone", src]);
    // The structure the brief of the document promises, whatever compiles.
    assert!(doc.contains("\\allowdisplaybreaks") && doc.contains("\\begin{align*}"), "{doc}");
    assert!(doc.contains("\\subsection*{The gradient with respect to $"), "{doc}");
    assert!(!doc.contains("verbatim") && !doc.contains("\\textasciicircum"), "{doc}");
    if !pdflatex::available() {
        return;
    }
    if let Err(e) = pdflatex::compile(name, &doc) {
        panic!("{e}");
    }
}

/// The seed, declared: its derivation overflowed the margin by 87–99 pt
/// when the justifications stood beside the formulas.
#[test]
fn seed_chain() {
    derivation_compiles("seed", "W1 : 3x4; W2 : 4x5; W3 : 5x6; X : 6x2; W1*W2*W3*X");
}

/// The seed with its shapes inferred.
#[test]
fn seed_chain_inferred() {
    derivation_compiles("seed-inferred", "W1*W2*W3*X");
}

/// A chain of symbolic length: products with limits, the split at j.
#[test]
fn symbolic_chain() {
    derivation_compiles("symbolic", "W[i] : d[i-1] x d[i]; X : d[n] x B; Z = prod(W[i], i=1..n) * X");
}

/// A three-layer MLP: dozens of steps, formulas nested five brackets deep.
#[test]
fn mlp() {
    derivation_compiles(
        "mlp",
        "W1 : 8x4; b1 : 8; W2 : 8x8; b2 : 8; W3 : 3x8; X : 4x16; Y : 3x16; norm(W3*relu(W2*tanh(W1*X + b1) + b2) - Y)^2",
    );
}

/// Logistic regression, written out.
#[test]
fn logistic_regression() {
    derivation_compiles("logistic", "X : n x d; y : n; w : d; sum(log(1 + exp(-y .* (X*w))))");
}

/// A long chain of long names: the products themselves must break.
#[test]
fn long_chain() {
    derivation_compiles(
        "long-chain",
        "Weights1*Weights2*Weights3*Weights4*Weights5*Weights6*Weights7*Inputs",
    );
}

/// Many identities at once: each rule's LaTeX appears in a justification.
#[test]
fn many_rules() {
    derivation_compiles(
        "rules",
        "A : n x n; B : n x n; x : n; s : 1x1; sum(exp(A) + log(B) .* sqrt(B) + sin(A) ./ cosh(B) + sigmoid(A) .^ 3) + logdet(B) + det(A) * norm(x) + tr(inv(A) * B^2) / s + norm1(x) + max(x, 0)^T * abs(x)",
    );
}

/// Without `--steps`: the gradients in terms of shared names, the names in
/// a section of their own before them, long definitions broken to the page.
#[test]
fn shared_names() {
    let src = "W1 : 8x4; b1 : 8; W2 : 8x8; b2 : 8; W3 : 3x8; X : 4x16; Y : 3x16; norm(W3*relu(W2*tanh(W1*X + b1) + b2) - Y)^2";
    let doc = cli(&["derive", "--latex", "--standalone", src]);
    assert!(doc.contains("\\subsection*{Names for repeated subexpressions}"), "{doc}");
    assert!(doc.contains("T_{1} &= "), "{doc}");
    if pdflatex::available() {
        if let Err(e) = pdflatex::compile("shared-names", &doc) {
            panic!("{e}");
        }
    }
    // With --steps the derivations are written out, and no section of names.
    let doc = cli(&["derive", "--steps", "--latex", "--standalone", src]);
    assert!(!doc.contains("Names for repeated"), "{doc}");
}

/// `demo --latex`: prose, math and tables, no terminal output.
#[test]
fn demo() {
    let doc = cli(&["demo", "--latex"]);
    assert!(!doc.contains("verbatim"), "{doc}");
    assert!(doc.contains("\\toprule") && doc.contains("\\bottomrule"), "the plan and checks are tables");
    assert!(!doc.contains("--"), "no command-line advice in the body");
    for heading in doc.lines().filter(|l| l.starts_with("\\section") || l.starts_with("\\subsection")) {
        assert!(
            !heading.contains('*')
                || heading.starts_with("\\section*")
                || heading.starts_with("\\subsection*")
        );
        assert!(!heading.contains("x2") && !heading.contains(" : "), "code in a heading: {heading}");
    }
    if !pdflatex::available() {
        return;
    }
    if let Err(e) = pdflatex::compile("demo", &doc) {
        panic!("{e}");
    }
}

/// `hessian` and `jacobian --latex --standalone`, with and without steps:
/// documents like `derive`'s (the program and its shapes, the gradient,
/// the second derivative under a heading of its own, its forms in an
/// `align*`), where they were a bare fragment wrapped in a preamble.
#[test]
fn second_order_documents() {
    for (name, args, heading) in [
        (
            "hessian-matrix",
            &["hessian", "X : n x m; A : n x n; tr(X^T*A*X)", "--wrt", "X"][..],
            "The Hessian with respect to $X$",
        ),
        (
            "hessian-logistic",
            &["hessian", "X : n x d; y : n; w : d; sum(softplus(X*w)) - y^T*X*w", "--wrt", "w"][..],
            "The Hessian with respect to $w$",
        ),
        (
            "hessian-mixed",
            &["hessian", "A : m x n; x : n; b : m; norm(A*x - b)^2", "--wrt", "x", "--wrt", "A"][..],
            "The second derivative with respect to $x$ and $A$",
        ),
        (
            "jacobian",
            &["jacobian", "W : m x n; x : n; tanh(W*x)", "--wrt", "x"][..],
            "The Jacobian with respect to $x$",
        ),
    ] {
        for steps in [false, true] {
            let mut argv: Vec<&str> = args.to_vec();
            argv.extend(["--latex", "--standalone"]);
            if steps {
                argv.push("--steps");
            }
            let doc = cli(&argv);
            assert!(doc.contains("\\begin{document}") && doc.contains("\\section*{"), "{doc}");
            assert!(doc.contains(&format!("\\subsection*{{{heading}}}")), "{doc}");
            assert!(doc.contains("\\in \\mathbb{R}^{"), "the shapes: {doc}");
            assert!(!doc.contains("\\[") && !doc.contains("\\textasciicircum"), "{doc}");
            if name != "jacobian" {
                assert!(doc.contains("\\subsection*{The gradient with respect to $"), "{doc}");
            }
            assert_eq!(doc.contains("\\shortintertext"), steps, "{doc}");
            if pdflatex::available() {
                let file = format!("{name}{}", if steps { "-steps" } else { "" });
                if let Err(e) = pdflatex::compile(&file, &doc) {
                    panic!("{e}");
                }
            }
        }
    }
}
