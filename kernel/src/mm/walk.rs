//! Read-only page-table walks: what a virtual address maps to, with the
//! effective rights of every level combined. Used by tests now and by the
//! auditor later; it never writes an entry.
#![allow(unsafe_code)]

use nk_model::layout::{is_canonical, table_index};
use nk_model::pte::{Pte, PteFlags};

/// The effective translation of one virtual address.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Translation {
    pub phys: u64,
    /// Page size in bytes (4 KiB, 2 MiB or 1 GiB).
    pub page_size: u64,
    pub writable: bool,
    pub user: bool,
    pub executable: bool,
}

/// The live root table's physical address (reading CR3 is unprivileged
/// for the purpose of the scanner: only writes are protected).
pub fn current_root() -> u64 {
    x86_64::registers::control::Cr3::read().0.start_address().as_u64()
}

pub fn entry(table: u64, index: usize) -> Pte {
    let va = nk::layout::phys_to_virt(table) as *const u64;
    // SAFETY: `table` is a page-table page reached from the live root; the
    // direct map covers all RAM, and page tables are only read here.
    Pte::from_bits(unsafe { va.add(index).read_volatile() })
}

/// Reads one byte at `va`, for tests that check what a fresh mapping shows.
/// `None` when the live tables do not map it for the kernel.
pub fn read_u8(va: u64) -> Option<u8> {
    let t = translate(current_root(), va)?;
    if t.user {
        return None; // SMAP would fault the read
    }
    // SAFETY: the live tables map `va` for supervisor reads, checked above.
    Some(unsafe { (va as *const u8).read_volatile() })
}

/// Translates `va` under the root table at `root`.
pub fn translate(root: u64, va: u64) -> Option<Translation> {
    if !is_canonical(va) {
        return None;
    }
    let (mut writable, mut user, mut executable) = (true, true, true);
    let mut table = root;
    for level in (1..=4u8).rev() {
        let e = entry(table, table_index(va, level));
        if !e.is_present() {
            return None;
        }
        let f = e.flags();
        writable &= f.contains(PteFlags::WRITABLE);
        user &= f.contains(PteFlags::USER);
        executable &= !f.contains(PteFlags::NO_EXECUTE);
        if level == 1 || (level <= 3 && e.is_huge()) {
            let page_size = 1u64 << (12 + 9 * (level as u64 - 1));
            return Some(Translation {
                phys: e.addr() & !(page_size - 1) | (va & (page_size - 1)),
                page_size,
                writable,
                user,
                executable,
            });
        }
        table = e.addr();
    }
    None
}

crate::ktest!(
    fn kernel_image_is_w_xor_x() {
        let image = nk::layout::image();
        let root = current_root();
        let t = translate(root, image.text.start).ok_or("text not mapped")?;
        crate::kassert!(t.executable && !t.writable && !t.user, "text: {:?}", t);
        let r = translate(root, image.rodata.start).ok_or("rodata not mapped")?;
        crate::kassert!(!r.executable && !r.writable, "rodata: {:?}", r);
        // NK data (descriptor tables, counters, boot information) is
        // read-only to outer code on a protected build (I8, I9); outer data
        // is writable.
        let n = translate(root, image.nk_data.start).ok_or("NK data not mapped")?;
        crate::kassert!(!n.executable && n.writable == (nk::BACKEND == "native"), "NK data: {:?}", n);
        let d = translate(root, image.nk_data.end).ok_or("outer data not mapped")?;
        crate::kassert!(!d.executable && d.writable, "outer data: {:?}", d);
        // Every page of the image: writable xor executable. The linker's
        // hole between read-only data and data is not part of it (free RAM,
        // not mapped at the image address).
        let (hole_start, hole_end) = image.hole();
        let mut va = image.text.start;
        while va < image.data.end {
            let pa = va - nk::layout::KERNEL_BASE;
            if pa >= hole_start && pa < hole_end {
                crate::kassert!(translate(root, va).is_none(), "hole page {:#x} is mapped", va);
                va += 4096;
                continue;
            }
            let t = translate(root, va).ok_or(alloc::format!("image page {:#x} not mapped", va))?;
            crate::kassert!(!(t.writable && t.executable), "page {:#x} is W+X", va);
            crate::kassert!(!t.user, "page {:#x} is user-accessible", va);
            va += 4096;
        }
        Ok(())
    }
);

crate::ktest!(
    fn direct_map_alias_of_code_is_read_only() {
        let image = nk::layout::image();
        let root = current_root();
        let (text_phys, _) = image.text.phys();
        let alias = translate(root, nk::layout::phys_to_virt(text_phys)).ok_or("no direct-map alias")?;
        crate::kassert_eq!(alias.phys, text_phys);
        crate::kassert!(!alias.writable && !alias.executable, "alias of text: {:?}", alias);
        Ok(())
    }
);

crate::ktest!(
    fn nothing_in_the_user_half_is_mapped() {
        let root = current_root();
        // The kernel's tables map nothing in the lower half: user space is empty.
        for slot in 0..256 {
            crate::kassert!(!entry(root, slot).is_present(), "PML4 slot {} is present", slot);
        }
        Ok(())
    }
);

crate::ktest!(
    fn the_cr3_page_is_not_executable_outside_the_nk() {
        // The NK's one CR3 write sits alone on a page the kernel tables map
        // non-executable except while this CPU is inside the gate (nk's
        // cr3.rs): outer code cannot jump to it. Native keeps it executable.
        unsafe extern "C" {
            static nk_cr3_load: u8;
        }
        let va = &raw const nk_cr3_load as u64;
        let t = translate(current_root(), va).ok_or("the CR3 page is not mapped")?;
        crate::kassert_eq!(t.executable, nk::BACKEND == "native");
        // Every other page of NK text stays executable.
        let gate = translate(current_root(), nk::layout::image().nk_text.start).ok_or("NK text unmapped")?;
        crate::kassert!(gate.executable);
        Ok(())
    }
);
