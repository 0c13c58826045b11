//! Links the kernel with its own linker script, and, when `xtask` asks for
//! it, with a shuffled function order: a protected byte sequence that a call
//! or RIP-relative displacement forms by accident (see docs/scanner.md)
//! disappears when the functions move.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    println!("cargo:rustc-link-arg-bins=--no-pie");
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-env-changed=KERNEL_LINK_SHUFFLE");
    if let Ok(seed) = std::env::var("KERNEL_LINK_SHUFFLE")
        && seed != "0"
        && !seed.is_empty()
    {
        println!("cargo:rustc-link-arg-bins=--shuffle-sections=.text.*={seed}");
    }
}
