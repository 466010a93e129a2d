//! How photonctl prints records: a table with a column per field, or JSON. In tables, times
//! (fields ending in `_at`, Unix seconds) are shown as UTC dates, lists joined by commas.

use serde_json::Value;

use crate::OutputFormat;

/// Prints `rows` as JSON (one object alone, several as an array) or as a table of `columns`.
pub fn print(output: OutputFormat, rows: &[Value], columns: &[&str]) {
    match output {
        OutputFormat::Json => {
            let doc = if rows.len() == 1 { rows[0].clone() } else { Value::Array(rows.to_vec()) };
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        OutputFormat::Table => print_table(rows, columns),
    }
}

/// The API's document as JSON, or `rows` as a table of `columns`.
pub fn show(output: OutputFormat, doc: &Value, rows: &[Value], columns: &[&str]) {
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(doc).unwrap_or_default()),
        OutputFormat::Table => print(output, rows, columns),
    }
}

/// Prints `rows` as a table of `columns` (headers upper-cased).
pub fn print_table(rows: &[Value], columns: &[&str]) {
    let widths: Vec<usize> =
        columns.iter().map(|c| rows.iter().map(|r| cell(r, c).len()).max().unwrap_or(0).max(c.len())).collect();
    let line = |cells: Vec<String>| {
        cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_string()
    };
    println!("{}", line(columns.iter().map(|c| c.to_uppercase()).collect()));
    for row in rows {
        println!("{}", line(columns.iter().map(|c| cell(row, c)).collect()));
    }
}

fn cell(row: &Value, column: &str) -> String {
    match &row[column] {
        Value::Number(n) if column.ends_with("_at") => n.as_i64().map(date).unwrap_or_else(|| n.to_string()),
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => {
            items.iter().map(|i| i.as_str().map(String::from).unwrap_or(i.to_string())).collect::<Vec<_>>().join(",")
        }
        other => other.to_string(),
    }
}

/// A `/health` document's fields other than `status`, as `key=value` (an error text as is).
pub fn health_fields(health: &Value) -> String {
    match health {
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| *k != "status")
            .map(|(k, v)| format!("{k}={}", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
            .collect::<Vec<_>>()
            .join(" "),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Unix seconds as `2026-12-06 07:12:00 UTC` (0 and below: never set).
pub fn date(secs: i64) -> String {
    if secs <= 0 {
        return "-".into();
    }
    let iso = photon_runtime::time::iso8601(secs * 1000);
    format!("{} {} UTC", &iso[..10], &iso[11..19])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_dates() {
        assert_eq!(date(1_765_000_000), "2025-12-06 05:46:40 UTC");
        assert_eq!(date(0), "-");
        let row = serde_json::json!({"created_at": 86_400, "count": 3, "tags": ["a", "b"]});
        assert_eq!(cell(&row, "created_at"), "1970-01-02 00:00:00 UTC");
        assert_eq!(cell(&row, "count"), "3");
        assert_eq!(cell(&row, "tags"), "a,b");
    }
}
