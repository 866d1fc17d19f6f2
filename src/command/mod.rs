//! The subcommands: what each does between parsing its flags and exiting.

pub mod compare;
pub mod mock;
pub mod router;
pub mod run;
pub mod validate;

use std::path::Path;

use mock_providers::config::{ConfigError, parse_toml};
use serde::de::DeserializeOwned;

/// Resolves on Ctrl-C or SIGTERM.
pub async fn until_ctrl_c() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Reads a TOML file into `T`; errors name the file, line, field path and problem.
pub fn read_toml<T: DeserializeOwned>(file: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| ConfigError::new("", format!("cannot read the file: {e}")).in_file(file))?;
    parse_toml(&text).map_err(|e| e.in_file(file))
}
