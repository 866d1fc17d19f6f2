//! The load generator: open-loop arrivals scheduled by their intended send
//! time, so latency is measured from when a request was meant to go out.
//!
//! - [`arrival`]: arrival processes (constant, Poisson, gamma, ramp, burst)
//!   as deterministic schedules of intended offsets, and sharding them.
//! - [`engine`]: drives a scenario's phases (open loop under an in-flight
//!   cap, closed-loop users) and emits one record per request.
//! - [`client`]: request bodies, the pooled HTTP client, and reading answers
//!   (whole bodies and SSE streams, timestamped chunk by chunk).
//! - [`record`]: what is recorded of each request, shared with metrics and reports.

pub mod arrival;
pub mod client;
pub mod engine;
pub mod plan;
pub mod record;

#[cfg(test)]
mod tests;
