//! Carrying out the `[test]` section: records, scripted crashes and the reported health.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use photon_runtime::{Context, HealthReport};

use crate::config::{TestSection, TestServiceConfig};

pub struct Behaviour {
    test: TestSection,
}

fn record(path: &Path, name: &str, event: &str) -> std::io::Result<()> {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    // One write per line: concurrent appenders (several stand-ins share a record) never interleave.
    file.write_all(format!("{name} {event} {ms} {}\n", std::process::id()).as_bytes())
}

impl Behaviour {
    pub fn start(config: &TestServiceConfig, context: &Context) -> anyhow::Result<Self> {
        let test = config.test.clone();
        if let Some(path) = &test.record {
            record(path, &test.name, "start")?;
            let (path, name, shutdown) = (path.clone(), test.name.clone(), context.shutdown.clone());
            context.tasks.spawn(async move {
                shutdown.cancelled().await;
                if let Err(e) = record(&path, &name, "stop") {
                    tracing::warn!(error = %e, "cannot record stop");
                }
            });
        }
        let marker: PathBuf = config.server.data_dir.join("crashed-once");
        let crash = test.crash_after_ms > 0 && !(test.crash_once && marker.exists());
        if crash {
            let after = Duration::from_millis(test.crash_after_ms);
            let once = test.crash_once;
            context.tasks.spawn(async move {
                tokio::time::sleep(after).await;
                if once {
                    let _ = std::fs::write(&marker, b"");
                }
                tracing::error!("scripted crash (test.crash_after_ms)");
                std::process::exit(3);
            });
        }
        Ok(Self { test })
    }

    pub fn health_check(&self) -> impl Fn() -> HealthReport + Send + Sync + 'static {
        let (status, name) = (self.test.health, self.test.name.clone());
        move || HealthReport::new(status).with("name", name.clone())
    }
}
