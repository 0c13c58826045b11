//! Loadable kernel modules, the pure part: checks a relocatable ELF
//! (`NAME.ko`), lays its sections out in pages by kind, resolves its
//! symbols against the kernel's exports and applies its relocations. The
//! result is the image the kernel's loader copies into frames, with the
//! kind of each page; the loader only maps it (docs/modules.md).
//!
//! Every field of the file is bounds-checked by `object`'s ELF reader, and
//! every size and offset here with checked arithmetic: a hostile file is
//! refused with a `ModError`, never a panic, and costs at most `MAX_IMAGE`
//! bytes of memory.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use object::LittleEndian as LE;
use object::elf;
use object::read::elf::{FileHeader, SectionHeader, Sym as _};

/// The interface version the kernel exports (`interface=` in `.modinfo`).
pub const INTERFACE: &str = "1";
/// The largest image a module may need, all its pages together.
pub const MAX_IMAGE: u64 = 4 << 20;
/// The longest module name, as Linux's `MODULE_NAME_LEN` less its NUL.
pub const NAME_MAX: usize = 55;
/// The entry points, by their symbol names.
pub const INIT: &str = "module_init";
pub const EXIT: &str = "module_exit";

const PAGE: u64 = 4096;
const ENOENT: i64 = 2;
const ENOEXEC: i64 = 8;
const ENOMEM: i64 = 12;
const EFBIG: i64 = 27;

/// What a page of the image is, in the order the image holds them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Executable once the nested kernel has vetted it; never writable.
    Text,
    /// Constants and the GOT: read-only, no-execute.
    ReadOnly,
    /// Data and bss: writable, no-execute.
    Data,
}

/// Why a module was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModError {
    /// A header, table or offset that does not hold together.
    Malformed(&'static str),
    /// Not a 64-bit little-endian relocatable ELF file for x86-64.
    NotModule(&'static str),
    /// A section that is both writable and executable.
    WritableCode {
        section: String,
    },
    /// A loadable section of a kind the loader does not lay out (TLS,
    /// constructors, an alignment above a page).
    UnsupportedSection {
        section: String,
    },
    TooLarge {
        bytes: u64,
    },
    /// `.modinfo` is missing, or an entry is not `key=value`, or the name
    /// or license is missing or bad.
    BadModinfo(&'static str),
    /// `.modinfo` names another interface version.
    Interface {
        found: String,
    },
    /// An undefined symbol the kernel does not export.
    UnknownSymbol {
        name: String,
    },
    /// A symbol in a section that is not loaded, or of a kind not handled.
    BadSymbol {
        index: usize,
    },
    /// No `module_init` function in the module's text.
    NoInit,
    UnsupportedRelocation {
        kind: u32,
        offset: u64,
    },
    /// A relocation whose value does not fit its field.
    RelocationOverflow {
        kind: u32,
        offset: u64,
    },
    /// A relocation outside its section, or in one with no bytes (bss).
    RelocationOutOfRange {
        offset: u64,
    },
    OutOfMemory,
}

impl ModError {
    /// The errno `init_module` returns for it, as Linux's loader does.
    pub fn errno(&self) -> i64 {
        match self {
            Self::UnknownSymbol { .. } => ENOENT,
            Self::TooLarge { .. } => EFBIG,
            Self::OutOfMemory => ENOMEM,
            _ => ENOEXEC,
        }
    }
}

impl fmt::Display for ModError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(what) => write!(f, "malformed ELF file: {what}"),
            Self::NotModule(what) => write!(f, "not a module: {what}"),
            Self::WritableCode { section } => write!(f, "section {section} is both writable and executable"),
            Self::UnsupportedSection { section } => {
                write!(f, "section {section} is of a kind the loader does not load")
            }
            Self::TooLarge { bytes } => write!(f, "module needs {bytes} bytes, more than {MAX_IMAGE}"),
            Self::BadModinfo(what) => write!(f, ".modinfo: {what}"),
            Self::Interface { found } => write!(f, "module built for interface {found}, kernel exports {INTERFACE}"),
            Self::UnknownSymbol { name } => write!(f, "unknown symbol {name} (the kernel does not export it)"),
            Self::BadSymbol { index } => write!(f, "symbol {index} is in no loaded section"),
            Self::NoInit => write!(f, "no {INIT} function"),
            Self::UnsupportedRelocation { kind, offset } => {
                write!(f, "relocation type {kind} at {offset:#x} is not supported")
            }
            Self::RelocationOverflow { kind, offset } => {
                write!(f, "relocation type {kind} at {offset:#x} does not fit its field")
            }
            Self::RelocationOutOfRange { offset } => write!(f, "relocation at {offset:#x} is outside its section"),
            Self::OutOfMemory => write!(f, "out of memory"),
        }
    }
}

/// What `.modinfo` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModInfo {
    pub name: String,
    pub version: String,
    pub license: String,
}

/// A loadable section's place in the image.
#[derive(Clone, Copy, Debug)]
struct Placed {
    offset: u64,
    size: u64,
    /// Bytes in the file (none for bss).
    has_bytes: bool,
}

/// A module that passed every check that needs no load address.
#[derive(Debug)]
pub struct Module<'a> {
    data: &'a [u8],
    pub info: ModInfo,
    /// Pages of each kind, in the image's order: text, read-only, data.
    pub text_pages: u64,
    pub ro_pages: u64,
    pub data_pages: u64,
    /// By section index; `None` for what is not loaded.
    placed: Vec<Option<Placed>>,
    /// The GOT's offset in the image and the slot of each symbol in it.
    got: u64,
    slots: BTreeMap<usize, u64>,
    symtab: usize,
    init: usize,
    exit: Option<usize>,
}

/// A module linked at its address, ready to be copied into frames.
#[derive(Debug)]
pub struct Image {
    /// `pages() * 4096` bytes: text pages, then read-only, then data.
    pub bytes: Vec<u8>,
    pub init: u64,
    pub exit: Option<u64>,
    pub relocations: usize,
}

type Header = elf::FileHeader64<LE>;
type Section = elf::SectionHeader64<LE>;
type SymTable<'a> = object::read::elf::SymbolTable<'a, Header, &'a [u8]>;

fn sections(data: &[u8]) -> Result<(&Header, Sections<'_>), ModError> {
    let header = Header::parse(data).map_err(|_| ModError::Malformed("ELF header"))?;
    let sections = header.sections(LE, data).map_err(|_| ModError::Malformed("section headers"))?;
    Ok((header, sections))
}

type Sections<'a> = object::read::elf::SectionTable<'a, Header, &'a [u8]>;

fn section_name(sections: &Sections<'_>, s: &Section) -> String {
    let name = sections.section_name(LE, s).unwrap_or(b"?");
    String::from_utf8_lossy(name).into_owned()
}

fn is_got(kind: u32) -> bool {
    matches!(kind, elf::R_X86_64_GOTPCREL | elf::R_X86_64_GOTPCRELX | elf::R_X86_64_REX_GOTPCRELX)
}

impl<'a> Module<'a> {
    /// Checks `data` as a module and lays it out.
    pub fn parse(data: &'a [u8]) -> Result<Self, ModError> {
        let (header, sections) = sections(data)?;
        if header.e_ident.class != elf::ELFCLASS64 || header.e_ident.data != elf::ELFDATA2LSB {
            return Err(ModError::NotModule("not 64-bit little-endian"));
        }
        if header.e_type.get(LE) != elf::ET_REL {
            return Err(ModError::NotModule("not a relocatable file"));
        }
        if header.e_machine.get(LE) != elf::EM_X86_64 {
            return Err(ModError::NotModule("not for x86-64"));
        }
        let mut placed = alloc::vec![None; sections.len()];
        let mut info = None;
        let mut symtab = None;
        // Offsets within each kind first; the kinds are stacked after.
        let mut ends = [0u64; 3];
        let mut kinds = alloc::vec![Kind::Text; sections.len()];
        for (index, s) in sections.enumerate() {
            let flags = s.sh_flags.get(LE);
            let kind = s.sh_type.get(LE);
            let name = sections.section_name(LE, s).map_err(|_| ModError::Malformed("section name"))?;
            if kind == elf::SHT_SYMTAB {
                if symtab.replace(index.0).is_some() {
                    return Err(ModError::Malformed("two symbol tables"));
                }
                continue;
            }
            if name == b".modinfo" {
                let bytes = s.data(LE, data).map_err(|_| ModError::Malformed(".modinfo bounds"))?;
                info = Some(parse_modinfo(bytes)?);
                continue;
            }
            if flags & u64::from(elf::SHF_ALLOC) == 0 {
                continue;
            }
            if !matches!(kind, elf::SHT_PROGBITS | elf::SHT_NOBITS) || flags & u64::from(elf::SHF_TLS) != 0 {
                return Err(ModError::UnsupportedSection { section: section_name(&sections, s) });
            }
            let exec = flags & u64::from(elf::SHF_EXECINSTR) != 0;
            let write = flags & u64::from(elf::SHF_WRITE) != 0;
            let k = match (exec, write) {
                (true, true) => return Err(ModError::WritableCode { section: section_name(&sections, s) }),
                (true, false) => Kind::Text,
                (false, false) => Kind::ReadOnly,
                (false, true) => Kind::Data,
            };
            let align = s.sh_addralign.get(LE).max(1);
            if !align.is_power_of_two() || align > PAGE {
                return Err(ModError::UnsupportedSection { section: section_name(&sections, s) });
            }
            let size = s.sh_size.get(LE);
            if kind == elf::SHT_PROGBITS {
                // Bounds now, so that linking cannot fail on them.
                s.data(LE, data).map_err(|_| ModError::Malformed("section bounds"))?;
            }
            let too_large = |bytes| ModError::TooLarge { bytes };
            let end = &mut ends[k as usize];
            let offset = end.checked_next_multiple_of(align).ok_or(too_large(u64::MAX))?;
            *end =
                offset.checked_add(size).filter(|&e| e <= MAX_IMAGE).ok_or(too_large(offset.saturating_add(size)))?;
            placed[index.0] = Some(Placed { offset, size, has_bytes: kind == elf::SHT_PROGBITS });
            kinds[index.0] = k;
        }
        let info = info.ok_or(ModError::BadModinfo("no .modinfo section"))?;
        let symtab = symtab.ok_or(ModError::Malformed("no symbol table"))?;
        let symbols = Self::symbols_of(data, symtab)?;

        // The GOT: one slot per symbol a GOT-relative relocation names.
        let mut slots = BTreeMap::new();
        for s in sections.iter() {
            if s.sh_type.get(LE) == elf::SHT_REL {
                return Err(ModError::Malformed("REL relocations (x86-64 uses RELA)"));
            }
            let Some((relas, _)) = s.rela(LE, data).map_err(|_| ModError::Malformed("relocation bounds"))? else {
                continue;
            };
            for r in relas {
                if is_got(r.r_type(LE, false)) {
                    let next = slots.len() as u64;
                    slots.entry(r.r_sym(LE, false) as usize).or_insert(next);
                }
            }
        }
        let got_at = ends[Kind::ReadOnly as usize].next_multiple_of(8);
        ends[Kind::ReadOnly as usize] = (slots.len() as u64)
            .checked_mul(8)
            .and_then(|n| got_at.checked_add(n))
            .filter(|&e| e <= MAX_IMAGE)
            .ok_or(ModError::TooLarge { bytes: u64::MAX })?;

        let pages = ends.map(|e| e.div_ceil(PAGE));
        let total = pages.iter().sum::<u64>() * PAGE;
        if total > MAX_IMAGE {
            return Err(ModError::TooLarge { bytes: total });
        }
        let base = [0, pages[0] * PAGE, (pages[0] + pages[1]) * PAGE];
        for (p, k) in placed.iter_mut().zip(&kinds) {
            if let Some(p) = p {
                p.offset += base[*k as usize];
            }
        }
        let text =
            |index: usize| placed.get(index).copied().flatten().is_some() && kinds.get(index) == Some(&Kind::Text);
        let mut init = None;
        let mut exit = None;
        for (index, sym) in symbols.enumerate() {
            let name = symbols.symbol_name(LE, sym).map_err(|_| ModError::Malformed("symbol name"))?;
            let entry = if name == INIT.as_bytes() {
                &mut init
            } else if name == EXIT.as_bytes() {
                &mut exit
            } else {
                continue;
            };
            let in_text = text(usize::from(sym.st_shndx(LE)));
            if sym.st_type() != elf::STT_FUNC || sym.st_bind() == elf::STB_LOCAL || !in_text {
                return Err(ModError::BadSymbol { index: index.0 });
            }
            *entry = Some(index.0);
        }
        Ok(Self {
            data,
            info,
            text_pages: pages[0],
            ro_pages: pages[1],
            data_pages: pages[2],
            placed,
            got: base[1] + got_at,
            slots,
            symtab,
            init: init.ok_or(ModError::NoInit)?,
            exit,
        })
    }

    fn symbols_of(data: &'a [u8], symtab: usize) -> Result<SymTable<'a>, ModError> {
        let (_, sections) = sections(data)?;
        let s = sections.section(object::SectionIndex(symtab)).map_err(|_| ModError::Malformed("symbol table"))?;
        SymTable::parse(LE, data, &sections, object::SectionIndex(symtab), s)
            .map_err(|_| ModError::Malformed("symbol table bounds"))
    }

    /// Pages the image takes.
    pub fn pages(&self) -> u64 {
        self.text_pages + self.ro_pages + self.data_pages
    }

    /// Whether the module can be unloaded (it has an exit function).
    pub fn has_exit(&self) -> bool {
        self.exit.is_some()
    }

    /// Links the module at `base` (page-aligned): copies its sections into
    /// place, fills the GOT, resolves undefined symbols with `resolve`
    /// (every one must resolve, used or not, as Linux's loader requires)
    /// and applies every relocation.
    pub fn link(&self, base: u64, resolve: &dyn Fn(&str) -> Option<u64>) -> Result<Image, ModError> {
        let (_, sections) = sections(self.data)?;
        let symbols = Self::symbols_of(self.data, self.symtab)?;
        let size = self.pages() * PAGE;
        let mut bytes = Vec::new();
        bytes.try_reserve_exact(size as usize).map_err(|_| ModError::OutOfMemory)?;
        bytes.resize(size as usize, 0);
        for (index, s) in sections.enumerate() {
            if let Some(p) = self.placed[index.0].filter(|p| p.has_bytes) {
                let src = s.data(LE, self.data).map_err(|_| ModError::Malformed("section bounds"))?;
                bytes[p.offset as usize..][..src.len()].copy_from_slice(src);
            }
        }
        // Every symbol's address, undefined ones resolved now.
        let mut addrs = Vec::new();
        addrs.try_reserve_exact(symbols.len()).map_err(|_| ModError::OutOfMemory)?;
        for (index, sym) in symbols.enumerate() {
            addrs.push(self.address(base, index.0, sym, &symbols, resolve)?);
        }
        for (&sym, &slot) in &self.slots {
            let value = addrs.get(sym).copied().flatten().ok_or(ModError::BadSymbol { index: sym })?;
            let at = (self.got + slot * 8) as usize;
            bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
        }
        let mut relocations = 0;
        for s in sections.iter() {
            let Some((relas, link)) = s.rela(LE, self.data).map_err(|_| ModError::Malformed("relocation bounds"))?
            else {
                continue;
            };
            let Some(target) = self.placed.get(s.sh_info.get(LE) as usize).copied().flatten() else {
                // Relocations of a section that is not loaded (.modinfo, notes).
                continue;
            };
            if link.0 != self.symtab {
                return Err(ModError::Malformed("relocations against another symbol table"));
            }
            for r in relas {
                let fixup = Fixup {
                    kind: r.r_type(LE, false),
                    offset: r.r_offset.get(LE),
                    sym: r.r_sym(LE, false) as usize,
                    addend: r.r_addend.get(LE),
                };
                self.apply(&mut bytes, base, target, &addrs, fixup)?;
                relocations += 1;
            }
        }
        let at = |sym: usize| addrs[sym].ok_or(ModError::BadSymbol { index: sym });
        Ok(Image { bytes, init: at(self.init)?, exit: self.exit.map(at).transpose()?, relocations })
    }

    /// Symbol `index`'s address; `None` for one no relocation may use (a
    /// section or file symbol of a section that is not loaded).
    fn address(
        &self,
        base: u64,
        index: usize,
        sym: &elf::Sym64<LE>,
        symbols: &SymTable<'a>,
        resolve: &dyn Fn(&str) -> Option<u64>,
    ) -> Result<Option<u64>, ModError> {
        if index == 0 {
            return Ok(None);
        }
        match sym.st_shndx(LE) {
            elf::SHN_UNDEF => {
                let name = symbols.symbol_name(LE, sym).map_err(|_| ModError::Malformed("symbol name"))?;
                let name = core::str::from_utf8(name).map_err(|_| ModError::Malformed("symbol name"))?;
                match resolve(name) {
                    Some(addr) => Ok(Some(addr)),
                    None if sym.st_bind() == elf::STB_WEAK => Ok(Some(0)),
                    None => Err(ModError::UnknownSymbol { name: name.into() }),
                }
            }
            elf::SHN_ABS => Ok(Some(sym.st_value(LE))),
            shndx if shndx >= elf::SHN_LORESERVE => Err(ModError::BadSymbol { index }),
            shndx => match self.placed.get(usize::from(shndx)).copied().flatten() {
                Some(p) if sym.st_value(LE) <= p.size => Ok(Some(base + p.offset + sym.st_value(LE))),
                Some(_) => Err(ModError::BadSymbol { index }),
                None => Ok(None),
            },
        }
    }

    fn apply(
        &self,
        bytes: &mut [u8],
        base: u64,
        target: Placed,
        addrs: &[Option<u64>],
        r: Fixup,
    ) -> Result<(), ModError> {
        let width = match r.kind {
            elf::R_X86_64_NONE => return Ok(()),
            elf::R_X86_64_64 | elf::R_X86_64_PC64 => 8,
            elf::R_X86_64_PC32 | elf::R_X86_64_PLT32 | elf::R_X86_64_32 | elf::R_X86_64_32S => 4,
            k if is_got(k) => 4,
            kind => return Err(ModError::UnsupportedRelocation { kind, offset: r.offset }),
        };
        let out_of_range = ModError::RelocationOutOfRange { offset: r.offset };
        if !target.has_bytes || r.offset.checked_add(width).is_none_or(|end| end > target.size) {
            return Err(out_of_range);
        }
        let s = addrs.get(r.sym).copied().flatten().ok_or(ModError::BadSymbol { index: r.sym })?;
        let a = r.addend as u64;
        let p = base + target.offset + r.offset;
        let value = match r.kind {
            elf::R_X86_64_64 | elf::R_X86_64_32 | elf::R_X86_64_32S => s.wrapping_add(a),
            elf::R_X86_64_PC64 | elf::R_X86_64_PC32 | elf::R_X86_64_PLT32 => s.wrapping_add(a).wrapping_sub(p),
            _ => {
                let slot = self.slots.get(&r.sym).ok_or(ModError::BadSymbol { index: r.sym })?;
                (base + self.got + slot * 8).wrapping_add(a).wrapping_sub(p)
            }
        };
        let fits = match r.kind {
            _ if width == 8 => true,
            elf::R_X86_64_32 => value <= u64::from(u32::MAX),
            _ => i32::try_from(value as i64).is_ok(),
        };
        if !fits {
            return Err(ModError::RelocationOverflow { kind: r.kind, offset: r.offset });
        }
        let at = (target.offset + r.offset) as usize;
        bytes[at..at + width as usize].copy_from_slice(&value.to_le_bytes()[..width as usize]);
        Ok(())
    }
}

/// One relocation, its fields read.
#[derive(Clone, Copy)]
struct Fixup {
    kind: u32,
    offset: u64,
    sym: usize,
    addend: i64,
}

/// `.modinfo`: NUL-separated `key=value` entries, as Linux's.
pub fn parse_modinfo(bytes: &[u8]) -> Result<ModInfo, ModError> {
    let (mut name, mut version, mut license, mut interface) = (None, None, None, None);
    for entry in bytes.split(|&b| b == 0).filter(|e| !e.is_empty()) {
        let entry = core::str::from_utf8(entry).map_err(|_| ModError::BadModinfo("an entry is not UTF-8"))?;
        let (key, value) = entry.split_once('=').ok_or(ModError::BadModinfo("an entry is not key=value"))?;
        let slot = match key {
            "name" => &mut name,
            "version" => &mut version,
            "license" => &mut license,
            "interface" => &mut interface,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(ModError::BadModinfo("a key is given twice"));
        }
    }
    let name = name.ok_or(ModError::BadModinfo("no name"))?;
    if !valid_name(name) {
        return Err(ModError::BadModinfo("the name is not 1 to 55 of [A-Za-z0-9_-]"));
    }
    let license = license.filter(|l| !l.is_empty()).ok_or(ModError::BadModinfo("no license"))?;
    match interface {
        Some(INTERFACE) => {}
        Some(found) => return Err(ModError::Interface { found: found.into() }),
        None => return Err(ModError::Interface { found: "(none)".into() }),
    }
    Ok(ModInfo { name: name.into(), version: version.unwrap_or("").into(), license: license.into() })
}

/// A module name: what `rmmod` and `/proc/modules` use.
pub fn valid_name(name: &str) -> bool {
    (1..=NAME_MAX).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests;
