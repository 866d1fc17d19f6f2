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

/// Adds `draws` (from [`Money::plan_draw`]) to the purchases' `used`; the
/// index of a draw that names no purchase is the error.
pub(super) fn apply_draws(purchases: &mut [Purchase], draws: &[(u32, Picodollars)]) -> Result<(), u32> {
    for &(index, amount) in draws {
        let purchase = usize::try_from(index)
            .ok()
            .and_then(|i| purchases.get_mut(i))
            .ok_or(index)?;
        purchase.used += amount;
    }
    Ok(())
}

/// One purchase of credits: the terms make credits expire a while after
/// they were bought (OpenRouter's "may expire after 12 months"), so a key's
/// credits are the purchases it made, each with its date and what of it was
/// spent. Charges draw from the oldest purchase not yet expired; what an
/// expired purchase had left is no longer available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purchase {
    /// When it was bought, microseconds since the Unix epoch (the router's clock).
    pub at_us: i64,
    /// When it expires (microseconds since the Unix epoch); `None` never.
    /// Fixed when it is bought, by the terms then in force.
    pub expires_us: Option<i64>,
    pub amount: Picodollars,
    /// What charges drew from it.
    pub used: Picodollars,
}

impl Purchase {
    /// Whether it has expired at `now_us`.
    pub fn expired(&self, now_us: i64) -> bool {
        self.expires_us.is_some_and(|expires| expires <= now_us)
    }

    /// What is left of it to spend (expired or not).
    pub fn remaining(&self) -> Picodollars {
        (self.amount - self.used).max(Picodollars::ZERO)
    }
}

#[derive(Debug, Clone, Default)]
pub(super) struct Money {
    /// The sum of the purchases' amounts.
    pub(super) credits: Picodollars,
    pub(super) spent: Picodollars,
    pub(super) reserved: Picodollars,
    /// In the order they were made (a draw names one by its index).
    pub(super) purchases: Vec<Purchase>,
}

impl Money {
    /// `credits − spent − reserved`, less what expired purchases had left at `now_us`.
    pub(super) fn available(&self, now_us: i64) -> Picodollars {
        self.credits - self.spent - self.reserved - self.expired(now_us)
    }

    /// What expired purchases had left unspent at `now_us`.
    pub(super) fn expired(&self, now_us: i64) -> Picodollars {
        self.purchases
            .iter()
            .filter(|p| p.expired(now_us))
            .fold(Picodollars::ZERO, |sum, p| sum + p.remaining())
    }

    /// What a charge of `amount` at `now_us` draws from each purchase, by
    /// index: from those not expired, oldest first (by date, then by order).
    /// What no purchase can cover (an overdraft) is drawn from none.
    pub(super) fn plan_draw(&self, amount: Picodollars, now_us: i64) -> Vec<(u32, Picodollars)> {
        let mut order: Vec<usize> = (0..self.purchases.len())
            .filter(|&i| !self.purchases[i].expired(now_us) && self.purchases[i].remaining() > Picodollars::ZERO)
            .collect();
        order.sort_by_key(|&i| (self.purchases[i].at_us, i));
        let mut left = amount;
        let mut draws = Vec::new();
        for i in order {
            if left <= Picodollars::ZERO {
                break;
            }
            let taken = self.purchases[i].remaining().min(left);
            left -= taken;
            draws.push((u32::try_from(i).unwrap_or(u32::MAX), taken));
        }
        draws
    }

    /// Buys `amount` at `at_us`, expiring at `expires_us`; nothing for zero.
    pub(super) fn buy(&mut self, amount: Picodollars, at_us: i64, expires_us: Option<i64>) {
        if amount > Picodollars::ZERO {
            self.credits += amount;
            self.purchases.push(Purchase {
                at_us,
                expires_us,
                amount,
                used: Picodollars::ZERO,
            });
        }
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

    pub(super) fn balance_of(&self, money: &Money, now_us: i64) -> Balance {
        Balance {
            label: read(&self.settings).label.clone(),
            credits: money.credits,
            spent: money.spent,
            reserved: money.reserved,
            expired: money.expired(now_us),
            available: money.available(now_us),
            purchases: money.purchases.clone(),
        }
    }

    pub(super) fn balance(&self, now_us: i64) -> Balance {
        let money = lock(&self.money);
        self.balance_of(&money, now_us)
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
            return Ok((account.balance(self.now_us()), account.settings()));
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
            (account.balance(self.now_us()), seq)
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
        let (at_us, expires_us) = self.purchase_dates();
        let (balance, seq) = {
            let mut accounts = write(&self.inner.accounts);
            if let Some(account) = accounts.get(key) {
                if existing_ok {
                    return Ok((account.balance(at_us), account.settings()));
                }
                return Err(LedgerError::AccountExists { key: key.to_string() });
            }
            let key: Arc<str> = key.into();
            let mut money = Money::default();
            money.buy(credits, at_us, expires_us);
            let account = Account::new(Arc::clone(&key), Arc::clone(&settings), money);
            let balance = account.balance(at_us);
            let seq = self.enqueue(|| Op::Create {
                key: Arc::clone(&key),
                settings: encoded,
                credits,
                at_us,
                expires_us,
            })?;
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
        let (at_us, expires_us) = self.purchase_dates();
        let (balance, seq) = {
            let mut money = lock(&account.money);
            money
                .credits
                .checked_add(amount)
                .map_err(|_| LedgerError::Overflow { key: key.to_string() })?;
            let seq = self.enqueue(|| Op::AddCredits {
                key: Arc::clone(&account.key),
                amount,
                at_us,
                expires_us,
            })?;
            money.buy(amount, at_us, expires_us);
            (account.balance_of(&money, at_us), seq)
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
        let now_us = self.now_us();
        {
            let mut money = lock(&account.money);
            let available = money.available(now_us);
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

    /// Everything the key ever bought (expired purchases included), or
    /// `None` for an unknown key: what the free quota's purchase threshold
    /// reads on every request, without copying the purchases.
    pub fn purchased(&self, key: &str) -> Option<Picodollars> {
        self.account(key).map(|account| lock(&account.money).credits)
    }

    /// The key's balance now, or `None` for an unknown key.
    pub fn balance(&self, key: &str) -> Option<Balance> {
        let now_us = self.now_us();
        self.account(key).map(|account| account.balance(now_us))
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
