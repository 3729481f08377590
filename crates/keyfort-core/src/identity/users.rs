//! Users: a password (Argon2id) and a TOTP second factor (RFC 6238). The
//! `otpauth://` URI is returned once, at enrollment.

use base64::Engine;
use keyfort_crypto::{random, totp};
use keyfort_store::Batch;

use super::{Identity, is_guid};
use crate::barrier::Stored;
use crate::model::User;
use crate::{Error, Result, names};

pub struct NewUser<'a> {
    pub tenant_id: &'a str,
    pub username: &'a str,
    pub display_name: &'a str,
    pub password: &'a str,
}

pub(super) fn user_key(tenant_id: &str, object_id: &str) -> String {
    format!("sys/users/{tenant_id}/{}", object_id.to_ascii_lowercase())
}

const MIN_PASSWORD: usize = 12;

fn check_username(u: &str) -> Result<()> {
    let ok = (1..=256).contains(&u.len())
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@._-+".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::bad(
            "A username is 1 to 256 letters, digits and @ . _ - +, such as alice@example.com.",
        ))
    }
}

impl Identity {
    /// Creates a user with a password and a TOTP secret; returns the user and
    /// the `otpauth://` URI to enroll an authenticator app (shown once).
    pub async fn create_user(&self, req: NewUser<'_>) -> Result<(User, String)> {
        if self.tenant(req.tenant_id).await?.is_none() {
            return Err(Error::not_found(
                "TenantNotFound",
                format!("Tenant {} does not exist.", names::printable(req.tenant_id)),
            ));
        }
        check_username(req.username)?;
        if req.password.chars().count() < MIN_PASSWORD {
            return Err(Error::bad(format!(
                "A password must be at least {MIN_PASSWORD} characters."
            )));
        }
        if self
            .user_by_name(req.tenant_id, req.username)
            .await?
            .is_some()
        {
            return Err(Error::Conflict(format!(
                "A user named '{}' already exists in this tenant.",
                req.username
            )));
        }
        let secret = random::bytes(20);
        let user = User {
            object_id: uuid::Uuid::new_v4().to_string(),
            tenant_id: req.tenant_id.to_owned(),
            username: req.username.to_ascii_lowercase(),
            display_name: req.display_name.to_owned(),
            password_hash: self.hash_secret(req.password).await?,
            totp_secret: Some(base64::engine::general_purpose::STANDARD.encode(&secret)),
            last_totp_step: 0,
            created: self.clock.now(),
        };
        let key = user_key(req.tenant_id, &user.object_id);
        let sealed = self.barrier.seal_json(&key, &user).await?;
        self.barrier
            .commit(Batch::new().expect_absent(key.clone()).put(key, sealed))
            .await?;
        Ok((
            user.clone(),
            totp::otpauth_uri("Keyfort", &user.username, &secret),
        ))
    }

    /// True when `object_id` is a principal or a user of the tenant.
    pub async fn has_object(&self, tenant_id: &str, object_id: &str) -> Result<bool> {
        Ok(self
            .principal_by_object_id(tenant_id, object_id)
            .await?
            .is_some()
            || self.user(tenant_id, object_id).await?.is_some())
    }

    pub async fn users(&self, tenant_id: &str) -> Result<Vec<User>> {
        Ok(self
            .barrier
            .list_all::<User>(&format!("sys/users/{tenant_id}/"))
            .await?
            .into_iter()
            .map(|s| s.value)
            .collect())
    }

    pub async fn user(&self, tenant_id: &str, object_id: &str) -> Result<Option<User>> {
        if !is_guid(tenant_id) || !is_guid(object_id) {
            return Ok(None);
        }
        Ok(self
            .barrier
            .get::<User>(&user_key(tenant_id, object_id))
            .await?
            .map(|s| s.value))
    }

    pub(super) async fn stored_user_by_name(
        &self,
        tenant_id: &str,
        username: &str,
    ) -> Result<Option<Stored<User>>> {
        Ok(self
            .barrier
            .list_all::<User>(&format!("sys/users/{tenant_id}/"))
            .await?
            .into_iter()
            .find(|s| {
                s.value.username.eq_ignore_ascii_case(username)
                    || s.value.object_id.eq_ignore_ascii_case(username)
            }))
    }

    pub async fn user_by_name(&self, tenant_id: &str, username: &str) -> Result<Option<User>> {
        Ok(self
            .stored_user_by_name(tenant_id, username)
            .await?
            .map(|s| s.value))
    }

    fn user_not_found(name: &str) -> Error {
        Error::not_found(
            "UserNotFound",
            format!(
                "User {} does not exist in this tenant.",
                names::printable(name)
            ),
        )
    }

    pub async fn delete_user(&self, tenant_id: &str, name_or_id: &str) -> Result<User> {
        let stored = self
            .stored_user_by_name(tenant_id, name_or_id)
            .await?
            .ok_or_else(|| Self::user_not_found(name_or_id))?;
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

    /// Replaces a user's TOTP secret; returns the new `otpauth://` URI (shown once).
    pub async fn reset_totp(&self, tenant_id: &str, name_or_id: &str) -> Result<String> {
        let stored = self
            .stored_user_by_name(tenant_id, name_or_id)
            .await?
            .ok_or_else(|| Self::user_not_found(name_or_id))?;
        let secret = random::bytes(20);
        let mut user = stored.value.clone();
        user.totp_secret = Some(base64::engine::general_purpose::STANDARD.encode(&secret));
        user.last_totp_step = 0;
        self.barrier.replace(stored, &user).await?;
        Ok(totp::otpauth_uri("Keyfort", &user.username, &secret))
    }
}
