//! The gallery (`examples/*.matdiff`), run as users run it (`-f FILE`):
//! every model derives, agrees with finite differences, plans and emits
//! NumPy and PyTorch code; each `# textbook d/dV: F` line of a model is
//! verified equivalent to matdiff's gradient, and matdiff's printed
//! gradient is no larger than the textbook's (in nodes, with a little
//! slack: the same size, not a longer equal form). The derivations are
//! snapshotted (`snapshots/gallery.snap`).

mod common;

use std::path::{Path, PathBuf};

use matdiff::syntax::parse_expr;

fn run(args: &[&str]) -> (i32, String, String) {
    let mut argv = vec!["matdiff"];
    argv.extend_from_slice(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = matdiff::cli::run(argv, &mut out, &mut err);
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

fn models() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "matdiff"))
        .collect();
    files.sort();
    files
}

/// The `# textbook d/dV: F` lines of a model: (V, F).
fn textbook(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# textbook d/d"))
        .map(|rest| {
            let (v, f) = rest.split_once(':').expect("`# textbook d/dV: formula`");
            (v.trim().to_string(), f.trim().to_string())
        })
        .collect()
}

#[test]
fn every_model_derives_checks_plans_and_emits() {
    let files = models();
    assert!(files.len() >= 5, "the gallery has {} models", files.len());
    let mut text = String::new();
    for path in &files {
        let file = path.to_str().unwrap();
        let name = format!("examples/{}", path.file_name().unwrap().to_str().unwrap());
        let (code, out, err) = run(&["derive", "-f", file]);
        assert_eq!(code, 0, "{name}: derive failed: {err}");
        text.push_str(&format!("$ matdiff derive -f {name}\n{out}\n"));
        let (code, out, err) = run(&["check", "-f", file]);
        assert_eq!(code, 0, "{name}: check is not ok:\n{out}{err}");
        for emit in ["numpy", "pytorch"] {
            let (code, _, err) = run(&["plan", "-f", file, "--emit", emit]);
            assert_eq!(code, 0, "{name}: plan --emit {emit} failed: {err}");
        }
    }
    common::snapshots().bind(|| insta::assert_snapshot!("gallery", text));
}

#[test]
fn every_model_prints_its_textbook_gradient() {
    let mut claims = 0;
    for path in models() {
        let file = path.to_str().unwrap();
        let source = std::fs::read_to_string(&path).unwrap();
        let (code, out, err) = run(&["derive", "-f", file, "--json"]);
        assert_eq!(code, 0, "{file}: {err}");
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        for (wrt, formula) in textbook(&source) {
            claims += 1;
            let (code, out, err) = run(&["verify", "-f", file, "--wrt", &wrt, "--claim", &formula, "--json"]);
            assert_eq!(code, 0, "{file}: d/d{wrt} is not {formula}:\n{out}{err}");
            let verdict: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(verdict["outcome"], "equivalent", "{file}: d/d{wrt}: {verdict}");
            // Its mutants are not: negated, or scaled by 2.
            for mutant in [format!("-({formula})"), format!("2 * ({formula})")] {
                let (code, out, err) =
                    run(&["verify", "-f", file, "--wrt", &wrt, "--claim", &mutant, "--json"]);
                assert_eq!(code, 1, "{file}: d/d{wrt} is not {mutant}:\n{out}{err}");
                let verdict: serde_json::Value = serde_json::from_str(&out).unwrap();
                assert_eq!(verdict["outcome"], "not equivalent", "{file}: d/d{wrt} = {mutant}: {verdict}");
            }
            let printed = doc["gradients"]
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["wrt"] == wrt.as_str())
                .unwrap_or_else(|| panic!("{file}: no gradient for {wrt}"))["expr"]
                .as_str()
                .unwrap()
                .to_string();
            let (ours, theirs) = (parse_expr(&printed).unwrap().size(), parse_expr(&formula).unwrap().size());
            assert!(
                ours <= theirs + theirs / 2 + 2,
                "{file}: d/d{wrt} prints {printed} ({ours} nodes), the textbook {formula} ({theirs})"
            );
        }
    }
    assert!(claims >= 5, "{claims} textbook gradients in the gallery");
}
