//! The outer kernel's code layout, converged by construction: every outer
//! function (input section) is placed by a generated linker-script
//! fragment, `outer-layout.ld` (INCLUDEd by kernel/linker.ld right after
//! `__nk_text_end`), in windows whose start addresses are fixed. A scan hit
//! is fixed by padding the function that holds it inside its window, or by
//! moving it to the overflow area at the end of outer text; either changes
//! the addresses of that function and the rest of its window only, so a fix
//! does not reshuffle the image and the number of relinks grows with the
//! number of hits, not with code size (docs/scanner.md, *Layout*).
//!
//! The decisions (which function is padded or moved) are a short text
//! file per backend, committed in `kernel/layout/`, so a fresh clone links
//! the same image with no retry.

use crate::Result;
use crate::link::Capture;
use crate::scan;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Content per window before a new one starts: large enough that windows
/// cost little slack, small enough that a pad moves few functions.
const WINDOW: u64 = 3584;
/// Room left at the end of every window for pads.
const SLACK: u64 = 512;
/// The pads tried in turn for a function holding a hit. 16 changes the low
/// byte of every displacement into or out of the moved code; 272 (256 + 16)
/// changes the second byte too. A hit that needs more (the third byte of a
/// displacement) is fixed by moving the function.
const PADS: [u64; 2] = [16, 272];
/// The file name kernel/linker.ld INCLUDEs.
pub const FRAGMENT: &str = "outer-layout.ld";

/// One input section of outer code, from the link map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub addr: u64,
    pub size: u64,
    pub align: u64,
}

/// Every input section in `.text` from `start` on (outer code), in link
/// order, read from an lld `-Map` file.
pub fn parse_map(map: &str, start: u64) -> Vec<Section> {
    let mut out = Vec::new();
    let mut in_text = false;
    for line in map.lines().skip(1) {
        let mut cols = line.split_whitespace();
        let (Some(vma), Some(_lma), Some(size), Some(align)) = (cols.next(), cols.next(), cols.next(), cols.next())
        else {
            continue;
        };
        let (Ok(addr), Ok(size), Ok(align)) =
            (u64::from_str_radix(vma, 16), u64::from_str_radix(size, 16), align.parse::<u64>())
        else {
            continue;
        };
        // The rest of the line, indented 0 (output section), 8 (input
        // section) or 16 (symbol) after the four columns.
        let rest = after_columns(line, 4).get(1..).unwrap_or("");
        let indent = rest.len() - rest.trim_start().len();
        let rest = rest.trim();
        if indent == 0 {
            in_text = rest == ".text";
            continue;
        }
        if !in_text || indent != 8 || addr < start || size == 0 {
            continue;
        }
        let Some(open) = rest.rfind(":(") else { continue };
        let Some(name) = rest[open + 2..].strip_suffix(')') else { continue };
        out.push(Section { name: name.to_string(), addr, size, align: align.max(1) });
    }
    out
}

/// `line` after its first `n` whitespace-separated columns.
fn after_columns(line: &str, n: usize) -> &str {
    let mut rest = line;
    for _ in 0..n {
        rest = rest.trim_start();
        rest = &rest[rest.find(char::is_whitespace).unwrap_or(rest.len())..];
    }
    rest
}

/// The section holding `addr` (or the last one before it: a hit in the
/// padding after a function is that function's).
pub fn section_at(sections: &[Section], addr: u64) -> Option<&Section> {
    let i = sections.partition_point(|s| s.addr <= addr);
    i.checked_sub(1).map(|i| &sections[i])
}

/// The relative field (displacement of a call, jump or RIP-relative
/// operand) that a hit at `addr..addr + len` in `sec` overlaps, decoded
/// from the function's start: the lowest byte of the field the hit
/// covers, and the address the field points at.
fn hit_field(image: &[u8], text: (u64, u64), sec: &Section, addr: u64, len: usize) -> Option<(u64, u64)> {
    use iced_x86::{Decoder, DecoderOptions, OpKind};
    let (text_addr, text_off) = text;
    if sec.addr < text_addr || addr < sec.addr {
        return None;
    }
    let start = (sec.addr - text_addr + text_off) as usize;
    let end = (addr + len as u64 + 16 - text_addr + text_off) as usize;
    let bytes = image.get(start..end.min(image.len()))?;
    let mut decoder = Decoder::with_ip(64, bytes, sec.addr, DecoderOptions::NONE);
    let mut found: Option<(u64, u64)> = None;
    while decoder.can_decode() {
        let insn = decoder.decode();
        let ip = insn.ip();
        if ip >= addr + len as u64 {
            break;
        }
        if insn.next_ip() <= addr {
            continue;
        }
        let offsets = decoder.get_constant_offsets(&insn);
        let branch =
            (0..insn.op_count()).any(|i| matches!(insn.op_kind(i), OpKind::NearBranch64 | OpKind::NearBranch32));
        let field = if insn.is_ip_rel_memory_operand() && offsets.has_displacement() {
            Some((offsets.displacement_offset(), offsets.displacement_size(), insn.ip_rel_memory_address()))
        } else if branch && offsets.has_immediate() {
            Some((offsets.immediate_offset(), offsets.immediate_size(), insn.near_branch_target()))
        } else {
            None
        };
        let Some((off, size, target)) = field else { continue };
        for k in 0..size as u64 {
            let b = ip + off as u64 + k;
            if b >= addr && b < addr + len as u64 && found.is_none_or(|(l, _)| k < l) {
                found = Some((k, target));
            }
        }
    }
    found
}

/// The first fix to try for a hit at `addr..addr + len` in `sec`, from the
/// bytes it is made of: the hit's bytes overlap the relative displacement
/// of a call, jump or RIP-relative operand (or none). Padding by 16
/// changes byte 0 of every displacement out of the function; 272 changes
/// byte 1 too; a hit that only involves bytes 2 and 3, or no displacement
/// at all (an absolute address), needs the function moved far.
pub fn first_fix(image: &[u8], text: (u64, u64), sec: &Section, addr: u64, len: usize) -> Fix {
    match hit_field(image, text, sec, addr, len).map(|f| f.0) {
        Some(0) => Fix { pad: PADS[0], moved: false },
        Some(1) => Fix { pad: PADS[1], moved: false },
        _ => Fix { pad: 0, moved: true },
    }
}

/// What was decided for one function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fix {
    /// Bytes of padding before it.
    pub pad: u64,
    /// Placed in the overflow area instead of its window.
    pub moved: bool,
}

impl Fix {
    /// The next thing to try when the function still holds a hit.
    fn next(self) -> Option<Fix> {
        match PADS.iter().position(|&p| p == self.pad) {
            None if self.pad == 0 => Some(Fix { pad: PADS[0], ..self }),
            Some(i) if i + 1 < PADS.len() => Some(Fix { pad: PADS[i + 1], ..self }),
            _ if !self.moved => Some(Fix { pad: 0, moved: true }),
            _ => None,
        }
    }
}

/// The decisions for one image, in the order they were made (moves are
/// placed in that order, so a new one never shifts an earlier one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fixes(pub Vec<(String, Fix)>);

impl Fixes {
    pub fn parse(text: &str) -> Result<Fixes> {
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(what), Some(pad), Some(name)) = (words.next(), words.next(), words.next()) else {
                return Err(format!("layout line {}: expected `pad|move BYTES SECTION`", n + 1).into());
            };
            let pad = pad.parse().map_err(|_| format!("layout line {}: bad byte count {pad}", n + 1))?;
            let moved = match what {
                "pad" => false,
                "move" => true,
                _ => return Err(format!("layout line {}: {what} is neither pad nor move", n + 1).into()),
            };
            out.push((name.to_string(), Fix { pad, moved }));
        }
        Ok(Fixes(out))
    }

    pub fn render(&self) -> String {
        let mut s = String::from(
            "# Outer-kernel code layout (xtask/src/layout.rs, docs/scanner.md): functions\n\
             # padded in their window or moved to the overflow area so that the image\n\
             # scan is clean. Written by `cargo xtask build`; commit it when it changes.\n",
        );
        for (name, fix) in &self.0 {
            let _ = writeln!(s, "{} {} {name}", if fix.moved { "move" } else { "pad" }, fix.pad);
        }
        s
    }

    fn get(&self, name: &str) -> Fix {
        self.0.iter().find(|(n, _)| n == name).map(|(_, f)| *f).unwrap_or_default()
    }

    fn set(&mut self, name: &str, fix: Fix) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            // A function moved now goes after every earlier move.
            Some(slot) if slot.1.moved == fix.moved => slot.1 = fix,
            Some(_) => {
                self.0.retain(|(n, _)| n != name);
                self.0.push((name.to_string(), fix));
            }
            None => self.0.push((name.to_string(), fix)),
        }
    }
}

/// One function as the fragment places it: sizes summed over every input
/// section of that name.
#[derive(Debug, Clone)]
struct Item {
    name: String,
    size: u64,
    align: u64,
}

fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a.max(1)) * a.max(1)
}

/// Outer functions in natural link order, one item per section name.
fn items(natural: &[Section]) -> Vec<Item> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut out: Vec<Item> = Vec::new();
    for s in natural {
        match index.get(s.name.as_str()) {
            Some(&i) => {
                let it = &mut out[i];
                it.size = align_up(it.size, s.align) + s.size;
                it.align = it.align.max(s.align);
            }
            None => {
                index.insert(&s.name, out.len());
                out.push(Item { name: s.name.clone(), size: s.size, align: s.align });
            }
        }
    }
    out
}

/// The fragment for `fixes` over the natural order, or the name of a
/// function whose pad does not fit its window (the caller moves it).
pub fn fragment(natural: &[Section], fixes: &Fixes) -> std::result::Result<String, String> {
    let items = items(natural);
    let max_align = items.iter().map(|i| i.align).max().unwrap_or(16).max(64);
    // Windows from the unpadded sizes alone, so no fix moves a window.
    let mut windows: Vec<(u64, Vec<&Item>)> = Vec::new();
    let mut content = 0;
    for it in &items {
        let at = align_up(content, it.align);
        if windows.is_empty() || (at + it.size > WINDOW && content > 0) {
            windows.push((0, Vec::new()));
            content = 0;
        }
        content = align_up(content, it.align) + it.size;
        let w = windows.last_mut().unwrap();
        w.0 = content;
        w.1.push(it);
    }
    let mut s = String::from("/* Generated by cargo xtask (xtask/src/layout.rs); do not edit. */\n");
    let _ = writeln!(s, "__outer_layout_start = .;");
    let mut base = 0u64;
    let mut total = 0u64;
    for (content, members) in &windows {
        let stride = align_up(content + SLACK, max_align);
        let _ = writeln!(s, ". = __outer_layout_start + {base:#x};");
        let mut off = 0;
        for it in members {
            let fix = fixes.get(&it.name);
            if fix.moved {
                continue;
            }
            if fix.pad > 0 {
                let _ = writeln!(s, ". = . + {:#x};", fix.pad);
            }
            off = align_up(off + fix.pad, it.align) + it.size;
            if off > stride {
                return Err(it.name.clone());
            }
            let _ = writeln!(s, "*(\"{}\")", it.name);
        }
        base += stride;
        total += it_size_sum(members);
    }
    // The overflow area: a fixed size, so that moving a function there
    // changes neither the end of text nor anything after it.
    let overflow = align_up((total / 32).max(8192), 4096);
    let _ = writeln!(s, ". = __outer_layout_start + {base:#x};");
    let mut used = 0;
    for (name, fix) in fixes.0.iter().filter(|(_, f)| f.moved) {
        let Some(it) = items.iter().find(|i| &i.name == name) else { continue };
        if fix.pad > 0 {
            let _ = writeln!(s, ". = . + {:#x};", fix.pad);
        }
        used = align_up(used + fix.pad, it.align) + it.size;
        if used > overflow {
            return Err(format!("the overflow area ({overflow:#x} bytes) is full"));
        }
        let _ = writeln!(s, "*(\"{name}\")");
    }
    let _ = writeln!(s, ". = __outer_layout_start + {:#x};", base + overflow);
    Ok(s)
}

fn it_size_sum(members: &[&Item]) -> u64 {
    members.iter().map(|i| i.size).sum()
}

/// What a converged link did.
#[derive(Debug)]
pub struct Converged {
    /// Rounds of fixes after the first link with the given decisions (0:
    /// the decisions were clean as they were).
    pub retries: usize,
    pub links: usize,
    pub hits_fixed: usize,
    /// Outer hits of the first link.
    pub first_hits: usize,
    pub seconds: f64,
}

/// Links `out` from `capture` with `fixes`, scans it, and while outer code
/// holds a protected instruction, fixes every hit's function and relinks.
/// `fixes` holds the decisions on return.
pub fn converge(
    capture: &Capture,
    work: &Path,
    out: &Path,
    fixes: &mut Fixes,
    extra: &[PathBuf],
    script: Option<&Path>,
    flags: &[String],
) -> Result<Converged> {
    let start = Instant::now();
    let lld = crate::link::real_lld()?;
    std::fs::create_dir_all(work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let natural_dir = work.join("natural");
    let layout_dir = work.join("layout");
    for d in [&natural_dir, &layout_dir] {
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    // The natural order: the link with no placement at all.
    std::fs::write(natural_dir.join(FRAGMENT), "/* natural order */\n").map_err(|e| e.to_string())?;
    let map_path = work.join("kernel.map");
    capture.link(&lld, &natural_dir, out, &map_path, extra, script, flags)?;
    let nk_end = symbol(out, "__nk_text_end")?;
    let natural = parse_map(&read(&map_path)?, nk_end);
    let mut links = 1;
    let mut retries = 0;
    let mut hits_fixed = 0;
    let mut first_hits = None;
    let trace = std::env::var_os("XTASK_LAYOUT_TRACE").is_some();
    // Enough for every hit to walk its whole escalation several times over.
    let limit = 64;
    loop {
        let text = loop {
            match fragment(&natural, fixes) {
                Ok(text) => break text,
                Err(name) if name.starts_with("the overflow") => return Err(name.into()),
                // A pad that does not fit its window: move the function.
                Err(name) => fixes.set(&name, Fix { pad: 0, moved: true }),
            }
        };
        std::fs::write(layout_dir.join(FRAGMENT), text).map_err(|e| e.to_string())?;
        let t = Instant::now();
        capture.link(&lld, &layout_dir, out, &map_path, extra, script, flags)?;
        links += 1;
        let linked = t.elapsed().as_secs_f64();
        let report = scan::scan_file(out)?;
        if trace {
            eprintln!(
                "layout: link {links}: {linked:.2} s to link, {:.2} s to scan, {} hit(s)",
                t.elapsed().as_secs_f64() - linked,
                report.outer_hits().count()
            );
            for h in report.outer_hits() {
                eprintln!("layout:   hit at {:#x}: {:02x?}", h.addr, h.bytes);
            }
        }
        let hits: Vec<u64> = report.outer_hits().map(|h| h.addr).collect();
        let first_hits = *first_hits.get_or_insert(hits.len());
        if hits.is_empty() {
            let seconds = start.elapsed().as_secs_f64();
            return Ok(Converged { retries, links, hits_fixed, first_hits, seconds });
        }
        if retries == limit {
            eprint!("{}", report.render());
            return Err(format!("layout: still {} hit(s) after {limit} relinks", hits.len()).into());
        }
        let placed = parse_map(&read(&map_path)?, nk_end);
        let image = std::fs::read(out).map_err(|e| format!("cannot read {}: {e}", out.display()))?;
        let text = text_section(&image)?;
        let mut touched: BTreeMap<String, Fix> = BTreeMap::new();
        for addr in hits {
            let Some(sec) = section_at(&placed, addr) else {
                eprint!("{}", report.render());
                return Err(format!("layout: hit at {addr:#x} lies in no outer function").into());
            };
            if touched.contains_key(&sec.name) {
                continue;
            }
            let current = fixes.get(&sec.name);
            let len = report.hits.iter().find(|h| h.addr == addr).map_or(1, |h| h.bytes.len());
            let suggested = (current == Fix::default()).then(|| first_fix(&image, text, sec, addr, len));
            let next = suggested.or_else(|| current.next());
            // A function too large to move (a pad only shifts which of its
            // many calls to one target lands on the bad displacement) is
            // left where it is, and the function its hit points at is
            // fixed instead.
            if next.is_none_or(|n| n.moved) && sec.size > WINDOW {
                let target = hit_field(&image, text, sec, addr, len)
                    .and_then(|(_, t)| section_at(&placed, t).filter(|c| t < c.addr + c.size && c.name != sec.name));
                if let Some((callee, n)) = target.and_then(|c| fixes.get(&c.name).next().map(|n| (c, n))) {
                    touched.entry(callee.name.clone()).or_insert(n);
                    continue;
                }
            }
            let Some(next) = next else {
                eprint!("{}", report.render());
                return Err(format!(
                    "layout: {} holds a protected instruction at {addr:#x} wherever it goes: the code itself \
                     encodes it (docs/scanner.md, *Accidental encodings*)",
                    sec.name
                )
                .into());
            };
            touched.insert(sec.name.clone(), next);
        }
        for (name, fix) in touched {
            if trace {
                let size = placed.iter().find(|s| s.name == name).map_or(0, |s| s.size);
                eprintln!("layout: {name} ({size} bytes): {fix:?}");
            }
            fixes.set(&name, fix);
            hits_fixed += 1;
        }
        retries += 1;
    }
}

/// `.text`'s (address, file offset).
fn text_section(image: &[u8]) -> Result<(u64, u64)> {
    let elf = goblin::elf::Elf::parse(image).map_err(|e| format!("not an ELF file: {e}"))?;
    elf.section_headers
        .iter()
        .find(|sh| elf.shdr_strtab.get_at(sh.sh_name) == Some(".text"))
        .map(|sh| (sh.sh_addr, sh.sh_offset))
        .ok_or_else(|| "the image has no .text".into())
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()).into())
}

fn symbol(elf_path: &Path, name: &str) -> Result<u64> {
    let data = std::fs::read(elf_path).map_err(|e| format!("cannot read {}: {e}", elf_path.display()))?;
    let elf = goblin::elf::Elf::parse(&data).map_err(|e| format!("not an ELF file: {e}"))?;
    elf.syms
        .iter()
        .find(|s| elf.strtab.get_at(s.st_name) == Some(name))
        .map(|s| s.st_value)
        .ok_or_else(|| format!("{} has no symbol {name}", elf_path.display()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = "\
             VMA              LMA     Size Align Out     In      Symbol
ffffffff80101000         101000     2000  4096 .text
ffffffff80101000         101000      100    16         /t/libnk-1.rlib(nk-1.nk.a-cgu.0.rcgu.o):(.text.nk_a)
ffffffff80101000         101000        0     1                 nk_a
ffffffff80103000         103000        0     1         __nk_text_end = .
ffffffff80103000         103000       40    16         /t/kernel-1.kernel.b-cgu.0.rcgu.o:(.text.kmain)
ffffffff80103000         103000       40     1                 kmain
ffffffff80103040         103040       20    16         /t/kernel-1.kernel.b-cgu.0.rcgu.o:(.text)
ffffffff80104000         104000     1000  4096 .rodata
ffffffff80104000         104000       10    16         /t/kernel-1.o:(.rodata.x)
";

    #[test]
    fn the_map_gives_outer_sections_in_order() {
        let s = parse_map(MAP, 0xffffffff80103000);
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].name.as_str(), s[0].addr, s[0].size, s[0].align),
            (".text.kmain", 0xffffffff80103000, 0x40, 16)
        );
        assert_eq!(s[1].name, ".text");
        assert_eq!(section_at(&s, 0xffffffff8010303f).unwrap().name, ".text.kmain");
        assert_eq!(section_at(&s, 0xffffffff80103070).unwrap().name, ".text");
    }

    #[test]
    fn a_hit_in_a_call_names_its_byte_and_its_target() {
        // nop; call rel32 0x00060f53 (its bytes 1 and 2 are clts, 0f 06);
        // mov eax, 0x060f (the same bytes in an immediate, no target).
        let mut image = vec![0x90, 0xe8, 0x53, 0x0f, 0x06, 0x00, 0xb8, 0x0f, 0x06, 0x00, 0x00];
        image.resize(64, 0xcc);
        let sec = Section { name: ".text.f".into(), addr: 0x1000, size: 0x20, align: 16 };
        let text = (0x1000, 0);
        assert_eq!(hit_field(&image, text, &sec, 0x1003, 2), Some((1, 0x1006 + 0x60f53)));
        assert_eq!(first_fix(&image, text, &sec, 0x1003, 2), Fix { pad: 272, moved: false });
        assert_eq!(hit_field(&image, text, &sec, 0x1007, 2), None);
        assert_eq!(first_fix(&image, text, &sec, 0x1007, 2), Fix { pad: 0, moved: true });
    }

    #[test]
    fn fixes_escalate_then_give_up() {
        let mut f = Fix::default();
        let mut seen = Vec::new();
        while let Some(n) = f.next() {
            seen.push(n);
            f = n;
        }
        let pads: Vec<(u64, bool)> = seen.iter().map(|f| (f.pad, f.moved)).collect();
        assert_eq!(pads, [(16, false), (272, false), (0, true), (16, true), (272, true)]);
    }

    #[test]
    fn fixes_round_trip() {
        let f = Fixes(vec![
            (".text.a".into(), Fix { pad: 16, moved: false }),
            (".text.b".into(), Fix { pad: 0, moved: true }),
        ]);
        assert_eq!(Fixes::parse(&f.render()).unwrap(), f);
        assert!(Fixes::parse("shove 1 x").is_err());
    }

    fn sec(name: &str, size: u64) -> Section {
        Section { name: name.into(), addr: 0, size, align: 16 }
    }

    #[test]
    fn a_pad_moves_nothing_outside_its_window() {
        let natural: Vec<Section> = (0..40).map(|i| sec(&format!(".text.f{i}"), 1000)).collect();
        let plain = fragment(&natural, &Fixes::default()).unwrap();
        let padded = fragment(&natural, &Fixes(vec![(".text.f3".into(), Fix { pad: 272, moved: false })])).unwrap();
        // Same window anchors, one pad line more.
        let anchors =
            |s: &str| s.lines().filter(|l| l.starts_with(". = __outer")).map(String::from).collect::<Vec<_>>();
        assert_eq!(anchors(&plain), anchors(&padded));
        assert_eq!(padded.lines().count(), plain.lines().count() + 1);
        let moved = fragment(&natural, &Fixes(vec![(".text.f3".into(), Fix { pad: 0, moved: true })])).unwrap();
        assert_eq!(anchors(&plain), anchors(&moved));
        // A pad larger than the slack does not fit.
        let big = Fixes(vec![(".text.f3".into(), Fix { pad: 4096, moved: false })]);
        assert!(fragment(&natural, &big).is_err());
    }
}
