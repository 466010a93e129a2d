//! Streaming uploads (`Content-Encoding: aws-chunked`): the body is a series of chunks, each
//! `<hex size>;chunk-signature=<sig>\r\n<data>\r\n`, ending with a zero-size chunk. With
//! `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` every chunk's signature chains from the previous one,
//! starting at the request's own signature; with `STREAMING-UNSIGNED-PAYLOAD-TRAILER` chunks
//! carry no signature and the zero chunk is followed by trailer headers (a checksum).
//!
//! [`decode`] turns such a body into the plain bytes, verifying as it goes: a bad signature, a
//! malformed frame or a body that ends early is an error, so a caller streaming into storage
//! never commits a partial or forged object. Memory is bounded by one chunk (at most
//! `MAX_CHUNK`).

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use crate::sigv4::{hmac_hex, sha256_hex, Credential, SigV4Error};

/// The largest chunk accepted (S3 clients send 64 KiB to 8 MiB).
pub const MAX_CHUNK: usize = 16 << 20;
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// How chunks are signed.
pub enum Chunks {
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: the signing key and the request's signature.
    Signed { signing_key: Vec<u8>, credential: Credential },
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: no chunk signatures; trailers after the last chunk.
    Unsigned,
}

struct State<S> {
    source: S,
    buffer: BytesMut,
    chunks: Chunks,
    previous: String,
    done: bool,
}

fn malformed(why: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, SigV4Error::Malformed(why.into()))
}

impl<S: Stream<Item = std::io::Result<Bytes>> + Unpin> State<S> {
    /// Makes sure `n` bytes are buffered; false when the body ended first.
    async fn fill(&mut self, n: usize) -> std::io::Result<bool> {
        while self.buffer.len() < n {
            match self.source.next().await {
                Some(piece) => self.buffer.extend_from_slice(&piece?),
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    /// One `\r\n`-terminated line (without it), at most `max` bytes.
    async fn line(&mut self, max: usize) -> std::io::Result<String> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\r\n") {
                let line = self.buffer.split_to(end);
                self.buffer.advance(2);
                return String::from_utf8(line.to_vec()).map_err(|_| malformed("a chunk header is not text"));
            }
            if self.buffer.len() > max {
                return Err(malformed("a chunk header is too long"));
            }
            let had = self.buffer.len();
            if !self.fill(had + 1).await? {
                return Err(malformed("the body ended inside a chunk header"));
            }
        }
    }

    async fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>> {
        if self.done {
            return Ok(None);
        }
        let header = self.line(512).await?;
        let (size, signature) = match header.split_once(';') {
            Some((size, rest)) => (size, rest.strip_prefix("chunk-signature=")),
            None => (header.as_str(), None),
        };
        let size =
            usize::from_str_radix(size.trim(), 16).map_err(|_| malformed(format!("chunk size {size:?} is not hex")))?;
        if size > MAX_CHUNK {
            return Err(malformed(format!("a chunk of {size} bytes is over the {MAX_CHUNK}-byte limit")));
        }
        if !self.fill(size).await? {
            return Err(malformed("the body ended inside a chunk"));
        }
        let data = self.buffer.split_to(size).freeze();
        if let Chunks::Signed { signing_key, credential } = &self.chunks {
            let given = signature.ok_or_else(|| malformed("a chunk has no chunk-signature"))?;
            let string_to_sign = format!(
                "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}/{}/{}/aws4_request\n{}\n{EMPTY_SHA256}\n{}",
                credential.amz_date,
                credential.date,
                credential.region,
                credential.service,
                self.previous,
                sha256_hex(&data)
            );
            let expected = hmac_hex(signing_key, string_to_sign.as_bytes());
            if expected != given.trim().to_ascii_lowercase() {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, SigV4Error::SignatureDoesNotMatch));
            }
            self.previous = expected;
        }
        if size == 0 {
            // The end: trailers (unsigned streams) up to an empty line, or just the empty line.
            loop {
                if self.line(4096).await?.is_empty() {
                    break;
                }
            }
            self.done = true;
            return Ok(None);
        }
        if !self.fill(2).await? || &self.buffer[..2] != b"\r\n" {
            return Err(malformed("a chunk is not followed by CRLF"));
        }
        self.buffer.advance(2);
        Ok(Some(data))
    }
}

/// The decoded body of an aws-chunked `source` (the raw body's pieces), as a stream of verified
/// data chunks.
pub fn decode<S: Stream<Item = std::io::Result<Bytes>> + Unpin>(
    source: S,
    chunks: Chunks,
) -> impl Stream<Item = std::io::Result<Bytes>> {
    let previous = match &chunks {
        Chunks::Signed { credential, .. } => credential.signature.to_ascii_lowercase(),
        Chunks::Unsigned => String::new(),
    };
    let state = State { source, buffer: BytesMut::new(), chunks, previous, done: false };
    futures_util::stream::unfold(state, |mut state| async move {
        match state.next_chunk().await {
            Ok(Some(data)) => Some((Ok(data), state)),
            Ok(None) => None,
            Err(e) => {
                state.done = true;
                Some((Err(e), state))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;
    use futures_util::StreamExt;

    use super::*;
    use crate::sigv4::{from_header, signing_key, verify, Signed};

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    /// AWS's documented example "Signature Calculations for the Authorization Header:
    /// Transferring Payload in Multiple Chunks": 66,560 bytes of 'a' in 64 KiB chunks.
    fn example() -> (HeaderMap, String, Vec<u8>) {
        let mut headers = HeaderMap::new();
        for (k, v) in [
            ("host", "s3.amazonaws.com"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", "66560"),
            ("content-length", "66824"),
        ] {
            headers.insert(k, v.parse().unwrap());
        }
        let authorization = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9".to_string();
        let mut body = Vec::new();
        for (size, signature) in [
            (65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"),
            (1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"),
            (0, "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"),
        ] {
            body.extend(format!("{size:x};chunk-signature={signature}\r\n").into_bytes());
            body.extend(vec![b'a'; size]);
            body.extend(b"\r\n");
        }
        (headers, authorization, body)
    }

    /// A body arriving in uneven pieces, as from a network.
    fn pieces(body: &[u8]) -> impl Stream<Item = std::io::Result<Bytes>> + Unpin {
        let parts: Vec<std::io::Result<Bytes>> = body.chunks(7777).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        futures_util::stream::iter(parts)
    }

    async fn collect(stream: impl Stream<Item = std::io::Result<Bytes>>) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut stream = std::pin::pin!(stream);
        while let Some(piece) = stream.next().await {
            out.extend(piece?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn the_documented_chunked_upload_verifies_and_decodes() {
        let (headers, authorization, body) = example();
        let credential = from_header(&authorization, &headers).unwrap();
        let request = Signed { method: "PUT", path: "/examplebucket/chunkObject.txt", query: "", headers: &headers };
        let at = 1_369_353_600;
        verify(&request, &credential, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", SECRET, at).expect("the seed signature");
        let key = signing_key(SECRET, &credential);
        let decoded =
            collect(decode(pieces(&body), Chunks::Signed { signing_key: key.clone(), credential: credential.clone() }))
                .await
                .unwrap();
        assert_eq!(decoded, vec![b'a'; 66560]);

        // One changed byte in the data, a truncated body, a missing signature: refused.
        let mut tampered = body.clone();
        tampered[200] = b'b';
        let refused = collect(decode(
            pieces(&tampered),
            Chunks::Signed { signing_key: key.clone(), credential: credential.clone() },
        ))
        .await;
        assert!(refused.unwrap_err().to_string().contains("signature"));
        let truncated = &body[..body.len() - 90];
        let refused = collect(decode(
            pieces(truncated),
            Chunks::Signed { signing_key: key.clone(), credential: credential.clone() },
        ))
        .await;
        assert!(refused.is_err());
        let unsigned = b"5\r\nhello\r\n0\r\n\r\n".to_vec();
        assert!(collect(decode(pieces(&unsigned), Chunks::Signed { signing_key: key, credential })).await.is_err());
    }

    #[tokio::test]
    async fn unsigned_streams_with_trailers_decode() {
        let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n".to_vec();
        assert_eq!(collect(decode(pieces(&body), Chunks::Unsigned)).await.unwrap(), b"hello world");
        for bad in [&b"zz\r\nhello\r\n"[..], b"5\r\nhel", b"5\r\nhelloXX0\r\n\r\n"] {
            assert!(
                collect(decode(pieces(bad), Chunks::Unsigned)).await.is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
