//! The first user program: one line on stdout, exit status 0.

fn main() {
    println!("hello from user space");
}
