//! The `matdiff` binary: the command line of [`matdiff::cli`].

/// Every recursive stage walks the expression tree; a large stack lets deep
/// (but size-limited) inputs through instead of overflowing.
const STACK_BYTES: usize = 512 * 1024 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let worker = std::thread::Builder::new()
        .name("matdiff".into())
        .stack_size(STACK_BYTES)
        .spawn(move || {
            let stdout = std::io::stdout();
            let stderr = std::io::stderr();
            matdiff::cli::run(args, &mut stdout.lock(), &mut stderr.lock())
        })
        .expect("spawn the main thread");
    let code = worker.join().unwrap_or(101);
    std::process::exit(code);
}
