//! AFL++ target: any bytes as a program, through parse, shapes, derive,
//! simplify and rendering, as the binary runs them (on a large stack).
//! A panic is a crash; a clean error is fine. See README ("Fuzzing").

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else { return };
        let text = text.to_string();
        let worker = std::thread::Builder::new()
            .stack_size(512 * 1024 * 1024)
            .spawn(move || {
                let mut out = Vec::new();
                let mut err = Vec::new();
                let args = ["matdiff", "derive", "--steps", &text].map(String::from).to_vec();
                matdiff::cli::run(args, &mut out, &mut err);
                let args = ["matdiff", "derive", "--json", "--latex", &text].map(String::from).to_vec();
                matdiff::cli::run(args, &mut out, &mut err);
            })
            .expect("spawn");
        if worker.join().is_err() {
            panic!("matdiff panicked");
        }
    });
}
