//! CDB parsing: each command's fields, and the sense for every field out of bounds.

use super::*;

const G: Geometry = Geometry { blocks: 2048, read_only: false };
const RO: Geometry = Geometry { blocks: 2048, read_only: true };

fn cdb10(opcode: u8, flags: u8, lba: u32, blocks: u16) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = opcode;
    c[1] = flags;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

fn cdb16(opcode: u8, flags: u8, lba: u64, blocks: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = opcode;
    c[1] = flags;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

#[test]
fn reads_and_writes_of_every_size() {
    assert_eq!(parse(&cdb10(op::READ_10, 0x18, 5, 3), &G), Ok(Command::Read { lba: 5, blocks: 3 }));
    assert_eq!(parse(&cdb10(op::WRITE_10, 0x08, 5, 3), &G), Ok(Command::Write { lba: 5, blocks: 3, fua: true }));
    assert_eq!(parse(&cdb16(op::WRITE_16, 0, 2047, 1), &G), Ok(Command::Write { lba: 2047, blocks: 1, fua: false }));
    let mut r12 = [0u8; 16];
    r12[0] = op::READ_12;
    r12[5] = 9;
    r12[9] = 2;
    assert_eq!(parse(&r12, &G), Ok(Command::Read { lba: 9, blocks: 2 }));
    let r6 = [op::READ_6, 0x01, 0x00, 0x10, 0, 0];
    assert_eq!(parse(&r6, &G), Err(Sense::LBA_OUT_OF_RANGE), "LBA 0x10010 is past the end");
    let r6 = [op::READ_6, 0x00, 0x00, 0x10, 0, 0];
    assert_eq!(parse(&r6, &G), Ok(Command::Read { lba: 0x10, blocks: 256 }), "zero blocks means 256");
    assert_eq!(parse(&cdb10(op::READ_10, 0, 2048, 0), &G), Ok(Command::Read { lba: 2048, blocks: 0 }));
    assert_eq!(Command::Write { lba: 0, blocks: 3, fua: false }.data_out_len(), 1536);
}

#[test]
fn ranges_limits_and_protection_fields_are_checked() {
    assert_eq!(parse(&cdb10(op::READ_10, 0, 2047, 2), &G), Err(Sense::LBA_OUT_OF_RANGE));
    assert_eq!(parse(&cdb10(op::READ_10, 0, 2049, 0), &G), Err(Sense::LBA_OUT_OF_RANGE));
    assert_eq!(parse(&cdb16(op::READ_16, 0, u64::MAX, 1), &G), Err(Sense::LBA_OUT_OF_RANGE), "no overflow");
    let huge = Geometry { blocks: u64::MAX, read_only: false };
    assert_eq!(parse(&cdb16(op::READ_16, 0, 0, MAX_TRANSFER_BLOCKS + 1), &huge), Err(Sense::INVALID_FIELD_IN_CDB));
    assert_eq!(parse(&cdb10(op::READ_10, 0x20, 0, 1), &G), Err(Sense::cdb_field(1, Some(7))), "RDPROTECT");
    assert_eq!(parse(&cdb10(op::WRITE_10, 0x40, 0, 1), &G), Err(Sense::cdb_field(1, Some(7))), "WRPROTECT");
    assert_eq!(parse(&cdb10(op::VERIFY_10, 0x04, 0, 1), &G), Err(Sense::cdb_field(1, Some(2))), "BYTCHK 2");
    assert_eq!(parse(&cdb10(op::VERIFY_10, 0x02, 0, 4), &G), Ok(Command::Verify { lba: 0, blocks: 4, bytchk: 1 }));
}

#[test]
fn writes_on_a_read_only_unit_are_write_protected() {
    let unmap = [op::UNMAP, 0, 0, 0, 0, 0, 0, 0, 24, 0];
    for cdb in [
        &cdb10(op::WRITE_10, 0, 0, 1)[..],
        &cdb10(op::WRITE_VERIFY_10, 0, 0, 1),
        &cdb16(op::WRITE_SAME_16, 0x08, 0, 8),
        &cdb16(op::COMPARE_AND_WRITE, 0, 0, 0),
        &unmap,
    ] {
        assert_eq!(parse(cdb, &RO), Err(Sense::WRITE_PROTECTED), "{cdb:?}");
    }
    assert!(parse(&cdb10(op::READ_10, 0, 0, 1), &RO).is_ok());
    assert!(parse(&cdb10(op::SYNCHRONIZE_CACHE_10, 0, 0, 0), &RO).is_ok());
}

#[test]
fn write_same_unmap_and_compare_and_write() {
    assert_eq!(
        parse(&cdb16(op::WRITE_SAME_16, 0x08, 2000, 0), &G),
        Ok(Command::WriteSame { lba: 2000, blocks: 48, unmap: true, ndob: false }),
        "zero blocks runs to the end"
    );
    assert_eq!(
        parse(&cdb16(op::WRITE_SAME_16, 0x01, 0, 8), &G).map(|c| c.data_out_len()),
        Ok(0),
        "NDOB carries no data"
    );
    assert_eq!(parse(&cdb10(op::WRITE_SAME_10, 0x10, 0, 1), &G), Err(Sense::cdb_field(1, Some(4))), "ANCHOR");
    assert_eq!(parse(&cdb10(op::WRITE_SAME_10, 0, 2049, 0), &G), Err(Sense::LBA_OUT_OF_RANGE));
    assert_eq!(parse(&[op::UNMAP, 1, 0, 0, 0, 0, 0, 0, 24, 0], &G), Err(Sense::cdb_field(1, Some(0))));
    let mut caw = cdb16(op::COMPARE_AND_WRITE, 0, 10, 0);
    caw[13] = 2;
    assert_eq!(parse(&caw, &G), Ok(Command::CompareAndWrite { lba: 10, blocks: 2, fua: false }));
    assert_eq!(Command::CompareAndWrite { lba: 10, blocks: 2, fua: false }.data_out_len(), 2048);
}

#[test]
fn identification_and_service_actions() {
    assert_eq!(parse(&[op::INQUIRY, 0, 0x83, 0, 0xff, 0], &G), Err(Sense::cdb_field(2, None)), "page without EVPD");
    assert_eq!(parse(&[op::INQUIRY, 2, 0, 0, 0xff, 0], &G), Err(Sense::cdb_field(1, None)), "CMDDT");
    assert_eq!(
        parse(&[op::INQUIRY, 1, 0xb0, 1, 0, 0], &G),
        Ok(Command::Inquiry { evpd: true, page: 0xb0, alloc: 256 })
    );
    let mut rc16 = cdb16(op::SERVICE_ACTION_IN_16, op::SA_READ_CAPACITY_16, 0, 32);
    assert_eq!(parse(&rc16, &G), Ok(Command::ReadCapacity16 { alloc: 32 }));
    rc16[1] = 0x1f;
    assert_eq!(parse(&rc16, &G), Err(Sense::cdb_field(1, Some(4))));
    let lba_status = cdb16(op::SERVICE_ACTION_IN_16, op::SA_GET_LBA_STATUS, 2048, 24);
    assert_eq!(parse(&lba_status, &G), Err(Sense::LBA_OUT_OF_RANGE));
    let rc10 = [op::READ_CAPACITY_10, 0, 0, 0, 0, 1, 0, 0, 0, 0];
    assert_eq!(parse(&rc10, &G), Err(Sense::cdb_field(2, None)), "an LBA without PMI");
}

#[test]
fn unknown_and_short_cdbs_are_invalid_opcodes() {
    assert_eq!(parse(&[0x04, 0, 0, 0, 0, 0], &G), Err(Sense::INVALID_OPCODE), "FORMAT UNIT");
    assert_eq!(parse(&[0x7f; 16], &G), Err(Sense::INVALID_OPCODE), "variable-length CDBs");
    assert_eq!(parse(&[op::READ_16, 0, 0], &G), Err(Sense::INVALID_OPCODE), "too short for its group");
    assert_eq!(parse(&[], &G), Err(Sense::INVALID_OPCODE));
}
