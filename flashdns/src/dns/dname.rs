//! DNAME (RFC 6672) as hickory-proto 0.26 can hold it: hickory has no DNAME RDATA, so a DNAME
//! is `RData::Unknown` with code DNAME and the target name in uncompressed wire form.

use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder, NameEncoding};

/// The RDATA of a DNAME pointing at `target`.
pub fn rdata(target: &Name) -> Result<RData, String> {
    let mut bytes = Vec::new();
    {
        let mut encoder = BinEncoder::new(&mut bytes);
        // RFC 6672 §2.5: the target is never compressed; a pointer would also be meaningless
        // outside the message it was written in.
        encoder.set_name_encoding(NameEncoding::Uncompressed);
        target.emit(&mut encoder).map_err(|e| format!("bad DNAME target {target}: {e}"))?;
    }
    Ok(RData::Unknown { code: RecordType::DNAME, rdata: NULL::with(bytes) })
}

/// The target of a DNAME, `None` if `data` is not a DNAME holding exactly one name.
pub fn target(data: &RData) -> Option<Name> {
    let RData::Unknown { code: RecordType::DNAME, rdata } = data else {
        return None;
    };
    let mut decoder = BinDecoder::new(&rdata.anything);
    let name = Name::read(&mut decoder).ok()?;
    decoder.is_empty().then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_survives_the_wire_form() {
        let name = Name::from_ascii("Other.Example.net.").expect("valid");
        let data = rdata(&name).expect("encodes");
        let RData::Unknown { rdata: ref null, .. } = data else { panic!("not Unknown") };
        assert_eq!(null.anything, b"\x05Other\x07Example\x03net\x00");
        let back = target(&data).expect("decodes");
        assert!(back.eq_case(&name));
        assert!(back.is_fqdn());
    }

    #[test]
    fn other_data_is_not_a_dname() {
        let trailing = RData::Unknown { code: RecordType::DNAME, rdata: NULL::with(b"\x01a\x00\x00".to_vec()) };
        assert_eq!(target(&trailing), None);
        let other = RData::Unknown { code: RecordType::Unknown(65280), rdata: NULL::with(b"\x01a\x00".to_vec()) };
        assert_eq!(target(&other), None);
    }
}
