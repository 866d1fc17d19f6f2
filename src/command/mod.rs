//! The subcommands: what each does between parsing its flags and exiting.

pub mod baseline;
pub mod compare;
pub mod export_config;
pub mod mock;
pub mod router;
pub mod run;
pub mod validate;

use std::path::{Path, PathBuf};

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

/// The scenario files the arguments name (folders searched for `*.toml`),
/// or, having said what is wrong, the usage exit code.
pub fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, crate::Exit> {
    match crate::scenario::scenario_files(paths) {
        Ok(files) if !files.is_empty() => Ok(files),
        Ok(_) => {
            eprintln!("error: no scenario files (*.toml) under {paths:?}");
            Err(crate::Exit::Usage)
        }
        Err(e) => {
            eprintln!("error: cannot list the scenarios: {e}");
            Err(crate::Exit::Usage)
        }
    }
}

/// Reads a TOML file into `T`; errors name the file, line, field path and problem.
pub fn read_toml<T: DeserializeOwned>(file: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| ConfigError::new("", format!("cannot read the file: {e}")).in_file(file))?;
    parse_toml(&text).map_err(|e| e.in_file(file))
}
