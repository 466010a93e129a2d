//! Medium commands on a `MemDevice`: partial writes, VERIFY and COMPARE AND WRITE
//! miscompares, WRITE SAME, UNMAP's parameter checks and GET LBA STATUS.

use super::*;
use crate::device::MemDevice;

const G: Geometry = Geometry { blocks: 2048, read_only: false };

async fn run(dev: &MemDevice, cmd: Command, data: &[u8]) -> Outcome {
    execute(dev, &G, cmd, Bytes::copy_from_slice(data), &Mutex::new(())).await
}

fn good(o: &Outcome) -> bool {
    o.status == sense::GOOD
}

#[tokio::test]
async fn writes_take_whole_blocks_only() {
    let dev = MemDevice::new(1 << 20);
    let w = |blocks| Command::Write { lba: 4, blocks, fua: true };
    assert!(good(&run(&dev, w(2), &[7; 512]).await), "fewer blocks than asked: what came is written");
    assert_eq!(&dev.read(2048, 1024).await.unwrap()[..], &[[7u8; 512], [0; 512]].concat()[..]);
    assert_eq!(run(&dev, w(1), &[1; 200]).await.sense, Some(Sense::INVALID_FIELD_IN_INFORMATION_UNIT));
    assert!(good(&run(&dev, w(1), &[]).await));
    let read = run(&dev, Command::Read { lba: 4, blocks: 1 }, &[]).await;
    assert_eq!(&read.data[..], &[7; 512]);
}

#[tokio::test]
async fn verify_and_compare_and_write_report_where_data_differs() {
    let dev = MemDevice::new(1 << 20);
    dev.write(0, Bytes::from(vec![5u8; 1024]), false).await.unwrap();
    let verify = |bytchk| Command::Verify { lba: 0, blocks: 2, bytchk };
    assert!(good(&run(&dev, verify(0), &[]).await));
    assert!(good(&run(&dev, verify(1), &[5; 1024]).await));
    let mut other = vec![5u8; 1024];
    other[700] = 6;
    let miss = run(&dev, verify(1), &other).await;
    assert_eq!(miss.sense, Some(Sense::MISCOMPARE_DURING_VERIFY.with_information(700)));
    assert!(good(&run(&dev, verify(3), &[5; 512]).await));
    assert_eq!(run(&dev, verify(3), &[5; 100]).await.sense, Some(Sense::INVALID_FIELD_IN_INFORMATION_UNIT));

    let caw = Command::CompareAndWrite { lba: 0, blocks: 1, fua: false };
    let miss = run(&dev, caw, &[[5u8; 511].as_slice(), &[9], &[8; 512]].concat()).await;
    assert_eq!(miss.sense, Some(Sense::MISCOMPARE_DURING_VERIFY.with_information(511)));
    assert_eq!(&dev.read(0, 512).await.unwrap()[..], &[5; 512], "nothing written on a miscompare");
    assert!(good(&run(&dev, caw, &[[5u8; 512], [8; 512]].concat()).await));
    assert_eq!(&dev.read(0, 512).await.unwrap()[..], &[8; 512]);
    assert_eq!(run(&dev, caw, &[8; 512]).await.sense, Some(Sense::INVALID_FIELD_IN_INFORMATION_UNIT));
}

#[tokio::test]
async fn write_same_repeats_zeroes_or_unmaps() {
    let dev = MemDevice::new(4 << 20);
    let ws = |lba, blocks, unmap| Command::WriteSame { lba, blocks, unmap, ndob: false };
    assert!(good(&run(&dev, ws(0, 2050, false), &[3; 512]).await));
    assert!(dev.read(0, 2050 * 512).await.unwrap().iter().all(|&b| b == 3), "across the 1 MiB steps");
    assert!(good(&run(&dev, ws(8, 8, true), &[3; 512]).await), "UNMAP ignores the block");
    assert!(dev.read(8 * 512, 4096).await.unwrap().iter().all(|&b| b == 0));
    let extents = dev.extents(4096, 4096).await.unwrap();
    assert!(extents[0].hole, "deallocated");
    assert!(good(&run(&dev, ws(0, 1, false), &[0; 512]).await));
    let ndob = Command::WriteSame { lba: 1, blocks: 1, unmap: false, ndob: true };
    assert!(good(&run(&dev, ndob, &[]).await));
    assert!(dev.read(0, 1024).await.unwrap().iter().all(|&b| b == 0));
    assert_eq!(run(&dev, ws(0, 1, false), &[1; 100]).await.sense, Some(Sense::INVALID_FIELD_IN_INFORMATION_UNIT));
}

fn unmap_list(ranges: &[(u64, u32)]) -> Vec<u8> {
    let mut p = vec![0u8; 8];
    p[0..2].copy_from_slice(&((6 + 16 * ranges.len()) as u16).to_be_bytes());
    p[2..4].copy_from_slice(&((16 * ranges.len()) as u16).to_be_bytes());
    for (lba, blocks) in ranges {
        p.extend_from_slice(&lba.to_be_bytes());
        p.extend_from_slice(&blocks.to_be_bytes());
        p.extend_from_slice(&[0; 4]);
    }
    p
}

#[tokio::test]
async fn unmap_checks_every_descriptor_first() {
    let dev = MemDevice::new(1 << 20);
    dev.write(0, Bytes::from(vec![1u8; 1 << 20]), false).await.unwrap();
    let unmap = |p: &[u8]| Command::Unmap { len: p.len() as u32 };
    let p = unmap_list(&[(0, 8), (2040, 8)]);
    assert!(good(&run(&dev, unmap(&p), &p).await));
    assert!(dev.read(0, 4096).await.unwrap().iter().all(|&b| b == 0));
    let p = unmap_list(&[(16, 8), (2044, 8)]);
    assert_eq!(run(&dev, unmap(&p), &p).await.sense, Some(Sense::LBA_OUT_OF_RANGE));
    assert!(dev.read(16 * 512, 4096).await.unwrap().iter().all(|&b| b == 1), "no descriptor applied");
    assert!(good(&run(&dev, Command::Unmap { len: 0 }, &[]).await));
    assert_eq!(run(&dev, Command::Unmap { len: 4 }, &[0; 4]).await.sense, Some(Sense::PARAMETER_LIST_LENGTH));
    let many = unmap_list(&vec![(0, 0); MAX_UNMAP_DESCRIPTORS as usize + 1]);
    assert_eq!(run(&dev, unmap(&many), &many).await.sense, Some(Sense::parameter_field(2, None)));
    let p = unmap_list(&[(0, 0), (2048, 0)]);
    assert!(good(&run(&dev, unmap(&p), &p).await), "zero-block descriptors, even at the end");
}

#[tokio::test]
async fn lba_status_reports_mapped_and_deallocated_runs() {
    let dev = MemDevice::new(1 << 20);
    dev.write(8 * 512, Bytes::from(vec![1u8; 8192]), false).await.unwrap();
    let status = run(&dev, Command::GetLbaStatus { lba: 0, alloc: 1024 }, &[]).await;
    let d = &status.data;
    assert_eq!(&d[0..4], &(4u32 + 3 * 16).to_be_bytes());
    let descriptor = |i: usize| {
        let at = 8 + 16 * i;
        (
            u64::from_be_bytes(d[at..at + 8].try_into().unwrap()),
            u32::from_be_bytes(d[at + 8..at + 12].try_into().unwrap()),
            d[at + 12],
        )
    };
    assert_eq!(descriptor(0), (0, 8, 1));
    assert_eq!(descriptor(1), (8, 16, 0));
    assert_eq!(descriptor(2), (24, 2024, 1));
    let one = run(&dev, Command::GetLbaStatus { lba: 9, alloc: 24 }, &[]).await;
    assert_eq!(one.data.len(), 24);
    assert_eq!(&one.data[8..16], &9u64.to_be_bytes(), "the first descriptor starts where asked");
}
