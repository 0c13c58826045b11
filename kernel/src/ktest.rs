//! In-kernel tests: a registry in the `.ktests` linker section, filled by
//! the [`ktest!`] macro wherever a test is written, and a runner started by
//! the `test` (or `test=FILTER`) kernel command-line word.
#![allow(unsafe_code)]

use crate::arch::{self, ExitCode};
use crate::println;
use alloc::string::String;
use core::sync::atomic::{AtomicPtr, Ordering};

pub type TestResult = Result<(), String>;

/// One registered test.
#[repr(C)]
pub struct TestCase {
    pub name: &'static str,
    pub run: fn() -> TestResult,
}

/// Registers a test: `ktest!(fn name() { ...; Ok(()) })`.
#[macro_export]
macro_rules! ktest {
    (fn $name:ident() $body:block) => {
        fn $name() -> $crate::ktest::TestResult $body
        const _: () = {
            // The section gathers every test into one array for the runner.
            #[allow(unsafe_code)]
            #[unsafe(link_section = ".ktests")]
            #[used]
            static CASE: $crate::ktest::TestCase = $crate::ktest::TestCase {
                name: concat!(module_path!(), "::", stringify!($name)),
                run: $name,
            };
        };
    };
}

/// Fails the test with a message and location unless `cond` holds.
#[macro_export]
macro_rules! kassert {
    ($cond:expr) => { $crate::kassert!($cond, "{}", stringify!($cond)) };
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(alloc::format!("{} at {}:{}", format_args!($($fmt)+), file!(), line!()));
        }
    };
}

#[macro_export]
macro_rules! kassert_eq {
    ($left:expr, $right:expr) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            return Err(alloc::format!(
                "{} == {} failed: {:?} != {:?} at {}:{}",
                stringify!($left),
                stringify!($right),
                l,
                r,
                file!(),
                line!()
            ));
        }
    }};
}

// Only the addresses of these two symbols are used.
#[allow(improper_ctypes)]
unsafe extern "C" {
    static __ktests_start: TestCase;
    static __ktests_end: TestCase;
}

fn registry() -> &'static [TestCase] {
    let start = &raw const __ktests_start;
    let end = &raw const __ktests_end;
    let len = (end as usize - start as usize) / size_of::<TestCase>();
    // SAFETY: the linker script brackets the `.ktests` section with these two
    // symbols, and the section holds only `TestCase` statics placed by
    // `ktest!`, which are properly aligned and initialised.
    unsafe { core::slice::from_raw_parts(start, len) }
}

/// The test being run, for the panic handler.
static CURRENT: AtomicPtr<TestCase> = AtomicPtr::new(core::ptr::null_mut());

/// Called by the panic handler and fatal-exception path: if a test was
/// running, say that it failed, in the runner's format.
pub fn report_panic() {
    let cur = CURRENT.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if !cur.is_null() {
        // SAFETY: CURRENT only ever holds pointers into the static registry.
        let name = unsafe { (*cur).name };
        println!("test {} ... FAILED (the kernel stopped inside the test)", name);
    }
}

/// Runs every test whose name contains `filter`, prints a summary, and
/// ends the run with a status that says whether all passed.
pub fn run_all(filter: &str) -> ! {
    let tests = registry();
    let selected = tests.iter().filter(|t| t.name.contains(filter));
    println!("ktest: running {} of {} tests (filter '{}')", selected.clone().count(), tests.len(), filter);
    let (mut passed, mut failed) = (0, 0);
    for t in selected {
        CURRENT.store(t as *const TestCase as *mut TestCase, Ordering::Release);
        let result = (t.run)();
        CURRENT.store(core::ptr::null_mut(), Ordering::Release);
        match result {
            Ok(()) => {
                passed += 1;
                println!("test {} ... ok", t.name);
            }
            Err(why) => {
                failed += 1;
                println!("test {} ... FAILED", t.name);
                println!("    {}", why);
            }
        }
    }
    println!("ktest: {} passed, {} failed", passed, failed);
    arch::exit_qemu(if failed == 0 { ExitCode::Success } else { ExitCode::Failure })
}

crate::ktest!(
    fn registry_holds_this_test() {
        let names: alloc::vec::Vec<&str> = registry().iter().map(|t| t.name).collect();
        crate::kassert!(names.contains(&"kernel::ktest::registry_holds_this_test"), "registry: {:?}", names);
        Ok(())
    }
);

/// Calls the code at `va` as `extern "C" fn() -> u32`, for tests of code
/// mappings.
pub fn call_code(va: u64) -> u32 {
    // SAFETY: tests call this only on a page they just mapped executable
    // with a function that follows the C ABI and returns.
    let f: extern "C" fn() -> u32 = unsafe { core::mem::transmute(va as usize) };
    f()
}
