//! The module area: the kernel-half addresses loadable modules run at,
//! `BASE` and up, within 2 GiB of the kernel image so that a module's
//! calls reach the kernel's exports. It sits under the kernel root's last
//! entry, which every address space shares, so a module loaded while
//! processes run is mapped in all of them. Its tables are declared through
//! the NK on first use and kept; leaves come and go with the modules.

use super::frames::Frame;
use super::vm::{Batch, VmError, leaf_table, walk_or_create};
use super::walk;
use alloc::vec::Vec;
use klib::module::Kind;
use nk_model::layout::{PAGE_SIZE, table_index};
use nk_model::pte::{Pte, PteFlags};

/// The area's first address: the last GiB of the address space.
pub const BASE: u64 = 0xffff_ffff_c000_0000;
/// Its size: 256 MiB, room for any set of modules (each at most
/// `klib::module::MAX_IMAGE`).
pub const SIZE: u64 = 256 << 20;

fn in_area(va: u64, pages: u64) -> bool {
    va.is_multiple_of(PAGE_SIZE) && va >= BASE && pages <= SIZE / PAGE_SIZE && va - BASE <= SIZE - pages * PAGE_SIZE
}

/// Tables the area declared: never freed (the first, hanging from a
/// pinned table, is frozen there for good).
static TABLES: spin::Mutex<Vec<Frame>> = spin::Mutex::new(Vec::new());

/// Maps `pages` at `va` in page order: data and read-only pages (and any
/// table the area still needs) in one crossing, then each text page by
/// `map_code`, which vets it first (one crossing each). On a refusal what
/// was mapped stays mapped; `unmap` clears it.
pub fn map(va: u64, pages: &[(Frame, Kind)]) -> Result<(), VmError> {
    if !in_area(va, pages.len() as u64) {
        return Err(VmError::NotLowerHalf { va });
    }
    let root = nk::api::kernel_root();
    let mut batch = Batch::new();
    let mut text = Vec::new();
    // Tables this call declares; all given back if it stops before the
    // batch runs (`walk_or_create` does so itself when out of frames).
    let mut new_tables = Vec::new();
    for (i, &(frame, kind)) in pages.iter().enumerate() {
        let page = va + i as u64 * PAGE_SIZE;
        let table = walk_or_create(root, page, &mut batch, &mut new_tables)?;
        if batch.entry(table, table_index(page, 1)).is_present() {
            for f in new_tables {
                let _ = super::frames::free(f);
            }
            return Err(VmError::AlreadyMapped { va: page });
        }
        let flags = match kind {
            Kind::Text => {
                text.push((table, table_index(page, 1), frame));
                continue;
            }
            Kind::ReadOnly => PteFlags::NO_EXECUTE,
            Kind::Data => PteFlags::NO_EXECUTE | PteFlags::WRITABLE,
        };
        batch.write(table, table_index(page, 1), Pte::new(frame.addr(), flags | PteFlags::PRESENT).bits());
    }
    let result = batch.submit();
    // Declared or not, they are the area's now.
    TABLES.lock().extend(new_tables);
    result?;
    for (table, index, frame) in text {
        nk::api::map_code(table, index, Pte::new(frame.addr(), PteFlags::PRESENT).bits())?;
    }
    Ok(())
}

/// Writes one leaf at `va` as given, rights and all, and returns its
/// table: what a loader that skipped `klib::module`'s checks would do (the
/// attack catalog's `module-writable-code`). The NK still judges it.
pub fn map_raw(va: u64, leaf: Pte) -> Result<u64, VmError> {
    if !in_area(va, 1) {
        return Err(VmError::NotLowerHalf { va });
    }
    let mut batch = Batch::new();
    let mut new_tables = Vec::new();
    let table = walk_or_create(nk::api::kernel_root(), va, &mut batch, &mut new_tables)?;
    batch.write(table, table_index(va, 1), leaf.bits());
    let result = batch.submit();
    TABLES.lock().extend(new_tables);
    result.map(|()| table)
}

/// Clears the `pages` leaves from `va`, in one crossing (pages not mapped
/// are skipped). Once it returns no mapping of them is left anywhere: the
/// area is the only place their frames were mapped.
pub fn unmap(va: u64, pages: u64) -> Result<(), VmError> {
    if !in_area(va, pages) {
        return Err(VmError::NotLowerHalf { va });
    }
    let root = nk::api::kernel_root();
    let mut batch = Batch::new();
    for i in 0..pages {
        let page = va + i * PAGE_SIZE;
        if let Some(table) = leaf_table(root, page)
            && walk::entry(table * PAGE_SIZE, table_index(page, 1)).is_present()
        {
            batch.write(table, table_index(page, 1), 0);
        }
    }
    batch.submit()
}

/// Tables the area holds (for `lsmod`'s memory line and the leak tests).
pub fn tables() -> usize {
    TABLES.lock().len()
}
