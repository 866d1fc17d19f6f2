//! What the test modules share: temp files and folders, the built binary's
//! `gauntlet mock` and `gauntlet router` processes, an in-process
//! mock-plus-router stack with an HTTP client for it, the report schema, and
//! the TOML fixtures.

mod fixture;
mod process;
mod report;
mod stack;

pub use fixture::*;
pub use process::*;
pub use report::report_schema;
pub use stack::*;
