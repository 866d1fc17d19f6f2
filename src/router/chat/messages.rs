//! The Messages API's entry points: `POST /messages`, which lives the
//! chat completion's life (`answer`), and `POST /messages/count_tokens`.

use std::sync::Arc;

use bytes::Bytes;
use http::header::HeaderMap;
use http::{Response, StatusCode};
use serde_json::Value;
use tokio::time::Instant;

use super::{answer, resolve};
use crate::router::body::RouterBody;
use crate::router::config::KeyConfig;
use crate::router::error::ApiError;
use crate::router::request::{self, ChatRequest};
use crate::router::state::State;
use crate::router::transcode;

/// `POST /messages`: a Messages API request, answered in its own shape.
pub(crate) async fn messages(
    state: Arc<State>,
    key: Arc<KeyConfig>,
    headers: &HeaderMap,
    bytes: Bytes,
) -> Result<Response<RouterBody>, ApiError> {
    let received = Instant::now();
    let req = request::parse_messages(&bytes)?;
    answer(state, key, headers, req, received).await
}

/// `POST /messages/count_tokens`: `{"input_tokens": N}`, the router's own
/// count (the prompt estimate, the mock providers' documented count) of the
/// prompt the upstream would get, the model's system prefix included.
pub(crate) fn count_tokens(state: &State, bytes: &[u8]) -> Result<Response<RouterBody>, ApiError> {
    let req = request::parse_count_tokens(bytes)?;
    let (model, _) = resolve(state, &req, state.clock.now())?;
    let mut tokens = req.prompt_estimate;
    if let Some(prefix) = model.system_prefix.as_deref() {
        tokens = prefixed_estimate(&req, prefix);
    }
    Ok(crate::router::service::json(
        StatusCode::OK,
        format!("{{\"input_tokens\":{tokens}}}").into_bytes(),
    ))
}

/// The estimate with `prefix` before the caller's system text: the system
/// counts as one message of the joined text, or a new one.
fn prefixed_estimate(req: &ChatRequest, prefix: &str) -> u64 {
    let chars = |text: &str| text.chars().count() as u64;
    let caller: Option<u64> = match req.body.get("system") {
        Some(Value::String(text)) => Some(chars(text)),
        Some(Value::Array(blocks)) => Some(
            blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .map(chars)
                .sum(),
        ),
        _ => None,
    };
    let separator = chars(transcode::SYSTEM_PREFIX_SEPARATOR);
    match caller {
        Some(caller) => {
            req.prompt_estimate.saturating_sub(caller.div_ceil(4)) + (chars(prefix) + separator + caller).div_ceil(4)
        }
        None => req.prompt_estimate + 4 + chars(prefix).div_ceil(4),
    }
}
