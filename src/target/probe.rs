//! What the harness asks the router under test about its own accounts, for
//! the conformance checks: each key's spend and credits left (before the
//! load and after the last charge settled) and each generation's cost.
//!
//! Where to ask is the target's [`Profile`]'s `account` and `generations`:
//! - `account = "openrouter"` (the built-in router): `GET {base}/key` →
//!   `data.usage`, `data.limit_remaining`;
//! - `account = "litellm"`: `GET {origin}/key/info` → `info.spend` (LiteLLM
//!   keeps spend, not a credit balance, and only with its database);
//! - `generations`: `GET {base}/generation?id=` → `data.model`,
//!   `data.total_cost`;
//!
//! each with the key's bearer token. The checks that need what a profile
//! lacks are skipped before anything is asked.
//!
//! Amounts are read from the JSON text exactly (no float in between).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::profile::origin;
use super::{Account, Precision, Profile, usd};
use crate::router::pricing::Picodollars;

/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Generations looked up at once.
const PARALLEL_LOOKUPS: usize = 16;
/// How long to wait for the last charges to settle after the load.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(3);
const SETTLE_POLL: Duration = Duration::from_millis(100);

/// A key's account as `GET /key` reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAccount {
    /// Spent so far (`data.usage`).
    pub usage: Picodollars,
    /// Credits left (`data.limit_remaining`), when the router says.
    pub limit_remaining: Option<Picodollars>,
}

/// A generation as `GET /generation?id=` reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub model: String,
    pub total_cost: Picodollars,
}

/// What the router said of its own accounts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Accounts {
    /// Per key of the mix, before the load started.
    pub before: BTreeMap<String, KeyAccount>,
    /// Per key of the mix, after the last request settled.
    pub after: BTreeMap<String, KeyAccount>,
    /// By generation id.
    pub generations: HashMap<String, Generation>,
    /// Probes that failed, one sentence each (the checks that need them fail).
    pub problems: Vec<String>,
}

/// A probe that got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("GET {url}: {message}")]
    Answer { url: String, message: String },
    #[error("`{text}` is not an exact USD amount: {message}")]
    Money { text: String, message: String },
    #[error("the {profile} profile has no {what}")]
    Unsupported { profile: String, what: &'static str },
}

fn answer(url: &str, message: impl std::fmt::Display) -> ProbeError {
    ProbeError::Answer {
        url: url.to_string(),
        message: message.to_string(),
    }
}

/// Asks one router about its accounts.
#[derive(Debug, Clone)]
pub struct AccountProbe {
    client: Client<HttpConnector, Empty<Bytes>>,
    /// The API base, e.g. `http://127.0.0.1:8080/api/v1`.
    base_url: String,
    profile: Profile,
    /// The target's own headers, sent with every probe.
    headers: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(borrow)]
    info: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct KeyData<'a> {
    #[serde(borrow)]
    usage: Option<&'a RawValue>,
    #[serde(borrow)]
    limit_remaining: Option<&'a RawValue>,
    #[serde(borrow)]
    spend: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct GenerationData<'a> {
    model: String,
    #[serde(borrow)]
    total_cost: &'a RawValue,
}

/// A JSON number (or a string holding one) as picodollars, read at
/// `precision`; `None` for `null`. An overdrawn key's credits left are
/// negative: that is what a check must see, not a parse error.
fn money(raw: &RawValue, precision: Precision) -> Result<Option<Picodollars>, ProbeError> {
    let text = raw.get().trim().trim_matches('"');
    if text == "null" {
        return Ok(None);
    }
    usd(text, precision).map(Some).ok_or_else(|| ProbeError::Money {
        text: text.to_string(),
        message: match precision {
            Precision::Decimal => "not a decimal amount at picodollar precision".to_string(),
            Precision::Float => "not a number".to_string(),
        },
    })
}

impl AccountProbe {
    pub fn new(base_url: &str, profile: &Profile) -> AccountProbe {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(PROBE_TIMEOUT));
        AccountProbe {
            client: Client::builder(TokioExecutor::new()).build(connector),
            base_url: base_url.trim_end_matches('/').to_string(),
            profile: profile.clone(),
            headers: Vec::new(),
        }
    }

    /// The same probe, sending `headers` (the target's) with every request.
    pub fn with_headers(mut self, headers: &[(String, String)]) -> AccountProbe {
        self.headers = headers.to_vec();
        self
    }

    /// `GET url` with `key` as bearer token; the body of a 2xx answer.
    async fn get(&self, url: &str, key: &str) -> Result<Bytes, ProbeError> {
        let mut request = http::Request::get(url);
        // The probe asks as the key: the target's own `authorization` is not sent.
        for (name, value) in self.headers.iter().filter(|(name, _)| name != "authorization") {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request
            .header(http::header::AUTHORIZATION, format!("Bearer {key}"))
            .body(Empty::new())
            .map_err(|e| answer(url, e))?;
        let (status, body) = tokio::time::timeout(PROBE_TIMEOUT, async {
            let response = self.client.request(request).await.map_err(|e| answer(url, e))?;
            let status = response.status();
            let body = response.into_body().collect().await.map_err(|e| answer(url, e))?;
            Ok::<_, ProbeError>((status, body.to_bytes()))
        })
        .await
        .map_err(|_| answer(url, format!("no answer within {PROBE_TIMEOUT:?}")))??;
        if status.is_success() {
            Ok(body)
        } else {
            let head: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            Err(answer(url, format!("status {status}: {head}")))
        }
    }

    /// The account of `key`.
    pub async fn key(&self, key: &str) -> Result<KeyAccount, ProbeError> {
        let url = match self.profile.account {
            Account::Openrouter => format!("{}/key", self.base_url),
            Account::Litellm => format!("{}/key/info", origin(&self.base_url)),
            Account::None => {
                return Err(ProbeError::Unsupported {
                    profile: self.profile.name.clone(),
                    what: "spend or balance",
                });
            }
        };
        let body = self.get(&url, key).await?;
        let outer: Data<'_> = serde_json::from_slice(&body).map_err(|e| answer(&url, e))?;
        let inner = outer
            .data
            .or(outer.info)
            .ok_or_else(|| answer(&url, "no `data` object"))?;
        let data: KeyData<'_> = serde_json::from_str(inner.get()).map_err(|e| answer(&url, e))?;
        let usage = data
            .usage
            .or(data.spend)
            .map(|m| money(m, self.profile.precision))
            .transpose()
            .map_err(|e| answer(&url, format!("usage: {e}")))?
            .flatten()
            .ok_or_else(|| answer(&url, "no usage"))?;
        let limit_remaining = data
            .limit_remaining
            .map(|m| money(m, self.profile.precision))
            .transpose()
            .map_err(|e| answer(&url, format!("limit_remaining: {e}")))?
            .flatten();
        Ok(KeyAccount { usage, limit_remaining })
    }

    /// The accounts of `keys`, and the problems met.
    pub async fn keys(&self, keys: &[String]) -> (BTreeMap<String, KeyAccount>, Vec<String>) {
        let mut accounts = BTreeMap::new();
        let mut problems = Vec::new();
        for key in keys {
            match self.key(key).await {
                Ok(account) => {
                    accounts.insert(key.clone(), account);
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        (accounts, problems)
    }

    /// The accounts of `keys` once they stop moving (the last charges of a
    /// run settle after its last byte): read until two reads agree.
    pub async fn settled_keys(&self, keys: &[String]) -> (BTreeMap<String, KeyAccount>, Vec<String>) {
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        let mut last = self.keys(keys).await;
        loop {
            tokio::time::sleep(SETTLE_POLL).await;
            let now = self.keys(keys).await;
            if now.0 == last.0 || tokio::time::Instant::now() >= deadline {
                return now;
            }
            last = now;
        }
    }

    /// Generation `id` as seen by `key`.
    pub async fn generation(&self, id: &str, key: &str) -> Result<Generation, ProbeError> {
        if !self.profile.generations {
            return Err(ProbeError::Unsupported {
                profile: self.profile.name.clone(),
                what: "generation lookup",
            });
        }
        let url = format!("{}/generation?id={id}", self.base_url);
        let body = self.get(&url, key).await?;
        let outer: Data<'_> = serde_json::from_slice(&body).map_err(|e| answer(&url, e))?;
        let inner = outer.data.ok_or_else(|| answer(&url, "no `data` object"))?;
        let data: GenerationData<'_> = serde_json::from_str(inner.get()).map_err(|e| answer(&url, e))?;
        let total_cost = money(data.total_cost, self.profile.precision)
            .map_err(|e| answer(&url, format!("total_cost: {e}")))?
            .unwrap_or_default();
        Ok(Generation {
            model: data.model,
            total_cost,
        })
    }

    /// Every `(generation id, key)` looked up, a few at a time.
    pub async fn generations(&self, wanted: Vec<(String, String)>) -> (HashMap<String, Generation>, Vec<String>) {
        let mut found = HashMap::with_capacity(wanted.len());
        let mut problems = Vec::new();
        let mut pending = wanted.into_iter();
        let mut set = tokio::task::JoinSet::new();
        loop {
            while set.len() < PARALLEL_LOOKUPS {
                let Some((id, key)) = pending.next() else { break };
                let probe = self.clone();
                set.spawn(async move {
                    let result = probe.generation(&id, &key).await;
                    (id, result)
                });
            }
            let Some(joined) = set.join_next().await else { break };
            match joined {
                Ok((id, Ok(generation))) => {
                    found.insert(id, generation);
                }
                Ok((_, Err(e))) => problems.push(e.to_string()),
                Err(e) => problems.push(format!("a generation lookup failed: {e}")),
            }
        }
        (found, problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_read_exactly() {
        let raw = |s: &str| serde_json::from_str::<Box<RawValue>>(s).unwrap();
        let exact = |t: &str| money(&raw(t), Precision::Decimal);
        assert_eq!(exact("0.000012345678").unwrap(), Some(Picodollars(12_345_678)));
        assert_eq!(exact("\"1.5\"").unwrap(), Some(Picodollars(1_500_000_000_000)));
        assert_eq!(exact("null").unwrap(), None);
        assert_eq!(exact("-0.25").unwrap(), Some(Picodollars(-250_000_000_000)));
        // Exponents are read too (Python prints small floats so).
        assert_eq!(exact("1e-5").unwrap(), Some(Picodollars(10_000_000)));
        assert!(exact("1.3049999999999999e-05").is_err());
        // A router that keeps money in floats: to the nearest picodollar.
        let float = money(&raw("1.3049999999999999e-05"), Precision::Float).unwrap();
        assert_eq!(float, Some(Picodollars(13_050_000)));
    }
}
