//! Fencing on the replica side: the highest writer-lease revision seen for each volume. A write
//! naming a lower one comes from a session that lost its lease to a later writer, and is
//! refused; so the first host's late writes never land after the second host's. The highest
//! revisions are kept in a small file (written when one rises, which happens once per
//! takeover), so a replica that restarts still refuses the old writer.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

pub struct Fences {
    file: PathBuf,
    seen: Mutex<HashMap<String, i64>>,
}

impl Fences {
    /// The fences kept in `file` (none yet if it does not exist or does not parse: a replica
    /// that lost the file accepts the next writer's fence, and refuses older ones from then).
    pub fn open(file: PathBuf) -> Self {
        let seen = std::fs::read(&file).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default();
        Self { file, seen: Mutex::new(seen) }
    }

    /// Admits a write to `volume` under `revision`, or says why not.
    pub fn admit(&self, volume: &str, revision: i64) -> Result<(), String> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let highest = seen.get(volume).copied().unwrap_or(0);
        if revision < highest {
            return Err(format!(
                "volume {volume}: this writer's lease (revision {revision}) was superseded by a later writer's ({highest})"
            ));
        }
        if revision > highest {
            seen.insert(volume.to_string(), revision);
            let text = serde_json::to_vec(&*seen).unwrap_or_default();
            let tmp = self.file.with_extension("tmp");
            // Durable before the write it admits: a restart must not forget a takeover.
            let written = std::fs::write(&tmp, &text)
                .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
                .and_then(|()| std::fs::rename(&tmp, &self.file));
            if let Err(e) = written {
                return Err(format!("cannot record volume {volume}'s fence in {}: {e}", self.file.display()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lower_fence_is_refused_and_the_highest_outlives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let fences = Fences::open(dir.path().join("fences.json"));
        fences.admit("v", 5).unwrap();
        fences.admit("v", 5).unwrap();
        fences.admit("other", 1).unwrap();
        fences.admit("v", 9).unwrap();
        assert!(fences.admit("v", 5).unwrap_err().contains("superseded"));
        let again = Fences::open(dir.path().join("fences.json"));
        assert!(again.admit("v", 8).is_err());
        again.admit("v", 9).unwrap();
        again.admit("other", 1).unwrap();
    }
}
