//! `cargo xtask layout-bench`: how the layout scales. Two measurements on
//! the `wp` kernel's kept objects, both relinks only:
//!
//! * the clean-link rate of shuffled function orders (lld
//!   `--shuffle-sections`, what `xtask` used to search), with today's scan
//!   and with the page-end rule it had before image code was pinned to its
//!   boot mapping;
//! * a kernel with `--scale` times today's outer text (generated filler
//!   functions full of calls and RIP-relative loads, assembled by rustc's
//!   `global_asm!`), converged from no decisions at all: its hits,
//!   relinks and seconds.

use crate::Result;
use crate::build::{self, BuildOptions};
use crate::layout::{self, Fixes};
use crate::link::Capture;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchOptions {
    /// Shuffled link orders to try (0: skip the rate).
    pub seeds: u32,
    /// Outer text as a multiple of today's (1: skip the large image).
    pub scale: u32,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions { seeds: 40, scale: 10 }
    }
}

pub fn run(opts: &BenchOptions) -> Result<u8> {
    let built = build::build(&BuildOptions::default())?;
    let dir = crate::setup::target_dir().join("layout-bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let capture = Capture::load(&crate::setup::target_dir().join("nk-wp").join("capture"))?;
    let lld = crate::link::real_lld()?;
    let outer = outer_text(&built.kernel)?;
    println!("outer text of the wp kernel: {outer} bytes ({} pages)", outer.div_ceil(4096));
    if opts.seeds > 0 {
        rate(&capture, &lld, &dir, opts.seeds)?;
    }
    if opts.scale > 1 {
        scaled(&capture, &dir, outer, opts.scale)?;
    }
    Ok(0)
}

/// Outer text: `__nk_text_end .. __text_end`.
fn outer_text(kernel: &Path) -> Result<u64> {
    let data = std::fs::read(kernel).map_err(|e| format!("cannot read {}: {e}", kernel.display()))?;
    let elf = goblin::elf::Elf::parse(&data).map_err(|e| format!("not an ELF file: {e}"))?;
    let sym = |name: &str| elf.syms.iter().find(|s| elf.strtab.get_at(s.st_name) == Some(name)).map(|s| s.st_value);
    match (sym("__nk_text_end"), sym("__text_end")) {
        (Some(a), Some(b)) => Ok(b - a),
        _ => Err("the kernel has no __nk_text_end or __text_end".into()),
    }
}

/// Links the natural order shuffled with seeds 1..=seeds and counts the
/// clean images, with and without the old page-end rule.
fn rate(capture: &Capture, lld: &Path, dir: &Path, seeds: u32) -> Result<()> {
    let natural = dir.join("natural");
    std::fs::create_dir_all(&natural).map_err(|e| e.to_string())?;
    std::fs::write(natural.join(layout::FRAGMENT), "/* natural order */\n").map_err(|e| e.to_string())?;
    let (out, map) = (dir.join("shuffled"), dir.join("shuffled.map"));
    let (mut clean, mut clean_old) = (0, 0);
    let start = Instant::now();
    for seed in 1..=seeds {
        let flags = [format!("--shuffle-sections=.text.*={seed}")];
        capture.link(lld, &natural, &out, &map, &[], None, &flags)?;
        let report = crate::scan::scan_file(&out)?;
        let hits = report.outer_hits().count();
        let tails = page_end_hits(&out)?;
        clean += usize::from(hits == 0);
        clean_old += usize::from(hits == 0 && tails == 0);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "clean-link rate over {seeds} shuffled orders ({secs:.1} s): {clean}/{seeds} ({:.0} %) with today's scan; \
         {clean_old}/{seeds} ({:.0} %) with the old page-end rule",
        100.0 * clean as f64 / seeds as f64,
        100.0 * clean_old as f64 / seeds as f64
    );
    Ok(())
}

/// The rule the scanner had before image code was pinned to its boot
/// mapping: a 4 KiB page of outer code whose last bytes begin a protected
/// opcode (`nk_model::code::protected_at` on the cut tail).
fn page_end_hits(kernel: &Path) -> Result<usize> {
    let data = std::fs::read(kernel).map_err(|e| format!("cannot read {}: {e}", kernel.display()))?;
    let elf = goblin::elf::Elf::parse(&data).map_err(|e| format!("not an ELF file: {e}"))?;
    let sym = |name: &str| elf.syms.iter().find(|s| elf.strtab.get_at(s.st_name) == Some(name)).map(|s| s.st_value);
    let (Some(nk_end), Some(text_end)) = (sym("__nk_text_end"), sym("__text_end")) else { return Ok(0) };
    let Some(sh) = elf.section_headers.iter().find(|sh| elf.shdr_strtab.get_at(sh.sh_name) == Some(".text")) else {
        return Ok(0);
    };
    let mut n = 0;
    let mut page_end = nk_end + 4096;
    while page_end <= text_end {
        let off = (page_end - sh.sh_addr) as usize + sh.sh_offset as usize;
        if (1..=3).any(|k| nk_model::code::protected_at(&data[off - k..off]).is_some()) {
            n += 1;
        }
        page_end += 4096;
    }
    Ok(n)
}

/// A kernel with `scale` times today's outer text, converged from nothing.
fn scaled(capture: &Capture, dir: &Path, outer: u64, scale: u32) -> Result<()> {
    let filler_bytes = outer * u64::from(scale - 1);
    let (asm, functions) = filler_asm(filler_bytes, 0x5eed);
    let obj = assemble(dir, &asm)?;
    // The band assertion of kernel/linker.ld (code and data within 7.5 MiB)
    // is about today's kernel; the large image is linked and scanned only.
    let script_text = std::fs::read_to_string(crate::setup::workspace_root().join("kernel/linker.ld"))
        .map_err(|e| format!("cannot read kernel/linker.ld: {e}"))?;
    let script_text: String =
        script_text.lines().filter(|l| !l.trim_start().starts_with("ASSERT(")).map(|l| format!("{l}\n")).collect();
    let script = dir.join("linker.ld");
    std::fs::write(&script, script_text).map_err(|e| e.to_string())?;
    let mut fixes = Fixes::default();
    let out = dir.join("kernel-scaled");
    // The filler is referenced by nothing: keep it.
    let flags = ["--no-gc-sections".to_string()];
    let done = layout::converge(capture, &dir.join("link"), &out, &mut fixes, &[obj], Some(&script), &flags)?;
    let total = outer_text(&out)?;
    let moved = fixes.0.iter().filter(|(_, f)| f.moved).count();
    println!(
        "{scale}x image: {functions} filler functions, outer text {total} bytes ({} pages); first link {} hit(s); \
         clean after {} relink(s) ({} links in all; {} fixes: {} pads, {moved} moves), {:.1} s of linking and scanning",
        total.div_ceil(4096),
        done.first_hits,
        done.retries,
        done.links,
        fixes.0.len(),
        fixes.0.len() - moved,
        done.seconds
    );
    Ok(())
}

/// A tiny deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A 32-bit immediate with no 0x0f byte: the filler's own encodings
    /// then hold no protected instruction, and every hit it gets comes
    /// from a displacement, which the layout can fix.
    fn imm(&mut self) -> u32 {
        let mut v = self.next() as u32;
        for i in 0..4 {
            if (v >> (8 * i)) & 0xff == 0x0f {
                v ^= 0x10 << (8 * i);
            }
        }
        v
    }
}

/// Intel-syntax assembly for about `bytes` bytes of functions, each in its
/// own `.text.filler_N` section: calls to other filler functions (near and
/// far), RIP-relative loads from a 64 KiB read-only blob, immediates,
/// register arithmetic. Returns the text and the number of functions.
fn filler_asm(bytes: u64, seed: u64) -> (String, usize) {
    let mut rng = Rng(seed);
    // About 200 bytes per function.
    let functions = (bytes / 200).max(1) as usize;
    let mut s = String::new();
    let _ = writeln!(s, ".section .rodata.filler_blob,\"a\",@progbits\n.p2align 6\nfiller_blob:\n.zero 65536");
    for f in 0..functions {
        let _ = writeln!(s, ".section .text.filler_{f},\"ax\",@progbits\n.p2align 4\nfiller_{f}:\npush rbx");
        let mut size = 1;
        while size < 190 {
            match rng.below(6) {
                0 | 1 => {
                    // Mostly near calls, some anywhere in the image.
                    let to = if rng.below(3) == 0 {
                        rng.below(functions as u64) as usize
                    } else {
                        (f + 1 + rng.below(64) as usize) % functions
                    };
                    let _ = writeln!(s, "call filler_{to}");
                    size += 5;
                }
                2 => {
                    let _ = writeln!(s, "lea rax, [rip + filler_blob + {}]", rng.below(65536));
                    size += 7;
                }
                3 => {
                    let _ = writeln!(s, "mov eax, {}", rng.imm());
                    size += 5;
                }
                4 => {
                    let _ = writeln!(s, "add rax, rcx\nxor ecx, ecx");
                    size += 5;
                }
                _ => {
                    let _ = writeln!(s, "mov rbx, rax\nadd rbx, 8");
                    size += 7;
                }
            }
        }
        let _ = writeln!(s, "pop rbx\nret");
    }
    (s, functions)
}

/// Assembles `asm` into an object with rustc (`global_asm!`): the pinned
/// toolchain's own assembler, nothing else to install.
fn assemble(dir: &Path, asm: &str) -> Result<PathBuf> {
    let s_path = dir.join("filler.s");
    let rs_path = dir.join("filler.rs");
    let obj = dir.join("filler.o");
    std::fs::write(&s_path, asm).map_err(|e| e.to_string())?;
    std::fs::write(&rs_path, "#![no_std]\ncore::arch::global_asm!(include_str!(\"filler.s\"));\n")
        .map_err(|e| e.to_string())?;
    let status = Command::new("rustc")
        .args(["--edition", "2024", "--crate-type", "lib", "--emit", "obj", "--target", crate::setup::TARGET])
        .args(["-C", "relocation-model=static", "-C", "code-model=kernel", "-o"])
        .arg(&obj)
        .arg(&rs_path)
        .current_dir(crate::setup::workspace_root())
        .status()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    if !status.success() {
        return Err("rustc could not assemble the filler".into());
    }
    Ok(obj)
}
