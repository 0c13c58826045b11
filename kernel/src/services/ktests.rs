//! In-kernel tests of the services: each policy through the real gate, on
//! both builds (the native build keeps the books, not the rules).

use crate::{kassert, kassert_eq, ktest};
use nk::api::{NkError, nk_alloc, nk_declare, nk_free, nk_write};
use nk_model::mediate::{MediateError, Policy};

fn protected() -> bool {
    nk::BACKEND != "native"
}

fn read(addr: u64, len: usize) -> alloc::vec::Vec<u8> {
    super::protected::read(addr, len)
}

fn refused(r: Result<(), NkError>, expected: MediateError) -> Result<(), alloc::string::String> {
    if protected() {
        kassert_eq!(r, Err(NkError::Mediate(expected)));
    } else {
        kassert_eq!(r, Ok(()));
    }
    Ok(())
}

ktest!(
    fn write_once_takes_one_write() {
        let base = nk_alloc(64, Policy::WriteOnce).map_err(|e| alloc::format!("{e}"))?;
        // A fresh region is zeroed.
        kassert_eq!(read(base, 64), alloc::vec![0u8; 64]);
        kassert_eq!(nk_write(base + 8, b"sealed"), Ok(()));
        kassert_eq!(&read(base + 8, 6)[..], b"sealed");
        let refusals = nk::api::op_counts()[18].refused;
        refused(nk_write(base + 20, b"again"), MediateError::Sealed { base })?;
        if protected() {
            // Refusals are counted.
            kassert_eq!(nk::api::op_counts()[18].refused, refusals + 1);
            kassert_eq!(read(base + 20, 5), alloc::vec![0u8; 5]);
        }
        kassert_eq!(nk_free(base), Err(NkError::Mediate(MediateError::Kept { base })));
        Ok(())
    }
);

ktest!(
    fn append_only_grows_at_the_end() {
        let base = nk_alloc(32, Policy::AppendOnly).map_err(|e| alloc::format!("{e}"))?;
        kassert_eq!(nk_write(base, b"0123456789abcdef"), Ok(()));
        refused(nk_write(base, b"X"), MediateError::NotAtEnd { expected: base + 16 })?;
        if protected() {
            kassert_eq!(nk_write(base + 16, b"0123456789abcdefg"), Err(NkError::Mediate(MediateError::Full { base })));
            kassert_eq!(nk_write(base + 16, b"0123456789abcdef"), Ok(()));
            kassert_eq!(&read(base, 32)[..], b"0123456789abcdef0123456789abcdef");
        }
        Ok(())
    }
);

ktest!(
    fn write_logged_records_old_new_and_caller() {
        let base = nk_alloc(64, Policy::WriteLogged).map_err(|e| alloc::format!("{e}"))?;
        let before = nk::services::write_log_head().next_seq;
        kassert_eq!(nk_write(base + 4, b"first"), Ok(()));
        kassert_eq!(nk_write(base + 6, b"XY"), Ok(()));
        let head = nk::services::write_log_head();
        kassert_eq!(head.next_seq, before + 2);
        let r = nk::services::write_record(head.next_seq - 1).ok_or("the newest record is kept")?;
        kassert_eq!((r.dst, r.len), (base + 6, 2));
        kassert_eq!(&r.old[..2], b"rs");
        kassert_eq!(&r.new[..2], b"XY");
        let text = nk::layout::image().text;
        kassert!(text.contains(r.caller), "caller {:#x} is not kernel code", r.caller);
        // A logged write fits a record.
        kassert_eq!(nk_write(base, &[0u8; 33]), Err(NkError::Mediate(MediateError::TooLongToLog { len: 33 })));
        // Replaying the whole log over the shadow gives the live bytes.
        let region = nk::services::region(base).ok_or("the region is listed")?;
        let mut image = read(region.shadow, 64);
        let records = super::proclist::log_records();
        kassert_eq!(nk_model::chain::replay(&mut image, base, &records), Ok(()));
        kassert_eq!(image, read(base, 64));
        Ok(())
    }
);

ktest!(
    fn writes_outside_regions_are_refused() {
        let mut local = [0u8; 8];
        let outside = local.as_mut_ptr() as u64;
        let r = nk_write(outside, b"12345678");
        kassert!(matches!(r, Err(NkError::Mediate(MediateError::Outside { .. }))), "{:?}", r);
        kassert_eq!(local, [0u8; 8]);
        kassert_eq!(nk_alloc(0, Policy::WriteOnce), Err(NkError::Mediate(MediateError::BadLength { len: 0 })));
        Ok(())
    }
);

ktest!(
    fn declared_frames_turn_read_only_and_back() {
        use nk::FrameKind;
        let frame = crate::mm::frames::alloc().ok_or("a frame")?;
        frame.write_at(0, b"existing data");
        let base = frame.virt() as u64;
        kassert_eq!(nk_declare(base, 4096, Policy::AppendOnly), Ok(()));
        // Declaring keeps the contents.
        kassert_eq!(&read(base, 13)[..], b"existing data");
        if protected() {
            kassert_eq!(nk::api::frame_kind(frame.number()), Some(FrameKind::Mediated));
        }
        kassert_eq!(
            nk_declare(base, 4096, Policy::WriteOnce),
            Err(NkError::Mediate(MediateError::Overlap { addr: base }))
        );
        // Never appended to: it can be given back, writable again.
        kassert_eq!(nk_free(base), Ok(()));
        kassert_eq!(
            nk::api::frame_kind(frame.number()).filter(|_| protected()).unwrap_or(FrameKind::Data),
            FrameKind::Data
        );
        frame.write_at(0, b"writable again");
        kassert_eq!(crate::mm::frames::free(frame), Ok(()));
        // Kernel code is not data: refused on the protected kernel.
        if protected() {
            let code = nk::layout::phys_to_virt(
                (crate::ktest::run_all as *const () as usize as u64 - nk::layout::KERNEL_BASE) & !0xfff,
            );
            let r = nk_declare(code, 4096, Policy::WriteOnce);
            kassert!(matches!(r, Err(NkError::Vmmu { .. })), "{:?}", r);
        }
        Ok(())
    }
);

ktest!(
    fn the_system_call_table_is_sealed() {
        kassert!(super::systable::sealed() || !super::systable_on());
        kassert!(super::systable::lookup(39).is_some(), "getpid has a handler");
        kassert!(super::systable::lookup(500).is_none());
        let addr = super::systable::entry_address(39).ok_or("a table")?;
        if protected() {
            let r = nk_write(addr, &0u64.to_le_bytes());
            kassert!(matches!(r, Err(NkError::Mediate(MediateError::Sealed { .. }))), "{:?}", r);
        }
        Ok(())
    }
);

ktest!(
    fn the_audit_log_chains_every_append() {
        let before = nk::services::audit_head();
        for i in 0..3 {
            let e = nk_model::chain::AuditEntry { pid: 7, nr: i, ..Default::default() };
            kassert_eq!(nk::api::audit_append(&e), Ok(()));
        }
        let head = nk::services::audit_head();
        kassert_eq!(head.next_seq, before.next_seq + 3);
        let last = nk::services::audit_record(head.next_seq - 1).ok_or("kept")?;
        kassert_eq!((last.entry.pid, last.entry.nr, last.hash), (7, 2, head.head));
        kassert_eq!(super::audit::verify().map(|n| n >= 3), Ok(true));
        Ok(())
    }
);
