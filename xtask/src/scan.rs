//! `cargo xtask scan`: proves that no code outside the nested kernel holds a
//! protected instruction (invariant I7), at any byte offset, because a jump
//! into the middle of an instruction executes whatever the bytes there
//! decode to. The NK's own code range is bounded by the linker symbols
//! `__text_start` and `__nk_text_end`, plus the low `.boot` trampoline.

use crate::Result;
use goblin::elf::{Elf, section_header::SHF_EXECINSTR};
use iced_x86::{Code, Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter, Mnemonic, OpKind, Register};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Why an instruction is protected: it changes state the NK must own.
pub fn protected_class(insn: &Instruction) -> Option<&'static str> {
    let writes_reg = |pred: fn(Register) -> bool| {
        insn.op_count() > 0 && insn.op0_kind() == OpKind::Register && pred(insn.op0_register())
    };
    Some(match insn.mnemonic() {
        Mnemonic::Mov if writes_reg(Register::is_cr) => match insn.op0_register() {
            Register::CR0 => "mov cr0 (write protection, paging)",
            Register::CR3 => "mov cr3 (address space)",
            Register::CR4 => "mov cr4 (SMEP, SMAP, PKS)",
            Register::CR8 => "mov cr8 (task priority)",
            _ => "mov crN",
        },
        Mnemonic::Mov if writes_reg(Register::is_dr) => "mov drN (debug registers)",
        Mnemonic::Wrmsr | Mnemonic::Wrmsrns | Mnemonic::Wrmsrlist => "wrmsr (model-specific registers, EFER, PKRS)",
        Mnemonic::Lgdt | Mnemonic::Lidt | Mnemonic::Ltr | Mnemonic::Lldt => "lgdt/lidt/ltr/lldt (descriptor tables)",
        Mnemonic::Lmsw => "lmsw (CR0 low bits)",
        Mnemonic::Clts => "clts (CR0.TS)",
        Mnemonic::Xsetbv => "xsetbv (XCR0)",
        Mnemonic::Xrstors => "xrstors (supervisor state components)",
        Mnemonic::Vmxon
        | Mnemonic::Vmxoff
        | Mnemonic::Vmlaunch
        | Mnemonic::Vmresume
        | Mnemonic::Vmwrite
        | Mnemonic::Vmread
        | Mnemonic::Vmptrld
        | Mnemonic::Vmclear
        | Mnemonic::Vmcall
        | Mnemonic::Invept
        | Mnemonic::Invvpid
        | Mnemonic::Vmfunc => "VMX instruction",
        Mnemonic::Vmrun
        | Mnemonic::Vmload
        | Mnemonic::Vmsave
        | Mnemonic::Vmmcall
        | Mnemonic::Stgi
        | Mnemonic::Clgi
        | Mnemonic::Skinit
        | Mnemonic::Invlpga => "SVM instruction",
        _ => return None,
    })
}

/// One protected instruction found in the image.
#[derive(Debug, Clone)]
pub struct Hit {
    pub addr: u64,
    pub bytes: Vec<u8>,
    pub text: String,
    pub class: &'static str,
    pub symbol: String,
    pub in_nk: bool,
}

#[derive(Debug, Default)]
pub struct Report {
    pub hits: Vec<Hit>,
    pub offsets_scanned: u64,
    pub nk_range: (u64, u64),
}

impl Report {
    pub fn outer_hits(&self) -> impl Iterator<Item = &Hit> {
        self.hits.iter().filter(|h| !h.in_nk)
    }

    fn counts(&self, in_nk: bool) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for h in self.hits.iter().filter(|h| h.in_nk == in_nk) {
            *m.entry(h.class).or_default() += 1;
        }
        m
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "scan: {} byte offsets decoded; NK code {:#x}..{:#x} plus .boot",
            self.offsets_scanned, self.nk_range.0, self.nk_range.1
        );
        for (who, in_nk) in [("NK code", true), ("outer code", false)] {
            let counts = self.counts(in_nk);
            let total: usize = counts.values().sum();
            let _ = writeln!(s, "  {who}: {total} protected instruction(s)");
            for (class, n) in counts {
                let _ = writeln!(s, "    {n:>5}  {class}");
            }
        }
        for h in self.outer_hits() {
            let bytes: Vec<String> = h.bytes.iter().map(|b| format!("{b:02x}")).collect();
            let _ =
                writeln!(s, "  OUTER {:#x} <{}>: {:<24} {}  [{}]", h.addr, h.symbol, bytes.join(" "), h.text, h.class);
        }
        s
    }
}

fn symbol_value(elf: &Elf, name: &str) -> Option<u64> {
    elf.syms.iter().find(|s| elf.strtab.get_at(s.st_name) == Some(name)).map(|s| s.st_value)
}

/// Function-like symbols (functions and asm labels), sorted:
/// (address, size, name).
pub fn function_symbols(elf: &Elf) -> Vec<(u64, u64, String)> {
    let mut funcs: Vec<(u64, u64, String)> = elf
        .syms
        .iter()
        .filter(|s| s.is_function() || s.st_type() == goblin::elf::sym::STT_NOTYPE)
        .filter_map(|s| {
            elf.strtab.get_at(s.st_name).filter(|n| !n.is_empty()).map(|n| (s.st_value, s.st_size, n.to_string()))
        })
        .collect();
    funcs.sort();
    funcs
}

/// The function symbol containing `addr`, as `name+0xoff`.
fn symbolize(funcs: &[(u64, u64, String)], addr: u64) -> String {
    let i = funcs.partition_point(|f| f.0 <= addr);
    match i.checked_sub(1).map(|i| &funcs[i]) {
        Some((start, size, name)) if addr < start + size.max(&1) || *size == 0 => format!("{name}+{:#x}", addr - start),
        _ => String::from("?"),
    }
}

/// Decodes every byte offset of every executable section of `path`.
pub fn scan_file(path: &Path) -> Result<Report> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    scan_bytes(&data)
}

pub fn scan_bytes(data: &[u8]) -> Result<Report> {
    let elf = Elf::parse(data).map_err(|e| format!("not an ELF file: {e}"))?;
    let nk_range = match (symbol_value(&elf, "__text_start"), symbol_value(&elf, "__nk_text_end")) {
        (Some(a), Some(b)) => (a, b),
        // Any other ELF: everything is outer code.
        _ => (0, 0),
    };
    let funcs = function_symbols(&elf);
    let bitness = if elf.is_64 { 64 } else { 32 };
    let mut report = Report { nk_range, ..Default::default() };
    let mut formatter = IntelFormatter::new();
    for sh in elf.section_headers.iter().filter(|sh| sh.sh_flags & u64::from(SHF_EXECINSTR) != 0) {
        let name = elf.shdr_strtab.get_at(sh.sh_name).unwrap_or("");
        let Some(range) = sh.file_range() else { continue };
        let bytes = data.get(range).ok_or("section outside the file")?;
        // The PVH trampoline starts in 32-bit mode; it is NK code either way.
        let boot = name.starts_with(".boot");
        for off in 0..bytes.len() {
            let ip = sh.sh_addr + off as u64;
            let mut decoder = Decoder::with_ip(bitness, &bytes[off..], ip, DecoderOptions::NONE);
            let insn = decoder.decode();
            report.offsets_scanned += 1;
            if insn.code() == Code::INVALID {
                continue;
            }
            let Some(class) = protected_class(&insn) else { continue };
            let mut text = String::new();
            formatter.format(&insn, &mut text);
            report.hits.push(Hit {
                addr: ip,
                bytes: bytes[off..off + insn.len()].to_vec(),
                text,
                class,
                symbol: symbolize(&funcs, ip),
                in_nk: boot || (ip >= nk_range.0 && ip < nk_range.1),
            });
        }
    }
    Ok(report)
}

/// `cargo xtask scan [ELF]`: prints the report; fails on outer hits.
pub fn scan_command(path: &Path) -> Result<u8> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let report = scan_bytes(&data)?;
    print!("{}", report.render());
    let nk = crate::nk_text::check(&data, &report)?;
    print!("{}", nk.render());
    let outer = report.outer_hits().count();
    let nk_bad = nk.accidental.len() + nk.problems.len();
    if outer > 0 || nk_bad > 0 {
        println!(
            "scan: FAILED: {outer} protected instruction(s) outside the nested kernel, {nk_bad} NK-text problem(s) in {}",
            path.display()
        );
        Ok(1)
    } else {
        println!("scan: ok: 0 protected instructions outside the nested kernel; every NK site named and checked");
        Ok(0)
    }
}

/// `cargo xtask scan --sites`: the NK site table for docs/scanner.md.
pub fn sites_command(path: &Path) -> Result<u8> {
    let (_, nk) = scan_all(path)?;
    print!("{}", nk.markdown());
    Ok(0)
}

/// Scans an image file: the outer-code hits and the NK-text rules.
pub fn scan_all(path: &Path) -> Result<(Report, crate::nk_text::NkTextReport)> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let report = scan_bytes(&data)?;
    let nk = crate::nk_text::check(&data, &report)?;
    Ok((report, nk))
}

/// A copy of `elf` with `mov cr0, rax` written over the first bytes of the
/// outer-kernel function `victim`: the image the scan must reject.
pub fn plant(elf_bytes: &[u8], victim: &str) -> Result<Vec<u8>> {
    let elf = Elf::parse(elf_bytes).map_err(|e| format!("not an ELF file: {e}"))?;
    let sym = elf
        .syms
        .iter()
        .find(|s| s.is_function() && elf.strtab.get_at(s.st_name).is_some_and(|n| n.contains(victim)))
        .ok_or_else(|| format!("no function matching {victim}"))?;
    let sh = elf
        .section_headers
        .iter()
        .find(|sh| sym.st_value >= sh.sh_addr && sym.st_value < sh.sh_addr + sh.sh_size)
        .ok_or("victim outside every section")?;
    let off = (sh.sh_offset + sym.st_value - sh.sh_addr) as usize;
    let mut out = elf_bytes.to_vec();
    out[off..off + 3].copy_from_slice(&[0x0f, 0x22, 0xc0]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Instruction {
        Decoder::with_ip(64, bytes, 0, DecoderOptions::NONE).decode()
    }

    #[test]
    fn classifies_protected_instructions() {
        assert!(protected_class(&decode(&[0x0f, 0x22, 0xc0])).is_some()); // mov cr0, rax
        assert!(protected_class(&decode(&[0x0f, 0x22, 0xd8])).is_some()); // mov cr3, rax
        assert!(protected_class(&decode(&[0x0f, 0x30])).is_some()); // wrmsr
        assert!(protected_class(&decode(&[0x0f, 0x01, 0x18])).is_some()); // lidt [rax]
        assert!(protected_class(&decode(&[0x0f, 0x00, 0xd8])).is_some()); // ltr ax
        assert!(protected_class(&decode(&[0x0f, 0x01, 0xd1])).is_some()); // xsetbv
        assert!(protected_class(&decode(&[0x0f, 0x23, 0xf8])).is_some()); // mov dr7, rax
        assert!(protected_class(&decode(&[0x0f, 0x06])).is_some()); // clts
    }

    #[test]
    fn reads_and_ordinary_code_are_not_protected() {
        assert!(protected_class(&decode(&[0x0f, 0x20, 0xc0])).is_none()); // mov rax, cr0
        assert!(protected_class(&decode(&[0x0f, 0x32])).is_none()); // rdmsr
        assert!(protected_class(&decode(&[0x48, 0x89, 0xc3])).is_none()); // mov rbx, rax
        assert!(protected_class(&decode(&[0x0f, 0x01, 0xf8])).is_none()); // swapgs
    }
}

/// The NK's run-time vetting (`nk_model::code`, used by `map_code`) must
/// catch everything this scanner calls protected: it is a byte matcher, not
/// a decoder, so it is checked against the decoder here.
#[cfg(test)]
mod vetting_agrees {
    use super::protected_class;
    use iced_x86::{Code, Decoder, DecoderOptions};
    use nk_model::code::protected_at;
    use proptest::prelude::*;

    /// Every offset where iced decodes a protected instruction is flagged by
    /// the matcher somewhere inside that instruction (after its prefixes).
    fn check(bytes: &[u8]) -> Result<(), String> {
        for off in 0..bytes.len() {
            let insn = Decoder::with_ip(64, &bytes[off..], 0, DecoderOptions::NONE).decode();
            if insn.code() == Code::INVALID || protected_class(&insn).is_none() {
                continue;
            }
            if !(off..off + insn.len()).any(|i| protected_at(&bytes[i..]).is_some()) {
                return Err(format!("{:x?} at {off} ({:?}) is not caught", &bytes[off..off + insn.len()], insn.code()));
            }
        }
        Ok(())
    }

    /// Opcode bytes that lead to protected instructions, to plant among
    /// random bytes so the property sees many of them.
    const SEEDS: &[&[u8]] = &[
        &[0x0f, 0x22],
        &[0x0f, 0x23],
        &[0x0f, 0x30],
        &[0x0f, 0x01],
        &[0x0f, 0x00],
        &[0x0f, 0xc7],
        &[0x0f, 0x78],
        &[0x0f, 0x79],
        &[0x0f, 0x06],
        &[0x66, 0x0f, 0x38, 0x80],
        &[0xf3, 0x0f, 0x01],
        &[0xc4, 0xe2],
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn every_protected_instruction_iced_decodes_is_caught(
            chunks in prop::collection::vec(
                prop_oneof![
                    prop::collection::vec(any::<u8>(), 1..6),
                    prop::sample::select(SEEDS).prop_map(|s| s.to_vec()),
                ],
                1..12,
            )
        ) {
            let bytes: Vec<u8> = chunks.concat();
            prop_assert_eq!(check(&bytes), Ok(()));
        }
    }

    #[test]
    fn every_modrm_after_each_system_opcode() {
        for prefix in [&[][..], &[0x66], &[0xf3], &[0xf2], &[0x48], &[0x41]] {
            for op in [0x00u8, 0x01, 0x06, 0x20, 0x21, 0x22, 0x23, 0x30, 0x32, 0x78, 0x79, 0xc7] {
                for modrm in 0..=255u8 {
                    let mut bytes = prefix.to_vec();
                    bytes.extend([0x0f, op, modrm, 0, 0, 0, 0, 0, 0, 0]);
                    assert_eq!(check(&bytes), Ok(()));
                }
            }
            for b3 in 0..=255u8 {
                let mut bytes = prefix.to_vec();
                bytes.extend([0x0f, 0x38, b3, 0, 0, 0, 0, 0]);
                assert_eq!(check(&bytes), Ok(()));
            }
        }
    }
}
