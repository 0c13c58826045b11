//! Code vetting (I7 at run time): does a run of bytes hold a protected
//! instruction at any byte offset? The NK asks before `map_code` makes a
//! frame executable; `cargo xtask scan` asks the same of the image with a
//! full decoder (iced-x86), and a host test checks that every instruction
//! the full decoder calls protected is caught here too.
//!
//! This is a matcher on opcode bytes, not a decoder: it looks for the
//! opcode of each protected instruction at every offset. Prefixes need no
//! handling, since the opcode bytes after any prefix are themselves an
//! offset that is checked. It errs on the side of refusing: some rare
//! unprivileged encodings that share an opcode (SSE4a `extrq`, say) are
//! refused too, and so is a run that ends partway into an opcode that could
//! become protected, since the next page could complete it.

/// Why bytes were refused: the first protected opcode and where it starts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Protected {
    pub offset: usize,
    pub what: &'static str,
}

/// The class of the protected instruction whose opcode starts `bytes`, if
/// any; `Some("...")` as well when `bytes` ends before it can tell.
pub fn protected_at(bytes: &[u8]) -> Option<&'static str> {
    const CUT: &str = "an opcode cut off at the end (could be protected)";
    if bytes.first() != Some(&0x0f) {
        return None;
    }
    let Some(&op) = bytes.get(1) else { return Some(CUT) };
    let modrm = bytes.get(2).copied();
    let reg = |m: u8| (m >> 3) & 7;
    let is_reg_form = |m: u8| m >> 6 == 3;
    match op {
        0x22 => Some("mov crN, r (control registers)"),
        0x23 => Some("mov drN, r (debug registers)"),
        0x30 => Some("wrmsr"),
        0x06 => Some("clts"),
        0x78 | 0x79 => Some("vmread/vmwrite"),
        0x00 => match modrm {
            None => Some(CUT),
            Some(m) if matches!(reg(m), 2 | 3) => Some("lldt/ltr"),
            Some(_) => None,
        },
        0x01 => match modrm {
            None => Some(CUT),
            Some(m) if !is_reg_form(m) && matches!(reg(m), 2 | 3 | 6) => Some("lgdt/lidt/lmsw"),
            Some(0xf0..=0xf7) => Some("lmsw"),
            Some(0xc1..=0xc4 | 0xd4) => Some("VMX instruction"),
            Some(0xc6) => Some("wrmsrns/wrmsrlist"),
            Some(0xd1) => Some("xsetbv"),
            Some(0xd8..=0xdf) => Some("SVM instruction"),
            Some(_) => None,
        },
        0xc7 => match modrm {
            None => Some(CUT),
            Some(m) if !is_reg_form(m) && matches!(reg(m), 3 | 6) => Some("xrstors/vmptrld/vmclear/vmxon"),
            Some(_) => None,
        },
        0x38 => match bytes.get(2) {
            None => Some(CUT),
            Some(0x80 | 0x81) => Some("invept/invvpid"),
            Some(_) => None,
        },
        _ => None,
    }
}

/// The first offset of `bytes` at which a protected instruction could
/// start, or `None` when no offset can.
pub fn find_protected(bytes: &[u8]) -> Option<Protected> {
    (0..bytes.len()).find_map(|offset| protected_at(&bytes[offset..]).map(|what| Protected { offset, what }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings_are_found() {
        let cases: &[(&[u8], &str)] = &[
            (&[0x0f, 0x22, 0xc0], "mov cr0, rax"),
            (&[0x44, 0x0f, 0x22, 0xc0], "mov cr8, rax"),
            (&[0x0f, 0x23, 0xf8], "mov dr7, rax"),
            (&[0x0f, 0x30], "wrmsr"),
            (&[0x0f, 0x01, 0x10], "lgdt [rax]"),
            (&[0x0f, 0x01, 0x18], "lidt [rax]"),
            (&[0x0f, 0x01, 0xf0], "lmsw ax"),
            (&[0x0f, 0x00, 0xd8], "ltr ax"),
            (&[0x0f, 0x00, 0x10], "lldt [rax]"),
            (&[0x0f, 0x01, 0xd1], "xsetbv"),
            (&[0x0f, 0x01, 0xc2], "vmlaunch"),
            (&[0x0f, 0x01, 0xd8], "vmrun"),
            (&[0xf3, 0x0f, 0xc7, 0x30], "vmxon [rax]"),
            (&[0x0f, 0xc7, 0x18], "xrstors [rax]"),
            (&[0x66, 0x0f, 0x38, 0x80, 0x00], "invept"),
            (&[0x0f, 0x06], "clts"),
        ];
        for (bytes, name) in cases {
            assert!(find_protected(bytes).is_some(), "{name} not found");
        }
    }

    #[test]
    fn ordinary_and_read_only_system_instructions_pass() {
        let cases: &[(&[u8], &str)] = &[
            (&[0x0f, 0x20, 0xc0], "mov rax, cr0"),
            (&[0x0f, 0x32], "rdmsr"),
            (&[0x0f, 0x01, 0x00], "sgdt [rax]"),
            (&[0x0f, 0x01, 0xca], "clac"),
            (&[0x0f, 0x01, 0xcb], "stac"),
            (&[0x0f, 0x01, 0xf9], "rdtscp"),
            (&[0x0f, 0x00, 0xc8], "str eax"),
            (&[0x0f, 0xc7, 0xf0], "rdrand eax"),
            (&[0x0f, 0x05], "syscall"),
            (&[0x48, 0x89, 0xc3, 0xc3], "mov rbx, rax; ret"),
            (&[0x0f, 0x38, 0x00, 0xc1], "pshufb"),
        ];
        for (bytes, name) in cases {
            assert_eq!(find_protected(bytes), None, "{name} refused");
        }
    }

    #[test]
    fn an_unaligned_mov_cr0_inside_an_immediate_is_found() {
        // mov eax, 0xc3c0220f; ret: at offset 1 the immediate is `mov cr0, rax; ret`.
        let bytes = [0xb8, 0x0f, 0x22, 0xc0, 0xc3, 0xc3];
        assert_eq!(find_protected(&bytes), Some(Protected { offset: 1, what: "mov crN, r (control registers)" }));
    }

    #[test]
    fn a_run_cut_inside_an_opcode_is_refused() {
        for tail in [&[0x90, 0x0f][..], &[0x0f, 0x01], &[0x0f, 0x00], &[0x0f, 0xc7], &[0x0f, 0x38]] {
            assert!(find_protected(tail).is_some(), "{tail:x?}");
        }
        assert_eq!(find_protected(&[0x90, 0xc3]), None);
    }
}
