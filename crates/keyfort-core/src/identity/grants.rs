//! The token endpoint's grants: client credentials (a client secret, or a
//! client assertion signed with a registered certificate) and, for people,
//! the password grant with a TOTP code (`otp`). Failed sign-ins are throttled
//! per account and per source address.

use base64::Engine;
use keyfort_crypto::token::Jws;
use keyfort_crypto::x509::CertificateCredential as ParsedCertificate;
use keyfort_crypto::{password, totp};
use serde::Deserialize;

use super::throttle::{self, Attempt, Refused};
use super::{Identity, IssuedToken, OAuthError, SKEW, Subject, is_guid};
use crate::names;

/// The public client id people sign in through when they name none (the
/// Azure CLI's, so tools that assume it work).
const DEFAULT_PUBLIC_CLIENT: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

pub enum SignIn<'a> {
    ClientSecret {
        client_id: &'a str,
        secret: &'a str,
    },
    ClientAssertion {
        client_id: Option<&'a str>,
        assertion: &'a str,
    },
    Password {
        client_id: Option<&'a str>,
        username: &'a str,
        password: &'a str,
        otp: Option<&'a str>,
    },
}

pub struct GrantRequest<'a> {
    pub tenant_id: &'a str,
    pub scope: &'a str,
    /// The caller's address, for throttling.
    pub source: &'a str,
    pub sign_in: SignIn<'a>,
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    aud: String,
    /// NumericDate may have a fraction (MSAL sends one).
    exp: f64,
    #[serde(default)]
    nbf: Option<f64>,
    /// Required: each assertion is accepted once.
    #[serde(default)]
    jti: Option<String>,
}

/// The longest lifetime accepted for a client assertion.
const MAX_ASSERTION_LIFETIME: i64 = 3600;

fn invalid_client() -> OAuthError {
    OAuthError::new(
        401,
        "invalid_client",
        "AADSTS7000215: Invalid client credential, or no application with this client id exists in the tenant.",
    )
}

fn invalid_grant() -> OAuthError {
    OAuthError::new(
        400,
        "invalid_grant",
        "AADSTS50126: Error validating credentials due to invalid username, password or one-time code.",
    )
}

impl Identity {
    /// Runs a grant and issues a token, or says why not.
    pub async fn grant(&self, req: GrantRequest<'_>) -> Result<IssuedToken, OAuthError> {
        if self
            .tenant(req.tenant_id)
            .await
            .map_err(OAuthError::internal)?
            .is_none()
        {
            return Err(OAuthError::new(
                400,
                "invalid_request",
                format!(
                    "AADSTS90002: Tenant '{}' not found. Check the tenant id in the authority.",
                    names::printable(req.tenant_id)
                ),
            ));
        }
        let audience = self.audience_for_scope(req.scope)?;
        let address_key = throttle::address_key(req.source);
        let account = match &req.sign_in {
            // Client ids are not secret, and client secrets and keys cannot be
            // guessed: an application is counted per source address, so no one
            // can lock an application out by failing in its name.
            SignIn::ClientSecret { client_id, .. } => {
                format!("{}@{address_key}", client_id.to_ascii_lowercase())
            }
            SignIn::ClientAssertion { client_id, .. } => format!(
                "{}@{address_key}",
                client_id.unwrap_or("assertion").to_ascii_lowercase()
            ),
            // A user is counted once, whether named by username or object id;
            // attempts with a one-time code are counted apart, so a
            // password-only success does not reset the count of wrong codes.
            SignIn::Password { username, otp, .. } => {
                let user = self
                    .user_by_name(req.tenant_id, username)
                    .await
                    .map_err(OAuthError::internal)?;
                format!(
                    "{}{}",
                    user.map(|u| u.object_id)
                        .unwrap_or_else(|| username.to_ascii_lowercase()),
                    if otp.is_some_and(|o| !o.is_empty()) {
                        "#otp"
                    } else {
                        ""
                    }
                )
            }
        };
        let account_key = format!("{}/{}", req.tenant_id, names::printable(&account));
        let now = self.clock.now();
        let attempt = self
            .begin_attempt(&account_key, &address_key, now)
            .await
            .map_err(|refused| match refused {
                Refused::Locked(wait) => OAuthError::new(
                    429,
                    "temporarily_unavailable",
                    format!(
                        "AADSTS50053: Too many failed sign-ins for this account or from this address; retry in {wait} seconds."
                    ),
                ),
                Refused::Busy => OAuthError::new(
                    429,
                    "temporarily_unavailable",
                    "AADSTS50196: Too many sign-ins for this account or from this address are in progress; retry in 1 second.",
                ),
            })?;
        let outcome = match req.sign_in {
            SignIn::ClientSecret { client_id, secret } => {
                self.check_client_secret(req.tenant_id, client_id, secret)
                    .await
            }
            SignIn::ClientAssertion {
                client_id,
                assertion,
            } => {
                self.check_assertion(req.tenant_id, client_id, assertion)
                    .await
            }
            SignIn::Password {
                client_id,
                username,
                password,
                otp,
            } => {
                self.check_password(req.tenant_id, client_id, username, password, otp)
                    .await
            }
        };
        match outcome {
            Ok(subject) => {
                self.throttle.succeeded(attempt);
                self.issue(subject, audience)
            }
            Err(e) => {
                // An internal error is not the caller's failure; dropping the
                // attempt only gives its place back.
                if e.status != 500 {
                    self.throttle.failed(attempt, now);
                }
                Err(e)
            }
        }
    }

    /// Reserves a place for a sign-in attempt. When as many attempts are
    /// already running as may still fail, waits a little for them to finish
    /// (legitimate clients often start together) before refusing.
    async fn begin_attempt(
        &self,
        account: &str,
        address: &str,
        now: i64,
    ) -> Result<Attempt<'_>, Refused> {
        const PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);
        const STEP: std::time::Duration = std::time::Duration::from_millis(20);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match self.throttle.begin(account, address, now) {
                Err(Refused::Busy) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(STEP).await
                }
                other => return other,
            }
        }
    }

    /// Runs an Argon2 verification off the async threads, a few at a time.
    async fn verify_hashes(&self, offered: &str, hashes: Vec<String>) -> Result<bool, OAuthError> {
        let _slot = self.hash_slots.acquire().await.map_err(|_| {
            OAuthError::new(
                503,
                "temporarily_unavailable",
                "The issuer is shutting down.",
            )
        })?;
        let offered = offered.to_owned();
        tokio::task::spawn_blocking(move || hashes.iter().any(|h| password::verify(&offered, h)))
            .await
            .map_err(|e| OAuthError::new(500, "server_error", e.to_string()))
    }

    async fn check_client_secret(
        &self,
        tenant_id: &str,
        client_id: &str,
        secret: &str,
    ) -> Result<Subject, OAuthError> {
        if !is_guid(client_id) {
            return Err(OAuthError::new(
                400,
                "unauthorized_client",
                "AADSTS700016: client_id must be an application (client) id, a GUID.",
            ));
        }
        let principal = self
            .principal_by_app_id(tenant_id, client_id)
            .await
            .map_err(OAuthError::internal)?;
        let hashes = match &principal {
            Some(p) if !p.secrets.is_empty() => p.secrets.iter().map(|s| s.hash.clone()).collect(),
            _ => vec![self.decoy_hash.clone()],
        };
        let matched = self.verify_hashes(secret, hashes).await?;
        match principal {
            Some(p) if matched && !p.secrets.is_empty() => Ok(Subject {
                tenant_id: tenant_id.to_owned(),
                object_id: p.object_id,
                app_id: p.app_id,
                kind: "app",
                amr: vec![],
                username: None,
            }),
            _ => Err(invalid_client()),
        }
    }

    async fn check_assertion(
        &self,
        tenant_id: &str,
        client_id: Option<&str>,
        assertion: &str,
    ) -> Result<Subject, OAuthError> {
        let rejected = |why: &str| {
            OAuthError::new(
                401,
                "invalid_client",
                format!("AADSTS700027: Client assertion failed validation: {why}."),
            )
        };
        let jws = Jws::parse(assertion).map_err(|e| rejected(&e.to_string()))?;
        // The claims are read before the signature is checked only to find the
        // principal; nothing in them is trusted until the signature holds.
        let claims: AssertionClaims = jws.claims().map_err(|e| rejected(&e.to_string()))?;
        if client_id.is_some_and(|c| !c.eq_ignore_ascii_case(&claims.sub)) {
            return Err(rejected("client_id does not match the assertion's subject"));
        }
        let principal = self
            .principal_by_app_id(tenant_id, &claims.sub)
            .await
            .map_err(OAuthError::internal)?
            .ok_or_else(invalid_client)?;
        let cert = principal
            .certificates
            .iter()
            .find(|c| {
                // MSAL pads its base64url thumbprints; the registered ones are unpadded.
                let same = |h: &Option<String>, ours: &str| {
                    h.as_deref()
                        .is_some_and(|h| h.trim_end_matches('=') == ours)
                };
                same(&jws.header.x5t_s256, &c.x5t_s256) || same(&jws.header.x5t, &c.x5t)
            })
            .ok_or_else(|| {
                // The same answer as for an unknown client: nothing to enumerate.
                invalid_client()
            })?;
        let der = base64::engine::general_purpose::STANDARD
            .decode(&cert.der)
            .map_err(|_| {
                OAuthError::internal(crate::Error::Internal("stored certificate".into()))
            })?;
        let parsed =
            ParsedCertificate::from_der(&der).map_err(|e| OAuthError::internal(e.into()))?;
        parsed
            .verify(&jws.header.alg, jws.signed, &jws.signature)
            .map_err(|e| rejected(&e.to_string()))?;
        let now = self.clock.now();
        if !parsed.is_valid_at(now) {
            return Err(rejected(
                "the certificate credential is expired or not yet valid",
            ));
        }
        if claims.iss != claims.sub {
            return Err(rejected("iss and sub must both be the client id"));
        }
        if claims.aud.trim_end_matches('/') != self.token_endpoint(tenant_id) {
            return Err(rejected(
                "the audience must be this tenant's token endpoint",
            ));
        }
        let (exp, nbf) = (claims.exp as i64, claims.nbf.map(|n| n as i64));
        if now > exp + SKEW || nbf.is_some_and(|nbf| nbf > now + SKEW) {
            return Err(rejected("the assertion is expired or not yet valid"));
        }
        if exp - now > MAX_ASSERTION_LIFETIME {
            return Err(rejected("the assertion lives longer than an hour"));
        }
        let jti = claims
            .jti
            .as_deref()
            .filter(|j| !j.is_empty() && j.len() <= 256)
            .ok_or_else(|| rejected("the assertion has no jti"))?;
        if !self
            .throttle
            .first_use(&format!("{}/{jti}", principal.app_id), exp + SKEW, now)
        {
            return Err(rejected("this assertion was already used"));
        }
        Ok(Subject {
            tenant_id: tenant_id.to_owned(),
            object_id: principal.object_id,
            app_id: principal.app_id,
            kind: "app",
            amr: vec![],
            username: None,
        })
    }

    async fn check_password(
        &self,
        tenant_id: &str,
        client_id: Option<&str>,
        username: &str,
        password: &str,
        otp: Option<&str>,
    ) -> Result<Subject, OAuthError> {
        let stored = self
            .stored_user_by_name(tenant_id, username)
            .await
            .map_err(OAuthError::internal)?;
        let hash = stored
            .as_ref()
            .map(|s| s.value.password_hash.clone())
            .unwrap_or_else(|| self.decoy_hash.clone());
        let matched = self.verify_hashes(password, vec![hash]).await?;
        let Some(stored) = stored.filter(|_| matched) else {
            return Err(invalid_grant());
        };
        let mut amr = vec!["pwd".to_string()];
        if let Some(otp) = otp.filter(|o| !o.is_empty()) {
            let secret = stored
                .value
                .totp_secret
                .as_ref()
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                .ok_or_else(invalid_grant)?;
            let step = totp::verify(&secret, otp, self.clock.now()).ok_or_else(invalid_grant)?;
            if step <= stored.value.last_totp_step {
                return Err(OAuthError::new(
                    400,
                    "invalid_grant",
                    "AADSTS50126: This one-time code was already used; wait for the next one.",
                ));
            }
            let mut user = stored.value.clone();
            user.last_totp_step = step;
            let (tenant, object_id, name) = (
                user.tenant_id.clone(),
                user.object_id.clone(),
                user.username.clone(),
            );
            self.barrier
                .replace(stored, &user)
                .await
                .map_err(|_| invalid_grant())?;
            amr.push("otp".into());
            amr.push("mfa".into());
            return Ok(self.user_subject(tenant, object_id, name, client_id, amr));
        }
        let u = stored.value;
        Ok(self.user_subject(u.tenant_id, u.object_id, u.username, client_id, amr))
    }

    fn user_subject(
        &self,
        tenant_id: String,
        object_id: String,
        username: String,
        client_id: Option<&str>,
        amr: Vec<String>,
    ) -> Subject {
        Subject {
            tenant_id,
            object_id,
            app_id: client_id
                .filter(|c| is_guid(c))
                .unwrap_or(DEFAULT_PUBLIC_CLIENT)
                .to_owned(),
            kind: "user",
            amr,
            username: Some(username),
        }
    }
}
