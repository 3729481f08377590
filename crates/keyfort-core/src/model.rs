//! The records Keyfort stores. Each is serialized to JSON and sealed by the
//! barrier; field names are part of the on-disk format.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub type Tags = BTreeMap<String, String>;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Tenant {
    pub id: String,
    pub display_name: String,
    /// The Azure-style subscription that maps to this tenant.
    pub subscription_id: String,
    pub created: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Vault {
    pub id: String,
    pub name: String,
    pub tenant_id: String,
    /// The subscription of the tenant (one per tenant).
    #[serde(default)]
    pub subscription_id: String,
    pub resource_group: String,
    pub location: String,
    pub retention_days: i64,
    pub purge_protection: bool,
    pub tags: Tags,
    pub created: i64,
    #[serde(default)]
    pub updated: i64,
    /// `Enabled` or `Disabled` (ARM `publicNetworkAccess`).
    #[serde(default = "enabled")]
    pub public_network_access: String,
    /// ARM `networkAcls`, kept as given (enforcement lands with network rules).
    #[serde(default)]
    pub network_acls: Option<serde_json::Value>,
    /// Set while the vault is soft-deleted.
    #[serde(default)]
    pub deletion: Option<Deletion>,
}

fn enabled() -> String {
    "Enabled".into()
}

impl Vault {
    /// The vault's Azure Resource Manager id.
    pub fn arm_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.KeyVault/vaults/{}",
            self.subscription_id, self.resource_group, self.name
        )
    }

    /// Azure's `recoveryLevel`: soft delete is always on; purge protection
    /// removes `+Purgeable`; a retention below 90 days is "Customized".
    pub fn recovery_level(&self) -> &'static str {
        match (self.retention_days < 90, self.purge_protection) {
            (false, true) => "Recoverable",
            (false, false) => "Recoverable+Purgeable",
            (true, true) => "CustomizedRecoverable",
            (true, false) => "CustomizedRecoverable+Purgeable",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClientSecret {
    pub key_id: String,
    /// Argon2id PHC string; the secret itself is never stored.
    pub hash: String,
    /// The first three characters, as Entra shows them, to tell secrets apart.
    pub hint: String,
    pub created: i64,
}

/// A certificate registered as a client credential (the client proves
/// possession of its private key with a signed assertion).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CertificateCredential {
    pub key_id: String,
    /// DER, base64 (standard alphabet).
    pub der: String,
    pub x5t: String,
    pub x5t_s256: String,
    pub created: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Principal {
    pub object_id: String,
    pub tenant_id: String,
    /// The client id (`appid`) used to sign in.
    pub app_id: String,
    pub display_name: String,
    pub kind: String,
    pub secrets: Vec<ClientSecret>,
    #[serde(default)]
    pub certificates: Vec<CertificateCredential>,
    pub created: i64,
}

/// A person: password (Argon2id) plus a TOTP second factor.
#[derive(Clone, Serialize, Deserialize)]
pub struct User {
    pub object_id: String,
    pub tenant_id: String,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    /// The TOTP secret (raw bytes, base64); sealed at rest with the record.
    pub totp_secret: Option<String>,
    /// The last TOTP step accepted, so a code cannot be used twice.
    #[serde(default)]
    pub last_totp_step: i64,
    pub created: i64,
}

// By hand: the password hash and TOTP secret stay out of `{:?}`.
impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("object_id", &self.object_id)
            .field("tenant_id", &self.tenant_id)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A principal allowed to manage tenants (server operators).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Operator {
    pub tenant_id: String,
    pub object_id: String,
    pub created: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoleAssignment {
    pub id: String,
    pub tenant_id: String,
    pub principal_id: String,
    pub role_definition_id: String,
    /// `/` (the whole tenant), `/vaults/{vault_id}`, or
    /// `/vaults/{vault_id}/{secrets|keys|certificates}/{name}`.
    pub scope: String,
    pub created: i64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Attributes {
    pub enabled: bool,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
    pub created: i64,
    pub updated: i64,
}

/// Everything about one version of a secret except its value.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SecretMeta {
    pub version: String,
    pub attributes: Attributes,
    pub content_type: Option<String>,
    pub tags: Option<Tags>,
}

/// One stored version of an object, payload included (sealed at rest by the barrier).
#[derive(Clone, Serialize, Deserialize)]
pub struct ObjectVersion<M, V> {
    pub name: String,
    pub meta: M,
    pub value: V,
}

/// The head of an object: its display name and its latest version's metadata.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Head<M> {
    pub name: String,
    pub latest: M,
    /// Set while the object is soft-deleted.
    pub deletion: Option<Deletion>,
}

pub type SecretVersion = ObjectVersion<SecretMeta, Zeroizing<String>>;
pub type SecretHead = Head<SecretMeta>;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Deletion {
    pub deleted_date: i64,
    pub scheduled_purge_date: i64,
}

/// Just-in-time (PIM) policy for a role at a scope.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PimPolicy {
    pub tenant_id: String,
    pub role_definition_id: String,
    pub scope: String,
    /// Object ids that may approve; empty means "whoever may assign roles at
    /// the scope" (Owners, User Access Administrators).
    pub approvers: Vec<String>,
    pub max_duration_secs: i64,
    pub require_mfa: bool,
    pub require_justification: bool,
    pub require_approval: bool,
    pub updated: i64,
}

/// A principal or user eligible to activate a role at a scope.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Eligibility {
    pub id: String,
    pub tenant_id: String,
    pub principal_id: String,
    pub role_definition_id: String,
    pub scope: String,
    /// Every scope from the tenant down to `scope` (for approver checks).
    pub chain: Vec<String>,
    pub created: i64,
    pub created_by: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum RequestStatus {
    PendingApproval,
    Provisioned,
    Denied,
    Canceled,
    Revoked,
}

/// A request to activate an eligible role for a while.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ActivationRequest {
    pub id: String,
    pub tenant_id: String,
    pub principal_id: String,
    pub role_definition_id: String,
    pub scope: String,
    pub chain: Vec<String>,
    pub justification: String,
    pub duration_secs: i64,
    pub status: RequestStatus,
    pub created: i64,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub decision_reason: Option<String>,
    /// While provisioned, the role is active from `start` until `end`.
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl ActivationRequest {
    /// Active at `now`: approved, started, and not yet lapsed.
    pub fn is_active(&self, now: i64) -> bool {
        self.status == RequestStatus::Provisioned
            && self.start.is_some_and(|s| s <= now)
            && self.end.is_some_and(|e| now < e)
    }
}
