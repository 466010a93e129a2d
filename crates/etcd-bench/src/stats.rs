//! Latency samples and the summary a run reports.

use std::time::Duration;

use serde_json::{json, Value};

pub fn summary(workload: &str, samples: &mut [Duration], elapsed: Duration, errors: u64) -> Value {
    samples.sort_unstable();
    let pick = |q: f64| -> f64 {
        if samples.is_empty() {
            return 0.0;
        }
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i].as_secs_f64() * 1e3
    };
    json!({
        "workload": workload,
        "operations": samples.len(),
        "errors": errors,
        "seconds": elapsed.as_secs_f64(),
        "per_second": samples.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
    })
}
