//! A larger stack for the wasm module: stacker, which grows the native
//! stack for deep expression trees (src/stack.rs), cannot on wasm32, so
//! deep walks run on this one (wasm-ld's default is 1 MiB).
fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg=-zstack-size=16777216");
    }
}
