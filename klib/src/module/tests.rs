//! The module loader's pure part against relocatable files built here with
//! `object`'s writer, and against hostile bytes.

use super::*;
use object::write::{Object, Relocation, SectionId, Symbol, SymbolId, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind, SymbolFlags, SymbolKind, SymbolScope,
};
use proptest::prelude::*;

const BASE: u64 = 0xffff_ffff_c000_0000;
const PRINT: u64 = 0xffff_ffff_8012_3450;
const INFO: &str = "name=test\0version=1\0license=MIT\0interface=1\0";

fn exports(name: &str) -> Option<u64> {
    (name == "nkmod_print").then_some(PRINT)
}

/// A module under construction: `.text` (with `module_init` at 0),
/// `.rodata`, `.data`, `.bss`, `.modinfo`.
struct Build {
    obj: Object<'static>,
    text: SectionId,
    rodata: SectionId,
    data: SectionId,
}

impl Build {
    fn new(text: &[u8]) -> Self {
        Self::with_info(text, INFO)
    }

    fn with_info(text: &[u8], info: &str) -> Self {
        let mut obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
        let t = obj.add_section(Vec::new(), b".text".to_vec(), SectionKind::Text);
        obj.append_section_data(t, text, 16);
        let rodata = obj.add_section(Vec::new(), b".rodata".to_vec(), SectionKind::ReadOnlyData);
        let data = obj.add_section(Vec::new(), b".data".to_vec(), SectionKind::Data);
        let m = obj.add_section(Vec::new(), b".modinfo".to_vec(), SectionKind::ReadOnlyData);
        obj.append_section_data(m, info.as_bytes(), 1);
        let mut b = Self { obj, text: t, rodata, data };
        b.func(INIT, 0);
        b
    }

    fn func(&mut self, name: &str, value: u64) -> SymbolId {
        self.symbol(name, SymbolKind::Text, SymbolSection::Section(self.text), value)
    }

    fn symbol(&mut self, name: &str, kind: SymbolKind, section: SymbolSection, value: u64) -> SymbolId {
        self.obj.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value,
            size: 0,
            kind,
            scope: SymbolScope::Linkage,
            weak: false,
            section,
            flags: SymbolFlags::None,
        })
    }

    fn external(&mut self, name: &str) -> SymbolId {
        self.symbol(name, SymbolKind::Unknown, SymbolSection::Undefined, 0)
    }

    fn reloc(&mut self, section: SectionId, offset: u64, symbol: SymbolId, addend: i64, r_type: u32) {
        let flags = RelocationFlags::Elf { r_type };
        self.obj.add_relocation(section, Relocation { offset, symbol, addend, flags }).expect("relocation");
    }

    fn bytes(self) -> Vec<u8> {
        self.obj.write().expect("write")
    }
}

fn link(bytes: &[u8]) -> Result<Image, ModError> {
    Module::parse(bytes)?.link(BASE, &exports)
}

fn u32_at(image: &Image, at: usize) -> u32 {
    u32::from_le_bytes(image.bytes[at..at + 4].try_into().unwrap())
}

fn u64_at(image: &Image, at: usize) -> u64 {
    u64::from_le_bytes(image.bytes[at..at + 8].try_into().unwrap())
}

#[test]
fn the_smallest_module_loads_at_its_base() {
    let bytes = Build::new(&[0x31, 0xc0, 0xc3]).bytes();
    let m = Module::parse(&bytes).unwrap();
    assert_eq!(m.info, ModInfo { name: "test".into(), version: "1".into(), license: "MIT".into() });
    assert_eq!((m.text_pages, m.ro_pages, m.data_pages), (1, 0, 0));
    assert!(!m.has_exit());
    let image = m.link(BASE, &exports).unwrap();
    assert_eq!(image.init, BASE);
    assert_eq!(image.exit, None);
    assert_eq!(&image.bytes[..3], &[0x31, 0xc0, 0xc3]);
    assert_eq!(image.bytes.len(), 4096);
}

#[test]
fn kinds_get_pages_of_their_own_in_order() {
    let mut b = Build::new(&[0x90; 5000]);
    b.func(EXIT, 4999);
    b.obj.append_section_data(b.rodata, b"constant", 8);
    b.obj.append_section_data(b.data, &[7; 8], 8);
    let bss = b.obj.add_section(Vec::new(), b".bss".to_vec(), SectionKind::UninitializedData);
    b.obj.append_section_bss(bss, 100, 8);
    let counter = b.symbol("counter", SymbolKind::Data, SymbolSection::Section(bss), 4);
    // mov [rip + counter], eax at text offset 16: a PC32 into bss.
    b.reloc(b.text, 16, counter, -4, elf::R_X86_64_PC32);
    let bytes = b.bytes();
    let m = Module::parse(&bytes).unwrap();
    assert_eq!((m.text_pages, m.ro_pages, m.data_pages), (2, 1, 1));
    let image = m.link(BASE, &exports).unwrap();
    assert_eq!(image.exit, Some(BASE + 4999));
    assert_eq!(&image.bytes[2 * 4096..][..8], b"constant");
    assert_eq!(&image.bytes[3 * 4096..][..8], &[7; 8]);
    // bss follows data in the data page, at 8; the field is at text 16.
    let counter_at = BASE + 3 * 4096 + 8 + 4;
    assert_eq!(u32_at(&image, 16), (counter_at - 4).wrapping_sub(BASE + 16) as u32);
    assert_eq!(image.relocations, 1);
}

#[test]
fn each_supported_relocation_computes_its_value() {
    let mut b = Build::new(&[0; 64]);
    b.obj.append_section_data(b.rodata, &[0; 16], 8);
    let print = b.external("nkmod_print");
    let local = b.symbol("table", SymbolKind::Data, SymbolSection::Section(b.rodata), 8);
    b.reloc(b.text, 0, print, -4, elf::R_X86_64_PLT32);
    b.reloc(b.text, 4, print, -4, elf::R_X86_64_PC32);
    b.reloc(b.text, 8, local, 2, elf::R_X86_64_64);
    b.reloc(b.text, 16, local, 0, elf::R_X86_64_32S);
    b.reloc(b.text, 20, print, -4, elf::R_X86_64_GOTPCREL);
    b.reloc(b.text, 24, print, -4, elf::R_X86_64_REX_GOTPCRELX);
    b.reloc(b.text, 32, local, 0, elf::R_X86_64_PC64);
    let bytes = b.bytes();
    let image = link(&bytes).unwrap();
    let table = BASE + 4096 + 8;
    assert_eq!(u32_at(&image, 0), (PRINT - 4).wrapping_sub(BASE) as u32);
    assert_eq!(u32_at(&image, 4), (PRINT - 4).wrapping_sub(BASE + 4) as u32);
    assert_eq!(u64_at(&image, 8), table + 2);
    assert_eq!(u32_at(&image, 16), table as u32);
    assert_eq!(u64_at(&image, 32), table - (BASE + 32));
    // One GOT slot for the symbol both GOT relocations name, after rodata.
    let got = 4096 + 16;
    assert_eq!(u64_at(&image, got), PRINT);
    assert_eq!(u32_at(&image, 20), (BASE + got as u64 - 4).wrapping_sub(BASE + 20) as u32);
    assert_eq!(u32_at(&image, 24), (BASE + got as u64 - 4).wrapping_sub(BASE + 24) as u32);
    assert_eq!(image.relocations, 7);
}

#[test]
fn a_value_that_does_not_fit_is_refused() {
    let mut b = Build::new(&[0; 8]);
    let print = b.external("nkmod_print");
    // A kernel address is not a zero-extended 32-bit value.
    b.reloc(b.text, 0, print, 0, elf::R_X86_64_32);
    assert_eq!(link(&b.bytes()).unwrap_err(), ModError::RelocationOverflow { kind: elf::R_X86_64_32, offset: 0 });
    // Nor a call more than 2 GiB away.
    let mut b = Build::new(&[0; 8]);
    let print = b.external("nkmod_print");
    b.reloc(b.text, 0, print, 0, elf::R_X86_64_PC32);
    let bytes = b.bytes();
    let m = Module::parse(&bytes).unwrap();
    assert!(matches!(m.link(0x4000_0000_0000, &exports), Err(ModError::RelocationOverflow { .. })));
}

#[test]
fn an_unknown_symbol_is_named_and_is_enoent() {
    let mut b = Build::new(&[0; 8]);
    b.external("secret_kernel_function");
    let e = link(&b.bytes()).unwrap_err();
    assert_eq!(e, ModError::UnknownSymbol { name: "secret_kernel_function".into() });
    assert_eq!(e.errno(), 2);
    assert_eq!(alloc::format!("{e}"), "unknown symbol secret_kernel_function (the kernel does not export it)");
}

#[test]
fn writable_code_is_refused() {
    let mut b = Build::new(&[0xc3]);
    let wx = b.obj.add_section(Vec::new(), b".text.wx".to_vec(), SectionKind::Text);
    b.obj.append_section_data(wx, &[0x90], 1);
    b.obj.section_mut(wx).flags =
        object::SectionFlags::Elf { sh_flags: u64::from(elf::SHF_ALLOC | elf::SHF_WRITE | elf::SHF_EXECINSTR) };
    let e = Module::parse(&b.bytes()).unwrap_err();
    assert_eq!(e, ModError::WritableCode { section: ".text.wx".into() });
    assert_eq!(e.errno(), 8);
}

#[test]
fn relocations_outside_the_loader_are_refused() {
    let mut b = Build::new(&[0; 8]);
    let print = b.external("nkmod_print");
    b.reloc(b.text, 0, print, 0, elf::R_X86_64_TPOFF32);
    assert_eq!(
        link(&b.bytes()).unwrap_err(),
        ModError::UnsupportedRelocation { kind: elf::R_X86_64_TPOFF32, offset: 0 }
    );
    let mut b = Build::new(&[0; 8]);
    let print = b.external("nkmod_print");
    b.reloc(b.text, 6, print, 0, elf::R_X86_64_PC32);
    assert_eq!(link(&b.bytes()).unwrap_err(), ModError::RelocationOutOfRange { offset: 6 });
}

#[test]
fn modinfo_names_a_module_of_this_interface() {
    let ok = parse_modinfo(b"name=rot13\0license=GPL\0interface=1\0other=x\0").unwrap();
    assert_eq!(ok, ModInfo { name: "rot13".into(), version: "".into(), license: "GPL".into() });
    let refused = [
        (&b"license=GPL\0interface=1"[..], ModError::BadModinfo("no name")),
        (b"name=a b\0license=GPL\0interface=1", ModError::BadModinfo("the name is not 1 to 55 of [A-Za-z0-9_-]")),
        (b"name=a\0interface=1", ModError::BadModinfo("no license")),
        (b"name=a\0name=b\0license=GPL\0interface=1", ModError::BadModinfo("a key is given twice")),
        (b"name=a\0license=GPL\0oops\0interface=1", ModError::BadModinfo("an entry is not key=value")),
        (b"name=a\0license=GPL\0interface=2", ModError::Interface { found: "2".into() }),
        (b"name=a\0license=GPL", ModError::Interface { found: "(none)".into() }),
    ];
    for (bytes, e) in refused {
        assert_eq!(parse_modinfo(bytes), Err(e), "{bytes:?}");
    }
    let long = alloc::format!("name={}\0license=x\0interface=1", "a".repeat(NAME_MAX + 1));
    assert!(parse_modinfo(long.as_bytes()).is_err());
    assert!(Module::parse(&Build::with_info(&[0xc3], "name=x\0license=MIT\0interface=7\0").bytes()).is_err());
}

#[test]
fn other_files_are_not_modules() {
    let good = Build::new(&[0xc3]).bytes();
    let mut exec = good.clone();
    exec[16] = elf::ET_EXEC as u8;
    assert_eq!(Module::parse(&exec).unwrap_err(), ModError::NotModule("not a relocatable file"));
    let mut arm = good.clone();
    arm[18] = elf::EM_AARCH64 as u8;
    assert_eq!(Module::parse(&arm).unwrap_err(), ModError::NotModule("not for x86-64"));
    assert!(matches!(Module::parse(b"#!/bin/sh\n"), Err(ModError::Malformed(_))));
    assert!(matches!(Module::parse(&[]), Err(ModError::Malformed(_))));
}

#[test]
fn entry_points_must_be_functions_in_text() {
    let mut b = Build::new(&[0xc3]);
    b.obj.append_section_data(b.data, &[0; 8], 8);
    b.symbol(EXIT, SymbolKind::Data, SymbolSection::Section(b.data), 0);
    assert!(matches!(Module::parse(&b.bytes()), Err(ModError::BadSymbol { .. })));

    let mut obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let t = obj.add_section(Vec::new(), b".text".to_vec(), SectionKind::Text);
    obj.append_section_data(t, &[0xc3], 1);
    let m = obj.add_section(Vec::new(), b".modinfo".to_vec(), SectionKind::ReadOnlyData);
    obj.append_section_data(m, INFO.as_bytes(), 1);
    assert_eq!(Module::parse(&obj.write().unwrap()).unwrap_err(), ModError::NoInit);
}

#[test]
fn a_huge_bss_is_too_large() {
    let mut b = Build::new(&[0xc3]);
    let bss = b.obj.add_section(Vec::new(), b".bss".to_vec(), SectionKind::UninitializedData);
    b.obj.append_section_bss(bss, MAX_IMAGE, 8);
    let e = Module::parse(&b.bytes()).unwrap_err();
    assert!(matches!(e, ModError::TooLarge { .. }), "{e:?}");
    assert_eq!(e.errno(), 27);
}

/// A module with a bit of everything, for the hostile-bytes tests.
fn rich() -> Vec<u8> {
    let mut b = Build::new(&[0x90; 100]);
    b.func(EXIT, 50);
    b.obj.append_section_data(b.rodata, &[1; 40], 8);
    b.obj.append_section_data(b.data, &[2; 40], 8);
    let print = b.external("nkmod_print");
    let local = b.symbol("t", SymbolKind::Data, SymbolSection::Section(b.rodata), 8);
    b.reloc(b.text, 1, print, -4, elf::R_X86_64_PLT32);
    b.reloc(b.text, 8, local, 0, elf::R_X86_64_64);
    b.reloc(b.text, 20, print, -4, elf::R_X86_64_GOTPCREL);
    b.reloc(b.data, 0, local, 0, elf::R_X86_64_64);
    b.bytes()
}

#[test]
fn every_truncation_is_refused_without_a_panic() {
    let bytes = rich();
    assert!(link(&bytes).is_ok());
    for len in 0..bytes.len() {
        // The section headers are at the end: no prefix holds them all.
        assert!(link(&bytes[..len]).is_err(), "a prefix of {len} bytes loaded");
    }
}

proptest! {
    #[test]
    fn flipped_bytes_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut bytes = rich();
        for (at, b) in flips {
            let n = bytes.len();
            bytes[at % n] = b;
        }
        if let Ok(image) = link(&bytes) {
            prop_assert!(image.bytes.len() as u64 <= MAX_IMAGE);
            prop_assert!(image.bytes.len() % 4096 == 0);
        }
    }
}

#[test]
fn a_relocation_naming_no_symbol_is_refused() {
    let mut b = Build::new(&[0; 8]);
    let print = b.external("nkmod_print");
    b.reloc(b.text, 0, print, 0, elf::R_X86_64_PC32);
    let mut bytes = b.bytes();
    // Point the one relocation's symbol index past the table's end.
    let (_, sections) = sections(&bytes).unwrap();
    let rela = sections.iter().find(|s| s.sh_type.get(LE) == elf::SHT_RELA).unwrap();
    let info_at = rela.sh_offset.get(LE) as usize + 8;
    let r_type = u64::from(elf::R_X86_64_PC32);
    bytes[info_at..info_at + 8].copy_from_slice(&(0xffff_u64 << 32 | r_type).to_le_bytes());
    assert_eq!(link(&bytes).unwrap_err(), ModError::BadSymbol { index: 0xffff });
}
