//! One error type for the domain, with one mapping to an HTTP status and an
//! Azure Key Vault error code. Messages are written for the person reading
//! them and never contain secret values or key material. Internal causes are
//! kept apart so the HTTP layer logs them but does not send them.

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// 400: the request is malformed or a parameter is out of range.
    #[error("{0}")]
    BadParameter(String),
    /// 401: no valid credential.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the caller may not do this, or the object's state forbids it.
    /// `inner` is Azure's inner error code (e.g. `SecretDisabled`).
    #[error("{message}")]
    Forbidden {
        message: String,
        inner: Option<&'static str>,
    },
    /// 403 with a specific Azure code, such as `ForbiddenByFirewall`.
    #[error("{message}")]
    Denied { code: &'static str, message: String },
    /// 404 with an Azure code such as `SecretNotFound`.
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// 409: the name is taken or in a state that forbids the operation.
    #[error("{0}")]
    Conflict(String),
    /// 413: the request body is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// 503: the server is sealed or cannot record the request.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a fault of ours. The detail is for the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn bad(msg: impl Into<String>) -> Self {
        Error::BadParameter(msg.into())
    }

    pub fn forbidden(msg: impl Into<String>) -> Self {
        Error::Forbidden {
            message: msg.into(),
            inner: None,
        }
    }

    pub fn not_found(code: &'static str, msg: impl Into<String>) -> Self {
        Error::NotFound {
            code,
            message: msg.into(),
        }
    }

    /// HTTP status and Azure error code.
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            Error::BadParameter(_) => (400, "BadParameter"),
            Error::Unauthorized(_) => (401, "Unauthorized"),
            Error::Forbidden { .. } => (403, "Forbidden"),
            Error::Denied { code, .. } => (403, code),
            Error::NotFound { code, .. } => (404, code),
            Error::Conflict(_) => (409, "Conflict"),
            Error::TooLarge(_) => (413, "RequestEntityTooLarge"),
            Error::Unavailable(_) => (503, "ServiceUnavailable"),
            Error::Internal(_) => (500, "InternalServerError"),
        }
    }

    /// The message safe to send to the client.
    pub fn public_message(&self) -> String {
        match self {
            Error::Internal(_) => "The server hit an internal error. The request may be retried; the server log has the details.".into(),
            other => other.to_string(),
        }
    }

    pub fn inner_code(&self) -> Option<&'static str> {
        match self {
            Error::Forbidden { inner, .. } => *inner,
            _ => None,
        }
    }
}

impl From<keyfort_store::StoreError> for Error {
    fn from(e: keyfort_store::StoreError) -> Self {
        match e {
            keyfort_store::StoreError::Conflict(_) => Error::Conflict(
                "The object was changed by a concurrent request; retry the operation.".into(),
            ),
            keyfort_store::StoreError::Engine(detail) => {
                Error::Internal(format!("store: {detail}"))
            }
        }
    }
}

impl From<keyfort_crypto::CryptoError> for Error {
    fn from(e: keyfort_crypto::CryptoError) -> Self {
        Error::Internal(format!("crypto: {e}"))
    }
}

impl From<serde_json::Error> for Error {
    /// serde_json's messages can quote the offending value, which may be
    /// decrypted data: keep only the kind of error and its position.
    fn from(e: serde_json::Error) -> Self {
        Error::Internal(format!(
            "a record does not encode or decode ({:?} error at line {}, column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    }
}
