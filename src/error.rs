//! One error type for everything a request can run into, and the one place that turns it into
//! an HTTP response. Handlers return `Result<Response, Error>`; nothing else builds error pages.

use http::{HeaderValue, StatusCode, header};

use crate::http_util::{Response, full};

/// Why a request could not be served. Every variant maps to exactly one status code in
/// [`Error::status`]; messages are generic on purpose (no token, secret or user detail).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed input from the client: bad form, bad JSON, bad header.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// No valid session or credentials.
    #[error("authentication required")]
    Unauthenticated,
    /// Wrong username or password (same answer whether or not the user exists).
    #[error("invalid username or password")]
    BadCredentials,
    /// Authenticated but not allowed; also failed CSRF checks.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("request timed out")]
    RequestTimeout,
    /// Too many failed logins: retry after this many seconds.
    #[error("too many attempts; try again in {0} seconds")]
    TooManyRequests(i64),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// The upstream application could not be reached.
    #[error("upstream unavailable")]
    BadGateway,
    #[error("upstream timed out")]
    GatewayTimeout,
    /// The LDAP directory or the OpenID provider a sign-in needs cannot be reached or
    /// answered with nonsense: the sign-in cannot be decided, which is not a wrong password.
    #[error("{service} unavailable: {detail}")]
    DirectoryUnavailable {
        service: &'static str,
        detail: String,
    },
    /// A store the gateway depends on failed: fail closed.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug or an I/O failure on our side; details go to the log, never to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthenticated | Error::BadCredentials => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::BadGateway => StatusCode::BAD_GATEWAY,
            Error::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            Error::Unavailable(_) | Error::DirectoryUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The short machine-readable code used in JSON error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "bad_request",
            Error::Unauthenticated => "unauthenticated",
            Error::BadCredentials => "invalid_credentials",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound => "not_found",
            Error::MethodNotAllowed => "method_not_allowed",
            Error::PayloadTooLarge => "payload_too_large",
            Error::RequestTimeout => "request_timeout",
            Error::UnsupportedMediaType => "unsupported_media_type",
            Error::TooManyRequests(_) => "too_many_requests",
            Error::BadGateway => "bad_gateway",
            Error::GatewayTimeout => "gateway_timeout",
            Error::Unavailable(_) => "unavailable",
            Error::DirectoryUnavailable { .. } => "directory_unavailable",
            Error::Internal(_) => "internal",
        }
    }

    /// What the client may read. Internal details stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            Error::Internal(_) => "internal error".to_owned(),
            Error::Unavailable(_) => {
                "a service dashgate depends on is unavailable; try again shortly".to_owned()
            }
            Error::DirectoryUnavailable { service, .. } => directory_unavailable_message(service),
            Error::BadGateway => "the application behind dashgate is not reachable".to_owned(),
            other => other.to_string(),
        }
    }

    /// Render as JSON (API clients, Dash XHRs) or as a small HTML page (browser navigations).
    pub fn into_response(self, html: bool) -> Response {
        let status = self.status();
        match &self {
            Error::Internal(detail) => tracing::error!(error = %detail, "internal error"),
            Error::Unavailable(detail) => tracing::warn!(error = %detail, "dependency unavailable"),
            Error::DirectoryUnavailable { service, detail } => {
                tracing::warn!(service, error = %detail, "sign-in source unavailable");
            }
            _ => {}
        }
        let mut resp = if html {
            let page = crate::html::error_page(status, &self.public_message());
            let mut r = Response::new(full(page));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            crate::html::add_page_security_headers(r.headers_mut());
            r
        } else {
            let body = serde_json::json!({"error": self.code(), "message": self.public_message()});
            let mut r = Response::new(full(body.to_string()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        };
        *resp.status_mut() = status;
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp.headers_mut().insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if matches!(self, Error::PayloadTooLarge | Error::RequestTimeout) {
            // The body was not read to its end: the connection cannot carry another request.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Error::TooManyRequests(secs) = &self {
            if let Ok(v) = HeaderValue::from_str(&secs.max(&1).to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if matches!(
            self,
            Error::Unavailable(_) | Error::DirectoryUnavailable { .. }
        ) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        resp
    }
}

/// What a user reads when a sign-in source is down: a clear outage, never "wrong password".
pub fn directory_unavailable_message(service: &str) -> String {
    let what = match service {
        "ldap" => "The user directory (LDAP)",
        "oidc" => "The single sign-on provider",
        _ => "A sign-in service",
    };
    format!("{what} cannot be reached, so signing in is not possible right now. Try again shortly.")
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Unavailable(format!("database: {e}"))
    }
}
