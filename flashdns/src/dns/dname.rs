//! DNAME (RFC 6672). hickory-proto has no DNAME type, so a DNAME travels as an unknown record
//! (type 39) whose data is its target name in uncompressed wire form, encoded and decoded
//! with hickory's own name codec.

use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};

/// The record data of a DNAME pointing at `target`.
pub fn rdata(target: &Name) -> Result<RData, String> {
    let mut bytes = Vec::with_capacity(target.len() + 2);
    {
        let mut encoder = BinEncoder::new(&mut bytes);
        // RFC 6672 §2.5: the target is never compressed; a fresh encoder has nothing to point at.
        target.emit(&mut encoder).map_err(|e| format!("DNAME target {target}: {e}"))?;
    }
    Ok(RData::Unknown { code: RecordType::DNAME, rdata: NULL::with(bytes) })
}

/// The target of a DNAME record's data, if it is one and decodes.
pub fn target(data: &RData) -> Option<Name> {
    match data {
        RData::Unknown { code: RecordType::DNAME, rdata } => {
            let mut decoder = BinDecoder::new(&rdata.anything);
            let name = Name::read(&mut decoder).ok()?;
            decoder.is_empty().then_some(name)
        }
        _ => None,
    }
}
