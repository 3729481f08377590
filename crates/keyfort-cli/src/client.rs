//! An HTTPS client of a Keyfort server: gets tokens (client credentials, or
//! the login cache), then calls a vault's REST API or the management API.
//! Names under `.localhost` are pointed at 127.0.0.1, since many resolvers do
//! not answer for them.

use std::collections::HashMap;
use std::net::SocketAddr;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::connection::{Connection, Credential};

pub const API_VERSION: &str = "2026-04-01";
pub const MANAGEMENT_API_VERSION: &str = "2026-05-15";

pub struct Client {
    http: reqwest::Client,
    pub conn: Connection,
    tokens: HashMap<String, String>,
}

fn host_and_port(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split('/').next()?;
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h.to_owned(), p.parse().ok()?)),
        None => Some((authority.to_owned(), 443)),
    }
}

/// An HTTPS client trusting `ca_cert` (if given), with `.localhost` names on loopback.
pub fn http_client(
    ca_cert: Option<&str>,
    urls: &[Option<&String>],
) -> Result<reqwest::Client, String> {
    let mut builder =
        reqwest::Client::builder().user_agent(concat!("keyfort-cli/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = ca_cert {
        let pem =
            std::fs::read(ca).map_err(|e| format!("cannot read the CA certificate {ca}: {e}"))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| format!("{ca} is not a PEM certificate: {e}"))?;
        builder = builder.tls_certs_only([cert]);
    }
    for url in urls.iter().flatten() {
        if let Some((host, port)) = host_and_port(url)
            && host.ends_with(".localhost")
        {
            builder = builder.resolve(&host, SocketAddr::from(([127, 0, 0, 1], port)));
        }
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the HTTPS client: {e}"))
}

/// One line for an error response of the API.
fn error_line(status: StatusCode, json: &Value) -> String {
    if let Some(desc) = json["error_description"].as_str() {
        return format!("sign-in failed ({status}): {desc}");
    }
    format!(
        "{} ({}): {}",
        json["error"]["code"].as_str().unwrap_or("Error"),
        status.as_u16(),
        json["error"]["message"].as_str().unwrap_or("no message")
    )
}

/// Sends a request and returns its JSON body (`Null` when empty), or one line.
pub async fn send(req: reqwest::RequestBuilder, url: &str) -> Result<Value, String> {
    let resp = req
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("reading the response failed: {e}"))?;
    if bytes.is_empty() {
        return if status.is_success() {
            Ok(Value::Null)
        } else {
            Err(format!("the server answered {status}"))
        };
    }
    let json: Value = serde_json::from_slice(&bytes)
        .map_err(|_| format!("the server answered {status} with a body that is not JSON"))?;
    if status.is_success() {
        Ok(json)
    } else {
        Err(error_line(status, &json))
    }
}

/// Requests a token at the tenant's token endpoint with `form`.
pub async fn request_token(
    http: &reqwest::Client,
    authority: &str,
    tenant: &str,
    form: &[(&str, &str)],
) -> Result<(String, i64), String> {
    let url = format!("{authority}/{tenant}/oauth2/v2.0/token");
    let body = send(http.post(&url).form(form), &url).await?;
    let token = body["access_token"]
        .as_str()
        .ok_or("the token endpoint returned no access_token")?
        .to_owned();
    Ok((token, body["expires_in"].as_i64().unwrap_or(3600)))
}

impl Client {
    pub fn new(conn: Connection) -> Result<Self, String> {
        let s = &conn.settings;
        let http = http_client(
            s.ca_cert.as_deref(),
            &[
                s.vault_url.as_ref(),
                Some(&conn.authority),
                s.management_url.as_ref(),
            ],
        )?;
        Ok(Client {
            http,
            conn,
            tokens: HashMap::new(),
        })
    }

    async fn token(&mut self, audience: &str) -> Result<String, String> {
        if let Some(t) = self.tokens.get(audience) {
            return Ok(t.clone());
        }
        let token = match &self.conn.credential {
            Credential::ClientSecret { client_id, secret } => {
                let scope = format!("{audience}/.default");
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id.as_str()),
                    ("client_secret", secret.as_str()),
                    ("scope", scope.as_str()),
                ];
                request_token(
                    &self.http,
                    &self.conn.authority,
                    &self.conn.tenant_id,
                    &form,
                )
                .await?
                .0
            }
            Credential::Cached(tokens) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0);
                match tokens.get(audience) {
                    Some(t) if t.expires_on > now + 30 => t.access_token.clone(),
                    Some(_) => {
                        return Err(
                            "the cached login has expired; run 'keyfort login' again".into()
                        );
                    }
                    None => {
                        return Err(format!(
                            "the cached login has no token for {audience}; run 'keyfort login' again"
                        ));
                    }
                }
            }
        };
        self.tokens.insert(audience.to_owned(), token.clone());
        Ok(token)
    }

    fn need(&self, value: &Option<String>, what: &str, var: &str) -> Result<String, String> {
        value.clone().ok_or_else(|| {
            format!("no {what}: pass --dev-json FILE, set {var}, or run 'keyfort login'")
        })
    }

    /// Calls `{vault_url}{path}` with the data-plane api-version.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let base = self.need(
            &self.conn.settings.vault_url,
            "vault URL",
            "KEYFORT_VAULT_URL",
        )?;
        let audience = self.need(&self.conn.settings.audience, "audience", "KEYFORT_AUDIENCE")?;
        self.call_url(
            method,
            &format!("{}{path}", base.trim_end_matches('/')),
            API_VERSION,
            &audience,
            query,
            body,
        )
        .await
    }

    /// Calls `{management_url}{path}` with a management token.
    pub async fn management(
        &mut self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let base = self.need(
            &self.conn.settings.management_url,
            "management URL",
            "KEYFORT_MANAGEMENT_URL",
        )?;
        let audience = self.need(
            &self.conn.settings.management_audience,
            "management audience",
            "KEYFORT_MANAGEMENT_AUDIENCE",
        )?;
        self.call_url(
            method,
            &format!("{}{path}", base.trim_end_matches('/')),
            MANAGEMENT_API_VERSION,
            &audience,
            query,
            body,
        )
        .await
    }

    pub fn subscription_id(&self) -> Result<String, String> {
        self.need(
            &self.conn.settings.subscription_id,
            "subscription id",
            "KEYFORT_SUBSCRIPTION_ID",
        )
    }

    async fn call_url(
        &mut self,
        method: Method,
        url: &str,
        api_version: &str,
        audience: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let token = self.token(audience).await?;
        let mut req = self
            .http
            .request(method, url)
            .bearer_auth(token)
            .query(&[("api-version", api_version)])
            .query(query);
        if let Some(b) = body {
            req = req.json(b);
        }
        send(req, url).await
    }

    /// Follows `nextLink`s and gathers every item of a vault listing.
    pub async fn list_all(
        &mut self,
        path: &str,
        maxresults: Option<u8>,
    ) -> Result<Vec<Value>, String> {
        let mut items = Vec::new();
        let mut query: Vec<(&str, String)> = maxresults
            .map(|m| ("maxresults", m.to_string()))
            .into_iter()
            .collect();
        loop {
            let page = self.call(Method::GET, path, &query, None).await?;
            items.extend(page["value"].as_array().cloned().unwrap_or_default());
            match page["nextLink"]
                .as_str()
                .and_then(|l| l.split("$skiptoken=").nth(1))
            {
                Some(token) => {
                    let token = token.split('&').next().unwrap_or(token).to_owned();
                    query.retain(|(k, _)| *k != "$skiptoken");
                    query.push(("$skiptoken", token));
                }
                None => return Ok(items),
            }
        }
    }
}
