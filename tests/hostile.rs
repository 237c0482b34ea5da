//! Hostile input through the binary (issue 27): argv that is not UTF-8,
//! integers at the edge of i64 and of f64, identifiers of 64 KiB, names that
//! Python or LaTeX reserve. Every run exits 0, 1 or 2 within [`TIME_CAP`],
//! never with a panic (101) or a signal, and what it prints means what the
//! input said.

mod common;

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a run may take; past it the process is killed and the test fails.
const TIME_CAP: Duration = Duration::from_secs(10);

/// What a run of the binary printed, and its exit status.
struct Run {
    code: i32,
    out: String,
    err: String,
}

/// Runs the binary on raw arguments (bytes allowed), killing it at the cap.
fn run_os(args: &[OsString]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_matdiff"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn matdiff");
    // Pipes are drained while the child runs, so a large output cannot block it.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > TIME_CAP {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} ran past {TIME_CAP:?}", shown(args));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    let Some(code) = status.code() else {
        panic!("{} ended by a signal ({status})\n{err}", shown(args));
    };
    assert!(matches!(code, 0..=2), "{} exited {code}\n{err}", shown(args));
    Run { code, out, err }
}

fn run(args: &[&str]) -> Run {
    run_os(&args.iter().map(OsString::from).collect::<Vec<_>>())
}

/// The arguments as a reader sees them in a failure message (truncated).
fn shown(args: &[OsString]) -> String {
    let text = format!("{args:?}");
    match text.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text,
    }
}

fn bytes(b: &[u8]) -> OsString {
    OsStr::from_bytes(b).to_os_string()
}

// ---------------------------------------------------------------- argv

#[test]
fn an_expression_that_is_not_utf8_is_refused_by_name() {
    let r = run_os(&[bytes(b"derive"), bytes(b"A*B\xff")]);
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(r.err.contains("[EXPR] is not UTF-8") && r.err.contains("0xFF at offset 3"), "{}", r.err);
    assert!(r.err.contains("A*B\\xFF\n     ^^^^"), "a caret under the byte:\n{}", r.err);
}

#[test]
fn every_text_option_that_is_not_utf8_is_refused_by_name() {
    let cases: &[(&[&[u8]], &str)] = &[
        (&[b"derive", b"A*B", b"--wrt", b"A\xfe"], "--wrt"),
        (&[b"derive", b"A*B", b"--upstream", b"\xc3"], "--upstream"),
        (&[b"verify", b"A*B", b"--wrt", b"A", b"--claim", b"G*B^T\x80"], "--claim"),
        (&[b"check", b"A*B", b"--dims", b"d0=\xff"], "--dims"),
        (&[b"plan", b"A*B", b"--dims", b"d\xff=3"], "--dims"),
        (&[b"latex", b"\xffA"], "[EXPR]"),
    ];
    for (args, name) in cases {
        let args: Vec<OsString> = args.iter().map(|a| bytes(a)).collect();
        let r = run_os(&args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.err);
        assert!(
            r.err.contains(&format!("argument {name}")) && r.err.contains("is not UTF-8"),
            "{args:?}: {}",
            r.err
        );
    }
    // A subcommand or flag that is not UTF-8 is clap's usage error.
    assert_eq!(run_os(&[bytes(b"der\xffive"), bytes(b"A")]).code, 2);
    assert_eq!(run_os(&[bytes(b"derive"), bytes(b"--\xff"), bytes(b"A")]).code, 2);
}

#[test]
fn a_file_name_that_is_not_utf8_is_a_path() {
    let dir = std::env::temp_dir().join(format!("matdiff-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut name = dir.clone().into_os_string().into_vec();
    name.extend_from_slice(b"/layer\xff.txt");
    let path = OsString::from_vec(name);
    std::fs::write(&path, "W : 3x4; W*X\n").unwrap();
    let r = run_os(&[bytes(b"derive"), bytes(b"-f"), path.clone()]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("d/dW = G * X^T"), "{}", r.out);
    // A missing one is a usage error.
    let r = run_os(&[bytes(b"derive"), bytes(b"-f"), bytes(b"/nonexistent/bad\xff.txt")]);
    assert_eq!(r.code, 2);
    assert!(r.err.contains("cannot read"), "{}", r.err);
    // Contents that are not UTF-8 are refused.
    std::fs::write(&path, b"W : 3x4; W*X\xff\n").unwrap();
    let r = run_os(&[bytes(b"derive"), bytes(b"-f"), path]);
    assert_eq!(r.code, 2);
    assert!(r.err.contains("UTF-8"), "{}", r.err);
    std::fs::remove_dir_all(&dir).ok();
}

// ------------------------------------------------- 64 KiB identifiers

/// An identifier longer than std's largest formatting width (u16::MAX).
fn long_name() -> String {
    "A".repeat(70_000)
}

#[test]
fn tables_with_a_64kib_name_are_printed() {
    let a = long_name();
    let layer = format!("{a}*B");
    let symbolic = format!("W[i] : d[i-1] x d[i]; prod(W[i], i=1..n) * {a}");
    let runs: Vec<Vec<&str>> = vec![
        vec!["plan", &layer],
        vec!["plan", "--json", &layer],
        vec!["plan", "--emit", "numpy", &layer],
        vec!["check", &layer],
        vec!["plan", &symbolic],
        vec!["derive", "--steps", &layer],
        vec!["derive", "--latex", &layer],
    ];
    for args in runs {
        let r = run(&args);
        assert_eq!(r.code, 0, "{} {}: {}", args[0], args[1], r.err);
        assert!(r.out.contains(&a), "{} {}: the name is printed", args[0], args[1]);
        // Alignment stops at 100 characters: no row is padded to the long name.
        let padded = r.out.lines().filter(|l| !l.contains(&a) && l.len() > a.len()).count();
        assert_eq!(padded, 0, "{} {}: rows padded to the long name", args[0], args[1]);
    }
}

// ------------------------------------------- exponents and indices in i64

#[test]
fn exponents_at_the_edge_of_i64_are_refused_by_the_power_limit() {
    for src in [
        "X : n x n; tr(X^-9223372036854775808)",
        "X : n x n; tr(X^9223372036854775807)",
        "s : scalar; s^-9223372036854775808",
        "s : scalar; s^9223372036854775807",
        "X : n x n; tr(X^65)",
    ] {
        let r = run(&["derive", src]);
        assert_eq!(r.code, 2, "{src}: {}{}", r.out, r.err);
        assert!(r.err.contains("up to |k| = 64") && r.err.contains("-- power"), "{src}: {}", r.err);
    }
    // At the limit, the power is derived.
    let r = run(&["derive", "s : scalar; s^-64"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("d/ds = -64 * s^-65"), "{}", r.out);
}

#[test]
fn index_arithmetic_past_i64_is_refused_with_a_caret() {
    let refused = [
        ("W[9223372036854775807+1]*X", "`9223372036854775807` + `1`"),
        ("W[-9223372036854775807-2]*X", "`-9223372036854775807` - `2`"),
        ("W[-9223372036854775807-1]*X", "`-9223372036854775807` - `1`"),
        ("W[1-9223372036854775807-9223372036854775807]*X", "- `9223372036854775807`"),
        // A family's dimensions at a member: 3 times 25 copies of j.
        (
            "W[i] : d[i+i+i] x d[i+i+i+1]; W[j+j+j+j+j+j+j+j+j+j+j+j+j+j+j+j+j+j+j+j+j+j+j+j+j]*X",
            "for `i` in `i+i+i`",
        ),
        // Splitting a product at W[j]: j - c - 1 for a member W[i + c].
        ("W[i] : d[i-1] x d[i]; prod(W[i+9223372036854775807], i=0..n)*X", "`j-9223372036854775807` - `1`"),
    ];
    for (src, what) in refused {
        let r = run(&["derive", src, "--wrt", if src.contains("prod") { "W[j]" } else { "X" }]);
        assert_eq!(r.code, 2, "{src}: {}{}", r.out, r.err);
        assert!(r.err.contains("index arithmetic out of range") && r.err.contains(what), "{src}: {}", r.err);
        assert!(r.err.contains("-- "), "{src}: a labelled caret\n{}", r.err);
    }
    // The extremes themselves are indices, and print as text that re-parses.
    for src in ["W[9223372036854775807]*X", "W[-9223372036854775807]*X", "W[0-9223372036854775807]*X"] {
        let r = run(&["derive", src]);
        assert_eq!(r.code, 0, "{src}: {}", r.err);
        let printed = r.out.lines().next().unwrap().trim_start_matches("Z = ").split("  :").next().unwrap();
        let again = run(&["derive", printed]);
        assert_eq!((again.code, &again.out), (0, &r.out), "{src} printed as {printed}");
    }
}

// ------------------------------------------- exponents and literals, exact

/// The formula of each gradient line (`d/dX = F  : shape` gives F).
fn formulas(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.starts_with("d/d"))
        .map(|l| l.split_once(" = ").unwrap().1.rsplit_once("  :").unwrap().0.trim().to_string())
        .collect()
}

#[test]
fn integer_exponents_stay_exact_through_the_egraph() {
    let src = "X : n x n; Y : n x n; tr(X^9007199254740993*Y)";
    let r = run(&["derive", src, "--wrt", "Y"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(formulas(&r.out), ["X^T^9007199254740993"], "{}", r.out);
    // The neighbour 2^53 is another claim, however it is then decided.
    let r = run(&["verify", src, "--wrt", "Y", "--claim", "X^T^9007199254740992"]);
    assert!(!r.out.contains("equivalent (symbolic)"), "{}", r.out);
    let r = run(&["verify", src, "--wrt", "Y", "--claim", "(X^9007199254740993)^T"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("equivalent (symbolic)"), "{}", r.out);
    // Inverses are still exponents the rules know (-1).
    let r = run(&["derive", "A : n x n; B : n x n; tr(inv(A*B)^T * B^-1)", "--wrt", "B"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("^-1"), "{}", r.out);
}

#[test]
fn literals_a_double_cannot_hold_are_refused_not_rounded() {
    for (src, what) in [
        ("A .^ 9007199254740993", "exponent `9007199254740993`"),
        ("9007199254740993 * A", "number `9007199254740993`"),
        ("A .^ -9007199254740993", "exponent `-9007199254740993`"),
        ("1e-400 * A", "number `1e-400`"),
        ("0.10000000000000000001 * A", "number `0.10000000000000000001`"),
        ("123456789012345678 * A", "number `123456789012345678`"),
    ] {
        let r = run(&["derive", src]);
        assert_eq!(r.code, 2, "{src}: {}", r.out);
        assert!(r.err.contains(&format!("{what} is not exactly representable")), "{src}: {}", r.err);
        assert!(r.err.contains("a double holds"), "{src}: a labelled caret\n{}", r.err);
    }
    // Every literal a double holds as written is accepted, in any spelling.
    for src in ["0.1 * A", "1.50 * A", "1e3 * A", ".5 * A", "0e999999999999999999999 * A", "A .^ 1e-5"] {
        assert_eq!(run(&["derive", src]).code, 0, "{src}");
    }
}

#[test]
fn entrywise_exponents_print_back_exactly() {
    // p and p - 1 are printed as given, and the output re-parses to itself.
    for (p, q) in [
        ("9007199254740992", "9007199254740991"),
        ("-9007199254740991", "-9007199254740992"),
        ("0.1", "-0.9"),
        ("0.3", "-0.7"),
        ("1e15", "999999999999999"),
        ("2.25", "1.25"),
    ] {
        let r = run(&["derive", &format!("A .^ {p}")]);
        assert_eq!(r.code, 0, "{p}: {}", r.err);
        let grad = formulas(&r.out).remove(0);
        let number = |s: &str| s.parse::<f64>().unwrap();
        let shown: Vec<f64> = grad.split([' ', '(', ')']).filter_map(|w| w.parse::<f64>().ok()).collect();
        assert!(shown.contains(&number(p)) && shown.contains(&number(q)), "{p}: {grad}");
        let again = run(&["latex", "--", &grad.replace('G', "B")]);
        assert_eq!(again.code, 0, "{grad} re-parses: {}", again.err);
    }
    // An exponent whose p - 1 no double is, is refused by name.
    for p in ["1e17", "1e-20", "1.5e300"] {
        let r = run(&["derive", &format!("A .^ {p}")]);
        assert_eq!(r.code, 2, "{p}: {}", r.out);
        assert!(
            r.err.contains("which no double is exactly") && r.err.contains("this power"),
            "{p}: {}",
            r.err
        );
    }
}

#[test]
fn sizes_past_2_to_53_never_become_rounded_literals() {
    // tr(I) folds to its size only where a double holds it.
    let r = run(&["derive", "X : 9007199254740993 x 9007199254740993; s : scalar; s * tr(X * X^-1)"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(!r.out.contains("9007199254740992"), "{}", r.out);
    let r = run(&["derive", "X : 5 x 5; s : scalar; s * tr(X * X^-1)", "--wrt", "s"]);
    assert_eq!(formulas(&r.out), ["5"], "{}", r.out);
    // A broadcast scalar in a trace is n times its adjoint: refused past 2^53.
    let r = run(&["derive", "s : scalar; X : 9007199254740993 x 9007199254740993; tr(s + X)"]);
    assert_eq!(r.code, 2, "{}", r.out);
    assert!(r.err.contains("past 2^53"), "{}", r.err);
    let r = run(&["derive", "s : scalar; X : 9007199254740992 x 9007199254740992; tr(s + X)", "--wrt", "s"]);
    assert_eq!(formulas(&r.out), ["9007199254740992.0"], "{}", r.out);
}

// ---------------------------------------------------- multiply-add counts

#[test]
fn multiply_add_counts_past_u128_say_so() {
    let max = u128::MAX.to_string();
    let src =
        "A : 9223372036854775807 x 9223372036854775807; B : 9223372036854775807 x 9223372036854775807; A*B*A";
    let r = run(&["plan", src]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains(&format!("multiply-adds: more than {max}")), "{}", r.out);
    // No count is printed as if it were exact at the bound.
    let exact = r.out.lines().filter(|l| l.trim_end().ends_with(&max) && !l.contains("more than")).count();
    assert_eq!(exact, 0, "{}", r.out);
    let r = run(&["plan", "--json", src]);
    let doc: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(doc["total_madds"], format!("more than {max}"));
    // Under the bound and past u64 a count is exact: its digits, not a rounded float.
    let big = "d0=1099511627776,d1=1099511627776,d2=1099511627776";
    let r = run(&["plan", "--json", "A*B", "--dims", big]);
    let doc: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(doc["total_madds"], (3u128 << 120).to_string(), "{}", r.out);
    let r = run(&["plan", "--json", "A*B", "--dims", "d0=2,d1=3,d2=5"]);
    let doc: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(doc["total_madds"], 90, "{}", r.out);
}
