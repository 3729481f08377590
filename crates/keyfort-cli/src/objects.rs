//! What `keyfort secret` and `keyfort key` share: the soft-delete lifecycle
//! and backup files. `noun` is `secret` or `key`; the URL collections follow
//! from it (`/secrets`, `/deletedkeys`, ...).

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::Client;
use crate::connection::OutputFormat;
use crate::output;

type Failure = Box<dyn std::error::Error + Send + Sync>;

pub async fn recover(client: &mut Client, noun: &str, name: &str) -> Result<Value, Failure> {
    let path = format!("/deleted{noun}s/{name}/recover");
    Ok(client.call(Method::POST, &path, &[], None).await?)
}

pub async fn purge(
    client: &mut Client,
    format: OutputFormat,
    noun: &str,
    name: &str,
) -> Result<(), Failure> {
    let path = format!("/deleted{noun}s/{name}");
    client.call(Method::DELETE, &path, &[], None).await?;
    match format {
        OutputFormat::Json => output::json(&json!({ "purged": name })),
        OutputFormat::Table => println!("Purged {noun} '{name}'."),
    }
    Ok(())
}

/// Writes the backup blob of an object (all its versions) to `file`, readable
/// by its owner only.
pub async fn backup(
    client: &mut Client,
    format: OutputFormat,
    noun: &str,
    name: &str,
    file: &Path,
) -> Result<(), Failure> {
    let path = format!("/{noun}s/{name}/backup");
    let v = client.call(Method::POST, &path, &[], None).await?;
    let blob = v["value"]
        .as_str()
        .ok_or("the server returned no backup blob")?;
    let raw = B64
        .decode(blob)
        .map_err(|_| "the server returned a backup blob that is not base64url")?;
    keyfort_server::keyfile::write_private(file, &raw)
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    match format {
        OutputFormat::Json => output::json(
            &json!({ "name": name, "file": file.display().to_string(), "bytes": raw.len() }),
        ),
        OutputFormat::Table => println!(
            "Wrote the backup of {noun} '{name}' ({} bytes) to {}.",
            raw.len(),
            file.display()
        ),
    }
    Ok(())
}

pub async fn restore(client: &mut Client, noun: &str, file: &Path) -> Result<Value, Failure> {
    let raw = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let body = json!({ "value": B64.encode(raw) });
    let path = format!("/{noun}s/restore");
    Ok(client.call(Method::POST, &path, &[], Some(&body)).await?)
}
