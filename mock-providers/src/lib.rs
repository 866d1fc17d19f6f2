//! Mock upstream LLM providers for gauntlet: OpenAI- and Anthropic-dialect
//! HTTP servers whose latency, token counts, limits and faults are
//! programmable and seeded, and which record every attempt in a journal.
//!
//! The map:
//! - [`config`]: `[[providers]]` tables, raw and validated.
//! - [`bounds`]: the range of every delay, length, limit and fault time.
//! - [`distribution`]: seeded delay and length distributions.
//! - [`tokens`]: the documented prompt-token count, the nonce, the vocabulary.
//! - [`plan`]: what an attempt will get (delays, pieces, usage).
//! - [`limits`]: per-key rpm, tpm and concurrency.
//! - [`faults`]: programmed failures, replaceable at run time.
//! - [`openai`], [`anthropic`]: the two wire dialects.
//! - [`stream`]: the response body, an SSE state machine.
//! - [`provider`]: request handling, step by step; `attempt`: the journal
//!   record of each attempt and the attempt numbers.
//! - [`journal`]: the records and the clock they share.
//! - [`server`]: the HTTP/1.1 server; [`connector`]: the in-process one.
//!
//! The mock shares no wire types with any router: it reads requests as raw
//! JSON, so a serde mistake in a router cannot be mirrored here.
//!
//! Control routes, on every provider: `GET /__gauntlet/health`,
//! `GET /__gauntlet/journal[?since=N]` (NDJSON), `DELETE /__gauntlet/journal`,
//! `GET|PUT|DELETE /__gauntlet/faults` (PUT takes a JSON array of fault
//! tables, the same fields as in TOML).

pub mod anthropic;
mod attempt;
pub mod bounds;
pub mod config;
pub mod connector;
pub mod distribution;
pub mod faults;
pub mod journal;
pub mod limits;
pub mod openai;
pub mod plan;
pub mod provider;
pub mod server;
pub mod stream;
pub mod tokens;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{ConfigError, ProviderConfig, load_providers};
pub use connector::InProcessConnector;
pub use journal::{Clock, Journal, Outcome, Record, Usage};
pub use provider::Provider;

/// The wire dialect a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dialect {
    #[serde(rename = "openai")]
    OpenAi,
    #[serde(rename = "anthropic")]
    Anthropic,
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dialect::OpenAi => "openai",
            Dialect::Anthropic => "anthropic",
        })
    }
}

/// A provider that could not start.
#[derive(Debug, thiserror::Error)]
#[error("provider `{name}`: cannot listen on {addr}: {source}")]
pub struct SpawnError {
    pub name: String,
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// A provider being served.
#[derive(Debug, Clone)]
pub struct RunningProvider {
    pub addr: SocketAddr,
    pub provider: Arc<Provider>,
}

impl RunningProvider {
    pub fn name(&self) -> &str {
        self.provider.name()
    }

    pub fn journal(&self) -> &Journal {
        self.provider.journal()
    }

    /// `http://ADDR`, the base URL a router should use.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Stops every server of a [`MockSet`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct ShutdownHandle(Arc<watch::Sender<bool>>);

impl ShutdownHandle {
    pub fn shutdown(&self) {
        self.0.send_replace(true);
    }
}

/// A set of providers served on their own listeners, sharing one clock.
#[derive(Debug)]
pub struct MockSet {
    providers: Vec<RunningProvider>,
    shutdown: ShutdownHandle,
    tasks: Vec<JoinHandle<()>>,
}

impl MockSet {
    /// Binds every provider (port 0 picks a free one) and serves them. Fails,
    /// serving none, if any address cannot be bound.
    pub async fn spawn(configs: Vec<ProviderConfig>) -> Result<MockSet, SpawnError> {
        let clock = Clock::new();
        let mut bound = Vec::with_capacity(configs.len());
        for config in configs {
            let listener = TcpListener::bind(config.listen).await.map_err(|source| SpawnError {
                name: config.name.clone(),
                addr: config.listen,
                source,
            })?;
            let addr = listener.local_addr().map_err(|source| SpawnError {
                name: config.name.clone(),
                addr: config.listen,
                source,
            })?;
            bound.push((listener, addr, Arc::new(Provider::new(config, Journal::new(clock)))));
        }
        let (tx, rx) = watch::channel(false);
        let mut providers = Vec::with_capacity(bound.len());
        let mut tasks = Vec::with_capacity(bound.len());
        for (listener, addr, provider) in bound {
            tasks.push(tokio::spawn(server::serve(listener, Arc::clone(&provider), rx.clone())));
            providers.push(RunningProvider { addr, provider });
        }
        Ok(MockSet {
            providers,
            shutdown: ShutdownHandle(Arc::new(tx)),
            tasks,
        })
    }

    pub fn providers(&self) -> &[RunningProvider] {
        &self.providers
    }

    /// The provider called `name`.
    pub fn get(&self, name: &str) -> Option<&RunningProvider> {
        self.providers.iter().find(|p| p.name() == name)
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// A connector that reaches these providers without sockets, by the
    /// address each one is bound to.
    pub fn connector(&self) -> InProcessConnector {
        InProcessConnector::new(
            self.providers
                .iter()
                .map(|p| (p.addr.to_string(), Arc::clone(&p.provider))),
        )
    }

    /// Stops accepting, lets open connections finish (two seconds at most)
    /// and waits for the servers to end.
    pub async fn shutdown(self) {
        self.shutdown.shutdown();
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// Waits until the servers end (after a [`ShutdownHandle::shutdown`]).
    pub async fn wait(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
