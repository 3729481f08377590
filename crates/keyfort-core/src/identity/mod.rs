//! Identity: tenants, service principals (client secrets and certificates),
//! users (password and TOTP), server operators, and the token issuer. Tokens
//! are RS256 JWTs shaped like Entra ID's v2 access tokens (`tid`, `oid`,
//! `appid`, `aud`, `exp`, `amr`...), checked on every request.

mod grants;
mod principals;
mod throttle;
mod users;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use keyfort_crypto::token::TokenSigner;
use keyfort_crypto::{SealingKey, password, random};
use keyfort_store::Batch;
use serde::{Deserialize, Serialize};

pub use grants::{GrantRequest, SignIn};
pub use users::NewUser;

use crate::barrier::Barrier;
use crate::clock::Clock;
use crate::model::{Operator, Tenant};
use crate::{Error, Result};

/// Clock skew tolerated on `nbf` and `exp`, as Entra ID allows.
const SKEW: i64 = 300;
const SIGNING_KEY: &str = "sys/token-signing-key";
/// Verified tokens kept before the cache starts over.
const VERIFIED_CACHE: usize = 16_384;

pub struct IssuerSettings {
    /// Public origin of the issuer, e.g. `https://localhost:8443`.
    pub base: String,
    /// Resources a token may be issued for (`{resource}/.default` scopes).
    pub audiences: Vec<String>,
    /// Access-token lifetime in seconds.
    pub token_lifetime: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub tid: String,
    pub oid: String,
    pub sub: String,
    pub appid: String,
    pub idtyp: String,
    pub ver: String,
    pub uti: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
}

/// Who is calling, as proven by a verified token.
#[derive(Clone, Debug)]
pub struct Caller {
    pub tenant_id: String,
    pub object_id: String,
    pub app_id: String,
    /// A user's name (`preferred_username`); none for applications.
    pub username: Option<String>,
    /// The token was issued after a second factor.
    pub mfa: bool,
}

/// An OAuth2 error, rendered as `{"error", "error_description"}`.
#[derive(Debug)]
pub struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    fn new(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
        }
    }

    fn internal(e: Error) -> Self {
        OAuthError::new(500, "server_error", e.public_message())
    }
}

pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: i64,
    /// The principal or user the token is for (for the audit record).
    pub object_id: String,
}

/// The subject of a token about to be issued.
struct Subject {
    tenant_id: String,
    object_id: String,
    app_id: String,
    kind: &'static str,
    amr: Vec<String>,
    username: Option<String>,
}

pub struct Identity {
    barrier: Arc<Barrier>,
    clock: Arc<dyn Clock>,
    settings: IssuerSettings,
    signer: TokenSigner,
    /// Verified against when a client id or user is unknown, so that both failures cost the same.
    decoy_hash: String,
    /// Tokens already verified, keyed by SHA-256 of (audience, token), with
    /// their expiry. Saves the RSA verification on every request; expiry is
    /// still checked each time. Cleared when a principal or user is deleted.
    verified: RwLock<HashMap<[u8; 32], (Caller, i64)>>,
    /// Bounds concurrent Argon2 verifications (memory and CPU).
    hash_slots: tokio::sync::Semaphore,
    throttle: throttle::Throttle,
}

fn tenant_key(id: &str) -> String {
    format!("sys/tenants/{id}")
}
fn backup_key_key(tenant_id: &str) -> String {
    format!("sys/backup-keys/{tenant_id}")
}
fn operator_key(object_id: &str) -> String {
    format!("sys/operators/{object_id}")
}

fn is_guid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

async fn load_or_create_signer(barrier: &Barrier) -> Result<TokenSigner> {
    for _ in 0..2 {
        if let Some(raw) = barrier.store().get(SIGNING_KEY).await? {
            let der = barrier.open(SIGNING_KEY, &raw).await?;
            return Ok(TokenSigner::from_pkcs8(&der)?);
        }
        let signer = TokenSigner::generate()?;
        let sealed = barrier.seal(SIGNING_KEY, &signer.to_pkcs8()?).await?;
        match barrier
            .commit(
                Batch::new()
                    .expect_absent(SIGNING_KEY)
                    .put(SIGNING_KEY, sealed),
            )
            .await
        {
            Ok(()) => return Ok(signer),
            Err(Error::Conflict(_)) => continue, // another node created it first
            Err(e) => return Err(e),
        }
    }
    Err(Error::Internal(
        "could not create the token signing key".into(),
    ))
}

impl Identity {
    pub async fn open(
        barrier: Arc<Barrier>,
        clock: Arc<dyn Clock>,
        settings: IssuerSettings,
    ) -> Result<Self> {
        let signer = load_or_create_signer(&barrier).await?;
        let decoy_hash = password::hash(&random::token_string(16))?;
        Ok(Identity {
            barrier,
            clock,
            settings,
            signer,
            decoy_hash,
            verified: RwLock::new(HashMap::new()),
            hash_slots: tokio::sync::Semaphore::new(2),
            throttle: throttle::Throttle::default(),
        })
    }

    pub fn settings(&self) -> &IssuerSettings {
        &self.settings
    }

    pub fn issuer(&self, tenant_id: &str) -> String {
        format!("{}/{tenant_id}/v2.0", self.settings.base)
    }

    pub fn token_endpoint(&self, tenant_id: &str) -> String {
        format!("{}/{tenant_id}/oauth2/v2.0/token", self.settings.base)
    }

    // --- tenants -------------------------------------------------------------

    pub async fn create_tenant(&self, display_name: &str) -> Result<Tenant> {
        let name = display_name.trim();
        if name.is_empty() || name.chars().count() > 256 {
            return Err(Error::bad(
                "A tenant's display name must be 1 to 256 characters.",
            ));
        }
        let tenant = Tenant {
            id: uuid::Uuid::new_v4().to_string(),
            display_name: name.to_owned(),
            subscription_id: uuid::Uuid::new_v4().to_string(),
            created: self.clock.now(),
        };
        let key = tenant_key(&tenant.id);
        let bk = backup_key_key(&tenant.id);
        let backup_key = SealingKey::generate();
        let batch = Batch::new()
            .expect_absent(key.clone())
            .put(key.clone(), self.barrier.seal_json(&key, &tenant).await?)
            .put(
                bk.clone(),
                self.barrier.seal(&bk, backup_key.expose_bytes()).await?,
            );
        self.barrier.commit(batch).await?;
        Ok(tenant)
    }

    pub async fn tenant(&self, id: &str) -> Result<Option<Tenant>> {
        // Tenant ids are GUIDs: anything else is unknown without a lookup.
        if !is_guid(id) {
            return Ok(None);
        }
        Ok(self
            .barrier
            .get::<Tenant>(&tenant_key(id))
            .await?
            .map(|s| s.value))
    }

    pub async fn tenants(&self) -> Result<Vec<Tenant>> {
        Ok(self
            .barrier
            .list_all::<Tenant>("sys/tenants/")
            .await?
            .into_iter()
            .map(|s| s.value)
            .collect())
    }

    /// The tenant whose subscription this is (one subscription per tenant).
    pub async fn tenant_by_subscription(&self, subscription_id: &str) -> Result<Option<Tenant>> {
        Ok(self
            .tenants()
            .await?
            .into_iter()
            .find(|t| t.subscription_id.eq_ignore_ascii_case(subscription_id)))
    }

    /// Deletes a tenant that holds no vaults (live or soft-deleted), with its
    /// principals, users and keys. `vault_count` is the caller's count.
    pub async fn delete_tenant(&self, id: &str, vault_count: usize) -> Result<Tenant> {
        let tenant = self.tenant(id).await?.ok_or_else(|| {
            Error::not_found(
                "TenantNotFound",
                format!("Tenant {} does not exist.", crate::names::printable(id)),
            )
        })?;
        if vault_count > 0 {
            return Err(Error::Conflict(format!(
                "Tenant {} still has {vault_count} vault(s), live or soft-deleted; delete and purge them first.",
                tenant.id
            )));
        }
        let mut batch = Batch::new()
            .delete(tenant_key(id))
            .delete(backup_key_key(id));
        for prefix in [
            format!("sys/principals/{id}/"),
            format!("sys/users/{id}/"),
            format!("sys/roleassignments/{id}/"),
            format!("sys/roledefinitions/{id}/"),
        ] {
            for key in self.barrier.list_keys(&prefix).await? {
                batch = batch.delete(key);
            }
        }
        for op in self.barrier.list_all::<Operator>("sys/operators/").await? {
            if op.value.tenant_id == id {
                batch = batch.delete(op.key);
            }
        }
        self.barrier.commit(batch).await?;
        self.forget_verified_tokens();
        Ok(tenant)
    }

    /// The tenant's key for backup blobs.
    pub async fn backup_key(&self, tenant_id: &str) -> Result<SealingKey> {
        let key = backup_key_key(tenant_id);
        let raw = self
            .barrier
            .store()
            .get(&key)
            .await?
            .ok_or_else(|| Error::Internal(format!("tenant {tenant_id} has no backup key")))?;
        let plain = self.barrier.open(&key, &raw).await?;
        Ok(SealingKey::from_bytes(&plain)?)
    }

    // --- operators -------------------------------------------------------------

    /// Makes a principal a server operator (may create and delete tenants).
    pub async fn add_operator(&self, tenant_id: &str, object_id: &str) -> Result<()> {
        let key = operator_key(object_id);
        let op = Operator {
            tenant_id: tenant_id.to_owned(),
            object_id: object_id.to_owned(),
            created: self.clock.now(),
        };
        let sealed = self.barrier.seal_json(&key, &op).await?;
        self.barrier.commit(Batch::new().put(key, sealed)).await
    }

    pub async fn is_operator(&self, caller: &Caller) -> Result<bool> {
        self.is_operator_object(&caller.tenant_id, &caller.object_id)
            .await
    }

    async fn is_operator_object(&self, tenant_id: &str, object_id: &str) -> Result<bool> {
        if !is_guid(object_id) {
            return Ok(false);
        }
        Ok(self
            .barrier
            .get::<Operator>(&operator_key(object_id))
            .await?
            .is_some_and(|s| s.value.tenant_id == tenant_id))
    }

    /// Refuses a change to the credentials or the existence of a server
    /// operator (a principal by object or client id, or a user by name or
    /// object id) unless `caller` is an operator too: a tenant's
    /// administrators must not be able to sign in as, or remove, an operator.
    pub async fn check_may_manage(
        &self,
        caller: &Caller,
        tenant_id: &str,
        name_or_id: &str,
    ) -> Result<()> {
        let principal = self
            .principals(tenant_id)
            .await?
            .into_iter()
            .find(|p| {
                p.object_id.eq_ignore_ascii_case(name_or_id)
                    || p.app_id.eq_ignore_ascii_case(name_or_id)
            })
            .map(|p| p.object_id);
        let target = match principal {
            Some(oid) => Some(oid),
            None => self
                .user_by_name(tenant_id, name_or_id)
                .await?
                .map(|u| u.object_id),
        };
        let Some(target) = target else {
            return Ok(()); // nothing to protect: the operation answers 404
        };
        if self.is_operator_object(tenant_id, &target).await? && !self.is_operator(caller).await? {
            return Err(Error::Forbidden {
                message: "This is a server operator's account: only another server operator may change its credentials or delete it.".into(),
                inner: Some("AuthorizationFailed"),
            });
        }
        Ok(())
    }

    // --- tokens ----------------------------------------------------------------

    fn issue(
        &self,
        subject: Subject,
        audience: String,
    ) -> std::result::Result<IssuedToken, OAuthError> {
        let now = self.clock.now();
        let claims = Claims {
            aud: audience,
            iss: self.issuer(&subject.tenant_id),
            iat: now,
            nbf: now,
            exp: now + self.settings.token_lifetime,
            tid: subject.tenant_id,
            oid: subject.object_id.clone(),
            sub: subject.object_id.clone(),
            appid: subject.app_id,
            idtyp: subject.kind.into(),
            ver: "2.0".into(),
            uti: random::token_string(16),
            amr: subject.amr,
            preferred_username: subject.username,
        };
        let access_token = self
            .signer
            .sign(&claims)
            .map_err(|e| OAuthError::internal(e.into()))?;
        Ok(IssuedToken {
            access_token,
            expires_in: self.settings.token_lifetime,
            object_id: subject.object_id,
        })
    }

    fn audience_for_scope(&self, scope: &str) -> std::result::Result<String, OAuthError> {
        let resource = scope
            .split_whitespace()
            .find_map(|s| s.strip_suffix("/.default"))
            .ok_or_else(|| {
                OAuthError::new(
                    400,
                    "invalid_scope",
                    "AADSTS70011: The scope must be '{resource}/.default' for this grant.",
                )
            })?;
        let resource = resource.trim_end_matches('/');
        self.settings
            .audiences
            .iter()
            .find(|a| a.trim_end_matches('/').eq_ignore_ascii_case(resource))
            .cloned()
            .ok_or_else(|| {
                OAuthError::new(
                    400,
                    "invalid_resource",
                    format!(
                        "AADSTS500011: The resource '{}' is not served by this issuer; use one of: {}.",
                        crate::names::printable(resource),
                        self.settings.audiences.join(", ")
                    ),
                )
            })
    }

    /// Forgets every verified token, so the next request of each is checked
    /// again from scratch (after a principal or user is deleted).
    fn forget_verified_tokens(&self) {
        self.verified.write().expect("token cache lock").clear();
    }

    /// Checks a bearer token for `audience`: signature, issuer, audience,
    /// validity window, and that its subject still exists.
    pub async fn verify(&self, token: &str, audience: &str) -> Result<Caller> {
        let key = keyfort_crypto::digest::sha256(format!("{audience}\n{token}").as_bytes());
        if let Some((caller, exp)) = self.verified.read().expect("token cache lock").get(&key)
            && self.clock.now() <= exp + SKEW
        {
            return Ok(caller.clone());
        }
        let (caller, exp, kind) = self.verify_uncached(token, audience)?;
        if !self.subject_exists(&caller, &kind).await? {
            return Err(Error::Unauthorized(
                "AKV10000: The token's principal no longer exists.".into(),
            ));
        }
        let mut cache = self.verified.write().expect("token cache lock");
        if cache.len() >= VERIFIED_CACHE {
            cache.clear();
        }
        cache.insert(key, (caller.clone(), exp));
        Ok(caller)
    }

    fn verify_uncached(&self, token: &str, audience: &str) -> Result<(Caller, i64, String)> {
        let claims: Claims = self.signer.verify(token).map_err(|e| {
            Error::Unauthorized(format!("AKV10000: The bearer token is not valid: {e}."))
        })?;
        if claims.iss != self.issuer(&claims.tid) {
            return Err(Error::Unauthorized(
                "AKV10022: The token was not issued by this server's issuer.".into(),
            ));
        }
        if claims.aud.trim_end_matches('/') != audience.trim_end_matches('/') {
            return Err(Error::Unauthorized(format!(
                "AKV10022: Invalid audience. Expected {audience}, found: {}.",
                claims.aud
            )));
        }
        let now = self.clock.now();
        if now + SKEW < claims.nbf {
            return Err(Error::Unauthorized(
                "AKV10000: The token is not valid yet.".into(),
            ));
        }
        if now > claims.exp + SKEW {
            return Err(Error::Unauthorized(
                "AKV10000: The token has expired; request a new one.".into(),
            ));
        }
        let caller = Caller {
            tenant_id: claims.tid,
            object_id: claims.oid,
            app_id: claims.appid,
            username: claims.preferred_username.clone(),
            mfa: claims.amr.iter().any(|m| m == "mfa"),
        };
        Ok((caller, claims.exp, claims.idtyp))
    }

    async fn subject_exists(&self, caller: &Caller, kind: &str) -> Result<bool> {
        Ok(match kind {
            "user" => self
                .user(&caller.tenant_id, &caller.object_id)
                .await?
                .is_some(),
            _ => self
                .principal_by_app_id(&caller.tenant_id, &caller.app_id)
                .await?
                .is_some_and(|p| p.object_id == caller.object_id),
        })
    }

    /// The OpenID Connect discovery document of a tenant.
    pub fn openid_configuration(&self, tenant_id: &str) -> serde_json::Value {
        let base = &self.settings.base;
        serde_json::json!({
            "issuer": self.issuer(tenant_id),
            "authorization_endpoint": format!("{base}/{tenant_id}/oauth2/v2.0/authorize"),
            "token_endpoint": self.token_endpoint(tenant_id),
            "jwks_uri": format!("{base}/{tenant_id}/discovery/v2.0/keys"),
            "response_types_supported": ["token"],
            "grant_types_supported": ["client_credentials", "password"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            "scopes_supported": ["openid"],
            "claims_supported": ["aud", "iss", "iat", "nbf", "exp", "tid", "oid", "sub", "appid", "amr"],
            "tenant_region_scope": null,
        })
    }

    /// Signs an audit checkpoint (sequence and head hash) with the token key.
    pub fn sign_checkpoint(&self, claims: &serde_json::Value) -> Option<String> {
        self.signer.sign(claims).ok()
    }

    /// True when `signature` is this server's signature over (`sequence`, `hash`).
    pub fn verify_checkpoint(&self, signature: &str, sequence: u64, hash: &str) -> bool {
        self.signer
            .verify::<serde_json::Value>(signature)
            .is_ok_and(|c| crate::audit::checkpoint_covers(&c, sequence, hash))
    }

    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": [self.signer.jwk()] })
    }
}
