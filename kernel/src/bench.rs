//! Benchmarks inside the kernel: the NK's own micro-costs (`nk bench`), and
//! the gate-crossing count that user space reads through system call 1001
//! so `/bin/bench` can report exact crossings per operation.
//!
//! Every row is timed in TSC ticks around single NK calls and reported as
//! the median of many samples, then converted to nanoseconds with the TSC
//! rate measured at boot. A row's crossings are the NK counter's deltas
//! around its timed calls (setup left out) over the calls made: exact, not
//! sampled. Lines for machines start `nk-bench: row=`; the
//! xtask benchmark parses them.

use crate::mm::frames::{self, Frame};
use crate::{arch, println, time};
use alloc::vec::Vec;
use core::cell::Cell;
use nk::api::BatchOp;
use nk_model::pte::{Pte, PteFlags};

/// The NK's gate crossings so far, all CPUs (system call 1001). The counter
/// lives in NK memory, which the outer kernel reads without a gate, so
/// asking costs no crossing and does not disturb what it counts.
pub fn gate_crossings() -> u64 {
    nk::api::gate_crossings()
}

/// Samples per row: enough for a stable median under a noisy host.
const SAMPLES: usize = 201;
/// Entries in one level-1 table, and the batch size of the `write_ptes` row.
const ENTRIES: usize = 512;

/// One measured row: median ticks per operation and crossings per operation
/// (in thousandths, so integer printing keeps three decimals).
struct Row {
    name: &'static str,
    ticks: u64,
    crossings_milli: u64,
}

/// `nk bench`: every in-kernel row, for people and for the xtask parser.
pub fn nk_bench() {
    let rows = match measure_all() {
        Ok(rows) => rows,
        Err(why) => {
            println!("nk bench: {}", why);
            return;
        }
    };
    let per_ms = time::tsc_per_ms();
    for r in &rows {
        // ns = ticks * 1e6 / (ticks per ms), in thousandths of a ns.
        let ns_milli = u128::from(r.ticks) * 1_000_000_000 / u128::from(per_ms);
        println!(
            "nk-bench: row={} ticks={} ns={}.{:03} crossings={}.{:03}",
            r.name,
            r.ticks,
            ns_milli / 1000,
            ns_milli % 1000,
            r.crossings_milli / 1000,
            r.crossings_milli % 1000
        );
    }
    println!("nk-bench: backend={} tsc_per_ms={} samples={}", nk::BACKEND, per_ms, SAMPLES);
    let ticks = |name| rows.iter().find(|r| r.name == name).map_or(0, |r| r.ticks);
    let (call, toggle) = (ticks("gate_round_trip"), ticks("raw_toggle"));
    println!(
        "nk bench: empty NK call {} ticks, bare protection toggle {} ticks (medians of {} samples)",
        call, toggle, SAMPLES
    );
    if let Some(hundredths) = (call * 100).checked_div(toggle) {
        println!("nk bench: gate round trip / toggle = {}.{:02}", hundredths / 100, hundredths % 100);
    }
}

fn measure_all() -> Result<Vec<Row>, &'static str> {
    Ok(alloc::vec![gate_round_trip()?, raw_toggle()?, write_pte()?, write_ptes_512()?, declare_ptp()?, load_cr3()?,])
}

fn median(mut samples: Vec<u64>) -> u64 {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or(0)
}

/// Ticks and gate crossings of one call of `f`, which must succeed.
fn sample<T, E>(f: impl FnOnce() -> Result<T, E>, what: &'static str) -> Result<(u64, u64), &'static str> {
    let before = gate_crossings();
    let t = arch::rdtsc();
    let r = f();
    let ticks = arch::rdtsc() - t;
    let crossings = gate_crossings() - before;
    r.map(|_| (ticks, crossings)).map_err(|_| what)
}

/// Collects `SAMPLES` samples; `setup` runs untimed before each one.
fn row(
    name: &'static str,
    mut setup: impl FnMut() -> Result<(), &'static str>,
    mut timed: impl FnMut() -> Result<(u64, u64), &'static str>,
) -> Result<Row, &'static str> {
    let mut samples = Vec::with_capacity(SAMPLES);
    let mut crossings = 0;
    for _ in 0..SAMPLES {
        setup()?;
        let (t, c) = timed()?;
        samples.push(t);
        crossings += c;
    }
    Ok(Row { name, ticks: median(samples), crossings_milli: crossings * 1000 / SAMPLES as u64 })
}

fn none() -> Result<(), &'static str> {
    Ok(())
}

fn gate_round_trip() -> Result<Row, &'static str> {
    row("gate_round_trip", none, || sample(nk::api::nop, "the NK refused an empty call"))
}

/// The bare toggle: the gate times its own lift and re-arm (each CR0
/// write with its check) with the TSC and returns the sum. The measuring
/// call is setup: the row crosses no gate of its own.
fn raw_toggle() -> Result<Row, &'static str> {
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        samples.push(nk::api::measure_toggle().map_err(|_| "the NK refused the measurement")?);
    }
    Ok(Row { name: "raw_toggle", ticks: median(samples), crossings_milli: 0 })
}

/// A level-1 table to write into and a data frame for its leaves; removed
/// and freed on drop, after clearing every entry in one batch.
struct Scratch {
    table: Frame,
    data: Frame,
}

impl Scratch {
    fn new() -> Result<Self, &'static str> {
        let table = frames::alloc().ok_or("out of frames")?;
        let Some(data) = frames::alloc() else {
            let _ = frames::free(table);
            return Err("out of frames");
        };
        if nk::api::declare_ptp(table.number(), 1).is_err() {
            let _ = frames::free(table);
            let _ = frames::free(data);
            return Err("the NK refused to declare a table");
        }
        Ok(Self { table, data })
    }

    fn leaf(&self) -> u64 {
        Pte::new(self.data.addr(), PteFlags::PRESENT | PteFlags::WRITABLE | PteFlags::NO_EXECUTE).bits()
    }

    fn ops(&self, pte: u64) -> Vec<BatchOp> {
        (0..ENTRIES).map(|i| BatchOp { kind: BatchOp::WRITE, a: self.table.number(), b: i as u64, c: pte }).collect()
    }

    fn clear(&self) -> Result<(), &'static str> {
        nk::api::write_ptes(&self.ops(0)).map_err(|_| "the NK refused to clear the table")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // A table the NK would not clear or remove stays a table: leak it
        // rather than hand a page table back to the allocator.
        if self.clear().is_ok() && nk::api::remove_ptp(self.table.number()).is_ok() {
            let _ = frames::free(self.table);
        }
        let _ = frames::free(self.data);
    }
}

/// One checked entry written into an empty slot: the common case of
/// mapping a page (no old translation, so no TLB flush).
fn write_pte() -> Result<Row, &'static str> {
    let scratch = Scratch::new()?;
    let (table, leaf) = (scratch.table.number(), scratch.leaf());
    let index = Cell::new(ENTRIES - 1);
    row(
        "write_pte",
        || {
            index.set((index.get() + 1) % ENTRIES);
            if index.get() == 0 { scratch.clear() } else { Ok(()) }
        },
        || sample(|| nk::api::write_pte(table, index.get(), leaf), "the NK refused write_pte"),
    )
}

/// 512 checked entries, a whole table, in one `write_ptes` call.
fn write_ptes_512() -> Result<Row, &'static str> {
    let scratch = Scratch::new()?;
    let fill = scratch.ops(scratch.leaf());
    row("write_ptes_512", || scratch.clear(), || sample(|| nk::api::write_ptes(&fill), "the NK refused the batch"))
}

/// A fresh frame declared a level-1 table (zeroed, alias write-protected);
/// it is removed again outside the timing.
fn declare_ptp() -> Result<Row, &'static str> {
    let frame = frames::alloc().ok_or("out of frames")?;
    let declared = Cell::new(false);
    let r = row(
        "declare_ptp",
        || {
            if declared.get() && nk::api::remove_ptp(frame.number()).is_err() {
                return Err("the NK refused to remove the declared table");
            }
            declared.set(false);
            Ok(())
        },
        || {
            let s = sample(|| nk::api::declare_ptp(frame.number(), 1), "the NK refused declare_ptp")?;
            declared.set(true);
            Ok(s)
        },
    );
    // A frame that is still a table never goes back to the allocator.
    if !declared.get() || nk::api::remove_ptp(frame.number()).is_ok() {
        let _ = frames::free(frame);
    }
    r
}

/// The kernel root loaded again (this shell thread already runs on it):
/// the checks, the CR3 write and the TLB flush it implies.
fn load_cr3() -> Result<Row, &'static str> {
    let root = nk::api::kernel_root();
    row("load_cr3", none, || arch::without_interrupts(|| sample(|| nk::api::load_cr3(root), "the NK refused load_cr3")))
}

crate::ktest!(
    fn bench_rows_are_one_crossing_each() {
        let rows = measure_all()?;
        let want = [
            ("gate_round_trip", 1000),
            ("raw_toggle", 0),
            ("write_pte", 1000),
            ("write_ptes_512", 1000),
            ("declare_ptp", 1000),
            ("load_cr3", 1000),
        ];
        crate::kassert_eq!(rows.len(), want.len());
        for (r, (name, milli)) in rows.iter().zip(want) {
            crate::kassert!(
                r.name == name && r.crossings_milli == milli,
                "{}: {} milli-crossings",
                r.name,
                r.crossings_milli
            );
            crate::kassert!(r.ticks > 0 || name == "raw_toggle", "{} took 0 ticks", r.name);
        }
        Ok(())
    }
);
