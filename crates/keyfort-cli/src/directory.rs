//! `keyfort tenant|principal|user ...` and `keyfort login`: the directory API
//! on the management host, and signing in.

use std::io::Read;
use std::path::PathBuf;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{Client, http_client, request_token};
use crate::connection::{CachedToken, ConnectionArgs, LoginCache, OutputFormat, login_cache_path};
use crate::output;
use crate::vault::done;

#[derive(Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and its first administrator (server operators only).
    Create {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
    },
    List {
        #[command(flatten)]
        conn: ConnectionArgs,
    },
    /// Delete a tenant that has no vaults left.
    Delete {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        id: String,
    },
}

#[derive(Subcommand)]
pub enum PrincipalCommand {
    /// Create a service principal; prints its client id, object id and secret (the secret only once).
    Create {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        name: String,
    },
    List {
        #[command(flatten)]
        conn: ConnectionArgs,
    },
    Delete {
        #[command(flatten)]
        conn: ConnectionArgs,
        /// Object id or client id.
        #[arg(long)]
        id: String,
    },
    /// Add a client secret, or a certificate (PEM) for certificate sign-in.
    AddCredential {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        id: String,
        #[arg(long)]
        certificate: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user; prints the otpauth:// URI to enroll an authenticator app (only once).
    Create {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        username: String,
        #[arg(long)]
        display_name: Option<String>,
        /// The password; '-' reads it from standard input.
        #[arg(long, default_value = "-")]
        password: String,
    },
    List {
        #[command(flatten)]
        conn: ConnectionArgs,
    },
    Delete {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        username: String,
    },
    /// Replace the user's TOTP secret; prints the new otpauth:// URI once.
    ResetTotp {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        username: String,
    },
}

fn read_secret(value: &str, what: &str) -> Result<String, String> {
    if value != "-" {
        return Ok(value.to_owned());
    }
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| format!("cannot read the {what} from standard input: {e}"))?;
    Ok(s.trim_end_matches(['\n', '\r']).to_owned())
}

const PRINCIPAL_FIELDS: &[(&str, &str)] = &[
    ("display name", "/displayName"),
    ("client id", "/appId"),
    ("object id", "/objectId"),
    ("tenant", "/tenantId"),
    ("client secret", "/clientSecret"),
];

fn list(format: OutputFormat, v: &Value, columns: &[(&str, &str)]) {
    output::rows(
        format,
        v["value"].as_array().map(Vec::as_slice).unwrap_or_default(),
        columns,
    );
}

pub async fn tenant(cmd: TenantCommand) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    match cmd {
        TenantCommand::Create { conn, name } => {
            let mut c = Client::new(conn.resolve()?)?;
            let t = c
                .management(
                    Method::POST,
                    "/keyfort/tenants",
                    &[],
                    Some(&json!({ "displayName": name })),
                )
                .await?;
            output::fields(
                conn.output,
                &t,
                &[
                    ("tenant id", "/id"),
                    ("subscription id", "/subscriptionId"),
                    ("name", "/displayName"),
                    ("admin client id", "/admin/appId"),
                    ("admin object id", "/admin/objectId"),
                    ("admin client secret", "/admin/clientSecret"),
                ],
            );
        }
        TenantCommand::List { conn } => {
            let mut c = Client::new(conn.resolve()?)?;
            let v = c
                .management(Method::GET, "/keyfort/tenants", &[], None)
                .await?;
            list(
                conn.output,
                &v,
                &[
                    ("ID", "/id"),
                    ("NAME", "/displayName"),
                    ("SUBSCRIPTION", "/subscriptionId"),
                ],
            );
        }
        TenantCommand::Delete { conn, id } => {
            let mut c = Client::new(conn.resolve()?)?;
            c.management(Method::DELETE, &format!("/keyfort/tenants/{id}"), &[], None)
                .await?;
            done(&conn, "deleted", &id, "Deleted tenant {}.");
        }
    }
    Ok(())
}

pub async fn principal(
    cmd: PrincipalCommand,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let base = |c: &Client| format!("/keyfort/tenants/{}/principals", c.conn.tenant_id);
    match cmd {
        PrincipalCommand::Create { conn, name } => {
            let mut c = Client::new(conn.resolve()?)?;
            let p = c
                .management(
                    Method::POST,
                    &base(&c),
                    &[],
                    Some(&json!({ "displayName": name })),
                )
                .await?;
            output::fields(conn.output, &p, PRINCIPAL_FIELDS);
        }
        PrincipalCommand::List { conn } => {
            let mut c = Client::new(conn.resolve()?)?;
            let v = c.management(Method::GET, &base(&c), &[], None).await?;
            list(
                conn.output,
                &v,
                &[
                    ("NAME", "/displayName"),
                    ("CLIENT ID", "/appId"),
                    ("OBJECT ID", "/objectId"),
                ],
            );
        }
        PrincipalCommand::Delete { conn, id } => {
            let mut c = Client::new(conn.resolve()?)?;
            c.management(Method::DELETE, &format!("{}/{id}", base(&c)), &[], None)
                .await?;
            done(&conn, "deleted", &id, "Deleted principal {}.");
        }
        PrincipalCommand::AddCredential {
            conn,
            id,
            certificate,
        } => {
            let mut c = Client::new(conn.resolve()?)?;
            let body = match certificate {
                Some(path) => {
                    let pem = std::fs::read_to_string(&path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                    json!({ "type": "certificate", "certificate": pem })
                }
                None => json!({ "type": "secret" }),
            };
            let v = c
                .management(
                    Method::POST,
                    &format!("{}/{id}/credentials", base(&c)),
                    &[],
                    Some(&body),
                )
                .await?;
            output::fields(
                conn.output,
                &v,
                &[
                    ("key id", "/keyId"),
                    ("type", "/type"),
                    ("client secret", "/clientSecret"),
                    ("x5t", "/x5t"),
                ],
            );
        }
    }
    Ok(())
}

pub async fn user(cmd: UserCommand) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let base = |c: &Client| format!("/keyfort/tenants/{}/users", c.conn.tenant_id);
    let user_fields: &[(&str, &str)] = &[
        ("username", "/username"),
        ("object id", "/objectId"),
        ("display name", "/displayName"),
        ("tenant", "/tenantId"),
        ("otpauth uri", "/otpauthUri"),
    ];
    match cmd {
        UserCommand::Create {
            conn,
            username,
            display_name,
            password,
        } => {
            let password = read_secret(&password, "password")?;
            let mut c = Client::new(conn.resolve()?)?;
            let body = json!({ "username": username, "displayName": display_name.unwrap_or_else(|| username.clone()), "password": password });
            let u = c
                .management(Method::POST, &base(&c), &[], Some(&body))
                .await?;
            output::fields(conn.output, &u, user_fields);
        }
        UserCommand::List { conn } => {
            let mut c = Client::new(conn.resolve()?)?;
            let v = c.management(Method::GET, &base(&c), &[], None).await?;
            list(
                conn.output,
                &v,
                &[
                    ("USERNAME", "/username"),
                    ("OBJECT ID", "/objectId"),
                    ("MFA", "/mfaEnrolled"),
                ],
            );
        }
        UserCommand::Delete { conn, username } => {
            let mut c = Client::new(conn.resolve()?)?;
            c.management(
                Method::DELETE,
                &format!("{}/{username}", base(&c)),
                &[],
                None,
            )
            .await?;
            done(&conn, "deleted", &username, "Deleted user {}.");
        }
        UserCommand::ResetTotp { conn, username } => {
            let mut c = Client::new(conn.resolve()?)?;
            let v = c
                .management(
                    Method::POST,
                    &format!("{}/{username}/reset-totp", base(&c)),
                    &[],
                    None,
                )
                .await?;
            output::fields(conn.output, &v, &[("otpauth uri", "/otpauthUri")]);
        }
    }
    Ok(())
}

/// `keyfort login`: gets tokens for the vault and management audiences and
/// caches them (mode 0600) for later commands.
pub async fn login(
    conn: ConnectionArgs,
    username: Option<String>,
    password: String,
    otp: Option<String>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (settings, _) = conn.settings()?;
    let tenant = settings
        .tenant_id
        .clone()
        .ok_or("no tenant id: pass --dev-json FILE or set KEYFORT_TENANT_ID")?;
    let authority = settings
        .authority
        .clone()
        .ok_or("no authority: pass --dev-json FILE or set KEYFORT_AUTHORITY")?;
    let http = http_client(settings.ca_cert.as_deref(), &[Some(&authority)])?;
    let password = match &username {
        Some(_) => Some(read_secret(&password, "password")?),
        None => None,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut cache = LoginCache {
        settings: settings.clone(),
        ..Default::default()
    };
    // Management first: a one-time code is good once, and the management API
    // (PIM activation, approval) is where MFA matters; the data-plane token is
    // then requested with the password alone.
    let mut otp = otp;
    for audience in [
        settings.management_audience.clone(),
        settings.audience.clone(),
    ]
    .into_iter()
    .flatten()
    {
        let scope = format!("{audience}/.default");
        let form: Vec<(&str, &str)> = match (&username, &password) {
            (Some(u), Some(p)) => {
                let mut f = vec![
                    ("grant_type", "password"),
                    ("username", u.as_str()),
                    ("password", p.as_str()),
                    ("scope", scope.as_str()),
                ];
                if let Some(o) = otp.as_deref() {
                    f.push(("otp", o));
                }
                f
            }
            _ => {
                let id = settings
                    .client_id
                    .as_deref()
                    .ok_or("no client id: give --username, or a dev.json / KEYFORT_CLIENT_ID")?;
                let secret = settings.client_secret.as_deref().ok_or(
                    "no client secret: give --username, or a dev.json / KEYFORT_CLIENT_SECRET",
                )?;
                vec![
                    ("grant_type", "client_credentials"),
                    ("client_id", id),
                    ("client_secret", secret),
                    ("scope", scope.as_str()),
                ]
            }
        };
        let (token, expires_in) = request_token(&http, &authority, &tenant, &form).await?;
        cache.tokens.insert(
            audience,
            CachedToken {
                access_token: token,
                expires_on: now + expires_in,
            },
        );
        otp = None;
    }
    let path = login_cache_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(&path);
    keyfort_server::keyfile::write_private(&path, &serde_json::to_vec_pretty(&cache)?)?;
    match conn.output {
        OutputFormat::Json => output::json(
            &json!({ "cache": path.display().to_string(), "audiences": cache.tokens.keys().collect::<Vec<_>>() }),
        ),
        OutputFormat::Table => println!(
            "Signed in to tenant {tenant}; tokens cached in {} for: {}.",
            path.display(),
            cache.tokens.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    }
    Ok(())
}
