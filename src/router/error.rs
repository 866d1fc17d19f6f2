//! Errors the router answers with. Each knows its HTTP status and renders an
//! OpenAI-shaped body, `{"error": {"code", "type", "message", ...}}`, with
//! OpenRouter's conventions: `code` is the HTTP status, `metadata` says more
//! (what was tried upstream), and a removed model carries `availability`.
//!
//! On the Messages API routes the same errors are Anthropic-shaped
//! ([`ApiError::anthropic_response`]): `{"type": "error", "error": {"type",
//! "message"}}`, the type by status, with Anthropic's rate-limit headers
//! besides the router's.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::ledger::LedgerError;
use super::limits::{RateState, Refusal};
use super::pricing::Picodollars;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    BadRequest(String),
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("no route for {method} {path}")]
    NoRoute { method: String, path: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("the model `{0}` does not exist")]
    ModelNotFound(String),
    #[error("the model `{model}` was removed; use `{replacement}` instead")]
    ModelRemoved { model: String, replacement: String },
    #[error("insufficient credits: this request may cost up to {needed} and the key has {available} available")]
    InsufficientCredits {
        needed: Picodollars,
        available: Picodollars,
    },
    #[error("{}", .0.message)]
    Limited(Refusal),
    #[error("{message}")]
    Upstream {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
        metadata: Value,
    },
    #[error("generation `{0}` not found")]
    GenerationNotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// The request body did not arrive in time; the connection is closed.
    #[error("the request body did not arrive within {} ms", .after.as_millis())]
    RequestTimeout { after: Duration },
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NoRoute { .. } | ApiError::ModelNotFound(_) | ApiError::ModelRemoved { .. } => {
                StatusCode::NOT_FOUND
            }
            ApiError::GenerationNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::InsufficientCredits { .. } => StatusCode::PAYMENT_REQUIRED,
            ApiError::Limited(r) => StatusCode::from_u16(r.status).unwrap_or(StatusCode::TOO_MANY_REQUESTS),
            ApiError::Upstream { status, .. } => StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY),
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// The OpenAI `type` of the error.
    fn kind(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "authentication_error",
            ApiError::Forbidden(_) => "permission_error",
            ApiError::BadRequest(_) | ApiError::PayloadTooLarge { .. } | ApiError::NoRoute { .. } => {
                "invalid_request_error"
            }
            ApiError::ModelNotFound(_) | ApiError::ModelRemoved { .. } | ApiError::GenerationNotFound(_) => {
                "not_found_error"
            }
            ApiError::InsufficientCredits { .. } => "insufficient_quota",
            ApiError::Limited(r) if r.status == 402 => "insufficient_quota",
            ApiError::Limited(_) => "rate_limit_error",
            ApiError::Upstream { status: 429, .. } => "rate_limit_error",
            ApiError::Upstream { .. } => "upstream_error",
            ApiError::Conflict(_) => "conflict_error",
            ApiError::Internal(_) => "server_error",
            ApiError::RequestTimeout { .. } => "timeout_error",
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Limited(r) => Some(r.retry_after),
            ApiError::Upstream { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let status = self.status().as_u16();
        let mut error = json!({"code": status, "type": self.kind(), "message": self.to_string()});
        match self {
            ApiError::ModelRemoved { replacement, .. } => {
                error["availability"] = json!({"code": "model_deprecated", "fallback_models": [replacement]});
            }
            ApiError::ModelNotFound(_) => error["param"] = json!("model"),
            ApiError::Upstream { metadata, .. } => error["metadata"] = metadata.clone(),
            ApiError::InsufficientCredits { needed, available } => {
                error["metadata"] = json!({
                    "needed_usd": needed.to_usd_string(), "available_usd": available.to_usd_string()
                });
            }
            _ => {}
        }
        json!({ "error": error })
    }

    /// The whole response: status, JSON body, `Retry-After` and rate headers.
    pub fn response<B: From<Bytes>>(&self) -> Response<B> {
        self.response_with(Bytes::from(self.body().to_string()))
    }

    /// Anthropic's `error.type` for the status (the SDK picks its exception
    /// class by the status; the type is what `e.type` says).
    pub fn anthropic_type(&self) -> &'static str {
        match self.status().as_u16() {
            401 => "authentication_error",
            402 => "billing_error",
            403 => "permission_error",
            404 => "not_found_error",
            408 | 504 => "timeout_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 | 529 => "overloaded_error",
            400..=499 => "invalid_request_error",
            _ => "api_error",
        }
    }

    /// The error as the Messages API answers it: Anthropic's body, the same
    /// status and headers as [`ApiError::response`], and for a key's rate
    /// limit `anthropic-ratelimit-requests-{limit,remaining,reset}` too.
    pub fn anthropic_response<B: From<Bytes>>(&self) -> Response<B> {
        let body = json!({
            "type": "error",
            "error": {"type": self.anthropic_type(), "message": self.to_string()}
        });
        let mut response = self.response_with(Bytes::from(body.to_string()));
        if let ApiError::Limited(Refusal { rate: Some(rate), .. }) = self {
            anthropic_rate_headers(response.headers_mut(), rate);
        }
        response
    }

    fn response_with<B: From<Bytes>>(&self, body: Bytes) -> Response<B> {
        let mut response = Response::new(B::from(body));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(after) = self.retry_after() {
            headers.insert(RETRY_AFTER, HeaderValue::from(retry_after_secs(after)));
        }
        if let ApiError::Limited(Refusal { rate: Some(rate), .. }) = self {
            rate_headers(headers, rate);
        }
        if let ApiError::RequestTimeout { .. } = self {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// A ledger refusal as the client sees it: 402 for credits that do not
/// cover the request, 400 for an unknown account, 409 for a duplicate one,
/// and 500 for a store that failed.
impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> ApiError {
        match e {
            LedgerError::Insufficient { needed, available, .. } => ApiError::InsufficientCredits { needed, available },
            LedgerError::UnknownAccount { .. } => ApiError::BadRequest(e.to_string()),
            LedgerError::AccountExists { .. } => ApiError::Conflict(e.to_string()),
            LedgerError::Overflow { .. } | LedgerError::NegativeAmount { .. } => ApiError::BadRequest(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// `Retry-After` in whole seconds, rounded up, at least 1.
pub fn retry_after_secs(after: Duration) -> u64 {
    u64::try_from(after.as_millis().div_ceil(1000))
        .unwrap_or(u64::MAX)
        .max(1)
}

/// `x-ratelimit-limit`, `x-ratelimit-remaining`, `x-ratelimit-reset` (Unix ms of
/// the reset, as OpenRouter sends it).
pub fn rate_headers(headers: &mut http::HeaderMap, rate: &RateState) {
    let reset_ms = std::time::SystemTime::now()
        .checked_add(rate.reset)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    headers.insert("x-ratelimit-limit", HeaderValue::from(rate.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(rate.remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(reset_ms));
}

/// `anthropic-ratelimit-requests-limit`, `-remaining` and `-reset` (an
/// RFC 3339 time, as Anthropic sends it).
pub fn anthropic_rate_headers(headers: &mut http::HeaderMap, rate: &RateState) {
    headers.insert("anthropic-ratelimit-requests-limit", HeaderValue::from(rate.limit));
    headers.insert(
        "anthropic-ratelimit-requests-remaining",
        HeaderValue::from(rate.remaining),
    );
    let reset = std::time::SystemTime::now()
        .checked_add(rate.reset)
        .and_then(|t| jiff::Timestamp::try_from(t).ok())
        .and_then(|t| t.round(jiff::Unit::Second).ok())
        .and_then(|t| HeaderValue::from_str(&t.to_string()).ok());
    if let Some(reset) = reset {
        headers.insert("anthropic-ratelimit-requests-reset", reset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::limits::LimitKind;
    use http_body_util::Full;

    #[test]
    fn removed_models_name_their_replacement() {
        let e = ApiError::ModelRemoved {
            model: "old".into(),
            replacement: "new".into(),
        };
        let body = e.body();
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["availability"]["code"], "model_deprecated");
        assert_eq!(body["error"]["availability"]["fallback_models"][0], "new");
        assert_eq!(body["error"]["code"], 404);
    }

    #[test]
    fn limits_carry_retry_after_and_rate_headers() {
        let refusal = Refusal {
            kind: LimitKind::KeyRate,
            status: 429,
            retry_after: Duration::from_millis(1200),
            rate: Some(RateState {
                limit: 60,
                remaining: 0,
                reset: Duration::from_secs(1),
            }),
            message: "slow down".into(),
        };
        let response: Response<Full<Bytes>> = ApiError::Limited(refusal).response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[RETRY_AFTER], "2");
        assert_eq!(response.headers()["x-ratelimit-limit"], "60");
        assert_eq!(response.headers()["x-ratelimit-remaining"], "0");
    }

    #[test]
    fn messages_errors_are_anthropic_shaped() {
        let refusal = Refusal {
            kind: LimitKind::KeyRate,
            status: 429,
            retry_after: Duration::from_millis(1200),
            rate: Some(RateState {
                limit: 60,
                remaining: 0,
                reset: Duration::from_secs(1),
            }),
            message: "slow down".into(),
        };
        let response: Response<Full<Bytes>> = ApiError::Limited(refusal).anthropic_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[RETRY_AFTER], "2");
        assert_eq!(response.headers()["x-ratelimit-limit"], "60");
        assert_eq!(response.headers()["anthropic-ratelimit-requests-limit"], "60");
        assert_eq!(response.headers()["anthropic-ratelimit-requests-remaining"], "0");
        let reset = response.headers()["anthropic-ratelimit-requests-reset"]
            .to_str()
            .unwrap();
        assert!(reset.parse::<jiff::Timestamp>().is_ok(), "{reset}");
        let removed = ApiError::ModelRemoved {
            model: "old".into(),
            replacement: "new".into(),
        };
        let types = [
            (ApiError::BadRequest("x".into()), "invalid_request_error"),
            (ApiError::Unauthorized("x"), "authentication_error"),
            (ApiError::Forbidden("x".into()), "permission_error"),
            (removed, "not_found_error"),
            (ApiError::PayloadTooLarge { limit: 1 }, "request_too_large"),
            (ApiError::Internal("x".into()), "api_error"),
            (
                ApiError::InsufficientCredits {
                    needed: Picodollars(2),
                    available: Picodollars(1),
                },
                "billing_error",
            ),
        ];
        for (error, kind) in types {
            assert_eq!(error.anthropic_type(), kind, "{error}");
        }
        for (status, kind) in [
            (503, "overloaded_error"),
            (529, "overloaded_error"),
            (502, "api_error"),
            (504, "timeout_error"),
        ] {
            let e = ApiError::Upstream {
                status,
                message: "m".into(),
                retry_after: None,
                metadata: Value::Null,
            };
            assert_eq!(e.anthropic_type(), kind);
        }
        let response: Response<Full<Bytes>> = ApiError::ModelRemoved {
            model: "old".into(),
            replacement: "new".into(),
        }
        .anthropic_response();
        assert_eq!(response.status(), 404);
    }

    #[test]
    fn a_request_timeout_is_408_and_closes_the_connection() {
        let e = ApiError::RequestTimeout {
            after: Duration::from_secs(10),
        };
        let response: Response<Full<Bytes>> = e.response();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(response.headers()[http::header::CONNECTION], "close");
        assert_eq!(e.body()["error"]["code"], 408);
        assert_eq!(
            e.body()["error"]["message"],
            "the request body did not arrive within 10000 ms"
        );
    }
}
