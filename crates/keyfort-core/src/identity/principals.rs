//! Service principals: client secrets (Argon2id hashes; the secret is shown
//! once) and certificate credentials.

use base64::Engine;
use keyfort_crypto::x509::CertificateCredential as ParsedCertificate;
use keyfort_crypto::{password, random};
use keyfort_store::Batch;

use super::{Identity, is_guid};
use crate::barrier::Stored;
use crate::model::{CertificateCredential, ClientSecret, Principal};
use crate::{Error, Result, names};

pub(super) fn principal_key(tenant_id: &str, app_id: &str) -> String {
    format!("sys/principals/{tenant_id}/{}", app_id.to_ascii_lowercase())
}

fn not_found(id: &str) -> Error {
    Error::not_found(
        "PrincipalNotFound",
        format!(
            "Service principal {} does not exist in this tenant.",
            names::printable(id)
        ),
    )
}

impl Identity {
    pub(super) async fn hash_secret(&self, secret: &str) -> Result<String> {
        let _slot = self
            .hash_slots
            .acquire()
            .await
            .map_err(|_| Error::Unavailable("shutting down".into()))?;
        let secret = secret.to_owned();
        tokio::task::spawn_blocking(move || password::hash(&secret))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(Into::into)
    }

    fn new_client_secret(&self, hash: String, secret: &str) -> ClientSecret {
        ClientSecret {
            key_id: uuid::Uuid::new_v4().to_string(),
            hash,
            hint: secret.chars().take(3).collect(),
            created: self.clock.now(),
        }
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
                format!("Tenant {} does not exist.", names::printable(tenant_id)),
            ));
        }
        let name = display_name.trim();
        if name.is_empty() || name.chars().count() > 256 {
            return Err(Error::bad(
                "A principal's display name must be 1 to 256 characters.",
            ));
        }
        let secret = random::token_string(32);
        let hash = self.hash_secret(&secret).await?;
        let principal = Principal {
            object_id: uuid::Uuid::new_v4().to_string(),
            tenant_id: tenant_id.to_owned(),
            app_id: uuid::Uuid::new_v4().to_string(),
            display_name: name.to_owned(),
            kind: "ServicePrincipal".into(),
            secrets: vec![self.new_client_secret(hash, &secret)],
            certificates: vec![],
            created: self.clock.now(),
        };
        let key = principal_key(tenant_id, &principal.app_id);
        let batch = Batch::new()
            .expect_absent(key.clone())
            .put(key.clone(), self.barrier.seal_json(&key, &principal).await?);
        self.barrier.commit(batch).await?;
        Ok((principal, secret))
    }

    pub async fn principals(&self, tenant_id: &str) -> Result<Vec<Principal>> {
        Ok(self
            .barrier
            .list_all::<Principal>(&format!("sys/principals/{tenant_id}/"))
            .await?
            .into_iter()
            .map(|s| s.value)
            .collect())
    }

    pub async fn principal_by_app_id(
        &self,
        tenant_id: &str,
        app_id: &str,
    ) -> Result<Option<Principal>> {
        if !is_guid(tenant_id) || !is_guid(app_id) {
            return Ok(None);
        }
        Ok(self
            .barrier
            .get::<Principal>(&principal_key(tenant_id, app_id))
            .await?
            .map(|s| s.value))
    }

    async fn stored_principal(
        &self,
        tenant_id: &str,
        object_id: &str,
    ) -> Result<Stored<Principal>> {
        self.barrier
            .list_all::<Principal>(&format!("sys/principals/{tenant_id}/"))
            .await?
            .into_iter()
            .find(|s| {
                s.value.object_id.eq_ignore_ascii_case(object_id)
                    || s.value.app_id.eq_ignore_ascii_case(object_id)
            })
            .ok_or_else(|| not_found(object_id))
    }

    /// The principal of `tenant_id` with this object id.
    pub async fn principal_by_object_id(
        &self,
        tenant_id: &str,
        object_id: &str,
    ) -> Result<Option<Principal>> {
        match self.stored_principal(tenant_id, object_id).await {
            Ok(s) if s.value.object_id.eq_ignore_ascii_case(object_id) => Ok(Some(s.value)),
            Ok(_) | Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes a principal (by object or client id); its tokens stop working at once.
    pub async fn delete_principal(&self, tenant_id: &str, id: &str) -> Result<Principal> {
        let stored = self.stored_principal(tenant_id, id).await?;
        self.barrier
            .commit(
                Batch::new()
                    .expect_equals(stored.key.clone(), stored.raw)
                    .delete(stored.key),
            )
            .await?;
        self.forget_verified_tokens();
        Ok(stored.value)
    }

    /// Adds a client secret; returns its key id and the secret (shown once).
    pub async fn add_client_secret(&self, tenant_id: &str, id: &str) -> Result<(String, String)> {
        let stored = self.stored_principal(tenant_id, id).await?;
        let secret = random::token_string(32);
        let credential = self.new_client_secret(self.hash_secret(&secret).await?, &secret);
        let key_id = credential.key_id.clone();
        let mut p = stored.value.clone();
        p.secrets.push(credential);
        self.barrier.replace(stored, &p).await?;
        Ok((key_id, secret))
    }

    /// Registers a certificate (PEM) as a credential; returns its key id and
    /// its SHA-1 thumbprint (`x5t`).
    pub async fn add_certificate(
        &self,
        tenant_id: &str,
        id: &str,
        pem: &str,
    ) -> Result<(String, String)> {
        let parsed = ParsedCertificate::from_pem(pem)
            .map_err(|e| Error::bad(format!("The certificate cannot be used: {e}.")))?;
        if parsed.not_after < self.clock.now() {
            return Err(Error::bad(
                "The certificate cannot be used: it has expired.",
            ));
        }
        let stored = self.stored_principal(tenant_id, id).await?;
        let mut p = stored.value.clone();
        if p.certificates.iter().any(|c| c.x5t_s256 == parsed.x5t_s256) {
            return Err(Error::Conflict(
                "This certificate is already a credential of the principal.".into(),
            ));
        }
        let credential = CertificateCredential {
            key_id: uuid::Uuid::new_v4().to_string(),
            der: base64::engine::general_purpose::STANDARD.encode(&parsed.der),
            x5t: parsed.x5t.clone(),
            x5t_s256: parsed.x5t_s256,
            created: self.clock.now(),
        };
        let key_id = credential.key_id.clone();
        p.certificates.push(credential);
        self.barrier.replace(stored, &p).await?;
        Ok((key_id, parsed.x5t))
    }
}
