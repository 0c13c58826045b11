//! The region table: allocation, declaration, each policy's rules, freeing.

use super::*;
use proptest::prelude::*;

const ARENA: u64 = 0x10_0000;

fn table() -> Regions {
    Regions::new(ARENA, 0x4000)
}

fn alloc(t: &mut Regions, len: u64, policy: Policy) -> Region {
    let r = t.plan_alloc(len, policy).unwrap();
    t.insert(r).unwrap();
    r
}

fn write(t: &mut Regions, dst: u64, len: u64) -> Result<(), MediateError> {
    let plan = t.plan_write(dst, len, true)?;
    t.commit_write(plan, dst, len);
    Ok(())
}

#[test]
fn write_once_seals_on_the_first_write() {
    let mut t = table();
    let r = alloc(&mut t, 100, Policy::WriteOnce);
    assert_eq!(r.base, ARENA);
    write(&mut t, r.base + 10, 20).unwrap();
    assert_eq!(write(&mut t, r.base + 50, 1), Err(MediateError::Sealed { base: r.base }));
    // The native build keeps the bookkeeping, not the rule.
    assert!(t.plan_write(r.base, 1, false).is_ok());
    assert_eq!(t.plan_free(r.base), Err(MediateError::Kept { base: r.base }));
}

#[test]
fn append_only_takes_writes_at_the_end_only() {
    let mut t = table();
    let r = alloc(&mut t, 64, Policy::AppendOnly);
    write(&mut t, r.base, 16).unwrap();
    write(&mut t, r.base + 16, 16).unwrap();
    assert_eq!(write(&mut t, r.base, 4), Err(MediateError::NotAtEnd { expected: r.base + 32 }));
    assert_eq!(write(&mut t, r.base + 40, 4), Err(MediateError::NotAtEnd { expected: r.base + 32 }));
    assert_eq!(write(&mut t, r.base + 32, 40), Err(MediateError::Full { base: r.base }));
    write(&mut t, r.base + 32, 32).unwrap();
    assert_eq!(write(&mut t, r.base + 64, 1), Err(MediateError::Full { base: r.base }));
}

#[test]
fn write_logged_takes_any_short_write_and_has_a_shadow() {
    let mut t = table();
    let r = alloc(&mut t, 100, Policy::WriteLogged);
    assert_eq!(r.shadow, ARENA + 128);
    write(&mut t, r.base + 5, 32).unwrap();
    write(&mut t, r.base + 5, 32).unwrap();
    assert_eq!(t.get(0).unwrap().used, 2);
    assert_eq!(write(&mut t, r.base, 33), Err(MediateError::TooLongToLog { len: 33 }));
    // The shadow is not part of the region.
    assert_eq!(write(&mut t, r.shadow, 1), Err(MediateError::Outside { addr: r.shadow, len: 1 }));
}

#[test]
fn writes_must_lie_inside_one_region() {
    let mut t = table();
    let a = alloc(&mut t, 64, Policy::WriteLogged);
    let b = alloc(&mut t, 64, Policy::WriteLogged);
    assert_eq!(b.base, a.shadow + 64);
    assert_eq!(write(&mut t, a.base + 60, 8), Err(MediateError::Outside { addr: a.base + 60, len: 8 }));
    assert_eq!(write(&mut t, 0x5000, 8), Err(MediateError::Outside { addr: 0x5000, len: 8 }));
    assert_eq!(write(&mut t, a.base, 0), Err(MediateError::BadLength { len: 0 }));
}

#[test]
fn the_arena_is_reused_after_free_and_runs_out() {
    let mut t = table();
    let a = alloc(&mut t, 0x1000, Policy::AppendOnly);
    let b = alloc(&mut t, 0x1000, Policy::AppendOnly);
    assert_eq!(t.plan_alloc(0x2001, Policy::AppendOnly), Err(MediateError::ArenaFull { len: 0x2040 }));
    let slot = t.plan_free(a.base).unwrap();
    t.remove(slot);
    let c = alloc(&mut t, 0x800, Policy::WriteOnce);
    assert_eq!(c.base, a.base);
    assert_eq!(t.plan_free(0x1234), Err(MediateError::NotARegion { addr: 0x1234 }));
    let _ = b;
}

#[test]
fn declare_takes_whole_pages_outside_everything_else() {
    let mut t = table();
    assert_eq!(t.plan_declare(0x20_0100, 0x1000, Policy::WriteOnce), Err(MediateError::Unaligned { addr: 0x20_0100 }));
    assert_eq!(t.plan_declare(0x20_0000, 0x800, Policy::WriteOnce), Err(MediateError::Unaligned { addr: 0x800 }));
    assert_eq!(t.plan_declare(ARENA, 0x1000, Policy::WriteOnce), Err(MediateError::Overlap { addr: ARENA }));
    let r = t.plan_declare(0x20_0000, 0x2000, Policy::WriteOnce).unwrap();
    assert_eq!(r.used, 1, "declared write-once data is sealed at once");
    t.insert(r).unwrap();
    assert_eq!(t.plan_declare(0x20_1000, 0x1000, Policy::AppendOnly), Err(MediateError::Overlap { addr: 0x20_0000 }));
    let logged = t.plan_declare(0x30_0000, 0x1000, Policy::WriteLogged).unwrap();
    assert_eq!((logged.used, logged.shadow), (0, ARENA));
    assert_eq!(write(&mut t, 0x20_0008, 8), Err(MediateError::Sealed { base: 0x20_0000 }));
}

#[test]
fn the_table_has_a_limit() {
    let mut t = Regions::new(ARENA, 0x10_0000);
    for _ in 0..MAX_REGIONS {
        alloc(&mut t, 8, Policy::AppendOnly);
    }
    assert_eq!(t.plan_alloc(8, Policy::AppendOnly), Err(MediateError::TooManyRegions));
}

#[test]
fn errors_cross_the_wire() {
    let all = [
        MediateError::BadPolicy { raw: 9 },
        MediateError::BadLength { len: 0 },
        MediateError::Unaligned { addr: 3 },
        MediateError::Overlap { addr: 4 },
        MediateError::ArenaFull { len: 5 },
        MediateError::TooManyRegions,
        MediateError::NotARegion { addr: 6 },
        MediateError::Outside { addr: 7, len: 0 },
        MediateError::Sealed { base: 8 },
        MediateError::NotAtEnd { expected: 9 },
        MediateError::Full { base: 10 },
        MediateError::TooLongToLog { len: 11 },
        MediateError::Kept { base: 12 },
        MediateError::NotRam { addr: 13 },
        MediateError::MonitorLocked,
        MediateError::BadSwitch { raw: 14 },
        MediateError::ReservedFlags { flags: 15 },
    ];
    for e in all {
        let (code, detail) = e.to_wire();
        assert_eq!(MediateError::from_wire(code, detail), Some(e));
    }
    assert_eq!(MediateError::from_wire(0, 0), None);
}

proptest! {
    /// Whatever the calls, regions never overlap each other or their
    /// shadows, stay inside the arena, and a write-once region takes one
    /// write, an append-only region only grows.
    #[test]
    fn regions_stay_disjoint_and_policies_hold(calls in proptest::collection::vec((0u8..4, 1u64..0x900, 0u64..0x4000), 1..60)) {
        let mut t = table();
        for (kind, len, at) in calls {
            match kind {
                0 => {
                    let policy = Policy::from_raw(len % 3 + 1).unwrap();
                    if let Ok(r) = t.plan_alloc(len, policy) {
                        t.insert(r).unwrap();
                    }
                }
                1 => {
                    let before: std::vec::Vec<Region> = t.iter().copied().collect();
                    let dst = ARENA + at;
                    let wlen = len % 40 + 1;
                    if let Ok(plan) = t.plan_write(dst, wlen, true) {
                        let r = plan.region;
                        match r.policy {
                            Policy::WriteOnce => prop_assert_eq!(r.used, 0),
                            Policy::AppendOnly => prop_assert_eq!(dst, r.base + r.used),
                            Policy::WriteLogged => prop_assert!(wlen as usize <= MAX_LOGGED_WRITE),
                        }
                        prop_assert!(r.contains(dst, wlen));
                        t.commit_write(plan, dst, wlen);
                    }
                    prop_assert_eq!(before.len(), t.iter().count());
                }
                _ => {
                    let base = t.iter().nth(at as usize % 4).map(|r| r.base);
                    if let Some(base) = base
                        && let Ok(slot) = t.plan_free(base)
                    {
                        prop_assert_eq!(t.remove(slot).unwrap().used, 0);
                    }
                }
            }
            let spans: std::vec::Vec<(u64, u64)> = t.iter().flat_map(|r| r.arena_spans()).flatten().collect();
            for (i, a) in spans.iter().enumerate() {
                prop_assert!(a.0 >= ARENA && a.0 + a.1 <= ARENA + 0x4000);
                for b in &spans[i + 1..] {
                    prop_assert!(!overlaps(*a, *b), "{:?} overlaps {:?}", a, b);
                }
            }
        }
    }
}
