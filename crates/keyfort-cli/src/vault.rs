//! `keyfort vault ...`: the vault management API, shaped like `az keyvault`.

use std::collections::BTreeMap;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::Client;
use crate::connection::ConnectionArgs;
use crate::output;

#[derive(Subcommand)]
pub enum VaultCommand {
    /// Create a vault (purge protection on and 90-day retention unless told otherwise).
    Create {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "default")]
        resource_group: String,
        #[arg(long, default_value = "local")]
        location: String,
        /// Soft-delete retention, 7 to 90 days (fixed at creation).
        #[arg(long)]
        retention_days: Option<i64>,
        /// Create without purge protection (not recommended).
        #[arg(long)]
        no_purge_protection: bool,
        /// Tags as KEY=VALUE (repeatable), e.g. app=billing env=prod.
        #[arg(long = "tag", value_parser = crate::secret::parse_tag)]
        tags: Vec<(String, String)>,
    },
    /// Show a vault.
    Show {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "default")]
        resource_group: String,
    },
    /// List vaults (of a resource group, or the whole subscription).
    List {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        resource_group: Option<String>,
    },
    /// Change tags, turn purge protection on, or set public network access.
    Update {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "default")]
        resource_group: String,
        #[arg(long = "tag", value_parser = crate::secret::parse_tag)]
        tags: Vec<(String, String)>,
        /// Turn purge protection on (it cannot be turned off).
        #[arg(long)]
        enable_purge_protection: bool,
        /// Enabled or Disabled.
        #[arg(long)]
        public_network_access: Option<String>,
        /// Network rules: Allow or Deny for addresses no rule names.
        #[arg(long)]
        default_action: Option<String>,
        /// An address or CIDR range allowed through (repeatable); replaces the rules.
        #[arg(long = "ip-rule")]
        ip_rules: Vec<String>,
    },
    /// Soft-delete a vault with everything in it.
    Delete {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "default")]
        resource_group: String,
    },
    /// List soft-deleted vaults.
    ListDeleted {
        #[command(flatten)]
        conn: ConnectionArgs,
    },
    /// Recover a soft-deleted vault, whole.
    Recover {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
    },
    /// Purge a soft-deleted vault (refused under purge protection until its purge date).
    Purge {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
    },
}

const COLUMNS: &[(&str, &str)] = &[
    ("NAME", "/name"),
    ("RESOURCE GROUP", "/id"),
    ("LOCATION", "/location"),
    ("RETENTION", "/properties/softDeleteRetentionInDays"),
    ("PURGE PROTECTION", "/properties/enablePurgeProtection"),
    ("URI", "/properties/vaultUri"),
];

fn vault_path(sub: &str, rg: &str, name: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}")
}

fn show(conn: &ConnectionArgs, v: &Value) {
    output::fields(
        conn.output,
        v,
        &[
            ("name", "/name"),
            ("id", "/id"),
            ("location", "/location"),
            ("tenant", "/properties/tenantId"),
            ("uri", "/properties/vaultUri"),
            ("retention days", "/properties/softDeleteRetentionInDays"),
            ("purge protection", "/properties/enablePurgeProtection"),
            ("public network", "/properties/publicNetworkAccess"),
            ("tags", "/tags"),
        ],
    );
}

/// Resource group shown as its name (the id holds it).
fn with_group(mut items: Vec<Value>) -> Vec<Value> {
    for v in items.iter_mut() {
        let rg = v["id"]
            .as_str()
            .and_then(|id| id.split('/').nth(4))
            .unwrap_or("")
            .to_owned();
        if let Some(obj) = v.as_object_mut() {
            obj.insert("resourceGroup".into(), json!(rg));
        }
    }
    items
}

pub async fn run(cmd: VaultCommand) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use VaultCommand::*;
    let columns: Vec<(&str, &str)> = COLUMNS
        .iter()
        .map(|(h, p)| {
            if *h == "RESOURCE GROUP" {
                (*h, "/resourceGroup")
            } else {
                (*h, *p)
            }
        })
        .collect();
    match cmd {
        Create {
            conn,
            name,
            resource_group,
            location,
            retention_days,
            no_purge_protection,
            tags,
        } => {
            let mut c = Client::new(conn.resolve()?)?;
            let sub = c.subscription_id()?;
            let tenant = c.conn.tenant_id.clone();
            let mut props = json!({
                "tenantId": tenant,
                "sku": {"family": "A", "name": "standard"},
                "enableRbacAuthorization": true,
                "enablePurgeProtection": !no_purge_protection,
            });
            if let Some(d) = retention_days {
                props["softDeleteRetentionInDays"] = json!(d);
            }
            let tags: BTreeMap<_, _> = tags.into_iter().collect();
            let body = json!({ "location": location, "tags": tags, "properties": props });
            let v = c
                .management(
                    Method::PUT,
                    &vault_path(&sub, &resource_group, &name),
                    &[],
                    Some(&body),
                )
                .await?;
            show(&conn, &v);
        }
        Show {
            conn,
            name,
            resource_group,
        } => {
            let mut c = Client::new(conn.resolve()?)?;
            let sub = c.subscription_id()?;
            let v = c
                .management(
                    Method::GET,
                    &vault_path(&sub, &resource_group, &name),
                    &[],
                    None,
                )
                .await?;
            show(&conn, &v);
        }
        List {
            conn,
            resource_group,
        } => {
            let mut c = Client::new(conn.resolve()?)?;
            let sub = c.subscription_id()?;
            let path = match &resource_group {
                Some(rg) => format!(
                    "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults"
                ),
                None => format!("/subscriptions/{sub}/providers/Microsoft.KeyVault/vaults"),
            };
            let page = c.management(Method::GET, &path, &[], None).await?;
            let items = with_group(page["value"].as_array().cloned().unwrap_or_default());
            output::rows(conn.output, &items, &columns);
        }
        Update {
            conn,
            name,
            resource_group,
            tags,
            enable_purge_protection,
            public_network_access,
            default_action,
            ip_rules,
        } => {
            let mut c = Client::new(conn.resolve()?)?;
            let sub = c.subscription_id()?;
            let mut body = json!({ "properties": {} });
            if !tags.is_empty() {
                body["tags"] = json!(tags.into_iter().collect::<BTreeMap<_, _>>());
            }
            if enable_purge_protection {
                body["properties"]["enablePurgeProtection"] = json!(true);
            }
            if let Some(p) = public_network_access {
                body["properties"]["publicNetworkAccess"] = json!(p);
            }
            if default_action.is_some() || !ip_rules.is_empty() {
                let rules: Vec<Value> = ip_rules.iter().map(|r| json!({ "value": r })).collect();
                body["properties"]["networkAcls"] = json!({
                    "defaultAction": default_action.unwrap_or_else(|| "Deny".into()),
                    "bypass": "None",
                    "ipRules": rules,
                    "virtualNetworkRules": [],
                });
            }
            let v = c
                .management(
                    Method::PATCH,
                    &vault_path(&sub, &resource_group, &name),
                    &[],
                    Some(&body),
                )
                .await?;
            show(&conn, &v);
        }
        Delete {
            conn,
            name,
            resource_group,
        } => {
            let mut c = Client::new(conn.resolve()?)?;
            let sub = c.subscription_id()?;
            c.management(
                Method::DELETE,
                &vault_path(&sub, &resource_group, &name),
                &[],
                None,
            )
            .await?;
            done(
                &conn,
                "deleted",
                &name,
                "Soft-deleted vault '{}'; recover it with 'keyfort vault recover'.",
            );
        }
        ListDeleted { conn } => {
            let mut c = Client::new(conn.resolve()?)?;
            let sub = c.subscription_id()?;
            let page = c
                .management(
                    Method::GET,
                    &format!("/subscriptions/{sub}/providers/Microsoft.KeyVault/deletedVaults"),
                    &[],
                    None,
                )
                .await?;
            let items = page["value"].as_array().cloned().unwrap_or_default();
            output::rows(
                conn.output,
                &items,
                &[
                    ("NAME", "/name"),
                    ("LOCATION", "/properties/location"),
                    ("DELETED", "/properties/deletionDate"),
                    ("PURGE DATE", "/properties/scheduledPurgeDate"),
                    ("PURGE PROTECTION", "/properties/purgeProtectionEnabled"),
                ],
            );
        }
        Recover { conn, name } => {
            let mut c = Client::new(conn.resolve()?)?;
            let sub = c.subscription_id()?;
            let deleted = find_deleted(&mut c, &sub, &name).await?;
            let rg = deleted["properties"]["vaultId"]
                .as_str()
                .and_then(|id| id.split('/').nth(4))
                .unwrap_or("default")
                .to_owned();
            let body = json!({
                "location": deleted["properties"]["location"],
                "properties": { "tenantId": c.conn.tenant_id, "sku": {"family": "A", "name": "standard"}, "createMode": "recover" },
            });
            let v = c
                .management(Method::PUT, &vault_path(&sub, &rg, &name), &[], Some(&body))
                .await?;
            show(&conn, &v);
        }
        Purge { conn, name } => {
            let mut c = Client::new(conn.resolve()?)?;
            let sub = c.subscription_id()?;
            let deleted = find_deleted(&mut c, &sub, &name).await?;
            let location = deleted["properties"]["location"]
                .as_str()
                .unwrap_or("local")
                .to_owned();
            let path = format!(
                "/subscriptions/{sub}/providers/Microsoft.KeyVault/locations/{location}/deletedVaults/{name}/purge"
            );
            c.management(Method::POST, &path, &[], None).await?;
            done(&conn, "purged", &name, "Purged vault '{}'.");
        }
    }
    Ok(())
}

async fn find_deleted(c: &mut Client, sub: &str, name: &str) -> Result<Value, String> {
    let page = c
        .management(
            Method::GET,
            &format!("/subscriptions/{sub}/providers/Microsoft.KeyVault/deletedVaults"),
            &[],
            None,
        )
        .await?;
    page["value"]
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .find(|v| {
                    v["name"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
                })
                .cloned()
        })
        .ok_or_else(|| format!("no soft-deleted vault named '{name}' in this subscription"))
}

/// Reports a finished action: one line, or `{"<key>": name}` as JSON.
pub fn done(conn: &ConnectionArgs, key: &str, name: &str, line: &str) {
    match conn.output {
        crate::connection::OutputFormat::Json => output::json(&json!({ key: name })),
        crate::connection::OutputFormat::Table => println!("{}", line.replace("{}", name)),
    }
}
