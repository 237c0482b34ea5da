//! The command line as a user runs it: output, JSON fields, exit statuses.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

const SEED: &str = "W1 : 3x4; W2 : 4x5; W3 : 5x6; X : 6x2; W1*W2*W3*X";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn matdiff(args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_matdiff"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run matdiff");
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Relative errors vary in their last digits with the platform's rounding;
/// snapshots show where they stand, not their digits.
fn redact_errors(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("max rel err ") {
            Some(i) => {
                let rest = &l[i + 12..];
                let end = rest.find(' ').unwrap_or(rest.len());
                format!("{}max rel err [err]{}", &l[..i], &rest[end..])
            }
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn derive_prints_the_seed_gradients() {
    let r = matdiff(&["derive", SEED], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("d/dW2 = W1^T * G * X^T * W3^T"));
    common::snapshots().bind(|| insta::assert_snapshot!("cli_derive_seed", r.stdout));
}

#[test]
fn derive_json_has_the_fixed_fields() {
    let r = matdiff(&["derive", "--json", "W1*W2*W3*X", "--wrt", "W2", "--wrt", "X"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["expr"], "W1 * W2 * W3 * X");
    assert_eq!(doc["shape"], serde_json::json!(["d0", "d4"]));
    assert_eq!(doc["upstream"], "G");
    let grads = doc["gradients"].as_array().unwrap();
    assert_eq!(grads.len(), 2);
    assert_eq!(grads[0]["wrt"], "W2");
    assert_eq!(grads[0]["expr"], "W1^T * G * X^T * W3^T");
    assert_eq!(grads[0]["shape"], serde_json::json!(["d1", "d2"]));
    assert_eq!(grads[0]["latex"], r"W_{1}^{\top} G X^{\top} W_{3}^{\top}");
    assert_eq!(grads[1]["wrt"], "X");
    common::snapshots().bind(|| insta::assert_snapshot!("cli_derive_json", r.stdout));

    let r = matdiff(&["derive", "--json", "A : 3x4; X : 4x5; B : 5x3; tr(A*X*B)", "--wrt", "X"], None);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["upstream"], serde_json::Value::Null);
    assert_eq!(doc["shape"], serde_json::json!([1, 1]));
    assert_eq!(doc["gradients"][0]["shape"], serde_json::json!([4, 5]));
}

#[test]
fn upstream_can_be_renamed() {
    let r = matdiff(&["derive", "W*X", "--upstream", "dZ"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("d/dW = dZ * X^T"), "{}", r.stdout);
    let r = matdiff(&["derive", "W*X", "--upstream", "W"], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("already occurs"), "{}", r.stderr);
}

#[test]
fn input_from_file_and_stdin() {
    let dir = std::env::temp_dir().join(format!("matdiff-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("layer.md");
    std::fs::write(&file, "# the seed layer\nW1 : 3x4\nW2 : 4x5\nW1*W2*X   # a layer\n").unwrap();
    let from_file = matdiff(&["derive", "-f", file.to_str().unwrap()], None);
    assert_eq!(from_file.code, 0, "{}", from_file.stderr);
    let from_stdin = matdiff(&["derive", "-"], Some("W1 : 3x4; W2 : 4x5; W1*W2*X"));
    assert_eq!(from_stdin.code, 0, "{}", from_stdin.stderr);
    assert_eq!(from_file.stdout, from_stdin.stdout);
    assert!(from_file.stdout.contains("d/dW2 = W1^T * G * X^T  : 4x5"), "{}", from_file.stdout);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn errors_exit_2_with_the_message_on_stderr() {
    for (args, needle) in [
        (vec!["derive", "W1 : 3x4; W2 : 5x6; W1*W2"], "cannot multiply 3x4 by 5x6"),
        (vec!["derive", "W1 * (W2 + "], "parse error"),
        (
            vec!["derive", "W[i] : 2x2; prod(W[i] * W[i], i=1..3) * X", "--wrt", "X", "--wrt", "W[1]"],
            "holds the family `W` more than once",
        ),
        (vec!["derive", "W*X", "--wrt", "Q"], "`Q` does not occur"),
        (vec!["derive", "W*X", "--wrt", "1+"], "is not a variable name"),
        (vec!["derive"], "give the expression"),
        (vec!["derive", "--bogus", "W"], "unexpected argument"),
        (vec!["check", "W*X", "--dims", "q=3"], "not a dimension"),
        (vec!["frobnicate"], "unrecognized subcommand"),
    ] {
        let r = matdiff(&args, None);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stdout);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?} printed a partial answer: {}", r.stdout);
    }
}

#[test]
fn check_agrees_with_finite_differences() {
    let r = matdiff(&["check", "W1*W2*W3*X", "--dims", "d0=2,d4=3", "--seed", "7"], None);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("d0=2") && r.stdout.contains("d4=3"), "{}", r.stdout);
    common::snapshots().bind(|| insta::assert_snapshot!("cli_check", redact_errors(&r.stdout)));

    let r = matdiff(&["check", "--json", "x : 4; A : 4x4; x^T*A*x"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["ok"], true);
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for res in results {
        assert!(res["max_rel_err"].as_f64().unwrap() < 1e-6, "{res}");
    }
}

#[test]
fn demo_answers_the_seed_and_passes_its_check() {
    let r = matdiff(&["demo"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for needle in [
        "d/dW2 = W1^T * G * X^T * W3^T",
        "d/dX = W3^T * W2^T * W1^T * G",
        "W1^T (4x3) · G (3x2) · X^T (2x6) · W3^T (6x5) = 4x5 = shape of W2; contracted: 3, 2 (batch), 6",
        "d/dW = G * X^T * W^T + W^T * G * X^T",
        "d/dW2 = W1^T * H * W3^T",
    ] {
        assert!(r.stdout.contains(needle), "demo lacks {needle}:\n{}", r.stdout);
    }
    common::snapshots().bind(|| insta::assert_snapshot!("cli_demo", redact_errors(&r.stdout)));
}

#[test]
fn help_shows_examples() {
    let r = matdiff(&["--help"], None);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("Examples:") && r.stdout.contains("matdiff derive"), "{}", r.stdout);
}

/// Large inputs are answered, not crashed on: a 10 000-term sum, 10 000
/// nested negations, and a formula line longer than any format width.
#[test]
fn deep_and_long_inputs_are_answered() {
    let sum = format!("A : 3x3; {}", vec!["A"; 10_000].join("+"));
    let negations = format!("{}A", "-".repeat(10_000));
    let tied = format!("A : 2x2; {}", vec!["A"; 120].join("*"));
    for src in [sum, negations, tied] {
        let r = matdiff(&["derive", "-"], Some(&src));
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stdout.contains("d/dA = "));
    }
}

#[test]
fn plan_json_has_the_fixed_fields() {
    let run = matdiff(&["plan", SEED, "--json"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let steps = doc["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 9);
    for s in steps {
        assert!(s["out"].is_string() && s["op"].is_string());
        assert!(s["shape"].as_array().unwrap().iter().all(|d| d.is_u64()), "numbers: {s}");
        assert!(s["madds"].is_u64());
    }
    assert_eq!(steps[0]["op"], "W3 * X");
    // Forward 6*2*5 + 5*2*4 + 4*2*3 = 124; three times that for everything.
    assert_eq!(doc["total_madds"], 372);
    assert_eq!(doc["forward_madds"], 124);
    assert!(doc["separate_madds"].as_u64().unwrap() > 372);

    // Symbolic sizes: costs are polynomials, as strings.
    let run = matdiff(&["plan", "W1*W2*X", "--json"], None);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["total_madds"], "3*d0*d1*d3 + 3*d1*d2*d3");
    assert_eq!(doc["steps"][0]["shape"], serde_json::json!(["d1", "d3"]));

    // --dims prices the cut: a large batch is contracted first.
    let run = matdiff(&["plan", "W1*W2*W3*X", "--json", "--dims", "d0=64,d1=64,d2=64,d3=64,d4=65536"], None);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["sweeps"][0]["between"], serde_json::json!(["G^T", "W1"]));

    // A product of symbolic length: the recurrences.
    let run =
        matdiff(&["plan", "W[i] : d[i-1] x d[i]; X : d[n] x B; prod(W[i], i=1..n) * X", "--json"], None);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["symbolic"], true);
    assert_eq!(doc["total_madds"], "sum_{j=1..n} 3*B*d[j-1]*d[j]");
    assert_eq!(doc["steps"][0]["op"], "W[j]^T * H[j-1]");
}

#[test]
fn plan_emits_code_and_refuses_cleanly() {
    let run = matdiff(&["plan", SEED, "--emit", "numpy"], None);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("def value_and_grads(*, W1, W2, W3, X, G):"), "{}", run.stdout);
    let run = matdiff(&["plan", SEED, "--emit", "pytorch"], None);
    assert!(run.stdout.contains("class Plan(torch.autograd.Function):"));
    assert!(run.stdout.contains("def plan(*, W1, W2, W3, X):"));
    assert!(run.stdout.contains("class PlanModule(torch.nn.Module):"));
    let run = matdiff(&["plan", SEED, "--emit", "jax"], None);
    assert!(run.stdout.contains("@jax.custom_vjp\ndef plan(W1, W2, W3, X):"), "{}", run.stdout);
    // --name names what is emitted, so two plans live in one module.
    let run = matdiff(&["plan", SEED, "--emit", "pytorch", "--name", "my_layer"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("class MyLayer(torch.autograd.Function):"));
    assert!(run.stdout.contains("def my_layer(*, W1, W2, W3, X):"));
    assert!(run.stdout.contains("class MyLayerModule(torch.nn.Module):"));
    let run = matdiff(&["plan", SEED, "--emit", "numpy", "--name", "layer2"], None);
    assert!(run.stdout.contains("def layer2(*, W1, W2, W3, X, G):"));
    let run = matdiff(&["plan", SEED, "--emit", "jax", "--name", "layer2"], None);
    assert!(run.stdout.contains("layer2.defvjp(layer2_fwd, layer2_bwd)"));
    for bad in ["2x", "my-layer", "lambda", "np"] {
        let run = matdiff(&["plan", SEED, "--emit", "numpy", "--name", bad], None);
        assert_eq!(run.code, 2, "--name {bad}");
        assert!(run.stderr.contains(&format!("`{bad}`")), "{}", run.stderr);
    }
    // A variable named like the emitted function is renamed, not shadowing it.
    let run = matdiff(&["plan", "plan * X", "--emit", "pytorch"], None);
    assert!(run.stdout.contains("def plan(*, plan_, X):"), "{}", run.stdout);
    // A product of symbolic length loops over the list of its members, with
    // or without the length (then checked); a body the loop cannot take is
    // refused by name, and unrolled when the length is given.
    let symbolic = "W[i] : d[i-1] x d[i]; prod(W[i], i=1..n) * X";
    for dims in [&[][..], &["--dims", "n=3"]] {
        let run = matdiff(&[&["plan", symbolic, "--emit", "numpy"][..], dims].concat(), None);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(run.stdout.contains("def value_and_grads(*, W, X, G):"), "{}", run.stdout);
        assert!(run.stdout.contains("grads[\"W\"] = [_matdiff_sum_to(g, w.shape, batch)"), "{}", run.stdout);
        let count = if dims.is_empty() { "None" } else { "3" };
        assert!(
            run.stdout.contains(&format!("W = _matdiff_members(\"W\", W, 1, \"n\", {count})")),
            "{}",
            run.stdout
        );
    }
    let tanh = "W[i] : d x d; prod(tanh(W[i]), i=1..n) * X";
    let run = matdiff(&["plan", tanh, "--emit", "jax"], None);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("the body `tanh(W[i])`") && run.stderr.contains("n=8"), "{}", run.stderr);
    let run = matdiff(&["plan", tanh, "--emit", "jax", "--dims", "n=3"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("def plan(W_1, W_2, W_3, X):"), "{}", run.stdout);
    // Errors exit 2.
    assert_eq!(matdiff(&["plan", "W1 : 3x4; W2 : 5x6; W1*W2"], None).code, 2);
    assert_eq!(matdiff(&["plan", "W1*W2", "--dims", "d0=x"], None).code, 2);
}

/// `completions` prints a script each shell takes (bash checks its syntax
/// with `bash -n` and, sourced, completes the commands and an option);
/// `man` prints roff pages naming every command and option.
#[test]
fn completions_and_man_pages() {
    const COMMANDS: [&str; 9] =
        ["derive", "verify", "check", "plan", "hessian", "jacobian", "latex", "repl", "demo"];
    let bash = matdiff(&["completions", "bash"], None);
    assert_eq!(bash.code, 0, "{}", bash.stderr);
    for c in COMMANDS {
        assert!(bash.stdout.contains(c), "bash completions lack {c}");
    }
    let dir = std::env::temp_dir().join(format!("matdiff-completions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("matdiff.bash");
    std::fs::write(&script, &bash.stdout).unwrap();
    if Command::new("bash").arg("--version").output().is_ok() {
        let syntax = Command::new("bash").arg("-n").arg(&script).output().unwrap();
        assert!(syntax.status.success(), "{}", String::from_utf8_lossy(&syntax.stderr));
        // Complete `matdiff de` and `matdiff derive --w` as bash would.
        let complete = |words: &str, cword: usize| {
            let probe = format!(
                "source '{}'; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{words}'; COMP_POINT=${{#COMP_LINE}}; _matdiff matdiff; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                script.display()
            );
            let out = Command::new("bash").arg("-c").arg(probe).output().unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        let commands = complete("matdiff de", 1);
        assert!(
            commands.lines().any(|l| l == "derive") && commands.lines().any(|l| l == "demo"),
            "{commands}"
        );
        let options = complete("matdiff derive --w", 2);
        assert!(options.lines().any(|l| l == "--wrt"), "{options}");
    }
    std::fs::remove_dir_all(&dir).ok();
    let zsh = matdiff(&["completions", "zsh"], None);
    assert!(zsh.code == 0 && zsh.stdout.starts_with("#compdef matdiff"), "{}", zsh.stdout);
    let fish = matdiff(&["completions", "fish"], None);
    assert!(fish.code == 0 && fish.stdout.contains("complete -c matdiff"), "{}", fish.stdout);
    let bad = matdiff(&["completions", "tcsh"], None);
    assert_eq!(bad.code, 2, "{}", bad.stderr);

    let page = matdiff(&["man"], None);
    assert_eq!(page.code, 0, "{}", page.stderr);
    assert!(page.stdout.starts_with(".ie") || page.stdout.contains(".TH matdiff"), "{}", page.stdout);
    for c in COMMANDS {
        assert!(page.stdout.contains(c), "the man page lacks {c}");
    }
    let derive = matdiff(&["man", "derive"], None);
    assert_eq!(derive.code, 0, "{}", derive.stderr);
    assert!(derive.stdout.contains(".TH matdiff-derive"), "{}", derive.stdout);
    assert!(
        derive.stdout.contains("\\-\\-wrt") && derive.stdout.contains("\\-\\-steps"),
        "{}",
        derive.stdout
    );
    let unknown = matdiff(&["man", "derivee"], None);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("there is no command `derivee`") && unknown.stderr.contains("derive, verify"),
        "{}",
        unknown.stderr
    );
}

/// Every command's `--help` ends with examples, and each of them runs as
/// written (in bash, in a scratch directory) with the exit status it
/// promises: 1 where its note says `exit 1`, else 0.
#[test]
fn every_help_example_runs() {
    if Command::new("bash").arg("--version").output().is_err() {
        return;
    }
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_matdiff")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let dir = std::env::temp_dir().join(format!("matdiff-help-examples-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let commands = [
        "derive",
        "verify",
        "check",
        "plan",
        "hessian",
        "jacobian",
        "latex",
        "repl",
        "demo",
        "completions",
        "man",
    ];
    let mut ran = 0;
    for c in commands {
        let help = matdiff(&[c, "--help"], None);
        assert_eq!(help.code, 0, "{c}: {}", help.stderr);
        let examples: Vec<&str> = help
            .stdout
            .split("Examples:\n")
            .nth(1)
            .unwrap_or_else(|| panic!("`matdiff {c} --help` has no examples:\n{}", help.stdout))
            .lines()
            .take_while(|l| l.starts_with("  "))
            .collect();
        assert!(!examples.is_empty(), "{c}");
        for line in examples {
            let (command, note) = match line.trim().split_once("    ") {
                Some((command, note)) => (command.trim(), note.trim()),
                None => (line.trim(), ""),
            };
            assert!(command.contains(&format!("matdiff {c}")), "{c}: an example of another command: {line}");
            let want = if note.contains("exit 1") { 1 } else { 0 };
            let run = Command::new("bash")
                .arg("-c")
                .arg(command)
                .current_dir(&dir)
                .env("PATH", &path)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert_eq!(
                run.status.code(),
                Some(want),
                "{command}\n{}{}",
                String::from_utf8_lossy(&run.stdout),
                String::from_utf8_lossy(&run.stderr)
            );
            ran += 1;
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(ran >= 2 * commands.len(), "only {ran} examples");
}
