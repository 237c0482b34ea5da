//! The `matdiff` binary: the command line of [`matdiff::cli`].

/// The recursive stages grow their own stack as they go (src/stack.rs), and
/// tests/robustness.rs runs every subcommand on deep input on a 1 MiB
/// thread. The large stack here is a second line for code outside those
/// stages (pest, clap, the line editor); it costs address space only.
const STACK_BYTES: usize = 512 * 1024 * 1024;

/// A derivation allocates and frees a node per factor of every gradient;
/// glibc's malloc spent a third of a long chain's time doing so
/// (consolidating its fast bins at every larger request). BENCHMARKS.md.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // As bytes: `std::env::args` panics on an argument that is not UTF-8,
    // and a file name need not be.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let worker = std::thread::Builder::new()
        .name("matdiff".into())
        .stack_size(STACK_BYTES)
        .spawn(move || matdiff::cli::main(args))
        .expect("spawn the main thread");
    let code = worker.join().unwrap_or(101);
    std::process::exit(code);
}
