//! The audit chain and the write-log replay against tampering.

use super::*;
use proptest::prelude::*;
use std::vec::Vec;

/// The reference: the standard library's SipHash-2-4 over the same bytes.
fn reference(k0: u64, k1: u64, words: &[u64]) -> u64 {
    #[allow(deprecated)]
    let mut h = core::hash::SipHasher::new_with_keys(k0, k1);
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    core::hash::Hasher::write(&mut h, &bytes);
    core::hash::Hasher::finish(&h)
}

#[test]
fn siphash_matches_the_paper_vector() {
    // SipHash paper, appendix A: key 00..0f; the empty message.
    let (k0, k1) = (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
    assert_eq!(siphash24(k0, k1, &[]), 0x726f_db47_dd0e_0e31);
}

proptest! {
    #[test]
    fn siphash_matches_the_standard_library(k0: u64, k1: u64, words in proptest::collection::vec(any::<u64>(), 0..20)) {
        prop_assert_eq!(siphash24(k0, k1, &words), reference(k0, k1, &words));
    }
}

fn entry(i: u64) -> AuditEntry {
    AuditEntry { pid: 1 + i % 3, nr: i % 40, args: [i, 2 * i, 0, 0, 0, 7], result: i * 3, flags: 0 }
}

/// A log of `n` records appended to a ring of `cap`, as the NK keeps it.
fn log(n: u64, cap: usize) -> (AuditHead, Vec<AuditRecord>) {
    let mut head = AuditHead::default();
    let mut ring: Vec<AuditRecord> = Vec::new();
    for i in 0..n {
        let r = AuditRecord::new(head.next_seq, entry(i), head.head);
        if ring.len() == cap {
            let gone = ring.remove(0);
            head.dropped += 1;
            head.anchor = gone.hash;
        }
        ring.push(r);
        head.next_seq += 1;
        head.head = r.hash;
    }
    (head, ring)
}

#[test]
fn an_untouched_log_verifies_even_after_wrapping() {
    let (head, ring) = log(10, 16);
    assert_eq!(verify(&head, &ring), Ok(10));
    let (head, ring) = log(50, 16);
    assert_eq!(head.dropped, 34);
    assert_eq!(verify(&head, &ring), Ok(16));
    assert_eq!(verify(&AuditHead::default(), &[]), Ok(0));
}

#[test]
fn tampering_is_detected() {
    let (head, ring) = log(20, 32);
    // Rewriting a record's result.
    let mut r = ring.clone();
    r[5].entry.result = 0;
    assert_eq!(verify(&head, &r), Err(ChainError::BadHash { seq: 5 }));
    // Erasing a record.
    let mut r = ring.clone();
    r.remove(7);
    assert_eq!(verify(&head, &r), Err(ChainError::Gap { expected: 7, found: 8 }));
    // Dropping the newest.
    let r = &ring[..19];
    assert_eq!(verify(&head, r), Err(ChainError::Truncated { expected: 20, found: 19 }));
    // Rewriting a record and recomputing the chain after it: only the head
    // the NK keeps gives it away.
    let mut r = ring.clone();
    r[3].entry.pid = 99;
    let mut prev = r[2].hash;
    for rec in &mut r[3..] {
        rec.hash = rec.chain(prev);
        prev = rec.hash;
    }
    assert_eq!(verify(&head, &r), Err(ChainError::HeadMismatch));
    // A forged record appended at the end, chained properly.
    let mut r = ring.clone();
    r.push(AuditRecord::new(20, entry(1), head.head));
    assert_eq!(verify(&head, &r), Err(ChainError::Truncated { expected: 20, found: 21 }));
}

fn write(seq: u64, dst: u64, old: &[u8], new: &[u8]) -> WriteRecord {
    let mut r = WriteRecord { seq, caller: 0xffff_ffff_8000_1234, dst, len: old.len() as u64, ..Default::default() };
    r.old[..old.len()].copy_from_slice(old);
    r.new[..new.len()].copy_from_slice(new);
    r
}

#[test]
fn replay_rebuilds_the_region_and_catches_forgeries() {
    let base = 0x1000;
    let records = [
        write(4, base + 2, &[0, 0], &[1, 2]),
        write(5, 0x9000, &[0], &[9]), // another region: skipped
        write(6, base + 3, &[2, 0], &[7, 7]),
    ];
    let mut image = [0u8; 8];
    replay(&mut image, base, &records).unwrap();
    assert_eq!(image, [0, 0, 1, 7, 7, 0, 0, 0]);
    // A record whose old bytes do not match: forged or altered.
    let mut forged = records;
    forged[2].old[0] = 5;
    assert_eq!(replay(&mut [0u8; 8], base, &forged), Err(ReplayError::OldBytes { seq: 6 }));
    // A removed record.
    assert_eq!(
        replay(&mut [0u8; 8], base, [&records[0], &records[2]]),
        Err(ReplayError::Gap { expected: 5, found: 6 })
    );
}
