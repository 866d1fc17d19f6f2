//! `gauntlet mock`: serves mock providers from flags or a config file until
//! told to stop, printing where each one listens.

use std::future::Future;
use std::io::Write;

use mock_providers::config::ProviderConfig;
use mock_providers::{Dialect, MockSet};

use crate::Exit;
use crate::cli::{DialectArg, MockArgs};

/// Resolves the flags into provider configs, or says what is wrong.
pub fn configs(args: &MockArgs) -> anyhow::Result<Vec<ProviderConfig>> {
    match (&args.config, args.dialect) {
        (Some(file), _) => Ok(mock_providers::load_providers(file)?),
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
