//! `keyfort pim ...`: just-in-time access. The scope is the vault of the
//! connection (`--vault`, or the dev vault) in `--resource-group`, one secret
//! in it with `--secret`, or the whole subscription with `--subscription-scope`.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::Client;
use crate::connection::ConnectionArgs;
use crate::output;

#[derive(Args, Clone)]
pub struct ScopeArgs {
    #[arg(long, default_value = "default")]
    resource_group: String,
    /// One secret of the vault.
    #[arg(long)]
    secret: Option<String>,
    /// The whole subscription instead of one vault.
    #[arg(long, conflicts_with = "secret")]
    subscription_scope: bool,
}

#[derive(Subcommand)]
pub enum PimCommand {
    /// The activation policy of a role at the scope.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Who may activate which role.
    #[command(subcommand)]
    Eligible(EligibleCommand),
    /// Ask to activate a role you are eligible for (needs an MFA login for privileged roles).
    Activate {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(long)]
        role: String,
        #[arg(long)]
        justification: String,
        /// ISO 8601 duration, e.g. PT2H.
        #[arg(long, default_value = "PT1H")]
        duration: String,
    },
    /// Activation requests at the scope (yours, or all if you administer it).
    Requests {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Approve a pending request (approvers, with an MFA login).
    Approve {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        id: String,
        #[arg(long, default_value = "")]
        justification: String,
    },
    /// Deny a pending request.
    Deny {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        id: String,
        #[arg(long, default_value = "")]
        justification: String,
    },
    /// Withdraw your pending request.
    Cancel {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(long)]
        id: String,
    },
    /// End an active role early.
    Revoke {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(long)]
        id: String,
    },
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    Show {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(long)]
        role: String,
    },
    Set {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(long)]
        role: String,
        /// Object id of an approver (repeatable); none means Owners and User Access Administrators.
        #[arg(long = "approver")]
        approvers: Vec<String>,
        /// ISO 8601 duration, e.g. PT8H.
        #[arg(long)]
        max_duration: Option<String>,
        #[arg(long)]
        require_mfa: Option<bool>,
        #[arg(long)]
        require_justification: Option<bool>,
        #[arg(long)]
        require_approval: Option<bool>,
    },
}

#[derive(Subcommand)]
pub enum EligibleCommand {
    Create {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(long)]
        role: String,
        /// Object id of the principal or user.
        #[arg(long)]
        assignee: String,
    },
    List {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    Delete {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(long)]
        role: String,
        #[arg(long)]
        assignee: String,
    },
}

/// The ARM scope the command acts on.
fn arm_scope(c: &Client, s: &ScopeArgs) -> Result<String, String> {
    let sub = c.subscription_id()?;
    if s.subscription_scope {
        return Ok(format!("/subscriptions/{sub}"));
    }
    let url = c
        .conn
        .settings
        .vault_url
        .clone()
        .ok_or("no vault URL: pass --dev-json or set KEYFORT_VAULT_URL")?;
    let vault = url
        .trim_start_matches("https://")
        .split('.')
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut scope = format!(
        "/subscriptions/{sub}/resourceGroups/{}/providers/Microsoft.KeyVault/vaults/{vault}",
        s.resource_group
    );
    if let Some(secret) = &s.secret {
        scope.push_str(&format!("/secrets/{secret}"));
    }
    Ok(scope)
}

/// A role id from a name or id, through the vault's role definitions.
async fn role_id(c: &mut Client, role: &str) -> Result<String, String> {
    let page = c
        .call(
            Method::GET,
            "/providers/Microsoft.Authorization/roleDefinitions",
            &[],
            None,
        )
        .await?;
    page["value"]
        .as_array()
        .and_then(|all| {
            all.iter().find(|d| {
                d["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(role))
                    || d["properties"]["roleName"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(role))
            })
        })
        .and_then(|d| d["name"].as_str().map(str::to_owned))
        .ok_or_else(|| format!("no role named '{role}'; see 'keyfort role definition list'"))
}

const REQUEST_FIELDS: &[(&str, &str)] = &[
    ("id", "/name"),
    ("status", "/properties/status"),
    ("principal", "/properties/principalId"),
    ("role", "/properties/roleDefinitionId"),
    ("justification", "/properties/justification"),
    ("starts", "/properties/scheduleInfo/startDateTime"),
    ("ends", "/properties/scheduleInfo/expiration/endDateTime"),
];

fn new_name() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub async fn run(cmd: PimCommand) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    const AUTHZ: &str = "providers/Microsoft.Authorization";
    match cmd {
        PimCommand::Policy(PolicyCommand::Show { conn, scope, role }) => {
            let mut c = Client::new(conn.resolve()?)?;
            let id = role_id(&mut c, &role).await?;
            let path = format!(
                "{}/{AUTHZ}/roleManagementPolicies/{id}",
                arm_scope(&c, &scope)?
            );
            let p = c.management(Method::GET, &path, &[], None).await?;
            show_policy(&conn, &p);
        }
        PimCommand::Policy(PolicyCommand::Set {
            conn,
            scope,
            role,
            approvers,
            max_duration,
            require_mfa,
            require_justification,
            require_approval,
        }) => {
            let mut c = Client::new(conn.resolve()?)?;
            let id = role_id(&mut c, &role).await?;
            let mut props = json!({});
            if !approvers.is_empty() {
                props["approvers"] = json!(approvers);
            }
            for (k, v) in [
                ("maximumDuration", max_duration.map(Value::from)),
                ("requireMfa", require_mfa.map(Value::from)),
                (
                    "requireJustification",
                    require_justification.map(Value::from),
                ),
                ("requireApproval", require_approval.map(Value::from)),
            ] {
                if let Some(v) = v {
                    props[k] = v;
                }
            }
            let path = format!(
                "{}/{AUTHZ}/roleManagementPolicies/{id}",
                arm_scope(&c, &scope)?
            );
            let p = c
                .management(
                    Method::PUT,
                    &path,
                    &[],
                    Some(&json!({ "properties": props })),
                )
                .await?;
            show_policy(&conn, &p);
        }
        PimCommand::Eligible(EligibleCommand::Create {
            conn,
            scope,
            role,
            assignee,
        }) => {
            let mut c = Client::new(conn.resolve()?)?;
            let id = role_id(&mut c, &role).await?;
            let path = format!(
                "{}/{AUTHZ}/roleEligibilityScheduleRequests/{}",
                arm_scope(&c, &scope)?,
                new_name()
            );
            let body = json!({"properties": {"principalId": assignee, "roleDefinitionId": id, "requestType": "AdminAssign"}});
            let e = c.management(Method::PUT, &path, &[], Some(&body)).await?;
            output::fields(
                conn.output,
                &e,
                &[
                    ("id", "/name"),
                    ("principal", "/properties/principalId"),
                    ("role", "/properties/roleDefinitionId"),
                ],
            );
        }
        PimCommand::Eligible(EligibleCommand::List { conn, scope }) => {
            let mut c = Client::new(conn.resolve()?)?;
            let path = format!(
                "{}/{AUTHZ}/roleEligibilitySchedules",
                arm_scope(&c, &scope)?
            );
            let v = c.management(Method::GET, &path, &[], None).await?;
            output::rows(
                conn.output,
                v["value"].as_array().map(Vec::as_slice).unwrap_or_default(),
                &[
                    ("ID", "/name"),
                    ("PRINCIPAL", "/properties/principalId"),
                    ("ROLE", "/properties/roleDefinitionId"),
                ],
            );
        }
        PimCommand::Eligible(EligibleCommand::Delete {
            conn,
            scope,
            role,
            assignee,
        }) => {
            let mut c = Client::new(conn.resolve()?)?;
            let id = role_id(&mut c, &role).await?;
            let path = format!(
                "{}/{AUTHZ}/roleEligibilityScheduleRequests/{}",
                arm_scope(&c, &scope)?,
                new_name()
            );
            let body = json!({"properties": {"principalId": assignee, "roleDefinitionId": id, "requestType": "AdminRemove"}});
            c.management(Method::PUT, &path, &[], Some(&body)).await?;
            crate::vault::done(
                &conn,
                "removed",
                &assignee,
                "Removed the eligibility of {}.",
            );
        }
        PimCommand::Activate {
            conn,
            scope,
            role,
            justification,
            duration,
        } => {
            let mut c = Client::new(conn.resolve()?)?;
            let id = role_id(&mut c, &role).await?;
            let path = format!(
                "{}/{AUTHZ}/roleAssignmentScheduleRequests/{}",
                arm_scope(&c, &scope)?,
                new_name()
            );
            let body = json!({"properties": {"roleDefinitionId": id, "requestType": "SelfActivate", "justification": justification,
                "scheduleInfo": {"expiration": {"type": "AfterDuration", "duration": duration}}}});
            let r = c.management(Method::PUT, &path, &[], Some(&body)).await?;
            output::fields(conn.output, &r, REQUEST_FIELDS);
        }
        PimCommand::Requests { conn, scope } => {
            let mut c = Client::new(conn.resolve()?)?;
            let path = format!(
                "{}/{AUTHZ}/roleAssignmentScheduleRequests",
                arm_scope(&c, &scope)?
            );
            let v = c.management(Method::GET, &path, &[], None).await?;
            output::rows(
                conn.output,
                v["value"].as_array().map(Vec::as_slice).unwrap_or_default(),
                &[
                    ("ID", "/name"),
                    ("STATUS", "/properties/status"),
                    ("PRINCIPAL", "/properties/principalId"),
                    ("ENDS", "/properties/scheduleInfo/expiration/endDateTime"),
                ],
            );
        }
        PimCommand::Approve {
            conn,
            id,
            justification,
        } => decide(&conn, &id, &justification, true).await?,
        PimCommand::Deny {
            conn,
            id,
            justification,
        } => decide(&conn, &id, &justification, false).await?,
        PimCommand::Cancel { conn, scope, id } => end_request(&conn, &scope, &id, "cancel").await?,
        PimCommand::Revoke { conn, scope, id } => end_request(&conn, &scope, &id, "revoke").await?,
    }
    Ok(())
}

async fn decide(
    conn: &ConnectionArgs,
    id: &str,
    justification: &str,
    approve: bool,
) -> Result<(), String> {
    let mut c = Client::new(conn.resolve()?)?;
    let path =
        format!("/providers/Microsoft.Authorization/roleAssignmentApprovals/{id}/stages/{id}");
    let body = json!({"properties": {"reviewResult": if approve { "Approve" } else { "Deny" }, "justification": justification}});
    let r = c.management(Method::PUT, &path, &[], Some(&body)).await?;
    output::fields(conn.output, &r, REQUEST_FIELDS);
    Ok(())
}

/// `cancel` (the requester, while pending) or `revoke` (while active).
async fn end_request(
    conn: &ConnectionArgs,
    scope: &ScopeArgs,
    id: &str,
    action: &str,
) -> Result<(), String> {
    let mut c = Client::new(conn.resolve()?)?;
    let path = format!(
        "{}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{id}/{action}",
        arm_scope(&c, scope)?
    );
    let r = c.management(Method::POST, &path, &[], None).await?;
    output::fields(conn.output, &r, REQUEST_FIELDS);
    Ok(())
}

fn show_policy(conn: &ConnectionArgs, p: &Value) {
    output::fields(
        conn.output,
        p,
        &[
            ("role", "/properties/roleDefinitionId"),
            ("scope", "/properties/scope"),
            ("approvers", "/properties/approvers"),
            ("maximum duration", "/properties/maximumDuration"),
            ("require MFA", "/properties/requireMfa"),
            ("require justification", "/properties/requireJustification"),
            ("require approval", "/properties/requireApproval"),
        ],
    );
}
