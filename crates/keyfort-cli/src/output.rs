//! Human tables by default, JSON with `--output json`.

use serde_json::Value;

use crate::connection::OutputFormat;

/// Prints rows under headers, columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for r in rows {
        line(r.clone());
    }
}

pub fn json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// Unix seconds as RFC 3339, or empty.
pub fn time(v: &Value) -> String {
    v.as_i64()
        .map(keyfort_core::clock::rfc3339)
        .unwrap_or_default()
}

/// The name in a Key Vault id (`https://host/secrets/{name}[/{version}]`).
pub fn id_part(id: &Value, index: usize) -> String {
    id.as_str()
        .and_then(|s| s.strip_prefix("https://"))
        .and_then(|s| s.split('/').nth(index))
        .unwrap_or("")
        .to_owned()
}

/// One object as `field  value` lines, or JSON.
pub fn object(format: OutputFormat, value: &Value, fields: &[(&str, String)]) {
    match format {
        OutputFormat::Json => json(value),
        OutputFormat::Table => {
            let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (k, v) in fields {
                println!("{k:<width$}  {v}");
            }
        }
    }
}

/// A JSON value as a table cell: strings bare, null empty, others as JSON.
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A list of objects: a table of the given (header, JSON pointer) columns, or JSON.
pub fn rows(format: OutputFormat, items: &[Value], columns: &[(&str, &str)]) {
    if format == OutputFormat::Json {
        return json(&Value::Array(items.to_vec()));
    }
    let headers: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| columns.iter().map(|(_, p)| cell(i.pointer(p))).collect())
        .collect();
    table(&headers, &rows);
}

/// One object: `field  value` lines for the given (label, JSON pointer) pairs, or JSON.
pub fn fields(format: OutputFormat, value: &Value, pairs: &[(&str, &str)]) {
    let lines: Vec<(&str, String)> = pairs
        .iter()
        .map(|(k, p)| (*k, cell(value.pointer(p))))
        .collect();
    object(format, value, &lines);
}
