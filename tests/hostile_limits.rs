//! Hostile input within bounds (issue 27): small inputs that once ran for
//! hours or took gigabytes are answered or refused, by the binary, within a
//! time cap and a memory cap, and a refusal names the limit it hit.
//!
//! Each run is one process at a time (the caps measure it, not its
//! neighbours), watched every few milliseconds: its wall time, and its peak
//! resident memory (`VmHWM` of /proc/PID/status; the 512 MiB stack of the
//! binary's worker thread is address space, not resident). Past either cap
//! it is killed and the test fails.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use proptest::prelude::*;

/// Wall time a run may take. The tests run in the test profile
/// (opt-level 1) on shared CI machines, so the inputs are sized to show a
/// bug (minutes or hours before the fix) while taking a few seconds there.
const TIME_CAP: Duration = Duration::from_secs(10);

/// Resident memory a run may reach, in KiB (1 GiB).
const MEMORY_CAP_KB: u64 = 1 << 20;

/// One run at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a run's standard input is.
enum Stdin<'a> {
    Null,
    Text(&'a [u8]),
    File(&'a Path),
}

/// A finished run.
struct Run {
    code: Option<i32>,
    /// The first MiB of standard output, and its whole length in bytes.
    stdout: String,
    stdout_bytes: usize,
    stderr: String,
    wall: Duration,
    peak_kb: u64,
}

impl Run {
    /// Exit status 2, with a message that names a limit: `limit` and each
    /// of `words` (such as the limit's value) appear in it.
    fn assert_refused(&self, what: &str, words: &[&str]) {
        assert_eq!(self.code, Some(2), "{what}: exit {:?}\n{}", self.code, self.stderr);
        assert!(self.stderr.contains("limit"), "{what}: no limit named:\n{}", self.stderr);
        for w in words {
            assert!(self.stderr.contains(w), "{what}: `{w}` is not in:\n{}", self.stderr);
        }
    }
}

/// Peak resident memory of a live process, in KiB.
fn peak_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Reads a stream to its end, keeping the first MiB.
fn drain(mut stream: impl Read + Send + 'static) -> std::thread::JoinHandle<(Vec<u8>, usize)> {
    std::thread::spawn(move || {
        let (mut kept, mut total, mut buf) = (Vec::new(), 0usize, vec![0u8; 1 << 16]);
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n;
            let room = (1usize << 20).saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        (kept, total)
    })
}

/// Runs the binary under the caps; fails the test past either.
fn matdiff_with(args: &[&str], stdin: Stdin, env: &[(&str, &Path)]) -> Run {
    let _turn = one_at_a_time();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_matdiff"));
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    match stdin {
        Stdin::Null => cmd.stdin(Stdio::null()),
        Stdin::Text(_) => cmd.stdin(Stdio::piped()),
        Stdin::File(path) => cmd.stdin(std::fs::File::open(path).unwrap()),
    };
    let what = format!("matdiff {}", args.iter().map(|a| short(a)).collect::<Vec<_>>().join(" "));
    let started = Instant::now();
    let mut child = cmd.spawn().expect("run matdiff");
    let pid = child.id();
    let feeder = match (stdin, child.stdin.take()) {
        (Stdin::Text(text), Some(mut pipe)) => {
            let text = text.to_vec();
            Some(std::thread::spawn(move || {
                let _ = pipe.write_all(&text); // a refusal may close it early
            }))
        }
        _ => None,
    };
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let mut peak = 0;
    let status = loop {
        // The peak first: once the process is reaped, its memory is gone.
        peak = peak.max(peak_kb(pid).unwrap_or(0));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        let over_time = started.elapsed() > TIME_CAP;
        if over_time || peak > MEMORY_CAP_KB {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what}: killed after {:.1} s at {} MiB resident (caps: {} s, {} MiB)",
                started.elapsed().as_secs_f64(),
                peak >> 10,
                TIME_CAP.as_secs(),
                MEMORY_CAP_KB >> 10
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let wall = started.elapsed();
    if let Some(f) = feeder {
        f.join().unwrap();
    }
    let (stdout, stdout_bytes) = out.join().unwrap();
    let (stderr, _) = err.join().unwrap();
    let run = Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stdout_bytes,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        wall,
        peak_kb: peak,
    };
    eprintln!(
        "{what}: exit {:?} in {:.2} s, {} MiB resident, {} bytes out",
        run.code,
        run.wall.as_secs_f64(),
        run.peak_kb >> 10,
        run.stdout_bytes
    );
    run
}

fn matdiff(args: &[&str]) -> Run {
    matdiff_with(args, Stdin::Null, &[])
}

/// An argument as a message shows it.
fn short(a: &str) -> String {
    if a.chars().count() <= 40 {
        a.to_string()
    } else {
        format!("{}... ({} bytes)", a.chars().take(30).collect::<String>(), a.len())
    }
}

/// A scratch directory of this test process.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("matdiff-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const SYMBOLIC_CHAIN: &str = "W[i] : d[i-1] x d[i]; X : d[n] x B; prod(W[i], i=1..n) * X";

fn caret(stderr: &str) -> bool {
    stderr.contains(",-[") // ariadne's header of a labelled source line
}

/// A product of numeric length is counted before its members are made:
/// 10¹¹ members took every gigabyte there was (check, plan, verify).
#[test]
fn members_of_a_product_are_counted_before_they_are_made() {
    let src = "W[i] : d[i-1] x d[i]; prod(W[i], i=1..99999999999)*X";
    let limit = matdiff::plan::MAX_FACTORS.to_string();
    matdiff(&["check", src]).assert_refused("check", &[&limit, "99999999999"]);
    let run = matdiff(&["plan", src]);
    run.assert_refused("plan", &[&limit, "99999999999"]);
    assert!(caret(&run.stderr), "{}", run.stderr);
    matdiff(&["verify", src, "--wrt", "X", "--claim", "X"]).assert_refused("verify", &[&limit]);
    // A symbolic length given a huge value.
    matdiff(&["plan", SYMBOLIC_CHAIN, "--dims", "n=1000000000"]).assert_refused("plan n=10^9", &[&limit]);
    // Derivation itself never makes the members.
    assert_eq!(matdiff(&["derive", src]).code, Some(0));
}

/// The plan of a long symbolic chain expands every member's gradient, n
/// factors each: n = 10 000 took 70 s and 5.7 GB. The expansion of ranges
/// and of powers is counted, before any, against budgets for the whole plan.
#[test]
fn a_plan_expands_its_products_within_one_budget() {
    let run = matdiff(&["plan", SYMBOLIC_CHAIN, "--dims", "n=10000"]);
    run.assert_refused("plan n=10000", &[&matdiff::plan::MAX_PLAN_FACTORS.to_string()]);
    let run = matdiff(&["plan", SYMBOLIC_CHAIN, "--dims", "n=200"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("dW_200 "), "{}", &run.stdout[..2000]);
    // Powers are expanded too: the power rule makes thousands of terms of
    // powers in the thousands (found by the property below: 7 s release).
    let run = matdiff(&["plan", "A : 3x3; tr(A^2^39^6^-46)"]);
    run.assert_refused("plan of powers", &[&matdiff::plan::MAX_PLAN_POWER_FACTORS.to_string()]);
}

/// A tied product A*A*…*A: each of its n occurrences' gradients has n − 1
/// factors, so n² nodes are counted before they are built (8 000 factors
/// peaked at 5 GB).
#[test]
fn a_tied_product_is_counted_before_its_gradient_is_built() {
    let src = format!("A : 3x3; {}", vec!["A"; 8000].join("*"));
    let run = matdiff(&["derive", &src]);
    run.assert_refused("8000 tied factors", &[&matdiff::calculus::MAX_GRADIENT_NODES.to_string()]);
    assert!(caret(&run.stderr), "{}", run.stderr);
}

/// Definitions that double (`B1 = B0*B0; …`): 191 bytes aborted at 3.3 GB.
#[test]
fn doubling_definitions_are_counted_before_they_are_built() {
    let defs: Vec<String> = (0..13).map(|k| format!("B{} = B{k}*B{k}", k + 1)).collect();
    let src = format!("{}; B13", defs.join("; "));
    for args in [&["derive"][..], &["check"], &["plan"], &["derive", "--steps"]] {
        let args: Vec<&str> = args.iter().copied().chain([src.as_str()]).collect();
        matdiff(&args).assert_refused(&args.join(" "), &[&matdiff::calculus::MAX_GRADIENT_NODES.to_string()]);
    }
}

/// A chain of definitions (`B1 = sum(B0 + a); B2 = sum(B1 + a); …`) is
/// typed once per definition, against a union-find that kept its trees
/// flat: 200 of them took 3.5 s, 1 100 hours.
#[test]
fn a_chain_of_definitions_is_typed_in_near_linear_time() {
    let n = 1100;
    let mut defs: Vec<String> = vec!["a : scalar; B0 = a".into()];
    defs.extend((1..=n).map(|k| format!("B{k} = sum(B{} + a)", k - 1)));
    let src = format!("{}; B{n}", defs.join("; "));
    for args in [&["derive", "-"][..], &["check", "-"], &["plan", "-"]] {
        let run = matdiff_with(args, Stdin::Text(src.as_bytes()), &[]);
        assert_eq!(run.code, Some(0), "{args:?}: {}", run.stderr);
    }
    let run = matdiff_with(&["derive", "-"], Stdin::Text(src.as_bytes()), &[]);
    assert!(run.stdout.contains(&format!("d/da = {}", n + 1)), "{}", &run.stdout[run.stdout.len() - 100..]);
}

/// `derive --steps` on 10 000 nested negations wrote 300 MB (every step
/// restates the expression); at most a few steps of each occurrence and a
/// few occurrences of each gradient are shown, with a note of the rest.
#[test]
fn steps_output_is_bounded_and_says_what_it_left_out() {
    let src = format!("A : 3x3; tr({}A)", "-".repeat(10_000));
    let run = matdiff(&["derive", "--steps", &src]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout_bytes < 4 << 20, "{} bytes", run.stdout_bytes);
    assert!(run.stdout.contains("more steps"), "{}", &run.stdout[..run.stdout.len().min(3000)]);
    let src = format!("A : 3x3; tr({})", vec!["A"; 5000].join(" + "));
    let run = matdiff(&["derive", "--steps", &src]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout_bytes < 4 << 20, "{} bytes", run.stdout_bytes);
    assert!(run.stdout.contains("4990 more occurrences"), "{}", &run.stdout[..run.stdout.len().min(3000)]);
}

/// Input is read through a cap: `-f /dev/zero` read until memory ran out.
#[test]
fn input_is_read_through_a_cap() {
    let cap = format!("{} MiB", matdiff::cli::MAX_INPUT_BYTES >> 20);
    matdiff(&["derive", "-f", "/dev/zero"]).assert_refused("-f /dev/zero", &["/dev/zero", &cap]);
    let run = matdiff_with(&["check", "-"], Stdin::File(Path::new("/dev/zero")), &[]);
    run.assert_refused("stdin /dev/zero", &["standard input", &cap]);
}

/// `A .^ 1` was normalised twice by tidy: 30 of them ran for hours.
#[test]
fn tidy_is_linear_in_its_input() {
    let src = format!("A : 3x3; sum(A{})", ".^1".repeat(30));
    let run = matdiff(&["derive", &src]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("d/dA = ones(3, 3)  : 3x3"), "{}", run.stdout);
}

/// Nested powers share their operand: the gradient's size was counted as
/// a tree of 2²⁸ (or 64⁵, or 10¹⁰) nodes before the limit could refuse it.
#[test]
fn nested_powers_are_refused_by_their_limit_at_once() {
    let limit = matdiff::calculus::MAX_GRADIENT_NODES.to_string();
    let squares = format!("A : 3x3; tr({}A{})", "(".repeat(28), "^2)".repeat(28));
    matdiff(&["derive", &squares]).assert_refused("28 squares", &[&limit]);
    let powers = format!("A : 3x3; tr({}A{})", "(".repeat(5), "^64)".repeat(5));
    matdiff(&["derive", &powers]).assert_refused("64^5", &[&limit]);
    let inverses = format!("A : 3x3; tr(A{})", "^-1".repeat(100_000));
    let run = matdiff_with(&["derive", "-"], Stdin::Text(inverses.as_bytes()), &[]);
    run.assert_refused("100 000 inverses", &[&limit]);
}

/// Per-gradient work does not rescan the program: a layer that sums 10 000
/// distinct variables took 13 s (20 000: 53 s).
#[test]
fn many_variables_are_derived_in_linear_time() {
    let src: Vec<String> = (0..10_000).map(|k| format!("W{k}")).collect();
    let run = matdiff_with(&["derive", "-"], Stdin::Text(src.join(" + ").as_bytes()), &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("d/dW9999 = G"), "{}", &run.stdout[run.stdout.len().saturating_sub(300)..]);
}

/// A piped session loses no line: an open parenthesis in a comment or in a
/// quoted option does not continue the input, an input open at the end is
/// an error naming its first line, and a line that is not UTF-8 is an error
/// for that line alone.
#[test]
fn piped_repl_input_is_never_lost() {
    let mut session: Vec<u8> = b"W : 3x4\n\
        # a comment with an open parenthesis (\n\
        W * W^T\n\
        verify W*X --wrt W --claim '(G*X^T'\n\
        W^T * W\n\
        (W *\n  W^T)^T\n"
        .to_vec();
    session.extend_from_slice(b"W * \xff\xfe\n");
    session.extend_from_slice(b"W\nW * (W^T\n");
    let run = matdiff_with(&["repl"], Stdin::Text(&session), &[]);
    // The worst status of the lines: errors (the claim's, line 8's, line 10's).
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("repl: line 4 failed (status 2), line 8 failed (status 2), line 10 failed (status 2)"),
        "{}",
        run.stderr
    );
    let shapes: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(shapes, ["3x3", "4x4", "3x3", "3x4"], "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("expected"), "the claim's parse error is shown: {}", run.stderr);
    assert!(run.stderr.contains("line 8") && run.stderr.contains("UTF-8"), "{}", run.stderr);
    assert!(run.stderr.contains("line 10") && run.stderr.contains("unfinished"), "{}", run.stderr);
}

/// Pids of this process's children that run matdiff.
fn matdiff_children() -> Vec<u32> {
    let mut pids = vec![];
    for task in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for pid in children.split_whitespace().filter_map(|p| p.parse::<u32>().ok()) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains("matdiff") {
                pids.push(pid);
            }
        }
    }
    pids
}

/// The REPL on a terminal, with its history under `data` (XDG_DATA_HOME):
/// it must prompt, run a line and quit within the time cap, under the
/// memory cap (watched from here; `ulimit -v` bounds it if the watch is late).
fn terminal_session(data: &Path, env: &[(&str, &str)]) -> String {
    use rexpect::session::spawn_command;
    let _turn = one_at_a_time();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "ulimit -v 4000000; exec \"$0\" repl", env!("CARGO_BIN_EXE_matdiff")])
        .env("HOME", data)
        .env("XDG_DATA_HOME", data)
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watch = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                for pid in matdiff_children() {
                    peak = peak.max(peak_kb(pid).unwrap_or(0));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        })
    };
    let started = Instant::now();
    let mut p = spawn_command(cmd, Some(TIME_CAP.as_millis() as u64)).unwrap();
    let mut seen = String::new();
    let mut step = |p: &mut rexpect::session::PtySession, send: Option<&str>, want: &str| {
        if let Some(line) = send {
            p.send_line(line).unwrap();
        }
        match p.exp_string(want) {
            Ok(text) => seen.push_str(&text),
            Err(e) => {
                done.store(true, std::sync::atomic::Ordering::Relaxed);
                panic!("waiting for {want:?}: {e}; seen so far:\n{seen}");
            }
        }
    };
    step(&mut p, None, "matdiff> ");
    step(&mut p, Some("W : 3x4"), "matdiff> ");
    step(&mut p, Some("W * W^T"), "3x3");
    step(&mut p, None, "matdiff> ");
    p.send_line(":quit").unwrap();
    p.exp_eof().unwrap();
    let status = p.process().wait();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = watch.join().unwrap();
    assert!(started.elapsed() < TIME_CAP, "{:?}", started.elapsed());
    assert!(peak < MEMORY_CAP_KB, "{} MiB resident", peak >> 10);
    assert!(matches!(status, Ok(rexpect::process::WaitStatus::Exited(_, 0))), "{status:?}; seen:\n{seen}");
    seen
}

/// A history "file" that is a device or a FIFO is neither read nor written:
/// a link to /dev/zero aborted the REPL at start, a FIFO hung it.
#[test]
fn history_is_read_only_from_a_regular_file() {
    let dir = scratch("history-zero");
    std::fs::create_dir_all(dir.join("matdiff")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("matdiff/history")).unwrap();
    let seen = terminal_session(&dir, &[]);
    assert!(seen.contains("not a regular file"), "{seen}");

    let dir = scratch("history-fifo");
    std::fs::create_dir_all(dir.join("matdiff")).unwrap();
    let made = Command::new("mkfifo").arg(dir.join("matdiff/history")).status().unwrap();
    assert!(made.success());
    let seen = terminal_session(&dir, &[]);
    assert!(seen.contains("not a regular file"), "{seen}");
}

/// A history line that is not UTF-8 is skipped, not the rest of the file;
/// and the history keeps 10 000 entries (MATDIFF_HISTORY_SIZE), not 100.
#[test]
fn history_survives_a_bad_line_and_keeps_its_length() {
    let dir = scratch("history-bad-line");
    std::fs::create_dir_all(dir.join("matdiff")).unwrap();
    let path = dir.join("matdiff/history");
    let mut text = b"#V2\n".to_vec();
    for k in 0..60 {
        text.extend_from_slice(format!("W{k} : 2x2\n").as_bytes());
    }
    text.extend_from_slice(b"W * \xff\n");
    for k in 60..150 {
        text.extend_from_slice(format!("W{k} : 2x2\n").as_bytes());
    }
    std::fs::write(&path, &text).unwrap();
    let seen = terminal_session(&dir, &[]);
    assert!(seen.contains("skipped") && seen.contains("line 62"), "the bad line is named: {seen}");
    let saved = std::fs::read_to_string(&path).unwrap();
    assert!(saved.contains("W0 : 2x2\n") && saved.contains("W149 : 2x2\n"), "{saved}");
    assert!(saved.contains("W * W^T\n"), "{saved}");
    assert_eq!(saved.lines().filter(|l| l.ends_with(": 2x2")).count(), 150, "{saved}");

    // A shorter configured length keeps the newest entries, and says so.
    let seen = terminal_session(&dir, &[("MATDIFF_HISTORY_SIZE", "20")]);
    assert!(seen.contains("MATDIFF_HISTORY_SIZE"), "{seen}");
    let saved = std::fs::read_to_string(&path).unwrap();
    assert_eq!(saved.lines().filter(|l| !l.starts_with('#')).count(), 20, "{saved}");
    assert!(saved.contains("W149 : 2x2\n") && !saved.contains("W0 : 2x2\n"), "{saved}");
}

/// Deep shared graphs through definitions: each definition combines the
/// previous one with an earlier one, so the tree doubles where the text
/// grows by a line.
fn shared_dag() -> impl Strategy<Value = String> {
    (1usize..40, prop::collection::vec((0u8..5, any::<prop::sample::Index>()), 40)).prop_map(
        |(depth, ops)| {
            let mut lines = vec!["A : 3x3; B : 3x3; D0 = A".to_string()];
            for k in 1..=depth {
                let (op, other) = &ops[k - 1];
                let (p, q) = (format!("D{}", k - 1), format!("D{}", other.index(k)));
                let e = match op {
                    0 => format!("{p}*{q}"),
                    1 => format!("{p} + {q}*B"),
                    2 => format!("{p} .* {q}"),
                    3 => format!("({p} - {q})^T"),
                    _ => format!("tr({p})*{q}"),
                };
                lines.push(format!("D{k} = {e}"));
            }
            lines.push(format!("tr(D{depth})"));
            lines.join("; ")
        },
    )
}

/// Long tied products: one matrix, maybe transposed or scaled, n times.
fn tied_product() -> impl Strategy<Value = String> {
    (1usize..6000, 0u8..3).prop_map(|(n, kind)| {
        let factor = |k: usize| match kind {
            0 => "A".to_string(),
            1 if k % 2 == 1 => "A'".to_string(),
            1 => "A".to_string(),
            _ => "(2*A)".to_string(),
        };
        let factors: Vec<String> = (0..n).map(factor).collect();
        format!("A : 3x3; tr({})", factors.join("*"))
    })
}

/// Nested integer powers, bracketed or as a postfix chain.
fn nested_powers() -> impl Strategy<Value = String> {
    (prop::collection::vec(-64i64..=64, 1..60), any::<bool>()).prop_map(|(ks, bracketed)| {
        let mut e = "A".to_string();
        for (i, k) in ks.iter().enumerate() {
            e = if bracketed && i < 150 { format!("({e})^{k}") } else { format!("{e}^{k}") };
        }
        format!("A : 3x3; tr({e})")
    })
}

/// Many distinct variables: a layer that sums them, a chain of them, or a
/// sum of products.
fn many_variables() -> impl Strategy<Value = String> {
    (1usize..6000, 0u8..3).prop_map(|(n, kind)| match kind {
        0 => (0..n).map(|k| format!("W{k}")).collect::<Vec<_>>().join(" + "),
        1 => {
            let n = n.min(400);
            let decls: Vec<String> = (0..n).map(|k| format!("W{k} : 2x2")).collect();
            let chain: Vec<String> = (0..n).map(|k| format!("W{k}")).collect();
            format!("{}; {}", decls.join("; "), chain.join("*"))
        }
        _ => (0..n.min(3000)).map(|k| format!("W{k}*X{k}")).collect::<Vec<_>>().join(" + "),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(24)))]

    /// Adversarial shapes, not random well-typed programs: every command
    /// answers (0), finds a check failing (1) or refuses by name (2) within
    /// the caps (the harness kills and fails a run past them).
    #[test]
    fn adversarial_shapes_are_answered_within_the_caps(
        src in prop_oneof![shared_dag(), tied_product(), nested_powers(), many_variables()],
    ) {
        for args in [&["derive", "-"][..], &["derive", "--steps", "-"], &["plan", "-"]] {
            let run = matdiff_with(args, Stdin::Text(src.as_bytes()), &[]);
            prop_assert!(matches!(run.code, Some(0..=2)), "{args:?} on {}: exit {:?}\n{}", short(&src), run.code, run.stderr);
            if run.code == Some(2) {
                prop_assert!(!run.stderr.contains("internal error"), "{args:?} on {}:\n{}", short(&src), run.stderr);
            }
        }
    }
}
