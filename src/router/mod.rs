//! The reference router: a real, fast LLM API router with the behaviour the
//! field expects, the default target of every scenario.
//!
//! - [`service`]: the router value, routing, auth, account and admin routes.
//! - [`state`]: the shared state of one router, read by every handler.
//! - [`body`]: the body of every response, whole or streamed.
//! - [`chat`]: a chat completion, or a Messages API request, from request to
//!   settled charge.
//! - [`config`]: the `[router]` table, raw and validated.
//! - [`conn`]: slow and idle clients: the body deadline, the connection bound.
//! - [`defects`]: deliberate misbehaviour, test-only, for proving checks.
//! - [`catalog`]: models, prices, routes and the deprecation lifecycle.
//! - [`error`]: errors with their status and OpenAI- or Anthropic-shaped bodies.
//! - [`keys`]: key strings, stored key settings, config keys against stored ones.
//! - [`limits`]: per-key rate, concurrency, free-model quotas, in-flight budget.
//! - [`pricing`]: money in picodollars, prices, the cost formula.
//! - [`clock`]: calendar time that scenarios can warp.
//! - [`ledger`]: prepaid balances, reservations, durable settled charges.
//! - [`retry`]: the one home of backoff, fallback, cooldown and retry budget.
//! - [`upstream`]: the pooled client, the connector, dialect requests.
//! - [`request`]: validating client requests (chat and Messages), the
//!   prompt-token bound.
//! - [`wire`]: JSON answers with exact USD amounts.
//! - [`sse`]: incremental server-sent-events parsing.
//! - [`transcode`]: upstream streams (OpenAI or Anthropic) to OpenAI chunks,
//!   and both ways for the Messages API.

pub mod body;
pub mod catalog;
pub mod chat;
pub mod clock;
pub mod config;
pub mod conn;
pub mod defects;
pub mod error;
pub mod keys;
pub mod ledger;
pub mod limits;
pub mod pricing;
pub mod request;
pub mod retry;
pub mod service;
pub mod sse;
pub mod state;
pub mod transcode;
pub mod upstream;
pub mod wire;

pub use body::RouterBody;
pub use defects::Defects;
pub use service::{Router, RouterError, serve};
pub use upstream::Connector;
