//! Crafted ELF executables, made at run time (no binaries in the tree):
//! a minimal valid one and the malformed variants a hostile user would
//! hand to `execve`. Shared by `utest` (its loader tests) and `hostile`.

/// `mov edi, 7; mov eax, 60; syscall`: exit(7).
pub const EXIT7: [u8; 12] = [0xbf, 7, 0, 0, 0, 0xb8, 60, 0, 0, 0, 0x0f, 0x05];

const VADDR: u64 = 0x40_0000;
const EHDR: usize = 64;
const PHDR: usize = 56;
// Field offsets in the file header and in program header 0.
pub const E_PHOFF: usize = 32;
pub const E_PHENTSIZE: usize = 54;
pub const E_PHNUM: usize = 56;
pub const P_OFFSET: usize = EHDR + 8;
pub const P_FILESZ: usize = EHDR + 32;
pub const P_MEMSZ: usize = EHDR + 40;

/// A static ET_EXEC whose one read-execute segment (the whole file, at
/// 0x40_0000) runs `EXIT7`. Linux runs it too.
pub fn tiny() -> Vec<u8> {
    let code_at = (EHDR + PHDR) as u64;
    let mut f = Vec::new();
    f.extend_from_slice(b"\x7fELF\x02\x01\x01\0");
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&(VADDR + code_at).to_le_bytes()); // e_entry
    f.extend_from_slice(&(EHDR as u64).to_le_bytes()); // e_phoff
    f.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    f.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    for v in [EHDR as u16, PHDR as u16, 1, 64, 0, 0] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    let size = code_at + EXIT7.len() as u64;
    f.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    f.extend_from_slice(&5u32.to_le_bytes()); // PF_R | PF_X
    for v in [0, VADDR, VADDR, size, size, 4096] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(&EXIT7);
    f
}

pub fn put16(f: &mut [u8], at: usize, v: u16) {
    f[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

pub fn put64(f: &mut [u8], at: usize, v: u64) {
    f[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// How Linux treats a crafted file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnLinux {
    /// `execve` fails with this errno (before the point of no return):
    /// this kernel must give the same.
    Refused(i32),
    /// Linux gets past the point of no return and then kills the process
    /// (or, for a huge bss, may even run it); this kernel refuses it up
    /// front with the errno given.
    LateFailure(i32),
}

/// The crafted files: (name, bytes, how each kernel answers).
pub fn hostile_files() -> Vec<(&'static str, Vec<u8>, OnLinux)> {
    let with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut f = tiny();
        edit(&mut f);
        f
    };
    vec![
        ("phdrs-cut-short", tiny()[..EHDR + 20].to_vec(), OnLinux::Refused(libc::ENOEXEC)),
        ("huge-e_phoff", with(&|f| put64(f, E_PHOFF, u64::MAX - 8)), OnLinux::Refused(libc::ENOEXEC)),
        ("e_phnum-65535", with(&|f| put16(f, E_PHNUM, 65535)), OnLinux::Refused(libc::ENOEXEC)),
        ("e_phentsize-1", with(&|f| put16(f, E_PHENTSIZE, 1)), OnLinux::Refused(libc::ENOEXEC)),
        ("p_offset-past-eof", with(&|f| put64(f, P_OFFSET, 1 << 40)), OnLinux::LateFailure(libc::ENOEXEC)),
        ("p_offset-overflows", with(&|f| put64(f, P_OFFSET, u64::MAX - 4)), OnLinux::LateFailure(libc::ENOEXEC)),
        (
            "p_filesz-past-eof",
            with(&|f| {
                put64(f, P_FILESZ, 1 << 20);
                put64(f, P_MEMSZ, 1 << 20)
            }),
            OnLinux::LateFailure(libc::ENOEXEC),
        ),
        ("p_memsz-0", with(&|f| put64(f, P_MEMSZ, 0)), OnLinux::LateFailure(libc::EINVAL)),
        ("p_memsz-64GiB", with(&|f| put64(f, P_MEMSZ, 64 << 30)), OnLinux::LateFailure(libc::ENOMEM)),
        ("p_memsz-overflows", with(&|f| put64(f, P_MEMSZ, u64::MAX)), OnLinux::LateFailure(libc::EINVAL)),
    ]
}

/// A small deterministic generator (xorshift64*), so a failing mutation
/// can be replayed from its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// `tiny()` with a few header bytes or fields replaced at random (the
/// code is left alone, so whatever runs is still the exit call or a fault).
pub fn mutated(rng: &mut Rng) -> Vec<u8> {
    let mut f = tiny();
    let header = EHDR + PHDR;
    for _ in 0..1 + rng.next() % 4 {
        let v = rng.next();
        let at = (rng.next() % header as u64) as usize;
        match rng.next() % 3 {
            0 => f[at] = v as u8,
            1 => put16(&mut f, at.min(header - 2), v as u16),
            _ => put64(&mut f, at.min(header - 8), v),
        }
    }
    if rng.next().is_multiple_of(4) {
        let keep = (rng.next() % f.len() as u64) as usize;
        f.truncate(keep);
    }
    f
}
