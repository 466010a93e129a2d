//! The chunks the metadata names, page by page: multipart parts (`part/`), then current objects
//! (`obj/`), then noncurrent versions (`ver/`), the order data moves between them (a completed
//! upload's parts become an object; a replaced object becomes a noncurrent version), so a chunk
//! that moves while they are read is seen at least once. The orphan sweep and the scrub read it.

use flaredb_client::records::{FromRecord, Records};
use serde::{Deserialize, Serialize};

use crate::chunks::ChunkRef;
use crate::meta::Object;

/// Records read per page.
const PAGE: usize = 1000;

/// Where chunks are named, in the order data moves between them.
const PREFIXES: [&str; 3] = ["part/", "obj/", "ver/"];

/// The chunks of a multipart upload's part record (`s3::multipart::Part`; the rest of it is not
/// needed here).
#[derive(Serialize, Deserialize)]
struct PartChunks {
    chunks: Vec<ChunkRef>,
}

flaredb_client::json_record!(PartChunks);

/// A record's key and the chunks it names.
pub type Naming = (String, Vec<ChunkRef>);

/// Pages through every record that names chunks.
pub struct Named<'a> {
    records: &'a Records,
    prefix: usize,
    from: String,
    /// Records read so far.
    pub read: u64,
}

async fn page<T: FromRecord>(
    records: &Records,
    prefix: &str,
    from: &str,
    chunks: impl Fn(T) -> Vec<ChunkRef>,
) -> Result<Vec<Naming>, String> {
    let page = records.list_from::<T>(prefix, from, PAGE).await.map_err(|e| format!("reading {prefix}: {e}"))?;
    Ok(page.into_iter().map(|(key, record)| (key, chunks(record))).collect())
}

impl<'a> Named<'a> {
    pub fn new(records: &'a Records) -> Self {
        Self { records, prefix: 0, from: String::new(), read: 0 }
    }

    /// The next page of records, or `None` after the last.
    pub async fn next(&mut self) -> Result<Option<Vec<Naming>>, String> {
        while let Some(prefix) = PREFIXES.get(self.prefix) {
            let page = match *prefix {
                "part/" => page(self.records, prefix, &self.from, |p: PartChunks| p.chunks).await?,
                _ => page(self.records, prefix, &self.from, |o: Object| o.chunks).await?,
            };
            self.read += page.len() as u64;
            match page.last() {
                Some((last, _)) if page.len() == PAGE => self.from = format!("{last}\0"),
                _ => {
                    self.prefix += 1;
                    self.from.clear();
                }
            }
            if !page.is_empty() {
                return Ok(Some(page));
            }
        }
        Ok(None)
    }

    /// Whether the record at `key` (one a page named) still names chunk `id`.
    pub async fn still_names(records: &Records, key: &str, id: &str) -> Result<bool, String> {
        let chunks = if key.starts_with("part/") {
            records.get::<PartChunks>(key).await.map(|r| r.map(|r| r.value.chunks))
        } else {
            records.get::<Object>(key).await.map(|r| r.map(|r| r.value.chunks))
        };
        let chunks = chunks.map_err(|e| format!("reading {key}: {e}"))?;
        Ok(chunks.is_some_and(|chunks| chunks.iter().any(|c| c.id == id)))
    }
}
