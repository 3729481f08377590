//! The audit layer: every request through it produces exactly one record,
//! written before the response leaves. Handlers add what they learn (the
//! operation, the vault, the caller, the authorizing assignment) to the
//! request's [`AuditSlot`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keyfort_core::audit::{AuditIdentity, AuditRecord};
use keyfort_core::identity::Caller;

use super::AppState;
use super::error::{ApiError, FailureReason};

#[derive(Default, Clone)]
pub struct AuditInfo {
    pub operation: Option<&'static str>,
    pub vault: Option<String>,
    /// The tenant owning the resource the request touched.
    pub tenant: Option<String>,
    pub object: Option<String>,
    /// The ARM id of the resource addressed.
    pub resource_id: Option<String>,
    pub identity: Option<AuditIdentity>,
    pub authorization: Option<String>,
}

/// Shared between the audit layer and the handler of one request.
#[derive(Clone, Default)]
pub struct AuditSlot(Arc<Mutex<AuditInfo>>);

impl AuditSlot {
    pub fn update(&self, f: impl FnOnce(&mut AuditInfo)) {
        if let Ok(mut info) = self.0.lock() {
            f(&mut info);
        }
    }

    pub fn set_caller(&self, caller: &Caller) {
        self.update(|i| {
            i.identity = Some(AuditIdentity {
                tenant_id: caller.tenant_id.clone(),
                object_id: caller.object_id.clone(),
                app_id: caller.app_id.clone(),
                upn: caller.username.clone(),
            })
        });
    }

    fn take(&self) -> AuditInfo {
        self.0.lock().map(|i| i.clone()).unwrap_or_default()
    }
}

/// The request's `api-version`, kept only if short and printable.
fn api_version(req: &Request) -> Option<String> {
    super::request::query_param(req.uri().query(), "api-version")
        .filter(|v| v.len() <= 32 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
}

/// A client-supplied id, kept only if short and printable.
fn sanitized_header(req: &Request, name: &str) -> Option<String> {
    let v = req.headers().get(name)?.to_str().ok()?;
    (v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic())).then(|| v.to_owned())
}

pub async fn audit_layer(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    // The request runs, and is recorded, in a task of its own: a client that
    // hangs up drops this future, but not the task, so a request that
    // already had its effect still gets its record.
    match tokio::spawn(run_audited(state, peer, req, next)).await {
        Ok(response) => response,
        Err(_) => ApiError(keyfort_core::Error::Internal(
            "the audit task failed".into(),
        ))
        .into_response(),
    }
}

/// Polls a future, turning a panic inside it into `Err` (what a task's
/// `JoinHandle` does, without a second task per request).
struct CatchPanic<F>(std::pin::Pin<Box<F>>);

impl<F: std::future::Future> std::future::Future for CatchPanic<F> {
    type Output = Result<F::Output, ()>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(_) => std::task::Poll::Ready(Err(())),
        }
    }
}

/// Runs the handler; a panic in it becomes a 500 that is recorded like any
/// other answer.
async fn run_handler(req: Request, next: Next) -> Response {
    match CatchPanic(Box::pin(next.run(req))).await {
        Ok(response) => response,
        Err(()) => {
            tracing::error!("a request handler panicked");
            let mut response = ApiError(keyfort_core::Error::Internal(
                "the request handler failed".into(),
            ))
            .into_response();
            response
                .extensions_mut()
                .insert(FailureReason("the request handler failed".into()));
            response
        }
    }
}

async fn run_audited(
    state: Arc<AppState>,
    peer: SocketAddr,
    mut req: Request,
    next: Next,
) -> Response {
    let _running = state.requests.start();
    let started = Instant::now();
    let slot = AuditSlot::default();
    req.extensions_mut().insert(slot.clone());
    let request_id = uuid::Uuid::new_v4().to_string();
    let correlation_id = sanitized_header(&req, "x-ms-client-request-id");
    let operation_version = api_version(&req);
    let client_ip = state
        .network
        .client_address(peer.ip(), &super::request::forwarded_for(req.headers()))
        .to_string();

    // Fail closed: while no sink can record, nothing runs.
    if let Err(e) = state.auditor.preflight() {
        tracing::error!("audit sinks are failing; refusing the request");
        return ApiError(e).into_response();
    }
    let mut response = run_handler(req, next).await;

    let info = slot.take();
    let status = response.status();
    let record = AuditRecord {
        time: keyfort_core::clock::rfc3339(state.kf.clock.now()),
        category: "AuditEvent",
        request_id: request_id.clone(),
        correlation_id: correlation_id.clone(),
        operation_name: info.operation.unwrap_or("Unknown").to_owned(),
        operation_version,
        resource_id: info.resource_id,
        resource_tenant_id: info
            .tenant
            .clone()
            .or_else(|| info.identity.as_ref().map(|i| i.tenant_id.clone())),
        vault: info.vault,
        object: info.object,
        result_type: if status.as_u16() < 400 {
            "Success"
        } else {
            "Failure"
        },
        result_signature: status.canonical_reason().unwrap_or("Unknown").to_owned(),
        http_status: status.as_u16(),
        caller_ip: client_ip,
        identity: info.identity,
        authorization: info.authorization,
        reason: response
            .extensions()
            .get::<FailureReason>()
            .map(|r| r.0.clone()),
        duration_ms: started.elapsed().as_millis() as u64,
    };
    if let Err(e) = state.auditor.record(&record) {
        tracing::error!(
            request_id,
            "audit record could not be written; refusing the response"
        );
        response = ApiError(e).into_response();
    }
    let tenant = record.resource_tenant_id.clone().filter(|t| !t.is_empty());
    if let Some(tenant) = tenant
        && state.kf.alerts.may_match(&tenant, &record)
    {
        tokio::spawn(alert_on(state.clone(), tenant, record));
    }
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-ms-request-id", v);
    }
    if let Some(c) = correlation_id.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert("x-ms-client-request-id", c);
    }
    response
}

/// Counts a record against its tenant's alert rules and delivers what fires:
/// to the log always, and to the rule's webhook if it has one.
async fn alert_on(state: Arc<AppState>, tenant: String, record: AuditRecord) {
    let fired = match state
        .kf
        .alerts
        .observe(&tenant, &record, state.kf.clock.now())
        .await
    {
        Ok(f) => f,
        Err(e) => return tracing::warn!(error = %e, "alert evaluation failed"),
    };
    for alert in fired {
        tracing::warn!(rule = %alert.rule_name, group = %alert.group, count = alert.count, vault = ?alert.vault, "alert fired");
        if let Some(url) = &alert.webhook {
            let sent = webhook_client().post(url).json(&alert).send().await;
            if sent.is_err() {
                tracing::warn!(rule = %alert.rule_name, "alert webhook could not be reached");
            }
        }
    }
}

/// An HTTP client for webhooks: no redirects (they could lead anywhere), a timeout.
pub fn webhook_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .connect_timeout(std::time::Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::CatchPanic;

    #[tokio::test]
    async fn a_panic_in_the_handler_becomes_an_error() {
        let ok = CatchPanic(Box::pin(async { 7 })).await;
        assert_eq!(ok, Ok(7));
        let panicked = CatchPanic(Box::pin(async {
            tokio::task::yield_now().await;
            panic!("handler bug");
        }))
        .await;
        assert_eq!(panicked, Err::<(), ()>(()));
    }
}
