//! `keyfort role definition|assignment ...`: the vault's RBAC API (the same
//! one `KeyVaultAccessControlClient` uses). Scopes are relative to the vault:
//! `/` for the vault, `/secrets/NAME` for one secret.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::Client;
use crate::connection::ConnectionArgs;
use crate::output;
use crate::vault::done;

#[derive(Subcommand)]
pub enum RoleCommand {
    /// Role definitions (built-in and custom).
    #[command(subcommand)]
    Definition(DefinitionCommand),
    /// Role assignments.
    #[command(subcommand)]
    Assignment(AssignmentCommand),
}

#[derive(Subcommand)]
pub enum DefinitionCommand {
    List {
        #[command(flatten)]
        conn: ConnectionArgs,
    },
    Show {
        #[command(flatten)]
        conn: ConnectionArgs,
        /// Role name or id.
        #[arg(long)]
        role: String,
    },
    /// Create (or replace, with --id) a custom role.
    Create {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
        #[arg(long)]
        id: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// A data action such as Microsoft.KeyVault/vaults/secrets/getSecret/action (repeatable).
        #[arg(long = "data-action")]
        data_actions: Vec<String>,
        #[arg(long = "not-data-action")]
        not_data_actions: Vec<String>,
    },
    Delete {
        #[command(flatten)]
        conn: ConnectionArgs,
        /// Role name or id.
        #[arg(long)]
        role: String,
    },
}

#[derive(Subcommand)]
pub enum AssignmentCommand {
    /// Assign a role to a principal or user (object id) at a scope.
    Create {
        #[command(flatten)]
        conn: ConnectionArgs,
        /// Role name or id, e.g. "Key Vault Secrets User".
        #[arg(long)]
        role: String,
        /// Object id of the principal or user.
        #[arg(long)]
        assignee: String,
        /// `/` (the vault) or `/secrets/NAME`.
        #[arg(long, default_value = "/")]
        scope: String,
    },
    List {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long, default_value = "/")]
        scope: String,
    },
    Delete {
        #[command(flatten)]
        conn: ConnectionArgs,
        /// The assignment's name (id).
        #[arg(long)]
        name: String,
    },
}

const PROVIDER: &str = "providers/Microsoft.Authorization";

fn scope_path(scope: &str) -> String {
    let s = scope.trim_matches('/');
    if s.is_empty() {
        String::new()
    } else {
        format!("/{s}")
    }
}

/// Finds a role by name or id among the vault's definitions.
async fn find_role(c: &mut Client, role: &str) -> Result<Value, String> {
    let page = c
        .call(
            Method::GET,
            &format!("/{PROVIDER}/roleDefinitions"),
            &[],
            None,
        )
        .await?;
    page["value"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|d| {
                    d["name"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(role))
                        || d["properties"]["roleName"]
                            .as_str()
                            .is_some_and(|n| n.eq_ignore_ascii_case(role))
                })
                .cloned()
        })
        .ok_or_else(|| format!("no role named '{role}'; see 'keyfort role definition list'"))
}

const DEF_COLUMNS: &[(&str, &str)] = &[
    ("NAME", "/properties/roleName"),
    ("ID", "/name"),
    ("TYPE", "/properties/type"),
];
const ASG_COLUMNS: &[(&str, &str)] = &[
    ("NAME", "/name"),
    ("SCOPE", "/properties/scope"),
    ("ROLE", "/properties/roleDefinitionId"),
    ("PRINCIPAL", "/properties/principalId"),
];

pub async fn run(cmd: RoleCommand) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    match cmd {
        RoleCommand::Definition(d) => match d {
            DefinitionCommand::List { conn } => {
                let mut c = Client::new(conn.resolve()?)?;
                let page = c
                    .call(
                        Method::GET,
                        &format!("/{PROVIDER}/roleDefinitions"),
                        &[],
                        None,
                    )
                    .await?;
                output::rows(
                    conn.output,
                    page["value"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default(),
                    DEF_COLUMNS,
                );
            }
            DefinitionCommand::Show { conn, role } => {
                let mut c = Client::new(conn.resolve()?)?;
                let d = find_role(&mut c, &role).await?;
                output::fields(
                    conn.output,
                    &d,
                    &[
                        ("name", "/properties/roleName"),
                        ("id", "/name"),
                        ("type", "/properties/type"),
                        ("description", "/properties/description"),
                        ("actions", "/properties/permissions/0/actions"),
                        ("data actions", "/properties/permissions/0/dataActions"),
                        (
                            "not data actions",
                            "/properties/permissions/0/notDataActions",
                        ),
                    ],
                );
            }
            DefinitionCommand::Create {
                conn,
                name,
                id,
                description,
                data_actions,
                not_data_actions,
            } => {
                let mut c = Client::new(conn.resolve()?)?;
                let id = id.unwrap_or_else(uuid_v4);
                let body = json!({ "properties": {
                    "roleName": name, "description": description, "type": "CustomRole",
                    "permissions": [{ "actions": [], "notActions": [], "dataActions": data_actions, "notDataActions": not_data_actions }],
                    "assignableScopes": ["/"],
                }});
                let d = c
                    .call(
                        Method::PUT,
                        &format!("/{PROVIDER}/roleDefinitions/{id}"),
                        &[],
                        Some(&body),
                    )
                    .await?;
                output::fields(
                    conn.output,
                    &d,
                    &[
                        ("name", "/properties/roleName"),
                        ("id", "/name"),
                        ("type", "/properties/type"),
                    ],
                );
            }
            DefinitionCommand::Delete { conn, role } => {
                let mut c = Client::new(conn.resolve()?)?;
                let id = find_role(&mut c, &role).await?["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                c.call(
                    Method::DELETE,
                    &format!("/{PROVIDER}/roleDefinitions/{id}"),
                    &[],
                    None,
                )
                .await?;
                done(&conn, "deleted", &role, "Deleted role '{}'.");
            }
        },
        RoleCommand::Assignment(a) => match a {
            AssignmentCommand::Create {
                conn,
                role,
                assignee,
                scope,
            } => {
                let mut c = Client::new(conn.resolve()?)?;
                let def = find_role(&mut c, &role).await?;
                let body = json!({ "properties": { "roleDefinitionId": def["id"], "principalId": assignee } });
                let path = format!(
                    "{}/{PROVIDER}/roleAssignments/{}",
                    scope_path(&scope),
                    uuid_v4()
                );
                let created = c.call(Method::PUT, &path, &[], Some(&body)).await?;
                output::fields(
                    conn.output,
                    &created,
                    &[
                        ("name", "/name"),
                        ("scope", "/properties/scope"),
                        ("role", "/properties/roleDefinitionId"),
                        ("principal", "/properties/principalId"),
                    ],
                );
            }
            AssignmentCommand::List { conn, scope } => {
                let mut c = Client::new(conn.resolve()?)?;
                let page = c
                    .call(
                        Method::GET,
                        &format!("{}/{PROVIDER}/roleAssignments", scope_path(&scope)),
                        &[],
                        None,
                    )
                    .await?;
                output::rows(
                    conn.output,
                    page["value"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default(),
                    ASG_COLUMNS,
                );
            }
            AssignmentCommand::Delete { conn, name } => {
                let mut c = Client::new(conn.resolve()?)?;
                c.call(
                    Method::DELETE,
                    &format!("/{PROVIDER}/roleAssignments/{name}"),
                    &[],
                    None,
                )
                .await?;
                done(&conn, "deleted", &name, "Deleted role assignment {}.");
            }
        },
    }
    Ok(())
}

fn uuid_v4() -> String {
    uuid::Uuid::new_v4().to_string()
}
