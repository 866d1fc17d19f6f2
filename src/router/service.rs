//! The router as a service: building its shared state, routing under
//! `/api/v1` and `/v1`, authentication, the account and catalog routes and
//! the operator's admin routes. The Messages API routes (`/messages`,
//! `/messages/count_tokens`) take Anthropic's `x-api-key` as well as a
//! bearer key, and answer errors Anthropic-shaped. Usable without sockets
//! ([`Router::handle`]) and served over HTTP/1.1 by [`serve`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;

pub use super::body::RouterBody;
use super::catalog::Resolution;
use super::clock::CalendarClock;
use super::config::{KeyConfig, RawDecimal, RouterConfig};
use super::conn::{AcceptErrors, BodyTimeout, DeadlineBody, Slots, widen_backlog};
use super::error::ApiError;
use super::keys::{differences, key_config, key_problem, label_problem, settings_of};
use super::ledger::{KeySettings, Ledger, LedgerError, StoredByok, Terms};
use super::limits::{KeyLimits, Limiter};
use super::pricing::Picodollars;
use super::retry::Retrier;
use super::state::State;
use super::upstream::{BoxError, Connector, client};
use super::wire::{GenerationInfo, KeyInfo, ModelInfo, data};

/// The router could not start.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    #[error("clock: {0}")]
    Clock(#[from] super::clock::ClockError),
    #[error("ledger: {0}")]
    StoredKey(String),
}

/// The reference router. Cheap to clone.
#[derive(Clone)]
pub struct Router {
    pub(crate) state: Arc<State>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("listen", &self.state.config.listen)
            .finish_non_exhaustive()
    }
}

impl Router {
    /// Builds a router: opens its ledger (the file in the config, or memory)
    /// and makes sure every configured key has an account. With deliberate
    /// defects on, says so once on stderr.
    pub async fn new(config: RouterConfig, connector: Connector) -> Result<Router, RouterError> {
        if config.defects.any() {
            eprintln!(
                "warning: the built-in router runs with deliberate defects: {}",
                config.defects.enabled().join(", ")
            );
        }
        let ledger = match &config.ledger_path {
            Some(path) => Ledger::open(path)?,
            None => Ledger::in_memory(),
        };
        Self::with_ledger(config, connector, ledger).await
    }

    /// Builds a router on a ledger the caller opened.
    pub async fn with_ledger(
        config: RouterConfig,
        connector: Connector,
        ledger: Ledger,
    ) -> Result<Router, RouterError> {
        let clock = match config.clock.start {
            Some(start) => CalendarClock::warped(start, config.clock.speed)?,
            None if config.clock.speed != 1.0 => CalendarClock::warped(jiff::Timestamp::now(), config.clock.speed)?,
            None => CalendarClock::real(),
        };
        // Purchases are dated, and expire, by the router's clock.
        // (The deliberate `credits-never-expire` defect drops the expiry.)
        let credit_expiry = config.credit_expiry.filter(|_| !config.defects.credits_never_expire);
        ledger.set_terms(Terms { clock, credit_expiry });
        let limiter = Limiter::new(config.free);
        let mut keys = HashMap::with_capacity(config.keys.len());
        // The config file seeds keys the ledger does not have; a stored key
        // keeps its money and settings (see `keys`).
        for key in &config.keys {
            let file = settings_of(key, &config);
            let (_, stored) = ledger.ensure_key(&key.key, file.clone(), key.credits).await?;
            for line in differences(&key.key, &file, &stored) {
                eprintln!("warning: {line}");
            }
        }
        for (key, settings) in ledger.keys() {
            let served = key_config(&key, &settings, &config).map_err(RouterError::StoredKey)?;
            limiter.set_key(Arc::clone(&key), limits_of(&served));
            keys.insert(key, Arc::new(served));
        }
        let retrier = Retrier::new(config.retry.clone(), random_u64()).with_defects(config.defects.retry());
        let state = State {
            client: client(connector),
            ledger,
            limiter,
            clock,
            keys: RwLock::new(keys),
            retrier,
            next_generation: AtomicU64::new(0),
            generation_prefix: format!("{:012x}", random_u64() >> 16),
            config,
        };
        Ok(Router { state: Arc::new(state) })
    }

    pub fn config(&self) -> &RouterConfig {
        &self.state.config
    }

    pub fn ledger(&self) -> &Ledger {
        &self.state.ledger
    }

    pub fn clock(&self) -> &CalendarClock {
        &self.state.clock
    }

    /// Answers one request. Never fails: every error is an HTTP answer.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<RouterBody>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let anthropic = is_messages_route(req.uri().path());
        let defects = &self.state.config.defects;
        match self.route(req).await {
            Ok(response) => response,
            Err(e) => {
                // The deliberate `openai-errors-on-messages` defect answers
                // the Messages API in OpenAI's shape.
                let mut response = if anthropic && !defects.openai_errors_on_messages {
                    e.anthropic_response()
                } else {
                    e.response()
                };
                // The deliberate `no-retry-after-on-limits` defect.
                if defects.no_retry_after_on_limits && matches!(e, ApiError::Limited(_)) {
                    response.headers_mut().remove(http::header::RETRY_AFTER);
                }
                response
            }
        }
    }

    async fn route<B>(&self, req: Request<B>) -> Result<Response<RouterBody>, ApiError>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let path = req.uri().path();
        let Some(route) = path.strip_prefix("/api/v1").or_else(|| path.strip_prefix("/v1")) else {
            return match (req.method(), path) {
                (&Method::GET, "/health") => Ok(json(StatusCode::OK, b"{\"ok\":true}".to_vec())),
                _ => Err(no_route(&req)),
            };
        };
        let route = route.to_string();
        match (req.method().clone(), route.as_str()) {
            (Method::POST, "/chat/completions") => {
                let key = self.authenticate(&req)?;
                let (parts, body) = req.into_parts();
                let bytes = read_body(body, self.state.config.max_body_bytes).await?;
                super::chat::complete(Arc::clone(&self.state), key, &parts.headers, bytes).await
            }
            (Method::POST, "/messages") => {
                let key = self.authenticate_messages(&req)?;
                let (parts, body) = req.into_parts();
                let bytes = read_body(body, self.state.config.max_body_bytes).await?;
                super::chat::messages(Arc::clone(&self.state), key, &parts.headers, bytes).await
            }
            (Method::POST, "/messages/count_tokens") => {
                self.authenticate_messages(&req)?;
                let (_, body) = req.into_parts();
                let bytes = read_body(body, self.state.config.max_body_bytes).await?;
                super::chat::count_tokens(&self.state, &bytes)
            }
            (Method::GET, "/models") => Ok(self.models()),
            (Method::GET, "/key") => {
                let key = self.authenticate(&req)?;
                self.key_info(&key)
            }
            (Method::GET, "/generation") => {
                let key = self.authenticate(&req)?;
                let id = query(req.uri().query(), "id")
                    .ok_or_else(|| ApiError::BadRequest("the `id` query parameter is required".into()))?;
                self.generation(&key, &id)
            }
            (method, admin) if admin.starts_with("/admin/") => {
                self.authenticate_operator(&req)?;
                let (_, body) = req.into_parts();
                let bytes = read_body(body, self.state.config.max_body_bytes).await?;
                self.admin(&method, admin, &bytes).await
            }
            (method, _) => Err(ApiError::NoRoute {
                method: method.to_string(),
                path: path_of(&route),
            }),
        }
    }

    fn bearer<B>(req: &Request<B>) -> Result<&str, ApiError> {
        let value = req.headers().get(AUTHORIZATION).ok_or(ApiError::Unauthorized(
            "missing the Authorization header: send `Authorization: Bearer <key>`",
        ))?;
        let text = value
            .to_str()
            .map_err(|_| ApiError::Unauthorized("the Authorization header is not text"))?;
        text.strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or(ApiError::Unauthorized(
                "the Authorization header must be `Bearer <key>`",
            ))
    }

    /// The configuration of an API key, configured or created by an operator.
    fn key(&self, key: &str) -> Option<Arc<KeyConfig>> {
        self.state
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn authenticate<B>(&self, req: &Request<B>) -> Result<Arc<KeyConfig>, ApiError> {
        self.key(Self::bearer(req)?)
            .ok_or(ApiError::Unauthorized("unknown API key"))
    }

    /// Anthropic's `x-api-key` when sent (Claude Code with an API key),
    /// else the bearer key (the anthropic SDK sends its key that way).
    fn authenticate_messages<B>(&self, req: &Request<B>) -> Result<Arc<KeyConfig>, ApiError> {
        let Some(value) = req.headers().get(X_API_KEY) else {
            return self.authenticate(req);
        };
        let key = value
            .to_str()
            .map_err(|_| ApiError::Unauthorized("the x-api-key header is not text"))?
            .trim();
        self.key(key).ok_or(ApiError::Unauthorized("unknown API key"))
    }

    fn authenticate_operator<B>(&self, req: &Request<B>) -> Result<(), ApiError> {
        let Some(operator) = self.state.config.operator_key.as_deref() else {
            return Err(ApiError::Forbidden(
                "admin routes are off: the router has no operator key".into(),
            ));
        };
        if Self::bearer(req)? == operator {
            Ok(())
        } else {
            Err(ApiError::Forbidden("admin routes need the operator key".into()))
        }
    }

    fn models(&self) -> Response<RouterBody> {
        let now = self.state.clock.now();
        let models: Vec<ModelInfo<'_>> = self
            .state
            .config
            .catalog
            .models()
            .iter()
            .filter(|m| {
                !matches!(
                    self.state.config.catalog.resolve(&m.id, now),
                    Resolution::Removed { .. }
                )
            })
            .map(|m| ModelInfo::at(m, now))
            .collect();
        json(StatusCode::OK, data(&models))
    }

    fn key_info(&self, key: &KeyConfig) -> Result<Response<RouterBody>, ApiError> {
        let balance = self
            .state
            .ledger
            .balance(&key.key)
            .ok_or_else(|| ApiError::Internal("the key has no ledger account".into()))?;
        let info = KeyInfo::new(
            &balance,
            key.byok.is_some(),
            key.rpm.map(|r| r.get()),
            self.state.clock.now().as_microsecond(),
        );
        Ok(json(StatusCode::OK, data(&info)))
    }

    fn generation(&self, key: &KeyConfig, id: &str) -> Result<Response<RouterBody>, ApiError> {
        // Another key's generation is reported as missing, not as forbidden,
        // so that ids cannot be probed.
        let record = self
            .state
            .ledger
            .generation(id)
            .filter(|r| *r.key == *key.key)
            .ok_or_else(|| ApiError::GenerationNotFound(id.to_string()))?;
        // What was charged, which is the cost unless the account could not cover it.
        let mut info = GenerationInfo::from(&record);
        if let Some(settlement) = self.state.ledger.settlement(id) {
            info.total_cost = super::wire::Usd(settlement.charged);
        }
        Ok(json(StatusCode::OK, data(&info)))
    }

    async fn admin(&self, method: &Method, route: &str, body: &[u8]) -> Result<Response<RouterBody>, ApiError> {
        let parts: Vec<&str> = route.trim_start_matches("/admin/").split('/').collect();
        match (method, parts.as_slice()) {
            (&Method::POST, ["keys"]) => {
                let raw: AdminKey = parse_json(body)?;
                let key = self.create_key(raw).await?;
                self.admin_key_info(&key, StatusCode::CREATED)
            }
            (&Method::POST, ["keys", key, "credits"]) => {
                let raw: AdminCredits = parse_json(body)?;
                let amount = Picodollars::from_usd_decimal(&raw.amount.0)
                    .map_err(|e| ApiError::BadRequest(format!("`amount`: {e}")))?;
                let amount = self.purchase("amount", amount)?;
                let key = self.known_key(key)?;
                self.state
                    .ledger
                    .add_credits(&key.key, amount)
                    .await
                    .map_err(ApiError::from)?;
                self.key_info(&key)
            }
            (&Method::PATCH, ["keys", key]) => {
                let raw: AdminKeyChange = parse_json(body)?;
                let key = self.change_key(key, raw).await?;
                self.admin_key_info(&key, StatusCode::OK)
            }
            (&Method::GET, ["keys", key]) => {
                let key = self.known_key(key)?;
                self.admin_key_info(&key, StatusCode::OK)
            }
            _ => Err(ApiError::NoRoute {
                method: method.to_string(),
                path: format!("/api/v1{route}"),
            }),
        }
    }

    /// `{"data": KeyInfo + key, limits, byok provider}` for the admin routes.
    fn admin_key_info(&self, key: &KeyConfig, status: StatusCode) -> Result<Response<RouterBody>, ApiError> {
        let balance = self
            .state
            .ledger
            .balance(&key.key)
            .ok_or_else(|| ApiError::Internal("the key has no ledger account".into()))?;
        let mut out = serde_json::to_value(KeyInfo::new(
            &balance,
            key.byok.is_some(),
            key.rpm.map(|r| r.get()),
            self.state.clock.now().as_microsecond(),
        ))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
        out["key"] = serde_json::Value::String(key.key.to_string());
        out["rpm"] = serde_json::json!(key.rpm.map(|n| n.get()));
        out["concurrency"] = serde_json::json!(key.concurrency.map(|n| n.get()));
        out["in_flight_budget"] = serde_json::json!(key.in_flight_budget.map(super::wire::Usd));
        out["byok_provider"] = serde_json::json!(
            key.byok
                .as_ref()
                .and_then(|b| self.state.config.providers.get(b.provider))
                .map(|p| p.name.to_string())
        );
        Ok(json(
            status,
            serde_json::to_vec(&serde_json::json!({"data": out})).unwrap_or_default(),
        ))
    }

    /// `amount` (of the request's `field`) if it is a purchase the terms
    /// allow; else a 400 naming the field, the amount and the bounds.
    fn purchase(&self, field: &str, amount: Picodollars) -> Result<Picodollars, ApiError> {
        self.state
            .config
            .purchases
            .check(amount)
            .map_err(|e| ApiError::BadRequest(format!("`{field}`: {e}")))
    }

    fn known_key(&self, key: &str) -> Result<Arc<KeyConfig>, ApiError> {
        self.key(key)
            .ok_or_else(|| ApiError::BadRequest(format!("no key `{key}`")))
    }

    async fn create_key(&self, raw: AdminKey) -> Result<Arc<KeyConfig>, ApiError> {
        let n = self
            .state
            .next_generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key: Arc<str> = match raw.key {
            Some(k) => {
                if let Some(problem) = key_problem(&k) {
                    return Err(ApiError::BadRequest(format!("`key` {problem}")));
                }
                k.into()
            }
            None => format!("sk-gx-{:016x}{n:04x}", random_u64()).into(),
        };
        if Some(&*key) == self.state.config.operator_key.as_deref() {
            return Err(ApiError::Conflict("that key is the operator key".into()));
        }
        // A key created with credits was bought with them; one created
        // without (or with zero) is bought for later.
        let credits = match usd("credits", &raw.credits)?.unwrap_or_default() {
            Picodollars::ZERO => Picodollars::ZERO,
            credits => self.purchase("credits", credits)?,
        };
        let change = AdminKeyChange {
            label: Some(raw.label),
            rpm: Some(raw.rpm),
            concurrency: Some(raw.concurrency),
            in_flight_budget: Some(raw.in_flight_budget),
            byok: Some(raw.byok),
        };
        let mut settings = KeySettings::labelled("admin-created");
        change.apply_to(&mut settings)?;
        let config = key_config(&key, &settings, &self.state.config).map_err(ApiError::BadRequest)?;
        self.state
            .ledger
            .create_key(&key, settings, credits)
            .await
            .map_err(ApiError::from)?;
        Ok(self.serve_key(config))
    }

    /// `PATCH /admin/keys/KEY`: changes the settings given, durably, then serves them.
    async fn change_key(&self, key: &str, raw: AdminKeyChange) -> Result<Arc<KeyConfig>, ApiError> {
        let current = self.known_key(key)?;
        let mut settings = self
            .state
            .ledger
            .settings(&current.key)
            .ok_or_else(|| ApiError::Internal("the key has no ledger account".into()))?
            .as_ref()
            .clone();
        raw.apply_to(&mut settings)?;
        let config = key_config(&current.key, &settings, &self.state.config).map_err(ApiError::BadRequest)?;
        self.state
            .ledger
            .update_settings(&current.key, settings)
            .await
            .map_err(ApiError::from)?;
        Ok(self.serve_key(config))
    }

    /// Serves `config` from now on: its limits and its key.
    fn serve_key(&self, config: KeyConfig) -> Arc<KeyConfig> {
        let key = Arc::clone(&config.key);
        self.state.limiter.set_key(Arc::clone(&key), limits_of(&config));
        let config = Arc::new(config);
        self.state
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, Arc::clone(&config));
        config
    }
}

/// USD for the admin routes, naming the field when it is not valid.
fn usd(field: &str, value: &Option<RawDecimal>) -> Result<Option<Picodollars>, ApiError> {
    value
        .as_ref()
        .map(|d| Picodollars::from_usd_decimal(&d.0).map_err(|e| ApiError::BadRequest(format!("`{field}`: {e}"))))
        .transpose()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminKey {
    key: Option<String>,
    label: Option<String>,
    credits: Option<RawDecimal>,
    rpm: Option<u32>,
    concurrency: Option<u32>,
    in_flight_budget: Option<RawDecimal>,
    byok: Option<AdminByok>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminByok {
    provider: String,
    api_key: String,
}

/// A change of a key's settings: an absent field is kept, `null` clears a
/// limit or the BYOK credentials.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminKeyChange {
    #[serde(default, deserialize_with = "present")]
    label: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    rpm: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    concurrency: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    in_flight_budget: Option<Option<RawDecimal>>,
    #[serde(default, deserialize_with = "present")]
    byok: Option<Option<AdminByok>>,
}

/// A field that is present: `Some(None)` for `null`.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl AdminKeyChange {
    fn apply_to(self, settings: &mut KeySettings) -> Result<(), ApiError> {
        use super::config::bounds::{CONCURRENCY, Count, PER_MINUTE};
        // The same ranges as the config file's keys.
        let in_range = |field: &str, n: Option<u32>, range: Count| match n {
            Some(n) => range
                .check(n)
                .map(Some)
                .map_err(|e| ApiError::BadRequest(format!("`{field}` = {}: {}", e.value, e.expected))),
            None => Ok(None),
        };
        if let Some(label) = self.label {
            let label = label.unwrap_or_default();
            if let Some(problem) = label_problem(&label) {
                return Err(ApiError::BadRequest(format!("`label` {problem}")));
            }
            settings.label = label;
        }
        if let Some(rpm) = self.rpm {
            settings.rpm = in_range("rpm", rpm, PER_MINUTE)?;
        }
        if let Some(concurrency) = self.concurrency {
            settings.concurrency = in_range("concurrency", concurrency, CONCURRENCY)?;
        }
        if let Some(budget) = self.in_flight_budget {
            settings.in_flight_budget = usd("in_flight_budget", &budget)?.map(|p| p.0);
        }
        if let Some(byok) = self.byok {
            settings.byok = byok.map(|b| StoredByok {
                provider: b.provider,
                api_key: b.api_key,
            });
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminCredits {
    amount: RawDecimal,
}

fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("the request body is not valid: {e}")))
}

/// A random number from the standard library's per-process hash keys.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

pub(crate) fn limits_of(key: &KeyConfig) -> KeyLimits {
    KeyLimits {
        rpm: key.rpm,
        concurrency: key.concurrency,
        in_flight_budget: key.in_flight_budget,
    }
}

/// Anthropic's API key header.
const X_API_KEY: http::header::HeaderName = http::header::HeaderName::from_static("x-api-key");

/// Whether `path` is a Messages API route, whose errors are Anthropic-shaped.
fn is_messages_route(path: &str) -> bool {
    path.strip_prefix("/api/v1")
        .or_else(|| path.strip_prefix("/v1"))
        .is_some_and(|route| route == "/messages" || route.starts_with("/messages/"))
}

fn no_route<B>(req: &Request<B>) -> ApiError {
    ApiError::NoRoute {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
    }
}

fn path_of(route: &str) -> String {
    format!("/api/v1{route}")
}

async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::PayloadTooLarge { limit }),
        Err(e) => match e.downcast_ref::<BodyTimeout>() {
            Some(&BodyTimeout(after)) => Err(ApiError::RequestTimeout { after }),
            None => Err(ApiError::BadRequest(format!("could not read the request body: {e}"))),
        },
    }
}

/// A query parameter's value; generation ids need no percent-decoding.
fn query(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .map(str::to_string)
}

pub(crate) fn json(status: StatusCode, body: Vec<u8>) -> Response<RouterBody> {
    let mut response = Response::new(RouterBody::from(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// How long shutdown waits for open connections (streams) to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves the router on `listener` until `shutdown` resolves, then lets open
/// connections finish for a few seconds.
///
/// Slow clients are held to the config's
/// [`ConnectionLimits`](super::config::ConnectionLimits): a request head
/// must arrive within the header timeout (hyper closes the connection
/// otherwise, an idle keep-alive one included), its body within the body
/// timeout of the head (408, and the connection closes), and at most
/// `max_connections` are served at once, the rest waiting in the listen
/// backlog.
pub async fn serve(listener: tokio::net::TcpListener, router: Router, shutdown: impl std::future::Future<Output = ()>) {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;

    let limits = router.config().connections;
    widen_backlog(&listener);
    let slots = Slots::new(limits.max_connections);
    let mut accept_errors = AcceptErrors::default();
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    loop {
        let (slot, stream) = tokio::select! {
            accepted = async {
                let slot = slots.take().await?;
                Some((slot, listener.accept().await))
            } => match accepted {
                Some((slot, Ok((stream, _)))) => (slot, stream),
                Some((slot, Err(e))) => {
                    drop(slot);
                    accept_errors.wait(&e, &slots).await;
                    continue;
                }
                None => break,
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = service_fn(move |req: Request<hyper::body::Incoming>| {
            let router = router.clone();
            let req = req.map(|body| DeadlineBody::new(body, limits.body_timeout));
            async move { Ok::<_, Infallible>(router.handle(req).await) }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
}
