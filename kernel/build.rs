//! Links the kernel with its own linker script. The script INCLUDEs
//! `outer-layout.ld`, found on the library path: cargo's link gets
//! kernel/layout's (the natural order); `cargo xtask` relinks the same
//! objects with a generated fragment first on the path (docs/scanner.md,
//! *Layout*).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    println!("cargo:rustc-link-arg-bins=--no-pie");
    println!("cargo:rustc-link-arg-bins=-L{dir}/layout");
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed=layout/outer-layout.ld");
}
