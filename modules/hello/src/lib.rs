//! The smallest module: a line on the console when it loads and one when
//! it unloads.
#![no_std]

use nkmod::{Errno, println};

nkmod::module! { name: "hello", version: "1.0", license: "MIT OR Apache-2.0", init: init, exit: exit }

fn init() -> Result<(), Errno> {
    println!("hello: loaded, interface {}", nkmod::INTERFACE);
    Ok(())
}

fn exit() {
    println!("hello: unloaded");
}
