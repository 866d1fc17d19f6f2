//! Deliberate router defects, so the harness can prove that its checks catch
//! them. **Test-only**: a production router runs with [`Defects::default`],
//! every flag off. The flags are set programmatically (never read from the
//! `[router]` TOML table) and read on the hot path as plain bools from the
//! router's shared configuration.
//!
//! Each flag bends exactly one rule of the router's contract, documented on
//! its field; the names in [`Defects::NAMES`] are how scenarios spell them.

use super::retry;

/// Deliberate misbehaviour of the whole router. Test-only; the default is
/// the clean router (all false).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Defects {
    /// `charge-failed-requests`: a request that reached an upstream and then
    /// failed (all retries exhausted, a stream that ended with an upstream
    /// error, or zero completion tokens) is charged its whole worst-case
    /// reservation instead of having it released.
    pub charge_failed_requests: bool,
    /// `double-count-cached-tokens`: cache-read and cache-write tokens are
    /// also billed as uncached prompt tokens (the charge told in `usage.cost`
    /// and the one settled agree on the wrong figure).
    pub double_count_cached_tokens: bool,
    /// `bill-requested-model`: during a grace period the request is billed at
    /// the requested (deprecated) model's price, not the replacement's.
    pub bill_requested_model: bool,
    /// `ignore-retry-after`: see [`retry::RetryDefects::ignore_retry_after`].
    pub ignore_retry_after: bool,
    /// `no-jitter`: see [`retry::RetryDefects::no_jitter`].
    pub no_jitter: bool,
    /// `retry-forever`: see [`retry::RetryDefects::retry_forever`].
    pub retry_forever: bool,
    /// `retry-after-first-byte`: see [`retry::RetryDefects::retry_after_first_byte`].
    pub retry_after_first_byte: bool,
    /// `cap-retry-after`: see [`retry::RetryDefects::cap_retry_after`].
    pub cap_retry_after: bool,
    /// `no-retry-after-on-give-up`: a 429 or 503 the router answers after
    /// giving up on the upstreams carries no `Retry-After` (its refusals by
    /// the key's own limits still do).
    pub no_retry_after_on_give_up: bool,
    /// `buffer-stream`: a stream's chunks are held until the upstream stream
    /// ends and then sent together (keep-alive comments before the first
    /// token still go out). The content is complete; only the timing is wrong.
    pub buffer_stream: bool,
    /// `drop-final-usage`: the final `choices: []` chunk with usage and cost
    /// is not sent (`[DONE]` still is); a Messages stream ends without its
    /// `message_delta` (its `message_stop` still comes). Billing is unchanged.
    pub drop_final_usage: bool,
    /// `serve-removed-model`: after its removal date a model is still served
    /// by its replacement, as in its grace period, instead of a 404.
    pub serve_removed_model: bool,
    /// `removed-model-502`: after its removal date a model is answered 502
    /// (no upstream attempt, no charge) instead of 404 `model_deprecated`.
    /// `serve-removed-model` takes precedence when both are on.
    pub removed_model_502: bool,
    /// `no-overdraft-guard`: the credit check at reservation is skipped, so a
    /// request whose worst case exceeds the balance is forwarded anyway, and
    /// its settlement may take the balance below zero.
    pub no_overdraft_guard: bool,
    /// `skip-system-prefix`: a model's `system-prefix` is not prepended.
    pub skip_system_prefix: bool,
    /// `delay-first-chunk`: a stream's first chunk to the client is held
    /// 25 ms after it could go (the time a router spends on work of its own
    /// before relaying, which a slow upstream first token would hide).
    pub delay_first_chunk: bool,
    /// `misreport-usage`: the usage told to the client counts only the
    /// uncached prompt tokens as `prompt_tokens` (cache reads and writes
    /// left out); the charge is still right.
    pub misreport_usage: bool,
    /// `no-retry-after-on-limits`: a 429 or 402 the router answers by the
    /// key's own limits (rate, concurrency, in-flight budget, free quota)
    /// carries no `Retry-After`.
    pub no_retry_after_on_limits: bool,
    /// `openai-errors-on-messages`: the Messages API's errors are
    /// OpenAI-shaped (`{"error": {...}}`), not Anthropic's.
    pub openai_errors_on_messages: bool,
    /// `bill-at-end-price`: a request is billed at the prices in force when
    /// it ends, not when it started, so a stream that crosses a scheduled
    /// price change pays the new price.
    pub bill_at_end_price: bool,
    /// `credits-never-expire`: purchases are made without an expiry
    /// whatever `credit-expiry-days` says, so credits past it are still spent.
    pub credits_never_expire: bool,
}

/// A defect name that [`Defects::enable`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown defect `{name}`, expected one of: {}", Defects::NAMES.join(", "))]
pub struct UnknownDefect {
    pub name: String,
}

impl Defects {
    /// The defect names, as scenarios spell them.
    pub const NAMES: [&'static str; 21] = [
        "charge-failed-requests",
        "double-count-cached-tokens",
        "bill-requested-model",
        "ignore-retry-after",
        "no-jitter",
        "retry-forever",
        "retry-after-first-byte",
        "cap-retry-after",
        "no-retry-after-on-give-up",
        "buffer-stream",
        "drop-final-usage",
        "serve-removed-model",
        "removed-model-502",
        "no-overdraft-guard",
        "skip-system-prefix",
        "delay-first-chunk",
        "misreport-usage",
        "no-retry-after-on-limits",
        "openai-errors-on-messages",
        "bill-at-end-price",
        "credits-never-expire",
    ];

    /// The flags in the order of [`Defects::NAMES`].
    fn flags(&self) -> [bool; 21] {
        [
            self.charge_failed_requests,
            self.double_count_cached_tokens,
            self.bill_requested_model,
            self.ignore_retry_after,
            self.no_jitter,
            self.retry_forever,
            self.retry_after_first_byte,
            self.cap_retry_after,
            self.no_retry_after_on_give_up,
            self.buffer_stream,
            self.drop_final_usage,
            self.serve_removed_model,
            self.removed_model_502,
            self.no_overdraft_guard,
            self.skip_system_prefix,
            self.delay_first_chunk,
            self.misreport_usage,
            self.no_retry_after_on_limits,
            self.openai_errors_on_messages,
            self.bill_at_end_price,
            self.credits_never_expire,
        ]
    }

    /// Turns on the defect named `name` (one of [`Defects::NAMES`]).
    pub fn enable(&mut self, name: &str) -> Result<(), UnknownDefect> {
        let flag = match name {
            "charge-failed-requests" => &mut self.charge_failed_requests,
            "double-count-cached-tokens" => &mut self.double_count_cached_tokens,
            "bill-requested-model" => &mut self.bill_requested_model,
            "ignore-retry-after" => &mut self.ignore_retry_after,
            "no-jitter" => &mut self.no_jitter,
            "retry-forever" => &mut self.retry_forever,
            "retry-after-first-byte" => &mut self.retry_after_first_byte,
            "cap-retry-after" => &mut self.cap_retry_after,
            "no-retry-after-on-give-up" => &mut self.no_retry_after_on_give_up,
            "buffer-stream" => &mut self.buffer_stream,
            "drop-final-usage" => &mut self.drop_final_usage,
            "serve-removed-model" => &mut self.serve_removed_model,
            "removed-model-502" => &mut self.removed_model_502,
            "no-overdraft-guard" => &mut self.no_overdraft_guard,
            "skip-system-prefix" => &mut self.skip_system_prefix,
            "delay-first-chunk" => &mut self.delay_first_chunk,
            "misreport-usage" => &mut self.misreport_usage,
            "no-retry-after-on-limits" => &mut self.no_retry_after_on_limits,
            "openai-errors-on-messages" => &mut self.openai_errors_on_messages,
            "bill-at-end-price" => &mut self.bill_at_end_price,
            "credits-never-expire" => &mut self.credits_never_expire,
            _ => return Err(UnknownDefect { name: name.to_string() }),
        };
        *flag = true;
        Ok(())
    }

    /// The names of the defects that are on, in the order of [`Defects::NAMES`].
    pub fn enabled(&self) -> Vec<&'static str> {
        Self::NAMES
            .into_iter()
            .zip(self.flags())
            .filter_map(|(name, on)| on.then_some(name))
            .collect()
    }

    /// Whether any defect is on.
    pub fn any(&self) -> bool {
        self.flags().contains(&true)
    }

    /// The retry subset, for the router's [`retry::Retrier`].
    pub fn retry(&self) -> retry::RetryDefects {
        retry::RetryDefects {
            ignore_retry_after: self.ignore_retry_after,
            no_jitter: self.no_jitter,
            retry_forever: self.retry_forever,
            retry_after_first_byte: self.retry_after_first_byte,
            cap_retry_after: self.cap_retry_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_enables_exactly_its_own_flag() {
        assert_eq!(Defects::default().enabled(), Vec::<&str>::new());
        assert!(!Defects::default().any());
        for (i, name) in Defects::NAMES.into_iter().enumerate() {
            let mut defects = Defects::default();
            defects.enable(name).unwrap();
            assert_eq!(defects.enabled(), [name]);
            let flags = defects.flags();
            assert!(flags[i] && flags.iter().filter(|&&f| f).count() == 1, "{name}");
        }
    }

    #[test]
    fn the_retry_subset_maps_the_retry_names() {
        for name in retry::RetryDefects::NAMES {
            let (mut router, mut retry) = (Defects::default(), retry::RetryDefects::default());
            router.enable(name).unwrap();
            retry.enable(name).unwrap();
            assert_eq!(router.retry(), retry, "{name}");
        }
        let mut billing = Defects::default();
        billing.enable("buffer-stream").unwrap();
        assert_eq!(billing.retry(), retry::RetryDefects::default());
    }

    #[test]
    fn an_unknown_name_lists_the_valid_ones() {
        let error = Defects::default().enable("retry-sometimes").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("`retry-sometimes`"), "{message}");
        for name in Defects::NAMES {
            assert!(message.contains(name), "{message}");
        }
    }
}
