//! `gauntlet router`: serves the reference router from the `[router]` table
//! of a file until told to stop.

use std::future::Future;
use std::io::Write;
use std::path::Path;

use crate::Exit;
use crate::cli::RouterArgs;
use crate::command::read_toml;
use crate::router::config::{RawRouterFile, RouterConfig};
use crate::router::ledger::Ledger;
use crate::router::{Connector, Router, serve};

/// Reads and validates the `[router]` table of the file the flags name.
pub fn config(args: &RouterArgs) -> anyhow::Result<RouterConfig> {
    let path = args
        .config
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("router: --config FILE is required"))?;
    let file: RawRouterFile = read_toml(path)?;
    let raw =
        (file.router).ok_or_else(|| anyhow::anyhow!("{}: router: the file has no [router] table", path.display()))?;
    let mut config = raw
        .validate("router")
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    Ok(config)
}

/// `--check-ledger FILE`: what the ledger holds and whether it adds up.
fn check_ledger(path: &Path) -> Exit {
    let report = match Ledger::check(path) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::RunFailed;
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "ledger {}: {} accounts, {} generations{}",
        path.display(),
        report.accounts.len(),
        report.generations,
        match report.replayed {
            0 => String::new(),
            n => format!(", {n} records in its write-ahead log (a run that did not close cleanly; recovered at start)"),
        }
    );
    let _ = writeln!(
        out,
        "{:<24} {:>18} {:>18} {:>18} {:>11}  label",
        "key", "credits", "spent", "generations' sum", "generations"
    );
    let mut accounts = report.accounts.clone();
    accounts.sort_by(|a, b| a.key.cmp(&b.key));
    for a in &accounts {
        let mark = if a.spent == a.charged {
            ""
        } else {
            "  <- does not add up"
        };
        let _ = writeln!(
            out,
            "{:<24} {:>18} {:>18} {:>18} {:>11}  {}{mark}",
            a.key,
            a.credits.to_string(),
            a.spent.to_string(),
            a.charged.to_string(),
            a.generations,
            a.label
        );
    }
    if report.problems.is_empty() {
        let _ = writeln!(
            out,
            "ok: every row is intact and every account's spent is the sum of its charges"
        );
        return Exit::Success;
    }
    drop(out);
    for problem in &report.problems {
        eprintln!("problem: {problem}");
    }
    eprintln!(
        "error: the ledger {} has {} problem(s); the router refuses to start on it",
        path.display(),
        report.problems.len()
    );
    Exit::RunFailed
}

/// Serves until `stop` resolves (or, with `--check-ledger`, checks a ledger).
pub async fn run(args: RouterArgs, stop: impl Future<Output = ()>) -> Exit {
    if let Some(path) = &args.check_ledger {
        return check_ledger(path);
    }
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
