//! Property tests: random sequences of outer-kernel calls against the
//! simulated machine, with every call checked (see `driver`) and the
//! invariant checker run after every one.

use super::adversary::{Gen, Mix};
use super::driver::Tally;
use super::machine::{FIRST_DATA, NX, P, U, W};
use super::sim;
use crate::vmmu::{FrameKind, Op, RawPfn, RawPte};
use proptest::collection::vec;
use proptest::prelude::any;
use proptest::test_runner::{Config, TestRunner};
use std::cell::RefCell;
use std::println;
use std::vec::Vec;

const CASES: u32 = 256;

fn config() -> Config {
    // Shrinking replays whole sequences; bound it so a failure reports in
    // seconds rather than minutes.
    Config {
        cases: CASES,
        failure_persistence: None,
        max_shrink_iters: 4096,
        max_shrink_time: 20_000,
        ..Config::default()
    }
}

/// Runs `CASES` sequences of `steps` calls made with `mix`; returns the tally.
fn drive(name: &str, steps: usize, mix: Mix) -> Tally {
    let tally = RefCell::new(Tally::default());
    let mut runner = TestRunner::new(config());
    let result = runner.run(&vec(any::<u64>(), steps), |seeds| {
        let mut frames = Vec::new();
        let mut s = sim(&mut frames);
        let mut tally = tally.borrow_mut();
        for seed in seeds {
            let call = Gen::new(&s, seed, mix).call();
            s.run(&call, &mut tally);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    let tally = tally.into_inner();
    println!("{name}: {tally:?}");
    tally
}

#[test]
fn random_calls_keep_every_invariant() {
    let mix = Mix { batch: 15, declare: 22, remove: 14, unlink: 14, cr3: 8, map_code: 5, release_code: 3 };
    let t = drive("random calls", 250, mix);
    assert!(t.ops >= 60_000, "{t:?}");
    // Every rule is probed but two the outer kernel cannot reach (unit tests
    // cover them): NoDirectMapAlias (12), since every alias lies in a pinned
    // table and never goes away, and RefOverflow (23), which needs 2^32
    // entries. ProtectedInstruction (26), NotCodeLeaf (27) and
    // ImageCodeRemapped (28), NotCode (29) and ImageCodeReleased (30)
    // included.
    let unprobed: Vec<usize> = (1..=30).filter(|&code| ![12, 23].contains(&code) && t.by_rule[code] == 0).collect();
    assert!(unprobed.is_empty(), "rules never refused: {unprobed:?}");
    // Direct-map aliases of data and of page tables are attacked (and every
    // attempt is refused: the driver checks it).
    assert!(t.alias_data >= 1000 && t.alias_ptp >= 1000, "{t:?}");
    // The bias works: a good share succeeds, and every operation does.
    assert!(t.accepted * 100 >= t.ops * 35, "{t:?}");
    assert!(t.declared * 100 >= t.ops * 5 && t.removed * 100 >= t.ops, "{t:?}");
    assert!(t.loaded * 100 >= t.ops * 2 && t.written * 100 >= t.ops * 10, "{t:?}");
}

#[test]
fn batches_do_what_their_operations_do_one_by_one() {
    let mix = Mix { batch: 100, declare: 25, remove: 15, unlink: 15, cr3: 0, map_code: 0, release_code: 0 };
    let t = drive("batches", 100, mix);
    assert!(t.ops >= 40_000, "{t:?}");
    assert!(t.accepted * 100 >= t.ops * 35, "{t:?}");
}

/// The common-case check (`check_common`, what most entries of a fork, a
/// fault-around or a teardown take) is compared with the full check on
/// every write the driver makes; this makes sure it is taken often enough
/// for that comparison to mean something.
#[test]
fn the_common_case_check_agrees_with_the_full_one() {
    let mix = Mix { batch: 40, declare: 22, remove: 10, unlink: 14, cr3: 2, map_code: 0, release_code: 0 };
    let t = drive("common case", 150, mix);
    assert!(t.common >= 2_000 && t.common * 100 >= t.written * 20, "{t:?}");
}

/// `map_code` often, on frames the outer kernel filled with benign code or
/// with a protected opcode planted anywhere, and `release_code` of them:
/// the driver checks that every frame made code holds no protected opcode,
/// that every refusal by vetting names the opcode's offset and changes
/// nothing, and that every frame released was unmapped and is zeroed.
#[test]
fn code_is_vetted_before_it_becomes_executable() {
    let mix = Mix { batch: 5, declare: 20, remove: 12, unlink: 14, cr3: 3, map_code: 40, release_code: 20 };
    let t = drive("code", 80, mix);
    assert!(t.calls >= 20_000, "{t:?}");
    // Frames become code (and code is mapped again), planted opcodes are
    // found, and map_code meets every rule it can refuse by but the two the
    // outer kernel cannot reach (NoDirectMapAlias, RefOverflow): the
    // table's, the leaf's, the frame's kind and mappings, frozen entries,
    // image code mapped away from its boot mapping.
    assert!(t.became_code >= 600 && t.mapped_code >= t.became_code + 50, "{t:?}");
    assert!(t.vetting_refused >= 400 && t.map_code_by_rule[26] == t.vetting_refused, "{t:?}");
    let rules = [1, 3, 5, 7, 8, 13, 19, 21, 22, 24, 26, 27, 28];
    let unprobed: Vec<usize> = rules.into_iter().filter(|&code| t.map_code_by_rule[code] < 10).collect();
    assert!(unprobed.is_empty(), "map_code rules (nearly) never refused: {unprobed:?}, {t:?}");
    let others = (0..31).filter(|code| !rules.contains(code));
    assert!(others.into_iter().all(|code| t.map_code_by_rule[code] == 0), "{t:?}");
    // Vetted frames are unmapped and released (the driver checks each one
    // is zeroed data, flushed first), and release_code meets each of its
    // rules the outer kernel can reach: out of range, still mapped, not
    // code, image code.
    assert!(t.released >= 150, "{t:?}");
    let rules = [1, 8, 29, 30];
    let unprobed: Vec<usize> = rules.into_iter().filter(|&code| t.release_code_by_rule[code] < 10).collect();
    assert!(unprobed.is_empty(), "release_code rules (nearly) never refused: {unprobed:?}, {t:?}");
    let others = (0..31).filter(|code| !rules.contains(code));
    assert!(others.into_iter().all(|code| t.release_code_by_rule[code] == 0), "{t:?}");
}

/// Builds an address space with random mappings, tears it down in one
/// batch, and expects the frame table exactly as booted.
/// The end of a teardown of the tables `user_tables` made, once the leaves
/// are cleared: each table unlinked from its parent, then removed, the
/// root last.
fn unlink_and_remove([l4, l3, l2, l1]: [u64; 4]) -> [Op; 7] {
    [
        Op::Write(RawPfn(l2), 0, RawPte(0)),
        Op::Remove(RawPfn(l1)),
        Op::Write(RawPfn(l3), 0, RawPte(0)),
        Op::Remove(RawPfn(l2)),
        Op::Write(RawPfn(l4), 0, RawPte(0)),
        Op::Remove(RawPfn(l3)),
        Op::Remove(RawPfn(l4)),
    ]
}

#[test]
fn an_address_space_torn_down_leaves_no_trace() {
    let mut runner = TestRunner::new(config());
    let ops = RefCell::new(0u64);
    let result = runner.run(&vec((0u64..400, 0u64..512, any::<bool>()), 1..64), |maps| {
        let mut frames = Vec::new();
        let mut s = sim(&mut frames);
        let booted = s.v.frames.to_vec();
        let [l4, l3, l2, l1] = s.user_tables(FIRST_DATA + 500);
        let mut teardown = Vec::new();
        for (i, &(frame, index, writable)) in maps.iter().enumerate() {
            let pfn = FIRST_DATA + 550 + frame;
            let rights = if writable { W | NX } else { 0 };
            let entry = pfn << 12 | P | U | rights;
            let slot = (index as usize + i) % 512;
            if s.v.write_pte(&mut s.mem, RawPfn(l1), slot, RawPte(entry)).is_ok() {
                teardown.push(Op::Write(RawPfn(l1), slot, RawPte(0)));
            }
        }
        s.assert_clean();
        teardown.extend(unlink_and_remove([l4, l3, l2, l1]));
        s.v.apply_batch(&mut s.mem, &teardown).unwrap();
        s.v.finish(&mut s.mem);
        s.assert_clean();
        assert!(s.v.frames == &booted[..], "the frame table differs from the booted one");
        assert!([l4, l3, l2, l1].iter().all(|&p| s.v.frame(p).unwrap().kind() == FrameKind::Data));
        *ops.borrow_mut() += 7 + maps.len() as u64 + teardown.len() as u64;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    println!("teardown: {} operations", ops.into_inner());
}

/// An exit as the kernel makes it, in one crossing: the switch away from
/// the dying space, its teardown, its root last. The NK applies a batch's
/// switch between its vMMU runs, as `load_cr3`; here the same composition
/// runs against the model, with the switch at a random place. The root
/// goes only once no CPU runs on it: before the switch the batch stops
/// there (`LiveRoot`, nothing after it applied), after it the frame table
/// is the booted one again.
#[test]
fn an_exit_removes_its_root_only_after_switching_away() {
    use crate::vmmu::{Entry, VmmuError};
    let mut runner = TestRunner::new(config());
    let result = runner.run(&(vec((0u64..400, 0u64..512), 0..32), 0usize..64), |(maps, at)| {
        let mut frames = Vec::new();
        let mut s = sim(&mut frames);
        let booted = s.v.frames.to_vec();
        let [l4, l3, l2, l1] = s.user_tables(FIRST_DATA + 500);
        s.v.load_cr3(0, RawPfn(l4)).unwrap();
        let mut ops = Vec::new();
        for (i, &(frame, index)) in maps.iter().enumerate() {
            let slot = (index as usize + i) % 512;
            let entry = (FIRST_DATA + 550 + frame) << 12 | P | U | W | NX;
            if s.v.write_pte(&mut s.mem, RawPfn(l1), slot, RawPte(entry)).is_ok() {
                ops.push(Op::Write(RawPfn(l1), slot, RawPte(0)));
            }
        }
        ops.extend(unlink_and_remove([l4, l3, l2, l1]));
        let mut batch: Vec<Entry> = ops.into_iter().map(Entry::Vmmu).collect();
        let at = at.min(batch.len());
        batch.insert(at, Entry::Switch { rsp0: u64::MAX, fs_base: u64::MAX, root: s.root });
        let root_at = batch.len() - 1;
        // The NK's composition: each vMMU run a batch, a switch a load_cr3.
        let mut stopped = None;
        for (i, e) in batch.iter().enumerate() {
            let r = match *e {
                Entry::Vmmu(op) => s.v.apply_batch(&mut s.mem, &[op]).map_err(|b| b.error),
                Entry::Switch { root, .. } => s.v.load_cr3(0, RawPfn(root)).map(|_| ()),
                Entry::NkWrite { .. } => unreachable!("no mediated write here"),
            };
            if let Err(error) = r {
                stopped = Some((i, error));
                break;
            }
        }
        s.v.finish(&mut s.mem);
        s.assert_clean();
        if at == batch.len() - 1 {
            // The switch came after the root's removal, which was refused.
            assert_eq!(stopped, Some((root_at - 1, VmmuError::LiveRoot { pfn: l4 })));
            assert_eq!(s.v.frame(l4).unwrap().kind(), FrameKind::Ptp(crate::vmmu::Level::L4));
            assert_eq!(s.v.live_roots()[0], Some(l4));
        } else {
            assert_eq!(stopped, None);
            assert!(s.v.frames == &booted[..], "the frame table differs from the booted one");
            assert_eq!(s.v.live_roots()[0], Some(s.root));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
