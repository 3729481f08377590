//! An HTTPS client of one vault: gets a token with the client-credentials
//! grant, then calls the Key Vault REST API. Names under `.localhost` are
//! pointed at 127.0.0.1, since many resolvers do not answer for them.

use std::net::SocketAddr;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::connection::Connection;

pub const API_VERSION: &str = "2026-04-01";

pub struct VaultClient {
    http: reqwest::Client,
    conn: Connection,
    token: Option<String>,
}

fn host_and_port(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split('/').next()?;
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h.to_owned(), p.parse().ok()?)),
        None => Some((authority.to_owned(), 443)),
    }
}

impl VaultClient {
    pub fn new(conn: Connection) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("keyfort-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &conn.ca_cert {
            let pem = std::fs::read(ca)
                .map_err(|e| format!("cannot read the CA certificate {}: {e}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| format!("{} is not a PEM certificate: {e}", ca.display()))?;
            builder = builder.tls_certs_only([cert]);
        }
        for url in [&conn.vault_url, &conn.authority] {
            if let Some((host, port)) = host_and_port(url)
                && host.ends_with(".localhost")
            {
                builder = builder.resolve(&host, SocketAddr::from(([127, 0, 0, 1], port)));
            }
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot build the HTTPS client: {e}"))?;
        Ok(VaultClient {
            http,
            conn,
            token: None,
        })
    }

    async fn token(&mut self) -> Result<String, String> {
        if let Some(t) = &self.token {
            return Ok(t.clone());
        }
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            self.conn.authority, self.conn.tenant_id
        );
        let scope = format!("{}/.default", self.conn.audience);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.conn.client_id.as_str()),
            ("client_secret", self.conn.client_secret.as_str()),
            ("scope", scope.as_str()),
        ];
        let resp = self
            .http
            .post(&url)
            .form(&form)
            .send()
            .await
            .map_err(|e| format!("cannot reach the token endpoint {url}: {e}"))?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .map_err(|e| format!("the token endpoint answered {status} without JSON: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "sign-in failed ({status}): {}",
                body["error_description"]
                    .as_str()
                    .unwrap_or("no description")
            ));
        }
        let token = body["access_token"]
            .as_str()
            .ok_or("the token endpoint returned no access_token")?
            .to_owned();
        self.token = Some(token.clone());
        Ok(token)
    }

    /// Calls `{vault_url}{path}` with the api-version added. Returns the JSON
    /// body, or `Null` for an empty success. An error response becomes one line.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let token = self.token().await?;
        let url = format!("{}{path}", self.conn.vault_url.trim_end_matches('/'));
        let mut req = self
            .http
            .request(method, &url)
            .bearer_auth(token)
            .query(&[("api-version", API_VERSION)])
            .query(query);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("cannot reach {url}: {e}"))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| format!("reading the response failed: {e}"))?;
        if status == StatusCode::NO_CONTENT || bytes.is_empty() {
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
            Err(format!(
                "{} ({}): {}",
                json["error"]["code"].as_str().unwrap_or("Error"),
                status.as_u16(),
                json["error"]["message"].as_str().unwrap_or("no message")
            ))
        }
    }

    /// Follows `nextLink`s and gathers every item of a listing.
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
