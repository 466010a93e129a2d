//! What `photonctl lb` and `photonctl net` share: a tenant resource API (photon-resource's
//! REST shape) driven one call at a time — `Call` says which, `execute` sends it as the saved
//! login and prints the answer as table rows (name, spec fields, creation time) or JSON.

use bytes::Bytes;
use hyper::Method;
use serde_json::{json, Value};

use crate::rest::{refusal, Answer, Rest};
use crate::table::show;
use crate::OutputFormat;

/// One API call and how its answer is shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: Method,
    pub path: String,
    pub body: Option<Value>,
    pub show: Show,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Show {
    /// One resource, or a listing (`items`), as rows of these columns.
    Rows(&'static [&'static str]),
    /// Read first, change the spec fields the body gives, write back with the version read;
    /// the result as rows of these columns.
    Modify(&'static [&'static str]),
    /// A view the command prints itself.
    Custom,
    /// No body: this message instead.
    Done(String),
}

impl Call {
    pub fn new(method: Method, path: String, body: Option<Value>, show: Show) -> Self {
        Self { method, path, body, show }
    }
}

/// `{"name", "spec"}`: a create's body.
pub fn create(name: &str, spec: Value) -> Option<Value> {
    Some(json!({ "name": name, "spec": spec }))
}

/// A spec of the pairs given (`None`s left out, for the server's defaults).
pub fn spec_of(pairs: &[(&str, Option<Value>)]) -> Value {
    let mut spec = json!({});
    for (key, value) in pairs {
        if let Some(value) = value {
            spec[*key] = value.clone();
        }
    }
    spec
}

/// A resource as a table row: its name, its spec's fields, what its status says (`state`,
/// `node`, `reason`, for kinds a controller realises), and when it was made.
pub fn row(resource: &Value) -> Value {
    let mut row = resource["spec"].clone();
    if !row.is_object() {
        row = json!({});
    }
    for field in ["state", "node", "reason"] {
        if let Some(value) = resource["status"].get(field) {
            row[field] = value.clone();
        }
    }
    row["name"] = resource["metadata"]["name"].clone();
    row["created_at"] = json!(resource["metadata"]["created_ms"].as_i64().map(|ms| ms / 1000));
    row
}

/// Sends one request to `service`; a refusal becomes an error naming what the service said.
pub async fn send(
    rest: &Rest,
    service: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<Answer> {
    let (content_type, bytes) = match body {
        Some(value) => (Some("application/json"), Bytes::from(value.to_string())),
        None => (None, Bytes::new()),
    };
    let answer = rest.send(method, path, content_type, bytes).await?;
    if !answer.success() {
        anyhow::bail!("{service} refused: {}", refusal(&answer));
    }
    Ok(answer)
}

/// Sends `call` and prints its answer (a `Custom` call is the caller's to print).
pub async fn execute(rest: &Rest, service: &str, call: Call, output: OutputFormat) -> anyhow::Result<()> {
    match call.show {
        Show::Rows(columns) => {
            let doc = send(rest, service, call.method, &call.path, call.body.as_ref()).await?.json()?;
            let rows: Vec<Value> = match doc["items"].as_array() {
                Some(items) => items.iter().map(row).collect(),
                None => vec![row(&doc)],
            };
            show(output, &doc, &rows, columns);
        }
        Show::Modify(columns) => {
            let current = send(rest, service, Method::GET, &call.path, None).await?.json()?;
            let mut spec = current["spec"].clone();
            for (key, value) in call.body.unwrap_or_default().as_object().cloned().unwrap_or_default() {
                spec[key] = value;
            }
            let body = json!({ "spec": spec, "resource_version": current["metadata"]["resource_version"] });
            let doc = send(rest, service, Method::PUT, &call.path, Some(&body)).await?.json()?;
            show(output, &doc, &[row(&doc)], columns);
        }
        Show::Done(message) => {
            send(rest, service, call.method, &call.path, call.body.as_ref()).await?;
            match output {
                OutputFormat::Json => println!("{}", json!({ "ok": message })),
                OutputFormat::Table => println!("{message}"),
            }
        }
        Show::Custom => {}
    }
    Ok(())
}
