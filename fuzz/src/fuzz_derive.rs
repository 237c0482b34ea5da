//! AFL++ target: any bytes as a program, through parse, shapes, derive,
//! simplify, rendering (text with steps, LaTeX) and the plan, as the binary
//! runs them. A panic is a crash; a clean error is fine. The thread has
//! 1 MiB of stack, so a recursive walk that does not grow its stack
//! (src/stack.rs) on deep input crashes too. See README ("Robustness and fuzzing").

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else { return };
        let text = text.to_string();
        let worker = std::thread::Builder::new()
            .stack_size(1024 * 1024)
            .spawn(move || {
                let mut out = Vec::new();
                let mut err = Vec::new();
                let args = ["matdiff", "derive", "--steps", &text].map(String::from).to_vec();
                matdiff::cli::run(args, &mut out, &mut err);
                let args = ["matdiff", "derive", "--latex", &text].map(String::from).to_vec();
                matdiff::cli::run(args, &mut out, &mut err);
                let args = ["matdiff", "plan", "--json", &text].map(String::from).to_vec();
                matdiff::cli::run(args, &mut out, &mut err);
            })
            .expect("spawn");
        if worker.join().is_err() {
            panic!("matdiff panicked");
        }
    });
}
