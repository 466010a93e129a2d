//! Where a message body ends, found as its bytes pass: a length counted down, or chunked coding
//! scanned (sizes, extensions, trailers) without decoding it, since the bytes go on unchanged.

use super::head::Framing;

/// Chunk sizes above this are refused: no body here is that large, and the sum cannot overflow.
const MAX_CHUNK: u64 = 1 << 48;
/// Bytes of chunk extensions and trailer fields, in all.
const MAX_META: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size { digits: u8 },
    Extension,
    SizeLf,
    Data(u64),
    DataCr,
    DataLf,
    LineStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

/// A chunked body's scanner.
#[derive(Debug, Clone)]
pub struct Chunked {
    state: State,
    size: u64,
    meta: usize,
    /// Data bytes seen so far (the chunks' contents, without the coding).
    pub data: u64,
}

impl Default for Chunked {
    fn default() -> Self {
        Self { state: State::Size { digits: 0 }, size: 0, meta: 0, data: 0 }
    }
}

impl Chunked {
    /// Consumes the body's bytes from the start of `bytes`: how many belong to it (all of them,
    /// unless it ended within them).
    pub fn scan(&mut self, bytes: &[u8]) -> Result<usize, &'static str> {
        let mut i = 0;
        while i < bytes.len() && self.state != State::Done {
            if let State::Data(left) = self.state {
                let take = left.min((bytes.len() - i) as u64);
                i += take as usize;
                self.data += take;
                self.state = if take == left { State::DataCr } else { State::Data(left - take) };
                continue;
            }
            let b = bytes[i];
            i += 1;
            self.state = match self.state {
                State::Size { digits } => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let digit = (b as char).to_digit(16).unwrap_or(0) as u64;
                        self.size = self.size * 16 + digit;
                        if self.size > MAX_CHUNK {
                            return Err("a chunk is too large");
                        }
                        State::Size { digits: digits.saturating_add(1) }
                    }
                    b';' | b' ' | b'\t' if digits > 0 => State::Extension,
                    b'\r' if digits > 0 => State::SizeLf,
                    _ => return Err("a chunk size is malformed"),
                },
                State::Extension => {
                    self.meta += 1;
                    match b {
                        b'\r' => State::SizeLf,
                        b'\n' => return Err("a chunk extension is malformed"),
                        _ => State::Extension,
                    }
                }
                State::SizeLf if b == b'\n' => {
                    let size = std::mem::take(&mut self.size);
                    if size == 0 { State::LineStart } else { State::Data(size) }
                }
                State::DataCr if b == b'\r' => State::DataLf,
                State::DataLf if b == b'\n' => State::Size { digits: 0 },
                State::LineStart if b == b'\r' => State::EndLf,
                State::LineStart | State::TrailerLine if b != b'\n' => {
                    self.meta += 1;
                    if b == b'\r' { State::TrailerLf } else { State::TrailerLine }
                }
                State::TrailerLf if b == b'\n' => State::LineStart,
                State::EndLf if b == b'\n' => State::Done,
                _ => return Err("the chunked coding is malformed"),
            };
            if self.meta > MAX_META {
                return Err("chunk extensions or trailers are too large");
            }
        }
        Ok(i)
    }

    pub fn done(&self) -> bool {
        self.state == State::Done
    }
}

/// How much of a body is still to come.
#[derive(Debug, Clone)]
pub enum Progress {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
    Done,
}

impl Progress {
    pub fn new(framing: Framing) -> Self {
        match framing {
            Framing::None | Framing::Length(0) => Progress::Done,
            Framing::Length(n) => Progress::Length(n),
            Framing::Chunked => Progress::Chunked(Chunked::default()),
            Framing::UntilClose => Progress::UntilClose,
        }
    }

    /// Of `bytes` (the next ones received), how many belong to the body.
    pub fn take(&mut self, bytes: &[u8]) -> Result<usize, &'static str> {
        match self {
            Progress::Done => Ok(0),
            Progress::UntilClose => Ok(bytes.len()),
            Progress::Length(left) => {
                let take = (*left).min(bytes.len() as u64);
                *left -= take;
                if *left == 0 {
                    *self = Progress::Done;
                }
                Ok(take as usize)
            }
            // Kept (not turned into `Done`) when it ends, so its data count stays readable.
            Progress::Chunked(chunked) => chunked.scan(bytes),
        }
    }

    pub fn done(&self) -> bool {
        match self {
            Progress::Done => true,
            Progress::Chunked(chunked) => chunked.done(),
            _ => false,
        }
    }

    /// Body data taken so far: the chunks' contents for a chunked body (its coding not
    /// counted), else `taken` (what the caller counted).
    pub fn data(&self, taken: u64) -> u64 {
        match self {
            Progress::Chunked(chunked) => chunked.data,
            _ => taken,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_body_ends_after_its_last_chunk_and_trailers_in_any_split() {
        let body = b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-trailer: t\r\n\r\n";
        let next = b"GET / HTTP/1.1\r\n";
        let mut all = body.to_vec();
        all.extend_from_slice(next);
        for split in 0..all.len() {
            let mut chunked = Chunked::default();
            let first = chunked.scan(&all[..split]).expect("valid");
            let second = chunked.scan(&all[split..]).expect("valid");
            assert!(chunked.done(), "split at {split}");
            assert_eq!(first + second, body.len(), "split at {split}");
            assert_eq!(chunked.data, 31);
        }
    }

    #[test]
    fn malformed_chunks_are_refused() {
        for bad in [&b"x\r\n"[..], b"\r\n", b"5\r\nhelloXX", b"0\r\n\n", b"fffffffffffffff\r\n", b"5\nhello"] {
            assert!(Chunked::default().scan(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn lengths_count_down() {
        let mut progress = Progress::new(Framing::Length(5));
        assert_eq!(progress.take(b"abc").expect("ok"), 3);
        assert_eq!(progress.take(b"defgh").expect("ok"), 2);
        assert!(progress.done());
        assert!(Progress::new(Framing::None).done());
    }
}
