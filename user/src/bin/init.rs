//! The first process the kernel starts (`/bin/init`). For now it says it
//! ran and exits 0; later it starts the shell and reaps orphans.

fn main() {
    println!("init: running as pid {}", std::process::id());
}
