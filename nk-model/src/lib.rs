//! The nested kernel's rules as pure data and functions: no `unsafe`, no
//! hardware access, so every rule runs under `cargo test` on the host and the
//! same code runs inside the NK.
#![no_std]
#![forbid(unsafe_code)]

pub mod chain;
pub mod code;
pub mod layout;
pub mod mediate;
pub mod monitor;
pub mod pte;
pub mod vmmu;

// Host tests use std (the simulated machine, proptest); the model never does.
#[cfg(test)]
extern crate std;
