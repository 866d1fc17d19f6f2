//! `gauntlet router`: serves the reference router from the `[router]` table
//! of a file until told to stop.

use std::future::Future;
use std::io::Write;

use crate::Exit;
use crate::cli::RouterArgs;
use crate::command::read_toml;
use crate::router::config::{RawRouterFile, RouterConfig};
use crate::router::{Connector, Router, serve};

/// Reads and validates the `[router]` table of the file the flags name.
pub fn config(args: &RouterArgs) -> anyhow::Result<RouterConfig> {
    let file: RawRouterFile = read_toml(&args.config)?;
    let raw = (file.router)
        .ok_or_else(|| anyhow::anyhow!("{}: router: the file has no [router] table", args.config.display()))?;
    let mut config = raw
        .validate("router")
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.config.display()))?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    Ok(config)
}

/// Serves until `stop` resolves.
pub async fn run(args: RouterArgs, stop: impl Future<Output = ()>) -> Exit {
    let config = match config(&args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return Exit::Usage;
        }
    };
    let listen = config.listen;
    let ledger = config
        .ledger_path
        .as_ref()
        .map_or_else(|| "in memory".to_string(), |p| p.display().to_string());
    let (models, keys) = (config.catalog.models().len(), config.keys.len());
    let router = match Router::new(config, Connector::tcp()).await {
        Ok(router) => router,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::RunFailed;
        }
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: router: cannot listen on {listen}: {e}");
            return Exit::RunFailed;
        }
    };
    let addr = listener.local_addr().unwrap_or(listen);
    {
        // A block, not drop(): the lock must not live across an await.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "router listening on http://{addr} ({models} models, {keys} keys, ledger {ledger}); Ctrl-C stops"
        );
        let _ = out.flush();
    }
    serve(listener, router.clone(), stop).await;
    // Commit whatever is queued before exiting.
    if let Err(e) = router.ledger().clone().close().await {
        eprintln!("error: the ledger did not close cleanly: {e}");
        return Exit::RunFailed;
    }
    Exit::Success
}
