//! Commands that touch the medium, run on the `BlockDevice`: READ, WRITE (with FUA), VERIFY,
//! WRITE SAME (zeroes become `write_zeroes`, with UNMAP a trim), UNMAP, COMPARE AND WRITE,
//! SYNCHRONIZE CACHE and GET LBA STATUS (from the device's extents). Ranges were checked when
//! the CDB was parsed; parameter data is checked here before anything changes.

use bytes::{Bytes, BytesMut};
use tokio::sync::Mutex;

use super::cdb::{Command, Geometry};
use super::sense::{self, Sense};
use super::{truncated, Outcome, LOGICAL_BLOCK, MAX_UNMAP_BLOCKS, MAX_UNMAP_DESCRIPTORS};
use crate::device::{BlockDevice, BlockError};

/// The most bytes one device call moves for WRITE SAME and VERIFY, which cover large ranges
/// in steps of this size.
const STEP: u64 = 1 << 20;
/// The most LBA status descriptors one GET LBA STATUS answers with, and the span it asks the
/// device about; initiators ask again from where an answer stops.
const MAX_LBA_STATUS: usize = 1024;
const LBA_STATUS_SPAN: u64 = 1 << 30;

fn bytes(blocks: u64) -> u64 {
    blocks * u64::from(LOGICAL_BLOCK)
}

fn failed(e: &BlockError) -> Outcome {
    Outcome::check(sense::from_device(e))
}

fn done(result: Result<(), BlockError>) -> Outcome {
    match result {
        Ok(()) => Outcome::good(Bytes::new()),
        Err(e) => failed(&e),
    }
}

/// Runs a medium command. `data` is its data-out, at most what the CDB asked for.
/// `atomic` serialises COMPARE AND WRITE against itself.
pub async fn execute(device: &dyn BlockDevice, g: &Geometry, cmd: Command, data: Bytes, atomic: &Mutex<()>) -> Outcome {
    match cmd {
        Command::Read { lba, blocks } => match read(device, lba, bytes(u64::from(blocks))).await {
            Ok(data) => Outcome::good(data),
            Err(outcome) => outcome,
        },
        Command::Write { lba, fua, .. } => write(device, lba, data, fua).await,
        Command::Verify { lba, blocks, bytchk } => verify(device, lba, blocks, bytchk, &data).await,
        Command::WriteSame { lba, blocks, unmap, ndob } => {
            let block = if ndob { Bytes::from(vec![0u8; LOGICAL_BLOCK as usize]) } else { data };
            if block.len() != LOGICAL_BLOCK as usize {
                return Outcome::check(Sense::INVALID_FIELD_IN_INFORMATION_UNIT);
            }
            done(write_same(device, lba, blocks, unmap, &block).await)
        }
        Command::Unmap { len } => unmap(device, g, len, &data).await,
        Command::CompareAndWrite { lba, blocks, fua } => {
            let _serial = atomic.lock().await;
            compare_and_write(device, lba, blocks, fua, data).await
        }
        Command::SynchronizeCache => done(device.flush().await),
        Command::GetLbaStatus { lba, alloc } => lba_status(device, g, lba, alloc).await,
        _ => Outcome::check(Sense::INVALID_OPCODE),
    }
}

/// Reads exactly `len` bytes; a device answering with another length has failed.
async fn read(device: &dyn BlockDevice, lba: u64, len: u64) -> Result<Bytes, Outcome> {
    if len == 0 {
        return Ok(Bytes::new());
    }
    let len32 = u32::try_from(len).map_err(|_| Outcome::check(Sense::INVALID_FIELD_IN_CDB))?;
    match device.read(bytes(lba), len32).await {
        Ok(data) if data.len() as u64 == len => Ok(data),
        Ok(_) => Err(Outcome::check(Sense::INTERNAL_TARGET_FAILURE)),
        Err(e) => Err(failed(&e)),
    }
}

/// Writes the whole blocks of `data` (fewer than the CDB asked for when the initiator's
/// expected transfer length was shorter); a partial block is refused.
async fn write(device: &dyn BlockDevice, lba: u64, data: Bytes, fua: bool) -> Outcome {
    if !data.len().is_multiple_of(LOGICAL_BLOCK as usize) {
        return Outcome::check(Sense::INVALID_FIELD_IN_INFORMATION_UNIT);
    }
    if data.is_empty() {
        return Outcome::good(Bytes::new());
    }
    done(device.write(bytes(lba), data, fua).await)
}

/// VERIFY: reads the range back (a medium error fails it); with BYTCHK 1 compares it with the
/// data-out (as much as the initiator sent), with BYTCHK 3 every block with the one sent.
async fn verify(device: &dyn BlockDevice, lba: u64, blocks: u32, bytchk: u8, data: &[u8]) -> Outcome {
    let mut total = bytes(u64::from(blocks));
    match bytchk {
        1 => total = total.min(data.len() as u64 / u64::from(LOGICAL_BLOCK) * u64::from(LOGICAL_BLOCK)),
        3 if data.len() < LOGICAL_BLOCK as usize => return Outcome::check(Sense::INVALID_FIELD_IN_INFORMATION_UNIT),
        _ => {}
    }
    let mut at = 0u64;
    while at < total {
        let n = (total - at).min(STEP);
        let medium = match read(device, lba + at / u64::from(LOGICAL_BLOCK), n).await {
            Ok(medium) => medium,
            Err(outcome) => return outcome,
        };
        let mismatch = match bytchk {
            1 => medium.iter().zip(&data[at as usize..(at + n) as usize]).position(|(a, b)| a != b),
            3 => medium.iter().zip(data[..LOGICAL_BLOCK as usize].iter().cycle()).position(|(a, b)| a != b),
            _ => None,
        };
        if let Some(i) = mismatch {
            let offset = u32::try_from(at + i as u64).unwrap_or(u32::MAX);
            return Outcome::check(Sense::MISCOMPARE_DURING_VERIFY.with_information(offset));
        }
        at += n;
    }
    Outcome::good(Bytes::new())
}

async fn write_same(
    device: &dyn BlockDevice,
    lba: u64,
    blocks: u64,
    unmap: bool,
    block: &[u8],
) -> Result<(), BlockError> {
    if blocks == 0 {
        return Ok(());
    }
    if unmap {
        // With UNMAP the range is deallocated whatever the block holds, as Linux's target
        // and initiators' tests expect; it then reads as zeroes (LBPRZ).
        return device.trim(bytes(lba), bytes(blocks)).await;
    }
    if block.iter().all(|&b| b == 0) {
        return device.write_zeroes(bytes(lba), bytes(blocks), false, false).await;
    }
    let per_step = (STEP / u64::from(LOGICAL_BLOCK)).min(blocks);
    let pattern = Bytes::from(block.repeat(per_step as usize));
    let mut done = 0;
    while done < blocks {
        let n = (blocks - done).min(per_step);
        device.write(bytes(lba + done), pattern.slice(..bytes(n) as usize), false).await?;
        done += n;
    }
    Ok(())
}

/// UNMAP's parameter list (SBC-3 §5.28.2): every descriptor is checked before any is applied.
async fn unmap(device: &dyn BlockDevice, g: &Geometry, len: u32, data: &[u8]) -> Outcome {
    let len = len as usize;
    if len == 0 {
        return Outcome::good(Bytes::new());
    }
    if len < 8 || data.len() < 8 {
        return Outcome::check(Sense::PARAMETER_LIST_LENGTH);
    }
    let data = &data[..len.min(data.len())];
    let declared = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let count = declared.min(data.len() - 8) / 16;
    if count > MAX_UNMAP_DESCRIPTORS as usize {
        return Outcome::check(Sense::parameter_field(2, None));
    }
    let mut ranges = Vec::with_capacity(count);
    let mut total = 0u64;
    for i in 0..count {
        let d = &data[8 + 16 * i..8 + 16 * (i + 1)];
        let lba = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
        let blocks = u64::from(u32::from_be_bytes([d[8], d[9], d[10], d[11]]));
        if lba.checked_add(blocks).is_none_or(|end| end > g.blocks) {
            return Outcome::check(Sense::LBA_OUT_OF_RANGE);
        }
        total += blocks;
        if total > u64::from(MAX_UNMAP_BLOCKS) {
            return Outcome::check(Sense::parameter_field((8 + 16 * i + 8) as u16, None));
        }
        if blocks > 0 {
            ranges.push((lba, blocks));
        }
    }
    for (lba, blocks) in ranges {
        if let Err(e) = device.trim(bytes(lba), bytes(blocks)).await {
            return failed(&e);
        }
    }
    Outcome::good(Bytes::new())
}

async fn compare_and_write(device: &dyn BlockDevice, lba: u64, blocks: u32, fua: bool, data: Bytes) -> Outcome {
    let half = bytes(u64::from(blocks)) as usize;
    if blocks == 0 {
        return Outcome::good(Bytes::new());
    }
    if data.len() != 2 * half {
        return Outcome::check(Sense::INVALID_FIELD_IN_INFORMATION_UNIT);
    }
    let medium = match read(device, lba, half as u64).await {
        Ok(medium) => medium,
        Err(outcome) => return outcome,
    };
    if let Some(i) = medium.iter().zip(&data[..half]).position(|(a, b)| a != b) {
        return Outcome::check(Sense::MISCOMPARE_DURING_VERIFY.with_information(i as u32));
    }
    done(device.write(bytes(lba), data.slice(half..), fua).await)
}

/// GET LBA STATUS: mapped or deallocated extents from `lba`, in logical blocks.
async fn lba_status(device: &dyn BlockDevice, g: &Geometry, lba: u64, alloc: u32) -> Outcome {
    let span = bytes(g.blocks - lba).min(LBA_STATUS_SPAN);
    let extents = match device.extents(bytes(lba), span).await {
        Ok(extents) => extents,
        Err(e) => return failed(&e),
    };
    let room = (alloc as usize).saturating_sub(8) / 16;
    let limit = room.clamp(1, MAX_LBA_STATUS);
    let mut descriptors: Vec<(u64, u64, u8)> = Vec::new();
    let mut at = lba;
    for e in &extents {
        let blocks = e.len.div_ceil(u64::from(LOGICAL_BLOCK)).min(g.blocks - at);
        if blocks == 0 {
            continue;
        }
        // Provisioning status 1: deallocated; 0: mapped.
        let status = u8::from(e.hole);
        let full = descriptors.len() == limit;
        match descriptors.last_mut() {
            Some(last) if last.2 == status && last.1 + blocks <= u64::from(u32::MAX) => last.1 += blocks,
            _ if full => break,
            _ => descriptors.push((at, blocks.min(u64::from(u32::MAX)), status)),
        }
        at += blocks;
        if at >= g.blocks {
            break;
        }
    }
    if descriptors.is_empty() {
        // Nothing reported: "mapped" is always a safe answer for one block.
        descriptors.push((lba, 1, 0));
    }
    let mut out = BytesMut::with_capacity(8 + 16 * descriptors.len());
    out.extend_from_slice(&((4 + 16 * descriptors.len()) as u32).to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    for (start, blocks, status) in descriptors {
        out.extend_from_slice(&start.to_be_bytes());
        out.extend_from_slice(&(blocks as u32).to_be_bytes());
        out.extend_from_slice(&[status, 0, 0, 0]);
    }
    Outcome::good(truncated(out.to_vec(), alloc))
}

#[cfg(test)]
#[path = "medium_tests.rs"]
mod tests;
