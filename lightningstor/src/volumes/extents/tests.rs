//! The extent store on a real filesystem: in-place writes of any alignment, verified reads,
//! holes, and corruption found.

use super::*;

fn store() -> (tempfile::TempDir, ExtentStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ExtentStore::open(dir.path()).unwrap();
    (dir, store)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[test]
fn writes_of_any_alignment_read_back_and_the_rest_reads_as_zeroes() {
    let (dir, store) = store();
    let id = new_id();
    assert_eq!(store.read(&id, 0, 8192).unwrap(), vec![0u8; 8192], "a missing extent reads as zeroes");
    let aligned = pattern(8192, 1);
    store.write(&id, 4096, &aligned).unwrap();
    let odd = pattern(1000, 2);
    store.write(&id, 4096 + 300, &odd).unwrap();
    let across = pattern(5000, 3);
    store.write(&id, 3 * 4096 - 17, &across).unwrap();
    let mut expected = vec![0u8; 5 * 4096];
    expected[4096..4096 + 8192].copy_from_slice(&aligned);
    expected[4096 + 300..4096 + 1300].copy_from_slice(&odd);
    expected[3 * 4096 - 17..3 * 4096 - 17 + 5000].copy_from_slice(&across);
    assert_eq!(store.read(&id, 0, 5 * 4096).unwrap(), expected);
    assert_eq!(store.read(&id, 4096 + 299, 3).unwrap(), expected[4096 + 299..4096 + 302]);
    store.flush().unwrap();
    // Reopened from disk, the same.
    let again = ExtentStore::open(dir.path()).unwrap();
    assert_eq!(again.read(&id, 0, 5 * 4096).unwrap(), expected);
}

#[test]
fn a_rotten_block_is_reported_not_served() {
    let (dir, store) = store();
    let id = new_id();
    store.write(&id, 0, &pattern(3 * 4096, 9)).unwrap();
    store.flush().unwrap();
    let path = dir.path().join(&id[..2]).join(&id);
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(&[0xff], 4096 + 10).unwrap();
    let fresh = ExtentStore::open(dir.path()).unwrap();
    match fresh.read(&id, 0, 3 * 4096) {
        Err(ExtentError::Corrupt { block, .. }) => assert_eq!(block, 1),
        other => panic!("expected corruption: {other:?}"),
    }
    assert!(fresh.read(&id, 0, 4096).is_ok(), "the other blocks still read");
    assert!(matches!(fresh.write(&id, 4096 + 100, &[1, 2]), Err(ExtentError::Corrupt { .. })), "a partial write needs the block intact");
    fresh.write(&id, 4096, &pattern(4096, 1)).unwrap();
    assert_eq!(fresh.read(&id, 4096, 4096).unwrap(), pattern(4096, 1), "a whole-block write repairs it");
}

#[test]
fn zeroing_frees_whole_blocks_and_allocation_says_which_were_written() {
    let (_dir, store) = store();
    let id = new_id();
    store.write(&id, 0, &pattern(8 * 4096, 5)).unwrap();
    store.zero(&id, 4096 + 100, 3 * 4096).unwrap();
    let data = store.read(&id, 0, 8 * 4096).unwrap();
    let mut expected = pattern(8 * 4096, 5);
    expected[4096 + 100..4 * 4096 + 100].fill(0);
    assert_eq!(data, expected);
    // Blocks 2 and 3 freed; 1 and 4 partly zeroed (still written).
    assert_eq!(store.allocation(&id, 0, 8 * 4096).unwrap(), vec![(2, true), (2, false), (4, true)]);
    assert_eq!(store.allocation(&id, 10 * 4096, 4096).unwrap(), vec![(1, false)]);
    assert_eq!(store.allocation(&new_id(), 0, 4096).unwrap(), vec![(1, false)], "a missing extent");
}

#[test]
fn ranges_outside_an_extent_and_bad_ids_are_refused() {
    let (_dir, store) = store();
    let id = new_id();
    assert!(matches!(store.write(&id, EXTENT_BYTES - 1, &[1, 2]), Err(ExtentError::OutOfRange { .. })));
    assert!(matches!(store.read(&id, u64::MAX, 2), Err(ExtentError::OutOfRange { .. })));
    assert!(matches!(store.read("../etc/passwd", 0, 1), Err(ExtentError::InvalidId(_))));
    store.write(&id, 0, &[7]).unwrap();
    store.delete(&id).unwrap();
    store.delete(&id).unwrap();
    assert_eq!(store.read(&id, 0, 1).unwrap(), vec![0u8]);
}
