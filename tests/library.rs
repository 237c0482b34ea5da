//! The engine as a library: errors state what is missing and the front end
//! names the option; results and errors are `Serialize` data; the REPL runs
//! its commands through the command line's executor.

use matdiff::syntax::parse_program;
use matdiff::{derive, DeriveOptions, Hint};

/// No command-line option in an engine error's own words.
fn flag_free(e: &matdiff::Error) {
    let text = format!("{} {}", e.message, e.notes.join(" "));
    assert!(!text.contains("--"), "an engine error names an option: {text}");
}

#[test]
fn engine_errors_state_the_fact_and_the_cli_adds_the_option() {
    let src = "W : 3x3; G : 3x3; G*W";
    let program = parse_program(src).unwrap();
    let e = derive(&program, &DeriveOptions::default()).unwrap_err();
    flag_free(&e);
    assert_eq!(e.hints, vec![Hint::NameUpstream]);
    let shown = matdiff::cli::render_error(&e, "<expr>", src);
    assert!(shown.contains("--upstream NAME"), "{shown}");

    let src = "W[i] : d[i-1] x d[i]; X : d[n] x B; prod(W[i], i=1..n) * X";
    let program = parse_program(src).unwrap();
    let d = derive(&program, &DeriveOptions::default()).unwrap();
    let e = matdiff::plan::compile(&d, &Default::default()).unwrap_err();
    flag_free(&e);
    assert!(e.message.contains("not known"), "{}", e.message);
    assert!(matches!(e.hints.as_slice(), [Hint::GiveSize(_)]), "{:?}", e.hints);
    let json: serde_json::Value = serde_json::from_str(&matdiff::cli::error_json(&e)).unwrap();
    assert!(
        json["notes"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().contains("--dims")),
        "{json}"
    );
}

#[test]
fn errors_serialize_with_byte_spans() {
    let src = "W1 : 3x4; W2 : 5x6; W1*W2";
    let program = parse_program(src).unwrap();
    let e = derive(&program, &DeriveOptions::default()).unwrap_err();
    let doc = serde_json::to_value(&e).unwrap();
    assert_eq!(doc["kind"], "shape");
    assert_eq!(doc["labels"][0]["start"], 22);
    assert_eq!(doc["labels"][0]["end"], 23);
    assert_eq!(&src[22..23], "*");
    assert!(doc["notes"].is_array() && doc["message"].is_string(), "{doc}");
}

#[test]
fn results_serialize_as_the_cli_prints_them() {
    let src = "W1*W2*W3*X";
    let program = parse_program(src).unwrap();
    let options =
        DeriveOptions { wrt: vec![matdiff::syntax::parse_var("W2").unwrap()], ..Default::default() };
    let d = derive(&program, &options).unwrap();
    let args = ["matdiff", "derive", "--json", "--wrt", "W2", src].map(String::from).to_vec();
    let mut out = Vec::new();
    assert_eq!(matdiff::cli::run(args, &mut out, &mut Vec::new()), 0);
    let printed: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(serde_json::to_value(&d).unwrap(), printed);
}

#[test]
fn a_failing_json_command_prints_a_json_error_and_keeps_its_status() {
    for (args, code, kind) in [
        (vec!["derive", "--json", "W1 : 3x4; W2 : 5x6; W1*W2"], 2, "shape"),
        (vec!["check", "--json", "W*X", "--wrt", "Q"], 2, "usage"),
        (vec!["plan", "--json", "W*X", "--dims", "oops"], 2, "usage"),
        (vec!["verify", "--json", "W*X", "--wrt", "W", "--claim", "(("], 2, "usage"),
    ] {
        let argv: Vec<String> =
            std::iter::once("matdiff").chain(args.iter().copied()).map(String::from).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(matdiff::cli::run(argv, &mut out, &mut err), code, "{args:?}");
        let doc: serde_json::Value = serde_json::from_slice(&out)
            .unwrap_or_else(|e| panic!("{args:?}: no JSON ({e}): {}", String::from_utf8_lossy(&out)));
        assert_eq!(doc["kind"], kind, "{args:?}: {doc}");
        assert!(!err.is_empty(), "{args:?}: the rendered error is on standard error too");
    }
}

/// A REPL command runs through the command line's executor: the same JSON,
/// the same JSON error.
#[test]
fn repl_commands_run_through_the_executor() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_matdiff"))
        .arg("repl")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let session = "W1 : 3x4\nW2 : 5x6\nderive W1*W2 --json\n";
    child.stdin.take().unwrap().write_all(session.as_bytes()).unwrap();
    let run = child.wait_with_output().unwrap();
    let out = String::from_utf8(run.stdout).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(doc["kind"], "shape", "{doc}");
    assert!(String::from_utf8_lossy(&run.stderr).contains("cannot multiply"));
}

/// A requested [`Control`] stops every stage that takes one with an
/// `Interrupted` error, never a verdict or a partial answer; one requested
/// from another thread stops a long check while it runs.
#[test]
fn an_interrupt_stops_every_stage() {
    use matdiff::{numeric, plan, verify, Control, DeriveOptions, ErrorKind};
    let program = matdiff::parse("A : 4x4; x : 4; x^T * A * x").unwrap();
    let stopped = Control::default();
    stopped.interrupt();
    let interrupted = |r: Result<(), matdiff::Error>| r.is_err_and(|e| e.kind == ErrorKind::Interrupted);
    let derive_options = DeriveOptions { control: stopped.clone(), ..Default::default() };
    assert!(interrupted(matdiff::derive(&program, &derive_options).map(drop)));
    let d = matdiff::derive(&program, &Default::default()).unwrap();
    let check = numeric::CheckOptions { control: stopped.clone(), ..Default::default() };
    assert!(interrupted(numeric::check(&d, &check).map(drop)));
    let options = verify::VerifyOptions { control: stopped.clone(), ..Default::default() };
    let x = matdiff::syntax::parse_var("x").unwrap();
    assert!(interrupted(verify::verify(&program, &x, "(A + A^T) * x", &options).map(drop)));
    let options = plan::PlanOptions { control: stopped.clone(), ..Default::default() };
    assert!(interrupted(plan::compile(&d, &options).map(drop)));
    assert!(interrupted(matdiff::hessian::hessian(&program, std::slice::from_ref(&x), &stopped).map(drop)));
    assert!(interrupted(matdiff::hessian::jacobian(&program, &x, &stopped).map(drop)));
    // A result made under a control derives what it needs later under it too.
    let h = matdiff::hessian::hessian(&program, std::slice::from_ref(&x), &Default::default()).unwrap();
    let h = matdiff::hessian::SecondOrder { control: stopped.clone(), ..h };
    assert!(interrupted(h.planned(matdiff::hessian::Planned::Product).map(drop)));
    // Cleared, the same flag lets the work run.
    stopped.clear();
    assert!(numeric::check(&d, &check).unwrap().ok());

    // Mid-check: entry by entry at 40x40 the check would run to its 30 s limit.
    let program = matdiff::parse("A : 40x40; B : 40x40; tr(inv(A) * B)").unwrap();
    let d = matdiff::derive(&program, &Default::default()).unwrap();
    let control = Control::default();
    let later = control.clone();
    let start = std::time::Instant::now();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        later.interrupt();
    });
    let check =
        numeric::CheckOptions { control, method: numeric::CheckMethod::Entries, ..Default::default() };
    assert!(interrupted(numeric::check(&d, &check).map(drop)));
    stopper.join().unwrap();
    assert!(start.elapsed().as_secs() < 10, "stopped after {:?}", start.elapsed());
}
