//! The load generator: open-loop arrivals scheduled by their intended send
//! time, so latency is measured from when a request was meant to go out.
//!
//! - [`arrival`]: arrival processes (constant, Poisson, gamma, ramp, burst)
//!   as deterministic schedules of intended offsets, and sharding them.
//! - [`record`]: what is recorded of each request, shared with metrics and reports.

pub mod arrival;
pub mod record;
