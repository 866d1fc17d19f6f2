//! The start stage: the scenario's mocks on loopback, then its target, and
//! the fault timeline played against the mocks while the load runs.

use std::sync::Arc;

use mock_providers::{Clock, Journal, MockSet};
use tokio::task::JoinHandle;

use super::RunError;
use crate::scenario::Scenario;
use crate::target::{self, AccountProbe, Defects, Running};

/// The mocks and the target of a run, started.
pub struct Started {
    pub mocks: MockSet,
    pub target: Running,
    /// (provider name, journal); every journal shares one clock.
    pub journals: Vec<(String, Journal)>,
    /// The run's clock (the journals'), in Unix µs.
    pub clock: Clock,
    /// When the router's calendar clock started: lifecycle checks date
    /// requests from here.
    pub router_started_us: u64,
}

impl Started {
    /// Starts the scenario's mocks, then its target; on failure stops what
    /// started.
    pub async fn start(scenario: &Scenario, defects: Defects, dir: &std::path::Path) -> Result<Started, RunError> {
        let configs = scenario.mocks.iter().map(|m| m.config.clone()).collect();
        let mocks = MockSet::spawn(configs)
            .await
            .map_err(|e| RunError::StartMocks(e.to_string()))?;
        let clock = *mocks.providers().first().map_or(&Clock::new(), |p| p.journal().clock());
        let router_started_us = clock.now_us();
        let mock_url = |name: &str| mocks.get(name).map(|p| p.base_url());
        let target = match target::start(&scenario.target, scenario.expect.as_ref(), mock_url, defects, dir).await {
            Ok(target) => target,
            Err(e) => {
                mocks.shutdown().await;
                return Err(e.into());
            }
        };
        let journals = mocks
            .providers()
            .iter()
            .map(|p| (p.name().to_string(), p.journal().clone()))
            .collect();
        Ok(Started {
            mocks,
            target,
            journals,
            clock,
            router_started_us,
        })
    }

    /// Asks the target about its accounts, as its profile says.
    pub fn probe(&self, scenario: &Scenario) -> AccountProbe {
        AccountProbe::new(&self.target.base_url, scenario.target.profile()).with_headers(&scenario.target.headers())
    }

    /// Plays the scenario's fault timeline from now on; abort the handle
    /// when the load ends.
    pub fn play_faults(&self, scenario: &Scenario) -> JoinHandle<()> {
        let steps = scenario.faults.clone();
        let providers: Vec<_> = steps
            .iter()
            .map(|s| self.mocks.get(&s.provider).map(|p| Arc::clone(&p.provider)))
            .collect();
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            for (step, provider) in steps.iter().zip(providers) {
                tokio::time::sleep_until(start + step.at).await;
                if let Some(provider) = provider {
                    provider.faults().replace(step.set.clone());
                }
            }
        })
    }

    /// Stops the target, then the mocks.
    pub async fn stop(self) {
        self.target.stop().await;
        self.mocks.shutdown().await;
    }
}
