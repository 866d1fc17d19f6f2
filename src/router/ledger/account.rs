//! Accounts and reservations: the in-memory balance of each key and the holds on it.

use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use super::store::Op;
use super::{Balance, Ledger, LedgerError, lock, read, write};
use crate::router::pricing::Picodollars;

/// What is stored about a key beside its money: everything the admin routes
/// can set. The router turns it into its key configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeySettings {
    pub label: String,
    /// Requests a minute; `None` is unlimited.
    pub rpm: Option<u32>,
    /// Requests in flight at once; `None` is unlimited.
    pub concurrency: Option<u32>,
    /// Picodollars of worst-case cost in flight at once; `None` is unlimited.
    pub in_flight_budget: Option<i64>,
    pub byok: Option<StoredByok>,
}

/// A key's own upstream credentials, by provider name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredByok {
    pub provider: String,
    pub api_key: String,
}

impl KeySettings {
    /// Settings with a label and no limits.
    pub fn labelled(label: &str) -> KeySettings {
        KeySettings {
            label: label.to_string(),
            ..KeySettings::default()
        }
    }

    fn encode(&self) -> Result<Vec<u8>, LedgerError> {
        serde_json::to_vec(self).map_err(|source| LedgerError::Encode {
            what: format!("the settings of key labelled `{}`", self.label),
            source,
        })
    }
}

/// A hold on an account's available balance, from [`Ledger::reserve`]. Settle
/// it with [`Ledger::settle`]; dropping it instead releases the hold.
#[derive(Debug)]
pub struct Reservation {
    pub(super) account: Arc<Account>,
    pub(super) amount: Picodollars,
    pub(super) live: bool,
    /// Made by [`Ledger::reserve_unguarded`]: its settlement may overdraw.
    pub(super) unguarded: bool,
}

#[derive(Debug)]
pub(super) struct Account {
    pub(super) key: Arc<str>,
    settings: RwLock<Arc<KeySettings>>,
    pub(super) money: Mutex<Money>,
}

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Money {
    pub(super) credits: Picodollars,
    pub(super) spent: Picodollars,
    pub(super) reserved: Picodollars,
}

impl Money {
    pub(super) fn available(&self) -> Picodollars {
        self.credits - self.spent - self.reserved
    }
}

impl Account {
    pub(super) fn new(key: Arc<str>, settings: Arc<KeySettings>, money: Money) -> Arc<Account> {
        Arc::new(Account {
            key,
            settings: RwLock::new(settings),
            money: Mutex::new(money),
        })
    }

    pub(super) fn settings(&self) -> Arc<KeySettings> {
        Arc::clone(&read(&self.settings))
    }

    pub(super) fn balance_of(&self, money: &Money) -> Balance {
        Balance {
            label: read(&self.settings).label.clone(),
            credits: money.credits,
            spent: money.spent,
            reserved: money.reserved,
            available: money.available(),
        }
    }

    pub(super) fn balance(&self) -> Balance {
        let money = *lock(&self.money);
        self.balance_of(&money)
    }
}

impl Reservation {
    /// The key of the account held against.
    pub fn key(&self) -> &str {
        &self.account.key
    }

    /// The amount held.
    pub fn amount(&self) -> Picodollars {
        self.amount
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.live {
            lock(&self.account.money).reserved -= self.amount;
        }
    }
}

impl Ledger {
    /// Creates the account if the store does not know it yet, with `initial`
    /// credits; an existing account keeps its stored state and label (a
    /// restart must not reset balances). Returns the balance, once durable.
    pub async fn ensure_account(&self, key: &str, label: &str, initial: Picodollars) -> Result<Balance, LedgerError> {
        self.ensure_key(key, KeySettings::labelled(label), initial)
            .await
            .map(|(balance, _)| balance)
    }

    /// Creates the account with `settings` and `initial` credits if the
    /// ledger does not have it yet. An account the ledger has keeps its
    /// stored money and settings, whatever is passed. Returns its balance
    /// and the settings in force, once durable.
    pub async fn ensure_key(
        &self,
        key: &str,
        settings: KeySettings,
        initial: Picodollars,
    ) -> Result<(Balance, Arc<KeySettings>), LedgerError> {
        if let Some(account) = self.account(key) {
            return Ok((account.balance(), account.settings()));
        }
        self.insert_account(key, settings, initial, true).await
    }

    /// Creates an account with `credits` (the admin route); an error if the
    /// key already has one. Returns the balance, once durable.
    pub async fn create_account(&self, key: &str, label: &str, credits: Picodollars) -> Result<Balance, LedgerError> {
        self.create_key(key, KeySettings::labelled(label), credits).await
    }

    /// Creates an account with `settings` and `credits`; an error if the key
    /// already has one. Returns the balance, once durable.
    pub async fn create_key(
        &self,
        key: &str,
        settings: KeySettings,
        credits: Picodollars,
    ) -> Result<Balance, LedgerError> {
        self.insert_account(key, settings, credits, false)
            .await
            .map(|(balance, _)| balance)
    }

    /// Replaces the settings of a key's account. Returns the balance once
    /// the change is durable; an error for an unknown key.
    pub async fn update_settings(&self, key: &str, settings: KeySettings) -> Result<Balance, LedgerError> {
        self.check_health()?;
        let account = self.known_account(key)?;
        let encoded = settings.encode()?;
        let (balance, seq) = {
            let mut current = write(&account.settings);
            let seq = self.enqueue(|| Op::Settings {
                key: Arc::clone(&account.key),
                settings: encoded,
            })?;
            *current = Arc::new(settings);
            drop(current);
            (account.balance(), seq)
        };
        self.wait_durable(seq).await?;
        Ok(balance)
    }

    /// The settings stored for a key, or `None` for an unknown key.
    pub fn settings(&self, key: &str) -> Option<Arc<KeySettings>> {
        self.account(key).map(|account| account.settings())
    }

    /// Every account's key and settings, in no particular order.
    pub fn keys(&self) -> Vec<(Arc<str>, Arc<KeySettings>)> {
        read(&self.inner.accounts)
            .values()
            .map(|account| (Arc::clone(&account.key), account.settings()))
            .collect()
    }

    async fn insert_account(
        &self,
        key: &str,
        settings: KeySettings,
        credits: Picodollars,
        existing_ok: bool,
    ) -> Result<(Balance, Arc<KeySettings>), LedgerError> {
        self.check_amount(key, credits)?;
        let encoded = settings.encode()?;
        let settings = Arc::new(settings);
        let (balance, seq) = {
            let mut accounts = write(&self.inner.accounts);
            if let Some(account) = accounts.get(key) {
                if existing_ok {
                    return Ok((account.balance(), account.settings()));
                }
                return Err(LedgerError::AccountExists { key: key.to_string() });
            }
            let key: Arc<str> = key.into();
            let money = Money {
                credits,
                ..Money::default()
            };
            let account = Account::new(Arc::clone(&key), Arc::clone(&settings), money);
            let seq = self.enqueue(|| Op::Create {
                key: Arc::clone(&key),
                settings: encoded,
                credits,
            })?;
            let balance = account.balance_of(&money);
            accounts.insert(key, account);
            (balance, seq)
        };
        self.wait_durable(seq).await?;
        Ok((balance, settings))
    }

    /// Adds `amount` to the key's credits. Returns the balance once the
    /// change is durable; an error for an unknown key.
    pub async fn add_credits(&self, key: &str, amount: Picodollars) -> Result<Balance, LedgerError> {
        self.check_amount(key, amount)?;
        let account = self.known_account(key)?;
        let (balance, seq) = {
            let mut money = lock(&account.money);
            let credits = money
                .credits
                .checked_add(amount)
                .map_err(|_| LedgerError::Overflow { key: key.to_string() })?;
            let seq = self.enqueue(|| Op::AddCredits {
                key: Arc::clone(&account.key),
                amount,
            })?;
            money.credits = credits;
            (account.balance_of(&money), seq)
        };
        self.wait_durable(seq).await?;
        Ok(balance)
    }

    /// Holds `amount` against the key's available balance (credits − spent −
    /// reserved), or refuses with [`LedgerError::Insufficient`]. Concurrent
    /// reservations never overdraw. Synchronous and in memory only.
    pub fn reserve(&self, key: &str, amount: Picodollars) -> Result<Reservation, LedgerError> {
        self.check_amount(key, amount)?;
        let account = self.known_account(key)?;
        {
            let mut money = lock(&account.money);
            let available = money.available();
            if amount > available {
                return Err(LedgerError::Insufficient {
                    key: key.to_string(),
                    needed: amount,
                    available,
                });
            }
            money.reserved += amount;
        }
        Ok(Reservation {
            account,
            amount,
            live: true,
            unguarded: false,
        })
    }

    /// The deliberate `no-overdraft-guard` defect (test-only): holds `amount`
    /// whether or not the balance covers it, and the settlement of this
    /// reservation charges its whole cost, taking the balance below zero if
    /// need be.
    pub fn reserve_unguarded(&self, key: &str, amount: Picodollars) -> Result<Reservation, LedgerError> {
        self.check_amount(key, amount)?;
        let account = self.known_account(key)?;
        lock(&account.money).reserved += amount;
        Ok(Reservation {
            account,
            amount,
            live: true,
            unguarded: true,
        })
    }

    /// The key's balance now, or `None` for an unknown key.
    pub fn balance(&self, key: &str) -> Option<Balance> {
        self.account(key).map(|account| account.balance())
    }

    /// Refuses a negative amount, and any write once the ledger is closed or failed.
    pub(super) fn check_amount(&self, key: &str, amount: Picodollars) -> Result<(), LedgerError> {
        if amount < Picodollars::ZERO {
            return Err(LedgerError::NegativeAmount {
                key: key.to_string(),
                amount,
            });
        }
        self.check_health()
    }

    pub(super) fn known_account(&self, key: &str) -> Result<Arc<Account>, LedgerError> {
        self.account(key)
            .ok_or_else(|| LedgerError::UnknownAccount { key: key.to_string() })
    }

    pub(super) fn account(&self, key: &str) -> Option<Arc<Account>> {
        read(&self.inner.accounts).get(key).cloned()
    }
}
