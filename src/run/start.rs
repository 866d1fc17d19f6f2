//! The start stage: the scenario's mocks on loopback, then its target, and
//! the fault timeline played against the mocks while the load runs.

use std::sync::Arc;

use mock_providers::{Clock, Journal, MockSet};
use tokio::sync::watch;
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
    /// started. `None` when `stop` turned true first (a router that is slow
    /// to become ready is not waited for): the mocks are stopped, and a
    /// router whose command the run started is killed.
    pub async fn start(
        scenario: &Scenario,
        defects: Defects,
        dir: &std::path::Path,
        mut stop: watch::Receiver<bool>,
    ) -> Result<Option<Started>, RunError> {
        let configs = scenario.mocks.iter().map(|m| m.config.clone()).collect();
        let mocks = MockSet::spawn(configs)
            .await
            .map_err(|e| RunError::StartMocks(e.to_string()))?;
        let clock = *mocks.providers().first().map_or(&Clock::new(), |p| p.journal().clock());
        let router_started_us = clock.now_us();
        let mock_url = |name: &str| mocks.get(name).map(|p| p.base_url());
        // True once stopped; never resolves when nobody can stop the run.
        let stopped = async move { stop.wait_for(|stopped| *stopped).await.is_ok() };
        let target = tokio::select! {
            target = target::start(&scenario.target, scenario.expect.as_ref(), mock_url, defects, dir) => target,
            true = stopped => {
                mocks.shutdown().await;
                return Ok(None);
            }
        };
        let target = match target {
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
        Ok(Some(Started {
            mocks,
            target,
            journals,
            clock,
            router_started_us,
        }))
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
