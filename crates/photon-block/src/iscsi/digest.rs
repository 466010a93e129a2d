//! CRC32C (Castagnoli), the only digest iSCSI defines (RFC 7143 §13.1 and appendix B): header
//! and data digests when negotiated. Sent least significant byte first, as initiators expect.

const POLY: u32 = 0x82f6_3b78;

const TABLE: [u32; 256] = table();

const fn table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ POLY } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// A running CRC32C over several slices (a header and its AHS, data and its padding).
#[derive(Clone, Copy)]
pub struct Crc32c(u32);

impl Crc32c {
    pub fn new() -> Self {
        Self(0xffff_ffff)
    }

    pub fn update(mut self, data: &[u8]) -> Self {
        for &b in data {
            self.0 = (self.0 >> 8) ^ TABLE[((self.0 ^ u32::from(b)) & 0xff) as usize];
        }
        self
    }

    pub fn finish(self) -> u32 {
        self.0 ^ 0xffff_ffff
    }

    /// The digest as it goes on the wire.
    pub fn bytes(self) -> [u8; 4] {
        self.finish().to_le_bytes()
    }
}

#[cfg(test)]
pub fn crc32c(data: &[u8]) -> u32 {
    Crc32c::new().update(data).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // RFC 3720 appendix B.4 gives these for 32 bytes of zeroes, ones and an ascending run.
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&ascending), 0x46dd_794e);
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn updates_compose() {
        let whole = crc32c(b"hello, world");
        let parts = Crc32c::new().update(b"hello").update(b", world").finish();
        assert_eq!(whole, parts);
    }
}
