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
use alloc::string::String;
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
/// Samples of the module rows: a load and an unload take hundreds of µs
/// under TCG, so fewer of them keep `nk bench` quick.
const MODULE_SAMPLES: usize = 51;
/// The module the module rows load and unload.
const MODULE: &str = "/lib/modules/hello.ko";

/// One measured row: median ticks per operation and crossings per operation
/// (in thousandths, so integer printing keeps three decimals).
struct Row {
    name: &'static str,
    ticks: u64,
    crossings_milli: u64,
    /// Why the row was not measured; printed as `unavailable=` for the parser.
    unavailable: Option<String>,
}

impl Row {
    fn measured(name: &'static str, samples: Vec<u64>, crossings: u64) -> Self {
        let n = samples.len().max(1) as u64;
        Row { name, ticks: median(samples), crossings_milli: crossings * 1000 / n, unavailable: None }
    }

    fn unavailable(name: &'static str, why: String) -> Self {
        Row { name, ticks: 0, crossings_milli: 0, unavailable: Some(why) }
    }
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
        if let Some(why) = &r.unavailable {
            println!("nk-bench: row={} unavailable={}", r.name, why);
            continue;
        }
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
    let mut rows =
        alloc::vec![gate_round_trip()?, raw_toggle()?, write_pte()?, write_ptes_512()?, declare_ptp()?, load_cr3()?];
    rows.extend(module_rows());
    Ok(rows)
}

fn median(mut samples: Vec<u64>) -> u64 {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or(0)
}

/// What `f` returned, with the ticks and gate crossings it took.
fn timed<T>(f: impl FnOnce() -> T) -> (T, u64, u64) {
    let before = gate_crossings();
    let t = arch::rdtsc();
    let r = f();
    let ticks = arch::rdtsc() - t;
    (r, ticks, gate_crossings() - before)
}

/// Ticks and gate crossings of one call of `f`, which must succeed.
fn sample<T, E>(f: impl FnOnce() -> Result<T, E>, what: &'static str) -> Result<(u64, u64), &'static str> {
    let (r, ticks, crossings) = timed(f);
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
    Ok(Row::measured(name, samples, crossings))
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
    Ok(Row::measured("raw_toggle", samples, 0))
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

/// `module_load` and `module_unload`: `MODULE` loaded (parsed, linked,
/// copied into frames, mapped through the NK with each text page vetted by
/// `map_code`, its `init` run) and unloaded (its `exit`, the unmap, each
/// text frame given back by `release_code`, the frames freed), in turns.
/// Without the file, or if a load fails, both rows say why.
fn module_rows() -> [Row; 2] {
    let measured =
        crate::fs::read_file(crate::fs::ROOT, MODULE).map_err(|e| alloc::format!("{MODULE}: {e}")).and_then(|bytes| {
            crate::module::set_quiet(true);
            let r = module_samples(&bytes);
            crate::module::set_quiet(false);
            r
        });
    match measured {
        Ok(((load, load_c), (unload, unload_c))) => {
            [Row::measured("module_load", load, load_c), Row::measured("module_unload", unload, unload_c)]
        }
        Err(why) => [Row::unavailable("module_load", why.clone()), Row::unavailable("module_unload", why)],
    }
}

type Samples = (Vec<u64>, u64);

/// `MODULE_SAMPLES` timed loads and unloads of the module in `bytes`, after
/// one untimed pair (the module area makes its tables on first use).
fn module_samples(bytes: &[u8]) -> Result<(Samples, Samples), String> {
    use crate::module::{load, unload};
    let name = load(bytes).map_err(|e| alloc::format!("load: {e}"))?;
    unload(&name).map_err(|e| alloc::format!("unload: {e}"))?;
    let (mut loads, mut unloads) = ((Vec::new(), 0), (Vec::new(), 0));
    for _ in 0..MODULE_SAMPLES {
        let (r, ticks, crossings) = timed(|| load(bytes));
        r.map_err(|e| alloc::format!("load: {e}"))?;
        loads.0.push(ticks);
        loads.1 += crossings;
        let (r, ticks, crossings) = timed(|| unload(&name));
        r.map_err(|e| alloc::format!("unload: {e}"))?;
        unloads.0.push(ticks);
        unloads.1 += crossings;
    }
    Ok((loads, unloads))
}

crate::ktest!(
    fn bench_rows_cross_as_often_as_their_nk_calls() {
        let rows = measure_all()?;
        // A module load is one batch (data, read-only pages) and one
        // map_code per text page; its unload one batch (the unmap) and one
        // release_code per text page, which `native` skips: it keeps no
        // frame table, so no frame is code there.
        let bytes = crate::fs::read_file(crate::fs::ROOT, MODULE).map_err(|e| alloc::format!("{MODULE}: {e}"))?;
        let text = klib::module::Module::parse(&bytes).map_err(|e| alloc::format!("{MODULE}: {e}"))?.text_pages;
        let released = if nk::BACKEND == "native" { 0 } else { text };
        let want = [
            ("gate_round_trip", 1000),
            ("raw_toggle", 0),
            ("write_pte", 1000),
            ("write_ptes_512", 1000),
            ("declare_ptp", 1000),
            ("load_cr3", 1000),
            ("module_load", 1000 * (1 + text)),
            ("module_unload", 1000 * (1 + released)),
        ];
        crate::kassert_eq!(rows.len(), want.len());
        for (r, (name, milli)) in rows.iter().zip(want) {
            crate::kassert!(r.unavailable.is_none(), "{}: unavailable: {:?}", r.name, r.unavailable);
            crate::kassert!(
                r.name == name && r.crossings_milli == milli,
                "{}: {} milli-crossings, expected {}",
                r.name,
                r.crossings_milli,
                milli
            );
            crate::kassert!(r.ticks > 0 || name == "raw_toggle", "{} took 0 ticks", r.name);
        }
        Ok(())
    }
);
