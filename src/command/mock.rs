//! `gauntlet mock`: serves mock providers from flags or a config file until
//! told to stop, printing where each one listens; `--mock-ports BASE` places
//! a file's providers as `gauntlet run --mock-ports BASE` places a
//! scenario's mocks.

use std::future::Future;
use std::io::Write;

use mock_providers::config::ProviderConfig;
use mock_providers::{Dialect, MockSet};

use crate::Exit;
use crate::cli::{DialectArg, MockArgs};
use crate::scenario::pin_mock_ports;

/// Resolves the flags into provider configs, or says what is wrong.
pub fn configs(args: &MockArgs) -> anyhow::Result<Vec<ProviderConfig>> {
    match (&args.config, args.dialect) {
        (Some(file), _) => {
            let mut configs = mock_providers::load_providers(file)?;
            if let Some(base) = args.mock_ports {
                pin_mock_ports(configs.iter_mut(), base).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            }
            Ok(configs)
        }
        (None, Some(_)) if args.mock_ports.is_some() => {
            anyhow::bail!("--mock-ports places the providers of a --config file; for one provider give --listen")
        }
        (None, Some(dialect)) => {
            let (name, dialect) = match dialect {
                DialectArg::Openai => ("openai", Dialect::OpenAi),
                DialectArg::Anthropic => ("anthropic", Dialect::Anthropic),
            };
            let mut config = ProviderConfig::any_model(name, dialect, args.listen);
            config.seed = args.seed;
            Ok(vec![config])
        }
        (None, None) => anyhow::bail!("give --config FILE or --dialect openai|anthropic"),
    }
}

/// Serves until `stop` resolves.
pub async fn run(args: MockArgs, stop: impl Future<Output = ()>) -> Exit {
    let configs = match configs(&args) {
        Ok(configs) => configs,
        Err(message) => {
            eprintln!("error: {message}");
            return Exit::Usage;
        }
    };
    let mocks = match MockSet::spawn(configs).await {
        Ok(mocks) => mocks,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::RunFailed;
        }
    };
    {
        // A block, not drop(): the lock must not live across an await.
        let mut out = std::io::stdout().lock();
        for p in mocks.providers() {
            let _ = writeln!(
                out,
                "{:<16} {:<10} {}",
                p.name(),
                p.provider.dialect().to_string(),
                p.base_url()
            );
        }
        let _ = writeln!(
            out,
            "serving {} mock provider(s); Ctrl-C stops",
            mocks.providers().len()
        );
        let _ = out.flush();
    }
    stop.await;
    mocks.shutdown().await;
    Exit::Success
}
