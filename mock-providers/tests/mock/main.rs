//! Integration tests of the mock providers: real HTTP on loopback against
//! servers spawned on `127.0.0.1:0`, plus the in-process connector and the
//! SSE framing. One test binary; each module covers one area.

// Tests may relax the workspace lints: a failed `unwrap`/`expect`/`panic!`
// is exactly how a test reports a broken expectation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod anthropic;
mod config;
mod connector;
mod determinism;
mod faults;
mod journal;
mod limits;
mod openai;
mod sse;
mod support;
mod timing;
