//! docs/json.md, the published shape of `--json`: every example there is
//! run, and its output must have exactly the keys the page shows (at every
//! level; of an array, the elements shown) and the exit status it states.
//! Values may differ (random draws, versions); the shape may not.

use serde_json::Value;

const DOC: &str = include_str!("../docs/json.md");

/// `a 'b c' d` as words; single quotes group.
fn words(line: &str) -> Vec<String> {
    let mut out = vec![];
    let (mut current, mut quoted, mut any) = (String::new(), false, false);
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any || !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                    any = false;
                }
            }
            c => current.push(c),
        }
    }
    if any || !current.is_empty() {
        out.push(current);
    }
    out
}

/// The examples: the command's words, its exit status, the JSON shown.
fn examples() -> Vec<(Vec<String>, i32, Value)> {
    let mut out = vec![];
    let mut lines = DOC.lines();
    while let Some(line) = lines.next() {
        let Some(command) = line.strip_prefix("$ ") else { continue };
        let status = lines.next().and_then(|l| l.strip_prefix("# exit status: ")).expect("an exit status");
        let status: i32 = status.trim().parse().unwrap();
        let mut json = String::new();
        let mut inside = false;
        for l in lines.by_ref() {
            match (inside, l) {
                (false, "```json") => inside = true,
                (true, "```") => break,
                (true, l) => json.push_str(l),
                _ => {}
            }
        }
        let shown: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("`{command}`: {e}"));
        out.push((words(command), status, shown));
    }
    out
}

/// Where `got` does not have `want`'s keys: paths, with the keys of each.
fn mismatches(want: &Value, got: &Value, path: &str, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            let wk: Vec<&String> = w.keys().collect();
            let gk: Vec<&String> = g.keys().collect();
            if wk != gk {
                out.push(format!("{path}: the page shows {wk:?}, the run printed {gk:?}"));
            }
            for (k, v) in w {
                if let Some(x) = g.get(k) {
                    mismatches(v, x, &format!("{path}.{k}"), out);
                }
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            for (i, (v, x)) in w.iter().zip(g).enumerate() {
                mismatches(v, x, &format!("{path}[{i}]"), out);
            }
        }
        (Value::Object(_), _) | (Value::Array(_), _) => {
            out.push(format!("{path}: the page shows {want}, the run printed {got}"))
        }
        _ => {}
    }
}

#[test]
fn every_documented_example_has_the_documented_shape() {
    let examples = examples();
    let commands: Vec<&str> = examples.iter().map(|(w, _, _)| w[1].as_str()).collect();
    for c in ["derive", "plan", "check", "verify"] {
        assert!(commands.contains(&c), "docs/json.md has no example of `{c}`");
    }
    assert!(examples.iter().any(|(_, s, v)| *s == 2 && v.get("kind").is_some()), "no error example");
    for (words, status, shown) in examples {
        assert_eq!(words[0], "matdiff");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = matdiff::cli::run(words.clone(), &mut out, &mut err);
        let line = words.join(" ");
        assert_eq!(code, status, "`{line}`: {}", String::from_utf8_lossy(&err));
        let printed: Value = serde_json::from_slice(&out)
            .unwrap_or_else(|e| panic!("`{line}` printed no JSON ({e}): {}", String::from_utf8_lossy(&out)));
        let mut bad = vec![];
        mismatches(&shown, &printed, "$", &mut bad);
        assert!(bad.is_empty(), "`{line}` does not print what docs/json.md shows:\n{}", bad.join("\n"));
    }
}
