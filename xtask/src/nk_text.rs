//! The scan of NK text: the nested kernel's own code holds protected
//! instructions only at its named sites, each followed by its check, and
//! nothing that runs with protection lifted reaches code outside NK text.
//!
//! The outer kernel may jump to any byte of NK text, so the scan that holds
//! outer code to zero protected instructions (I7) holds NK code to this:
//!
//! - every protected encoding at any byte offset of NK text is one of the
//!   sites in [`SITES`], found by its symbol (an accidental encoding, inside
//!   a displacement or an immediate, fails the build as it does in outer
//!   text);
//! - the lift (`nk_gate_lift`) is the only CR0 write whose value had WP
//!   cleared; from it, every path reaches the re-arm or the fail-stop
//!   without a return, an indirect branch, or a branch out of NK text;
//! - every other CR0 write sets WP just before it and reads CR0 back after
//!   it, looping to the set until WP holds;
//! - every CR4, WRMSR, LGDT, LIDT and LTR is followed, before any return, by
//!   the read-back of the same state and a branch to `nk_fail_stop`;
//! - the CR3 write is alone on its page (the NK maps that page
//!   non-executable outside the gate; a kernel test checks the mapping);
//! - from the gate's body, every direct call and jump, every call through
//!   the GOT (directly, or through a register the function loaded from the
//!   GOT) and every jump table stays inside NK text, and there is no other
//!   indirect call or jump.
//!
//! The `native` build (no protection) assembles its sites without checks;
//! its sites are listed, not held to these rules.

use crate::scan::Report;
use goblin::elf::Elf;
use iced_x86::{
    Code, Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, Mnemonic, OpAccess, OpKind,
    Register,
};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;

/// What a site is, and so which check must follow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// The gate's lift: the one WP-clearing CR0 write.
    Lift,
    /// A CR0 write that sets WP and loops until it reads back set.
    Cr0Arm,
    Cr4,
    Msr,
    Gdt,
    Idt,
    Tr,
    /// The CR3 write: unreachable from outer code (its page is NX).
    Cr3,
    /// `native` only: an unchecked CR0 write, the unprotected baseline.
    NativeCr0,
}

impl Class {
    fn mnemonic_ok(self, insn: &Instruction) -> bool {
        let dst = || insn.op0_register();
        match self {
            Class::Lift | Class::Cr0Arm | Class::NativeCr0 => {
                insn.mnemonic() == Mnemonic::Mov && dst() == Register::CR0
            }
            Class::Cr4 => insn.mnemonic() == Mnemonic::Mov && dst() == Register::CR4,
            Class::Cr3 => insn.mnemonic() == Mnemonic::Mov && dst() == Register::CR3,
            Class::Msr => insn.mnemonic() == Mnemonic::Wrmsr,
            Class::Gdt => insn.mnemonic() == Mnemonic::Lgdt,
            Class::Idt => insn.mnemonic() == Mnemonic::Lidt,
            Class::Tr => insn.mnemonic() == Mnemonic::Ltr,
        }
    }

    /// The check, as docs/scanner.md states it.
    pub fn check(self) -> &'static str {
        match self {
            Class::Lift => {
                "fixed path to the re-arm: known RFLAGS set before; after it, WP re-checked, CPU from TR, NK stack, no return, no indirect branch"
            }
            Class::Cr0Arm => "`or r, WP` before; `mov r, cr0; test r, WP; jz` back to the `or` after",
            Class::Cr4 => {
                "`mov r, cr4`, pinned bits (PAE, SMEP, SMAP) and forbidden bits (VMXE, SMXE) compared, else `nk_fail_stop`"
            }
            Class::Msr => {
                "`rdmsr` of the MSR just written, its rule (allow-list, EFER pinned bits, STAR/SFMASK values, LSTAR in outer text), else `nk_fail_stop`"
            }
            Class::Gdt => "`sgdt`: base and limit of the NK's GDT, else `nk_fail_stop`",
            Class::Idt => "`sidt`: base and limit of the NK's IDT, else `nk_fail_stop`",
            Class::Tr => "`str`: a selector of one of the NK's TSSs, else `nk_fail_stop`",
            Class::Cr3 => {
                "none possible (the new root decides the next fetch): alone on a page mapped NX except inside the gate"
            }
            Class::NativeCr0 => "none (native build)",
        }
    }
}

/// The NK's intended privileged-instruction sites, by symbol, with the
/// attacks of the catalog that jump to each (`kernel/src/attack/`).
pub const SITES: &[(&str, Class, &str)] = &[
    (
        "nk_gate_lift",
        Class::Lift,
        "`site-cr0`, `gate-rsp-ptp`, `gate-rsp-nk`, `gate-interrupt-window`, `gate-rsp-ptp-trap`",
    ),
    ("nk_gate_rearm", Class::Cr0Arm, "`gate-jump-to-rearm`"),
    ("nk_site_measure_rearm", Class::Cr0Arm, "`site-cr0-rearms`"),
    ("nk_site_arm_cr0", Class::Cr0Arm, "`site-cr0-rearms`"),
    ("nk_site_cr4_write", Class::Cr4, "`site-cr4`"),
    ("nk_site_cr4_flush_off", Class::Cr4, "`site-cr4-flush`"),
    ("nk_site_cr4_flush_on", Class::Cr4, "`site-cr4-flush`"),
    ("nk_site_wrmsr", Class::Msr, "`site-wrmsr-lstar`, `site-wrmsr-efer`"),
    ("nk_site_lgdt", Class::Gdt, "`site-lgdt`"),
    ("nk_site_lidt", Class::Idt, "`site-lidt`"),
    ("nk_site_ltr", Class::Tr, "`site-ltr`"),
    ("nk_cr3_load", Class::Cr3, "`site-cr3`"),
    ("nk_native_write_cr0", Class::NativeCr0, "(native only)"),
];

/// The code that runs with protection lifted starts here (the lift's fixed
/// path calls it), and everything it reaches must be NK text.
const LIFTED_ENTRIES: &[&str] = &["nk_gate_lift"];

/// Calls out of NK text that the scan accepts, each with why.
const ALLOWED_EXITS: &[(&str, &str, &str)] = &[(
    "rust_begin_unwind",
    "nk_outer_panic",
    "the panic handler calls the outer kernel's panic only after reading CR0.WP set (nk/src/panic.rs)",
)];

/// One site as found in the image.
#[derive(Debug, Clone)]
pub struct Site {
    pub symbol: &'static str,
    pub class: Class,
    pub attacks: &'static str,
    pub addr: u64,
    pub text: String,
}

#[derive(Debug, Default)]
pub struct NkTextReport {
    /// False for the `native` build (no checks to hold it to).
    pub protected: bool,
    pub sites: Vec<Site>,
    /// Functions reached from the lift's fixed path.
    pub lifted_functions: usize,
    /// Protected encodings in NK text that are no site: a relink may move
    /// them away, as for outer code.
    pub accidental: Vec<String>,
    /// Broken rules no link order fixes: a missing site or check, a branch
    /// out of NK text.
    pub problems: Vec<String>,
}

impl NkTextReport {
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "nk text: {} site(s){}; {} function(s) run with protection lifted",
            self.sites.len(),
            if self.protected { ", each with its check" } else { " (native build: listed, no checks)" },
            self.lifted_functions
        );
        for site in &self.sites {
            let _ = writeln!(s, "  site {:#x} {:<24} {:<20} {}", site.addr, site.symbol, site.text, site.class.check());
        }
        for p in self.accidental.iter().chain(&self.problems) {
            let _ = writeln!(s, "  NK TEXT: {p}");
        }
        s
    }

    /// The site table for docs/scanner.md (no addresses: they move).
    pub fn markdown(&self) -> String {
        let mut s = String::from("| site | instruction | check after it | attacks |\n| --- | --- | --- | --- |\n");
        for site in &self.sites {
            let _ = writeln!(s, "| `{}` | `{}` | {} | {} |", site.symbol, site.text, site.class.check(), site.attacks);
        }
        s
    }
}

struct Image<'a> {
    data: &'a [u8],
    elf: Elf<'a>,
    nk: (u64, u64),
    /// Function-like symbols, sorted: (address, size, name).
    funcs: Vec<(u64, u64, String)>,
}

impl Image<'_> {
    fn symbol(&self, name: &str) -> Option<u64> {
        self.elf.syms.iter().find(|s| self.elf.strtab.get_at(s.st_name) == Some(name)).map(|s| s.st_value)
    }

    /// The file bytes from `addr` to the end of its section.
    fn bytes_at(&self, addr: u64) -> Option<&[u8]> {
        let sh = self.elf.section_headers.iter().find(|sh| {
            sh.sh_type != goblin::elf::section_header::SHT_NOBITS
                && addr >= sh.sh_addr
                && addr < sh.sh_addr + sh.sh_size
        })?;
        let off = (sh.sh_offset + addr - sh.sh_addr) as usize;
        self.data.get(off..(sh.sh_offset + sh.sh_size) as usize)
    }

    fn read_u64(&self, addr: u64) -> Option<u64> {
        let b = self.bytes_at(addr)?;
        Some(u64::from_le_bytes(b.get(..8)?.try_into().ok()?))
    }

    fn decode(&self, addr: u64) -> Option<Instruction> {
        let b = self.bytes_at(addr)?;
        let insn = Decoder::with_ip(64, b, addr, DecoderOptions::NONE).decode();
        (insn.code() != Code::INVALID).then_some(insn)
    }

    fn in_nk(&self, addr: u64) -> bool {
        addr >= self.nk.0 && addr < self.nk.1
    }

    /// The function containing `addr`: its start and end (a size-0 label
    /// runs to the next symbol).
    fn function(&self, addr: u64) -> Option<(u64, u64, &str)> {
        let i = self.funcs.partition_point(|f| f.0 <= addr).checked_sub(1)?;
        let (start, size, name) = &self.funcs[i];
        let end = if *size > 0 {
            start + size
        } else {
            self.funcs[i + 1..].iter().map(|f| f.0).find(|&a| a > *start).unwrap_or(self.nk.1)
        };
        (addr < end).then_some((*start, end, name.as_str()))
    }

    fn name(&self, addr: u64) -> String {
        match self.function(addr) {
            Some((start, _, name)) if start == addr => name.to_string(),
            Some((start, _, name)) => format!("{name}+{:#x}", addr - start),
            None => format!("{addr:#x}"),
        }
    }
}

/// Checks NK text of the image whose outer/NK hits `report` already holds.
pub fn check(data: &[u8], report: &Report) -> crate::Result<NkTextReport> {
    let elf = Elf::parse(data).map_err(|e| format!("not an ELF file: {e}"))?;
    let funcs = crate::scan::function_symbols(&elf);
    let image = Image { data, elf, nk: report.nk_range, funcs };
    let mut out = NkTextReport { protected: image.symbol("nk_native_write_cr0").is_none(), ..Default::default() };
    if image.nk == (0, 0) {
        return Ok(out);
    }

    // Every site by its symbol.
    for &(symbol, class, attacks) in SITES {
        let Some(addr) = image.symbol(symbol) else {
            if (class == Class::NativeCr0) != out.protected {
                out.problems.push(format!("site {symbol} is missing"));
            }
            continue;
        };
        match image.decode(addr) {
            Some(insn) if class.mnemonic_ok(&insn) => {
                out.sites.push(Site { symbol, class, attacks, addr, text: insn.to_string() });
            }
            other => out.problems.push(format!(
                "site {symbol} at {addr:#x} holds {}, not its {class:?} instruction",
                other.map_or_else(|| "no instruction".to_string(), |i| i.to_string())
            )),
        }
    }

    // Every protected encoding in NK text (not the boot trampoline, which
    // is not mapped after boot) is a site.
    let boot_end = image
        .elf
        .section_headers
        .iter()
        .filter(|sh| image.elf.shdr_strtab.get_at(sh.sh_name).is_some_and(|n| n.starts_with(".boot")));
    let boot: Vec<(u64, u64)> = boot_end.map(|sh| (sh.sh_addr, sh.sh_addr + sh.sh_size)).collect();
    for hit in report.hits.iter().filter(|h| h.in_nk && !boot.iter().any(|b| h.addr >= b.0 && h.addr < b.1)) {
        if !out.sites.iter().any(|s| s.addr == hit.addr) {
            out.accidental.push(format!(
                "protected instruction at {:#x} <{}> is no named NK site: {} ({})",
                hit.addr, hit.symbol, hit.text, hit.class
            ));
        }
    }

    if out.protected {
        for site in out.sites.clone() {
            if let Err(why) = check_site(&image, &site) {
                out.problems.push(format!("site {} at {:#x}: {why}", site.symbol, site.addr));
            }
        }
        let lifted = lifted_functions(&image, &mut out.problems);
        out.lifted_functions = lifted;
    }
    Ok(out)
}

/// Operand `n`'s value if it is an immediate.
fn imm(i: &Instruction, n: u32) -> Option<u64> {
    match i.op_kind(n) {
        OpKind::Immediate8
        | OpKind::Immediate16
        | OpKind::Immediate32
        | OpKind::Immediate64
        | OpKind::Immediate8to16
        | OpKind::Immediate8to32
        | OpKind::Immediate8to64
        | OpKind::Immediate32to64 => Some(i.immediate(n)),
        _ => None,
    }
}

/// The instruction after `insn`.
fn next(image: &Image, insn: &Instruction) -> Option<Instruction> {
    image.decode(insn.next_ip())
}

fn is_fail_stop(image: &Image, target: u64) -> bool {
    image.symbol("nk_fail_stop") == Some(target)
}

/// Does the code from `addr` reach `nk_fail_stop` within a few straight
/// instructions (the fail blocks load the reason and jump)?
fn fails_from(image: &Image, addr: u64) -> bool {
    let mut ip = addr;
    for _ in 0..8 {
        let Some(insn) = image.decode(ip) else { return false };
        if insn.flow_control() == FlowControl::UnconditionalBranch {
            return insn.op0_kind() == OpKind::NearBranch64 && is_fail_stop(image, insn.near_branch_target());
        }
        if insn.flow_control() != FlowControl::Next {
            return false;
        }
        ip = insn.next_ip();
    }
    false
}

fn check_site(image: &Image, site: &Site) -> Result<(), String> {
    let insn = image.decode(site.addr).ok_or("undecodable")?;
    match site.class {
        Class::Lift => check_lift(image, &insn),
        Class::Cr0Arm => check_arm(image, &insn),
        Class::Cr4 | Class::Msr | Class::Gdt | Class::Idt | Class::Tr => check_read_back(image, site.class, &insn),
        Class::Cr3 => check_cr3_page(image, site),
        Class::NativeCr0 => Err("an unchecked CR0 write in a protected build".into()),
    }
}

/// `or r, WP` just before, `mov r', cr0; test r', WP; je <the or>` after.
fn check_arm(image: &Image, insn: &Instruction) -> Result<(), String> {
    let src = insn.op1_register().full_register();
    // The instruction before: decode backwards over the few lengths an
    // `or r64, imm32` can have.
    let or = (4..=7u64)
        .filter_map(|len| image.decode(insn.ip() - len).filter(|i| i.next_ip() == insn.ip()))
        .find(|i| i.mnemonic() == Mnemonic::Or && i.op0_register().full_register() == src && imm(i, 1) == Some(1 << 16))
        .ok_or("no `or r, WP` right before it")?;
    let read = next(image, insn).ok_or("nothing after it")?;
    let test = next(image, &read).ok_or("no test")?;
    let jump = next(image, &test).ok_or("no jump")?;
    let reads_cr0 = read.mnemonic() == Mnemonic::Mov && read.op1_register() == Register::CR0;
    let r = read.op0_register().full_register();
    let tests_wp =
        test.mnemonic() == Mnemonic::Test && test.op0_register().full_register() == r && imm(&test, 1) == Some(1 << 16);
    let loops = jump.mnemonic() == Mnemonic::Je && jump.near_branch_target() <= or.ip();
    if reads_cr0 && tests_wp && loops {
        Ok(())
    } else {
        Err(format!("not followed by `mov r, cr0; test r, WP; jz` back to the set ({read}; {test}; {jump})"))
    }
}

/// Every path from after the write to a return reads the state back, and
/// some branch leads to the fail-stop.
fn check_read_back(image: &Image, class: Class, insn: &Instruction) -> Result<(), String> {
    let reads_back = |i: &Instruction| match class {
        Class::Cr4 => {
            i.mnemonic() == Mnemonic::Mov && i.op1_kind() == OpKind::Register && i.op1_register() == Register::CR4
        }
        Class::Msr => i.mnemonic() == Mnemonic::Rdmsr,
        Class::Gdt => i.mnemonic() == Mnemonic::Sgdt,
        Class::Idt => i.mnemonic() == Mnemonic::Sidt,
        Class::Tr => i.mnemonic() == Mnemonic::Str,
        _ => false,
    };
    // The read-back comes within the next few instructions, before any
    // branch: so no path skips it.
    let mut ip = insn.next_ip();
    let mut found = false;
    for _ in 0..4 {
        let i = image.decode(ip).ok_or("undecodable after the write")?;
        if reads_back(&i) {
            found = true;
            break;
        }
        if i.flow_control() != FlowControl::Next {
            break;
        }
        ip = i.next_ip();
    }
    if !found {
        return Err("no read-back of the state within the next instructions".into());
    }
    // Then, before the first return, a conditional branch to a fail block.
    let mut ip = insn.next_ip();
    for _ in 0..64 {
        let i = image.decode(ip).ok_or("undecodable in the check")?;
        match i.flow_control() {
            FlowControl::ConditionalBranch if fails_from(image, i.near_branch_target()) => return Ok(()),
            FlowControl::Return | FlowControl::IndirectBranch | FlowControl::IndirectCall => break,
            FlowControl::UnconditionalBranch if is_fail_stop(image, i.near_branch_target()) => return Ok(()),
            _ => {}
        }
        ip = i.next_ip();
    }
    Err("no branch to nk_fail_stop before the return".into())
}

/// Alone on its page, with nothing but `ret` and int3 padding after it.
fn check_cr3_page(image: &Image, site: &Site) -> Result<(), String> {
    let page = site.addr & !0xfff;
    if site.addr != page {
        return Err("not at the start of its page".into());
    }
    if let Some(other) = image.funcs.iter().find(|f| f.0 > page && f.0 < page + 0x1000 && f.2 != site.symbol) {
        return Err(format!("shares its page with {}", other.2));
    }
    let insn = image.decode(site.addr).ok_or("undecodable")?;
    let ret = next(image, &insn).ok_or("nothing after it")?;
    let bytes = image.bytes_at(ret.next_ip()).ok_or("page cut short")?;
    let rest = (page + 0x1000 - ret.next_ip()) as usize;
    if ret.mnemonic() != Mnemonic::Ret || bytes.len() < rest || bytes[..rest].iter().any(|&b| b != 0xcc) {
        return Err("the rest of its page is not `ret` and int3 padding".into());
    }
    Ok(())
}

/// From the lift, every path reaches the re-arm or the fail-stop with no
/// return, no indirect branch, and no branch out of NK text; calls on the
/// way (the body) must be NK functions.
fn check_lift(image: &Image, lift: &Instruction) -> Result<(), String> {
    fixed_path(image, lift).map(|_| ())
}

/// Walks the lift's fixed path; returns the functions it calls.
fn fixed_path(image: &Image, lift: &Instruction) -> Result<Vec<u64>, String> {
    let mut calls = Vec::new();
    // The re-arm sites end the window (each is held to its own check).
    let rearms: Vec<u64> = SITES.iter().filter(|s| s.1 == Class::Cr0Arm).filter_map(|s| image.symbol(s.0)).collect();
    let mut seen = BTreeSet::new();
    let mut work = vec![lift.next_ip()];
    while let Some(mut ip) = work.pop() {
        loop {
            if rearms.contains(&ip) || !seen.insert(ip) {
                break;
            }
            if !image.in_nk(ip) {
                return Err(format!("the fixed path leaves NK text at {}", image.name(ip)));
            }
            let i = image.decode(ip).ok_or("undecodable on the fixed path")?;
            match i.flow_control() {
                FlowControl::Next | FlowControl::Call => {
                    if i.flow_control() == FlowControl::Call {
                        let t = i.near_branch_target();
                        if i.op0_kind() != OpKind::NearBranch64 || !image.in_nk(t) {
                            return Err(format!("the fixed path calls outside NK text at {ip:#x}"));
                        }
                        calls.push(t);
                    }
                    ip = i.next_ip();
                }
                FlowControl::ConditionalBranch => {
                    work.push(i.near_branch_target());
                    ip = i.next_ip();
                }
                FlowControl::UnconditionalBranch => {
                    let t = i.near_branch_target();
                    if is_fail_stop(image, t) {
                        break;
                    }
                    ip = t;
                }
                _ => return Err(format!("{i} at {ip:#x} before the re-arm")),
            }
        }
    }
    Ok(calls)
}

/// Walks every function the lifted path can reach; returns how many.
fn lifted_functions(image: &Image, problems: &mut Vec<String>) -> usize {
    let mut queue: VecDeque<u64> = VecDeque::new();
    let mut done = BTreeSet::new();
    // The lift's fixed path calls the body: start from its call targets.
    for entry in LIFTED_ENTRIES {
        let Some(lift) = image.symbol(entry).and_then(|a| image.decode(a)) else { continue };
        queue.extend(fixed_path(image, &lift).unwrap_or_default());
    }
    while let Some(target) = queue.pop_front() {
        let Some((start, end, name)) = image.function(target) else {
            problems.push(format!("lifted code reaches {target:#x}, which is in no function"));
            continue;
        };
        if !done.insert(start) {
            continue;
        }
        let name = name.to_string();
        // Registers that hold a pointer loaded from the GOT (the compiler
        // hoists `mov r, [memcpy@GOT]` out of repeated calls), walking the
        // function in address order; any other write forgets the register.
        let mut loaded: HashMap<Register, u64> = HashMap::new();
        let mut info = InstructionInfoFactory::new();
        let mut ip = start;
        while ip < end {
            let Some(i) = image.decode(ip) else {
                ip += 1;
                continue;
            };
            ip = i.next_ip();
            let flow = i.flow_control();
            let got_load = (i.mnemonic() == Mnemonic::Mov
                && i.op0_kind() == OpKind::Register
                && i.op0_register().is_gpr64()
                && i.op1_kind() == OpKind::Memory
                && i.is_ip_rel_memory_operand())
            .then(|| image.read_u64(i.ip_rel_memory_address()))
            .flatten()
            .filter(|&t| image.function(t).is_some() || !image.in_nk(t));
            let indirect_through = (i.op0_kind() == OpKind::Register).then(|| loaded.get(&i.op0_register()).copied());
            for used in info.info(&i).used_registers() {
                if matches!(
                    used.access(),
                    OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
                ) {
                    loaded.remove(&used.register().full_register());
                }
            }
            if flow == FlowControl::Call || flow == FlowControl::IndirectCall {
                // The callee may clobber every caller-saved register.
                for r in [
                    Register::RAX,
                    Register::RCX,
                    Register::RDX,
                    Register::RSI,
                    Register::RDI,
                    Register::R8,
                    Register::R9,
                    Register::R10,
                    Register::R11,
                ] {
                    loaded.remove(&r);
                }
            }
            if let Some(t) = got_load {
                loaded.insert(i.op0_register(), t);
            }
            if !matches!(
                flow,
                FlowControl::Call
                    | FlowControl::UnconditionalBranch
                    | FlowControl::ConditionalBranch
                    | FlowControl::IndirectBranch
                    | FlowControl::IndirectCall
            ) {
                continue;
            }
            let targets: Vec<u64> = match i.op0_kind() {
                OpKind::NearBranch64 => vec![i.near_branch_target()],
                OpKind::Register if matches!(indirect_through, Some(Some(_))) => {
                    vec![indirect_through.flatten().unwrap_or_default()]
                }
                OpKind::Memory if i.is_ip_rel_memory_operand() => match image.read_u64(i.ip_rel_memory_address()) {
                    Some(t) => vec![t],
                    None => {
                        problems.push(format!("{name}: {i} reads its target from outside the file"));
                        continue;
                    }
                },
                OpKind::Memory if i.memory_base() == Register::None && i.memory_index_scale() == 8 => {
                    // A jump table: absolute entries in read-only data.
                    let table = i.memory_displacement64();
                    let entries: Vec<u64> = (0..1024)
                        .map_while(|k| image.read_u64(table + 8 * k))
                        .take_while(|&t| t >= start && t < end)
                        .collect();
                    if entries.is_empty() || flow != FlowControl::IndirectBranch {
                        problems.push(format!("{name}: indirect {i} through a table that leaves the function"));
                    }
                    continue;
                }
                _ => {
                    problems.push(format!("{name}: indirect {i} at {:#x} runs with protection lifted", i.ip()));
                    continue;
                }
            };
            for t in targets {
                if image.in_nk(t) {
                    if t < start || t >= end {
                        queue.push_back(t);
                    }
                    continue;
                }
                let callee = image.name(t);
                let allowed = ALLOWED_EXITS.iter().any(|(from, to, _)| name.ends_with(from) && callee.starts_with(to));
                if !allowed {
                    problems.push(format!("{name} branches out of NK text to {callee}"));
                }
            }
        }
    }
    done.len()
}

/// A copy of `elf_bytes` with `patch` written at `offset` bytes into the
/// symbol named exactly `symbol`, or else the first function whose name
/// contains it: the images the tests show the NK-text rules refuse.
pub fn patch(elf_bytes: &[u8], symbol: &str, offset: u64, patch: &[u8]) -> crate::Result<Vec<u8>> {
    let elf = Elf::parse(elf_bytes).map_err(|e| format!("not an ELF file: {e}"))?;
    let name = |s: &goblin::elf::Sym| elf.strtab.get_at(s.st_name).unwrap_or("");
    let sym = elf
        .syms
        .iter()
        .find(|s| name(s) == symbol)
        .or_else(|| elf.syms.iter().find(|s| s.is_function() && name(s).contains(symbol)))
        .ok_or_else(|| format!("no symbol {symbol}"))?;
    let addr = sym.st_value + offset;
    let sh = elf
        .section_headers
        .iter()
        .find(|sh| addr >= sh.sh_addr && addr + patch.len() as u64 <= sh.sh_addr + sh.sh_size)
        .ok_or("patch outside every section")?;
    let off = (sh.sh_offset + addr - sh.sh_addr) as usize;
    let mut out = elf_bytes.to_vec();
    out[off..off + patch.len()].copy_from_slice(patch);
    Ok(out)
}
