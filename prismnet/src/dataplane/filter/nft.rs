//! Running `nft` with JSON: in a VPC's namespace (spawned from a thread inside it) or the
//! node's own; its refusals become errors naming what nft said.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::dataplane::netns;
use crate::error::{PrismnetError, Result};

/// Runs `nft` with `args` inside `ns`, `input` on its stdin; its stdout.
fn nft(ns: &std::fs::File, args: &[&str], input: Option<&[u8]>) -> Result<String> {
    let what = format!("nft {}", args.join(" "));
    let output = netns::within(ns, || {
        // Spawned from a thread inside the namespace, nft runs there too.
        let mut child = Command::new("nft")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
            stdin.write_all(input)?;
        }
        child.wait_with_output()
    })
    .map_err(|e| PrismnetError::io(format!("{what} (is nftables installed?)"), e))?;
    if !output.status.success() {
        return Err(PrismnetError::Nft { what, message: String::from_utf8_lossy(&output.stderr).trim().to_string() });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs one transaction (`{"nftables": [...]}`) in `ns`: all of it or none.
pub fn apply(ns: &std::fs::File, transaction: &Value) -> Result<()> {
    nft(ns, &["-j", "-f", "-"], Some(transaction.to_string().as_bytes())).map(|_| ())
}

/// Runs one transaction in this process's own namespace (the node's).
pub fn apply_here(transaction: &Value) -> Result<()> {
    let own = std::fs::File::open("/proc/self/ns/net").map_err(|e| PrismnetError::io("this node's namespace", e))?;
    apply(&own, transaction)
}

/// The names of the tables in `ns`.
pub fn tables(ns: &std::fs::File) -> Result<Vec<String>> {
    let listed = nft(ns, &["-j", "list", "tables"], None)?;
    let listing: Value = serde_json::from_str(&listed).unwrap_or(Value::Null);
    Ok(listing["nftables"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["table"]["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default())
}
