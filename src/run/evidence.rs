//! The collect stage: what the router says of its own accounts before and
//! after the load, and the evidence the conformance checks judge (every
//! request record and journal attempt, when the scenario keeps them).

use crate::checks::conformance::{Evidence, Index};
use crate::load::record::{Outcome, RequestRecord};
use crate::scenario::{Conformance, Rule, Scenario};
use crate::target::{AccountProbe, Accounts};

/// What a run will read of the router's accounts, decided from its checks.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The keys whose accounts the checks read, in mix order.
    account_keys: Vec<String>,
    /// Whether the checks compare each answer with its generation record.
    generations: bool,
    /// The key of each mix entry.
    mix_keys: Vec<String>,
}

impl Plan {
    pub fn of(scenario: &Scenario) -> Plan {
        let wants = |f: fn(&Conformance) -> bool| {
            scenario
                .checks
                .iter()
                .any(|c| matches!(&c.rule, Rule::Conformance(k) if f(k)))
        };
        let balances = wants(|k| matches!(k, Conformance::BalanceDelta | Conformance::NoOverdraft { .. }));
        let mut account_keys: Vec<String> = Vec::new();
        if balances {
            for m in &scenario.mix {
                if !account_keys.contains(&m.key) {
                    account_keys.push(m.key.clone());
                }
            }
        }
        Plan {
            account_keys,
            generations: wants(|k| matches!(k, Conformance::GenerationAgrees)),
            mix_keys: scenario.mix.iter().map(|m| m.key.clone()).collect(),
        }
    }

    /// The accounts before the load.
    pub async fn accounts_before(&self, probe: &AccountProbe) -> Accounts {
        let mut accounts = Accounts::default();
        if !self.account_keys.is_empty() {
            let (before, problems) = probe.keys(&self.account_keys).await;
            accounts.before = before;
            accounts.problems.extend(problems);
        }
        accounts
    }

    /// `accounts` completed after the load: the settled balances and the
    /// generation of every successful answer in `records`.
    pub async fn accounts_after(
        &self,
        probe: &AccountProbe,
        mut accounts: Accounts,
        records: &[RequestRecord],
    ) -> Accounts {
        if !self.account_keys.is_empty() {
            let (after, problems) = probe.settled_keys(&self.account_keys).await;
            accounts.after = after;
            accounts.problems.extend(problems);
        }
        if self.generations {
            let (found, problems) = probe.generations(self.generation_lookups(records)).await;
            accounts.generations = found;
            accounts.problems.extend(problems);
        }
        accounts
    }

    /// (generation id, key) of every successful answer.
    fn generation_lookups(&self, records: &[RequestRecord]) -> Vec<(String, String)> {
        records
            .iter()
            .filter(|r| r.outcome == Outcome::Ok)
            .filter_map(|r| {
                let key = self.mix_keys.get(usize::from(r.mix))?;
                Some((r.generation_id.clone()?, key.clone()))
            })
            .collect()
    }
}

/// Whether a run keeps every request record and journal attempt in memory
/// until its end, for checks that need them all; only sensible for small
/// scenarios.
pub fn keep_everything(scenario: &Scenario) -> bool {
    scenario.checks.iter().any(|c| matches!(c.rule, Rule::Conformance(_)))
}

/// Every request record and journal attempt of a run, in the order they
/// reached the record sink, kept when [`keep_everything`] says so.
#[derive(Debug, Default)]
pub struct Retained {
    pub requests: Vec<RequestRecord>,
    /// Drain by drain, provider by provider in journal (`seq`) order (each
    /// attempt names its provider).
    pub attempts: Vec<mock_providers::Record>,
}

/// The conformance checks' evidence, indexed once.
pub fn index<'a>(
    scenario: &'a Scenario,
    kept: &'a Retained,
    accounts: &'a Accounts,
    router_started_us: u64,
) -> Index<'a> {
    Index::new(Evidence {
        scenario,
        router: scenario.expect.as_ref().map(|e| &e.config),
        records: &kept.requests,
        attempts: &kept.attempts,
        accounts,
        router_started_us,
    })
}
