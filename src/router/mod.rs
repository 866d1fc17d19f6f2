//! The reference router: a real, fast LLM API router with the behaviour the
//! field expects, the default target of every scenario.
//!
//! - [`pricing`]: money in picodollars, prices, the cost formula.
//! - [`clock`]: calendar time that scenarios can warp.
//! - [`ledger`]: prepaid balances, reservations, durable settled charges.
//! - [`retry`]: the one home of backoff, fallback, cooldown and retry budget.
//! - [`sse`]: incremental server-sent-events parsing.
//! - [`transcode`]: upstream streams (OpenAI or Anthropic) to OpenAI chunks.

pub mod clock;
pub mod ledger;
pub mod pricing;
pub mod retry;
pub mod sse;
pub mod transcode;
