//! Hostile input: arbitrary bytes and token soups are answered or refused
//! cleanly (exit 0 or 2, never a panic); every construct of the language is
//! either derived (and checked) or refused by name.
//!
//! More cases: `PROPTEST_CASES=100000 cargo test --release --test robustness`.

mod common;

use matdiff::ErrorKind;
use proptest::prelude::*;

/// The command line on a large stack, as the binary runs it.
fn run(args: &[&str]) -> i32 {
    let args: Vec<String> =
        std::iter::once("matdiff").chain(args.iter().copied()).map(String::from).collect();
    std::thread::Builder::new()
        .stack_size(512 * 1024 * 1024)
        .spawn(move || matdiff::cli::run(args, &mut Vec::new(), &mut Vec::new()))
        .unwrap()
        .join()
        .expect("matdiff panicked")
}

const TOKENS: &[&str] = &[
    "W", "X", "A", "x", "I", "G", "W[i]", "W[j+1]", "d[i-1]", "2", "0.5", "1e-3", "*", ".*", "./", "/", "+",
    "-", "^T", "'", "^-1", "^2", "^-3", ".^", "-0.5", "(", ")", "[", "]", ",", ";", "\n", ":", "=", "x",
    "3x4", "n", "scalar", "tr(", "det(", "logdet(", "inv(", "exp(", "log(", "sqrt(", "sin(", "cos(", "tanh(",
    "sigmoid(", "sum(", "norm(", "prod(", "i=1..n", "..", "⊙", "#", " ",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(600)))]

    #[test]
    fn arbitrary_bytes_are_answered_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let code = run(&["derive", &text]);
        prop_assert!(code == 0 || code == 2, "exit {}", code);
    }

    #[test]
    fn token_soups_are_answered_or_refused(tokens in prop::collection::vec(prop::sample::select(TOKENS), 0..40)) {
        let text = tokens.concat();
        let code = run(&["derive", "--steps", &text]);
        prop_assert!(code == 0 || code == 2, "{:?}: exit {}", text, code);
        let code = run(&["check", &text]);
        prop_assert!(code == 0 || code == 2, "{:?}: check exit {}", text, code);
    }
}

/// Every operator and function of docs/language.md: derived and checked, or refused
/// by name (never a silent zero or a guess).
#[test]
fn every_construct_is_derived_or_named() {
    let cases = [
        ("variable", "W : 3x4; W"),
        ("indexed variable", "W[i] : 3x3; W[2] * W[1]"),
        ("number", "W : 3x3; 2 * W"),
        ("product", "A : 3x4; B : 4x2; A * B"),
        ("scalar product", "a : scalar; B : 3x3; a * B"),
        ("sum", "A : 3x3; B : 3x3; A + B"),
        ("difference", "A : 3x3; B : 3x3; A - B"),
        ("negation", "A : 3x3; -A"),
        ("broadcast", "a : scalar; U : 3x4; 1 - U + a"),
        ("transpose", "A : 3x4; A^T"),
        ("quote transpose", "A : 3x4; A'"),
        ("inverse", "A : 3x3; A^-1"),
        ("inv", "A : 3x3; inv(A)"),
        ("power", "A : 3x3; A^3"),
        ("negative power", "A : 3x3; A^-2"),
        ("scalar power", "a : scalar; a^3"),
        ("hadamard", "A : 3x4; B : 3x4; A .* B"),
        ("hadamard symbol", "A : 3x4; B : 3x4; A ⊙ B"),
        ("hadamard division", "A : 3x4; B : 3x4; A ./ B"),
        ("hadamard power", "A : 3x4; A .^ 2.5"),
        ("scalar division", "A : 3x4; s : scalar; A / s"),
        ("tr", "A : 3x3; tr(A)"),
        ("det", "A : 3x3; det(A)"),
        ("logdet", "A : 3x3; logdet(A)"),
        ("exp", "A : 3x4; exp(A)"),
        ("log", "A : 3x4; log(A)"),
        ("sqrt", "A : 3x4; sqrt(A)"),
        ("sin", "A : 3x4; sin(A)"),
        ("cos", "A : 3x4; cos(A)"),
        ("tanh", "A : 3x4; tanh(A)"),
        ("sigmoid", "A : 3x4; sigmoid(A)"),
        ("sum", "A : 3x4; sum(A)"),
        ("norm", "A : 3x4; norm(A)"),
        ("identity", "A : 3x3; A + I"),
        ("prod", "W[i] : d[i-1] x d[i]; X : d[n] x B; prod(W[i], i=1..n) * X"),
        ("definition", "A : 3x3; B = A * A; B + A"),
    ];
    for (what, src) in cases {
        let program = matdiff::syntax::parse_program(src).unwrap_or_else(|e| panic!("{what}: {e}"));
        match matdiff::derive(&program, &Default::default()) {
            Ok(d) => {
                for seed in 1..=2 {
                    let options = matdiff::numeric::CheckOptions { seed, ..Default::default() };
                    let report =
                        matdiff::numeric::check(&d, &options).unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert!(report.ok(), "{what}: {:?}", report.results);
                }
            }
            Err(e) => {
                assert!(matches!(e.kind, ErrorKind::Unsupported | ErrorKind::Limit), "{what}: {e}");
                assert!(e.message.contains("not supported") || e.message.contains("limit"), "{what}: {e}");
            }
        }
    }
}

/// A 2000-fold tied product would print 4 million factors: refused by name.
#[test]
fn huge_gradients_are_refused_by_name() {
    let src = format!("A : 2x2; {}", vec!["A"; 2000].join("*"));
    // 2000 levels of nesting: more stack than a test thread has.
    let e = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            let program = matdiff::syntax::parse_program(&src).unwrap();
            let e = matdiff::derive(&program, &Default::default()).unwrap_err();
            (e.kind, e.message)
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(e.0, ErrorKind::Limit);
    assert!(e.1.contains(&matdiff::calculus::MAX_GRADIENT_NODES.to_string()), "{}", e.1);
}

/// Carets under multi-byte characters (found by the fuzzer's first minutes:
/// a label ending inside `⊙` made the diagnostics crate panic).
#[test]
fn carets_under_multibyte_characters() {
    for src in ["x ⊙⊙ y", "⊙", "A : 3x4; B : 4x3; A ⊙ B", "W1 * (W2 + é", "ᵀᵀ"] {
        let code = run(&["derive", src]);
        assert_eq!(code, 2, "{src}");
    }
}

/// Inputs the fuzzer (fuzz/, AFL++) found crashing, answered or refused now.
#[test]
fn fuzzer_findings_stay_fixed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        for args in [
            vec!["derive", "--steps", &text],
            vec!["derive", "--latex", &text],
            vec!["plan", "--json", &text],
        ] {
            let code = run(&args);
            assert!(code == 0 || code == 2, "exit {code} on {text:?}");
        }
        count += 1;
    }
    assert!(count > 0, "the regression inputs are there");
}

/// Deep input on a small stack: every subcommand answers a 10 000-term
/// sum, 10 000 nested negations and transposes, and a 2 000-factor product,
/// or refuses it by naming a limit, on a thread of 1 MiB. Every recursive
/// walk grows its stack from the heap when it runs short (src/stack.rs), so
/// a missed one overflows here and fails the test.
#[test]
fn deep_input_is_answered_on_a_small_stack() {
    let chain: Vec<String> = (1..=2000).map(|i| format!("W{i}")).collect();
    let decls: Vec<String> = chain.iter().map(|w| format!("{w} : 2x2")).collect();
    // (variable, input, whether to ask for the steps: those of a long sum or
    // unary chain restate the whole expression at every level or occurrence,
    // O(n²) text, 300 MB here.)
    let inputs = [
        ("A", format!("A : 3x3; {}", vec!["A"; 10_000].join("+")), false),
        ("A", format!("A : 3x3; tr({}A)", "-".repeat(10_000)), false),
        ("A", format!("A : 3x3; A{}", "^T".repeat(10_000)), false),
        ("A", "A : 3x3; B = A*A - A; C = B*B - B; D = C*C - C; E = D*D - D; tr(E*E - E)".to_string(), true),
        ("W1000", format!("{}; {}", decls.join("; "), chain.join("*")), true),
        // A gradient that stays a 1 000-term sum through tidying, into the e-graph.
        (
            "A",
            format!(
                "A : 3x3; tr(A * ({}))",
                (1..=1000).map(|i| format!("X{i}")).collect::<Vec<_>>().join(" + ")
            ),
            true,
        ),
    ];
    for (v, src, steps) in &inputs {
        let runs: [&[&str]; 10] = [
            if *steps { &["derive", "--steps"] } else { &["derive"] },
            &["derive", "--json"],
            &["derive", "--latex"],
            &["check", "--json"],
            &["plan"],
            &["plan", "--json"],
            &["plan", "--emit", "numpy"],
            &["plan", "--emit", "pytorch"],
            &["verify", "--claim", v],
            &["latex"],
        ];
        for run in runs {
            let wrt: &[&str] = if run[0] == "latex" { &[] } else { &["--wrt", v] };
            let args: Vec<String> = ["matdiff"]
                .iter()
                .chain(run)
                .chain(wrt)
                .chain([&src.as_str()])
                .map(|a| a.to_string())
                .collect();
            let what = format!("{run:?} on {}...", &src[..30]);
            let started = std::time::Instant::now();
            let (code, stderr) = std::thread::Builder::new()
                .stack_size(1 << 20)
                .spawn(move || {
                    let mut err = Vec::new();
                    let code = matdiff::cli::run(args, &mut Vec::new(), &mut err);
                    (code, String::from_utf8_lossy(&err).into_owned())
                })
                .unwrap()
                .join()
                .unwrap_or_else(|_| panic!("{what}: panicked"));
            eprintln!("{what}: exit {code} in {:?}", started.elapsed());
            let limit = code == 2 && stderr.contains("limit") || stderr.contains("more than");
            assert!(code == 0 || code == 1 || limit, "{what}: exit {code}: {stderr}");
        }
    }
}

/// The numeric check has a time limit, and says so when it hits it (at
/// sizes of a few hundred, finite differences would take hours).
#[test]
fn the_numeric_check_stops_at_its_time_limit() {
    let program = matdiff::syntax::parse_program("A : 3x3; B : 3x3; tr(A * B)").unwrap();
    let d = matdiff::derive(&program, &Default::default()).unwrap();
    let options = |time_limit| matdiff::numeric::CheckOptions { seed: 1, time_limit, ..Default::default() };
    let e = matdiff::numeric::check(&d, &options(std::time::Duration::ZERO)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Limit, "{e}");
    assert!(e.message.contains("time limit"), "{e}");
    let report = matdiff::numeric::check(&d, &options(matdiff::numeric::CHECK_TIME_LIMIT)).unwrap();
    assert!(report.ok());
}

/// Huge powers, found by the fuzzer: the plan refuses to expand them by
/// name, and so does the check, which prices its evaluations by the plan
/// before drawing anything (it used to multiply 3 billion times).
#[test]
fn huge_powers_are_bounded() {
    let mut err = Vec::new();
    let args = ["matdiff", "plan", "--json", "4^3333333344"].map(String::from).to_vec();
    assert_eq!(matdiff::cli::run(args, &mut Vec::new(), &mut err), 2);
    let err = String::from_utf8_lossy(&err);
    assert!(err.contains("100000 factors"), "{err}");
    let program = matdiff::syntax::parse_program("A : 2x2; tr(A) * 4^3333333344").unwrap();
    let d = matdiff::derive(&program, &Default::default()).unwrap();
    let e = matdiff::numeric::check(&d, &Default::default()).unwrap_err();
    assert!(e.kind == ErrorKind::Limit && e.message.contains("100000 factors"), "{e}");
}
