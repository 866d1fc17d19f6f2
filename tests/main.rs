//! The integration tests, one binary with a module per area (as ripgrep's
//! `tests/tests.rs`): the command line, runs and capacity sweeps, compare
//! and baselines, the conformance suite proving itself, the Python SDKs, the
//! reference router on loopback, the CI templates for a user's router
//! (their `gauntlet run` commands against the real command line), and the
//! suite against a real LiteLLM and Portkey, the demo on another day, and
//! the property that every value that validates runs. `support`
//! holds what they share, and `tests/fixtures/` the TOML they start from.

// A test reports failure by panicking; unwrap, expect and panic! are how.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod capacity;
mod ci_files;
mod cli;
mod compare;
mod conformance;
mod demo;
mod external;
mod router;
mod run;
mod sdk;
mod values;
