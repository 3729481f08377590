//! Identity: tenants, service principals with client secrets, and the token
//! issuer. Tokens are RS256 JWTs shaped like Entra ID's v2 access tokens
//! (`tid`, `oid`, `appid`, `aud`, `exp`, ...), checked on every request.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use keyfort_crypto::token::TokenSigner;
use keyfort_crypto::{SealingKey, password, random};
use keyfort_store::Batch;
use serde::{Deserialize, Serialize};

use crate::barrier::Barrier;
use crate::clock::Clock;
use crate::model::{ClientSecret, Principal, Tenant};
use crate::{Error, Result};

/// Clock skew tolerated on `nbf` and `exp`, as Entra ID allows.
const SKEW: i64 = 300;
const SIGNING_KEY: &str = "sys/token-signing-key";

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
}

/// Who is calling, as proven by a verified token.
#[derive(Clone, Debug)]
pub struct Caller {
    pub tenant_id: String,
    pub object_id: String,
    pub app_id: String,
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
}

pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: i64,
    /// The principal the token is for (for the audit record).
    pub object_id: String,
}

pub struct Identity {
    barrier: Arc<Barrier>,
    clock: Arc<dyn Clock>,
    settings: IssuerSettings,
    signer: TokenSigner,
    /// Verified against when a client id is unknown, so that both failures cost the same.
    decoy_hash: String,
    /// Tokens already verified, keyed by SHA-256 of (audience, token), with
    /// their expiry. Saves the RSA verification on every request; expiry is
    /// still checked each time.
    verified: RwLock<HashMap<[u8; 32], (Caller, i64)>>,
    /// Bounds concurrent Argon2 verifications (memory and CPU).
    hash_slots: tokio::sync::Semaphore,
}

/// Verified tokens kept before the cache starts over.
const VERIFIED_CACHE: usize = 16_384;

fn tenant_key(id: &str) -> String {
    format!("sys/tenants/{id}")
}
fn principal_key(tenant_id: &str, app_id: &str) -> String {
    format!("sys/principals/{tenant_id}/{app_id}")
}
fn backup_key_key(tenant_id: &str) -> String {
    format!("sys/backup-keys/{tenant_id}")
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
        })
    }

    pub fn settings(&self) -> &IssuerSettings {
        &self.settings
    }

    pub fn issuer(&self, tenant_id: &str) -> String {
        format!("{}/{tenant_id}/v2.0", self.settings.base)
    }

    pub async fn create_tenant(&self, display_name: &str) -> Result<Tenant> {
        let tenant = Tenant {
            id: uuid::Uuid::new_v4().to_string(),
            display_name: display_name.to_owned(),
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
        if uuid::Uuid::parse_str(id).is_err() {
            return Ok(None);
        }
        Ok(self
            .barrier
            .get::<Tenant>(&tenant_key(id))
            .await?
            .map(|s| s.value))
    }

    /// The principal of `tenant_id` with this object id.
    pub async fn principal_by_object_id(
        &self,
        tenant_id: &str,
        object_id: &str,
    ) -> Result<Option<Principal>> {
        Ok(self
            .barrier
            .list_all::<Principal>(&format!("sys/principals/{tenant_id}/"))
            .await?
            .into_iter()
            .map(|s| s.value)
            .find(|p| p.object_id.eq_ignore_ascii_case(object_id)))
    }

    /// The tenant whose subscription this is (one subscription per tenant).
    pub async fn tenant_by_subscription(&self, subscription_id: &str) -> Result<Option<Tenant>> {
        Ok(self
            .barrier
            .list_all::<Tenant>("sys/tenants/")
            .await?
            .into_iter()
            .map(|s| s.value)
            .find(|t| t.subscription_id.eq_ignore_ascii_case(subscription_id)))
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

    /// Creates a service principal with one client secret. The secret is
    /// returned once and only its Argon2 hash is kept.
    pub async fn create_service_principal(
        &self,
        tenant_id: &str,
        display_name: &str,
    ) -> Result<(Principal, String)> {
        if self.tenant(tenant_id).await?.is_none() {
            return Err(Error::not_found(
                "TenantNotFound",
                format!("Tenant {tenant_id} does not exist."),
            ));
        }
        let secret = random::token_string(32);
        let hash = {
            let secret = secret.clone();
            tokio::task::spawn_blocking(move || password::hash(&secret))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??
        };
        let now = self.clock.now();
        let principal = Principal {
            object_id: uuid::Uuid::new_v4().to_string(),
            tenant_id: tenant_id.to_owned(),
            app_id: uuid::Uuid::new_v4().to_string(),
            display_name: display_name.to_owned(),
            kind: "ServicePrincipal".into(),
            secrets: vec![ClientSecret {
                key_id: uuid::Uuid::new_v4().to_string(),
                hash,
                hint: secret.chars().take(3).collect(),
                created: now,
            }],
            created: now,
        };
        let key = principal_key(tenant_id, &principal.app_id);
        let batch = Batch::new()
            .expect_absent(key.clone())
            .put(key.clone(), self.barrier.seal_json(&key, &principal).await?);
        self.barrier.commit(batch).await?;
        Ok((principal, secret))
    }

    /// The OAuth2 client-credentials grant.
    pub async fn client_credentials(
        &self,
        tenant_id: &str,
        client_id: &str,
        client_secret: &str,
        scope: &str,
    ) -> std::result::Result<IssuedToken, OAuthError> {
        let internal = |e: Error| OAuthError::new(500, "server_error", e.public_message());
        if self.tenant(tenant_id).await.map_err(internal)?.is_none() {
            return Err(OAuthError::new(
                400,
                "invalid_request",
                format!(
                    "AADSTS90002: Tenant '{}' not found. Check the tenant id in the authority.",
                    crate::names::printable(tenant_id)
                ),
            ));
        }
        if uuid::Uuid::parse_str(client_id).is_err() {
            return Err(OAuthError::new(
                400,
                "unauthorized_client",
                "AADSTS700016: client_id must be an application (client) id, a GUID.",
            ));
        }
        let audience = self.audience_for_scope(scope)?;
        let principal = self
            .barrier
            .get::<Principal>(&principal_key(tenant_id, client_id))
            .await
            .map_err(internal)?
            .map(|s| s.value);
        let hashes: Vec<String> = match &principal {
            Some(p) => p.secrets.iter().map(|s| s.hash.clone()).collect(),
            None => vec![self.decoy_hash.clone()],
        };
        let offered = client_secret.to_owned();
        // Argon2 costs 19 MiB and tens of milliseconds: a few at a time, the rest wait.
        let _slot = self.hash_slots.acquire().await.map_err(|_| {
            OAuthError::new(
                503,
                "temporarily_unavailable",
                "The issuer is shutting down.",
            )
        })?;
        let matched = tokio::task::spawn_blocking(move || {
            hashes.iter().any(|h| password::verify(&offered, h))
        })
        .await
        .map_err(|e| OAuthError::new(500, "server_error", e.to_string()))?;
        let principal = match (principal, matched) {
            (Some(p), true) => p,
            _ => {
                return Err(OAuthError::new(
                    401,
                    "invalid_client",
                    "AADSTS7000215: Invalid client secret provided, or no application with this client id exists in the tenant.",
                ));
            }
        };
        let now = self.clock.now();
        let claims = Claims {
            aud: audience,
            iss: self.issuer(tenant_id),
            iat: now,
            nbf: now,
            exp: now + self.settings.token_lifetime,
            tid: tenant_id.to_owned(),
            oid: principal.object_id.clone(),
            sub: principal.object_id.clone(),
            appid: principal.app_id.clone(),
            idtyp: "app".into(),
            ver: "2.0".into(),
            uti: random::token_string(16),
            amr: Vec::new(),
        };
        let access_token = self.signer.sign(&claims).map_err(|e| internal(e.into()))?;
        Ok(IssuedToken {
            access_token,
            expires_in: self.settings.token_lifetime,
            object_id: principal.object_id,
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
                        "AADSTS500011: The resource '{resource}' is not served by this issuer; use one of: {}.",
                        self.settings.audiences.join(", ")
                    ),
                )
            })
    }

    /// Checks a bearer token for `audience`: signature, issuer, audience and
    /// validity window.
    pub fn verify(&self, token: &str, audience: &str) -> Result<Caller> {
        let key = keyfort_crypto::digest::sha256(format!("{audience}\n{token}").as_bytes());
        if let Some((caller, exp)) = self.verified.read().expect("token cache lock").get(&key)
            && self.clock.now() <= exp + SKEW
        {
            return Ok(caller.clone());
        }
        let (caller, exp) = self.verify_uncached(token, audience)?;
        let mut cache = self.verified.write().expect("token cache lock");
        if cache.len() >= VERIFIED_CACHE {
            cache.clear();
        }
        cache.insert(key, (caller.clone(), exp));
        Ok(caller)
    }

    fn verify_uncached(&self, token: &str, audience: &str) -> Result<(Caller, i64)> {
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
            mfa: claims.amr.iter().any(|m| m == "mfa"),
        };
        Ok((caller, claims.exp))
    }

    /// The OpenID Connect discovery document of a tenant.
    pub fn openid_configuration(&self, tenant_id: &str) -> serde_json::Value {
        let base = &self.settings.base;
        serde_json::json!({
            "issuer": self.issuer(tenant_id),
            "authorization_endpoint": format!("{base}/{tenant_id}/oauth2/v2.0/authorize"),
            "token_endpoint": format!("{base}/{tenant_id}/oauth2/v2.0/token"),
            "jwks_uri": format!("{base}/{tenant_id}/discovery/v2.0/keys"),
            "response_types_supported": ["token"],
            "grant_types_supported": ["client_credentials"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
            "scopes_supported": ["openid"],
            "claims_supported": ["aud", "iss", "iat", "nbf", "exp", "tid", "oid", "sub", "appid", "amr"],
            "tenant_region_scope": null,
        })
    }

    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": [self.signer.jwk()] })
    }
}
