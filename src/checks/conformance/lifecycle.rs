//! Model lifecycle, system prompts and error bodies: `lifecycle-grace`,
//! `lifecycle-removed`, `system-prefix`, `error-shape`.
//!
//! A request's calendar time is the router's warped clock at the moment it
//! was sent: the scenario's `[router.clock]` start plus the real time since
//! the router started times the speed (the real time when no start is set).
//! Requests within [`CLOCK_MARGIN_US`] of real time from a boundary are not
//! judged: they could fall either side.

use std::collections::HashMap;

use crate::checks::CheckResult;
use crate::load::record::{Outcome, RequestRecord};
use crate::target::{Deprecation, Model, RouterConfig};

use super::{Index, Judging, error_body_fault};

/// Where a request fell in its model's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Before,
    Grace,
    Removed,
    /// Too close to a boundary to say.
    Unsure,
}

/// The lifecycle phase of `r`'s model when it was sent, with the model and
/// its deprecation; `None` for a model without one.
fn phase_of<'a>(
    ix: &Index<'_>,
    router: &'a RouterConfig,
    r: &RequestRecord,
) -> Option<(Phase, &'a Model, &'a Deprecation)> {
    let model = router.catalog.get(&ix.mix(r)?.model)?;
    let d = model.deprecation.as_ref()?;
    let (now_us, margin) = super::calendar_us(ix, router, r.sent_us);
    let announced = d.announced.as_microsecond() as f64;
    let removed = d.removed.as_microsecond() as f64;
    let near = |t: f64| (now_us - t).abs() < margin;
    let phase = if near(announced) || near(removed) {
        Phase::Unsure
    } else if now_us < announced {
        Phase::Before
    } else if now_us < removed {
        Phase::Grace
    } else {
        Phase::Removed
    };
    Some((phase, model, d))
}

/// `lifecycle-grace`: a request for a model in its grace period was served
/// by the replacement: a 2xx naming the replacement as `model` and the
/// requested model in `x-original-model`, from a mock attempt on one of the
/// replacement's routes.
pub fn grace(ix: &Index<'_>, router: &RouterConfig) -> CheckResult {
    let mut v = Judging::new("lifecycle-grace");
    for r in ix.ev.records.iter().filter(|r| r.status != 0) {
        let Some((Phase::Grace, model, d)) = phase_of(ix, router, r) else {
            continue;
        };
        v.judged();
        if r.outcome != Outcome::Ok {
            v.offend(&r.id, || {
                format!("status {} during the grace period of `{}`", r.status, model.id)
            });
            continue;
        }
        if r.model.as_deref() != Some(&*d.replacement) {
            v.offend(&r.id, || {
                format!(
                    "served as `{}`, not by the replacement `{}`",
                    r.model.as_deref().unwrap_or("?"),
                    d.replacement
                )
            });
            continue;
        }
        if r.conformance.original_model.as_deref() != Some(&*model.id) {
            v.offend(&r.id, || {
                format!(
                    "x-original-model is {:?}, not `{}`",
                    r.conformance.original_model.as_deref(),
                    model.id
                )
            });
            continue;
        }
        let on_replacement = ix.served(&r.id).is_some_and(|a| {
            router
                .catalog
                .get(&d.replacement)
                .is_some_and(|rep| ix.route_of(router, rep, a).is_some())
        });
        if !on_replacement {
            v.offend(&r.id, || {
                "no mock attempt on a route of the replacement served it".into()
            });
        }
    }
    v.finish("requests during a grace period")
}

/// `lifecycle-removed`: a request for a removed model got 404 with
/// `error.availability.code = "model_deprecated"` naming the replacement in
/// `fallback_models`, made no upstream attempt and was charged nothing.
pub fn removed(ix: &Index<'_>, router: &RouterConfig) -> CheckResult {
    let mut v = Judging::new("lifecycle-removed");
    for r in ix.ev.records.iter().filter(|r| r.status != 0) {
        let Some((Phase::Removed, model, d)) = phase_of(ix, router, r) else {
            continue;
        };
        v.judged();
        let shape = r.conformance.error_shape.as_ref();
        if r.status != 404 {
            v.offend(&r.id, || {
                format!("status {} for `{}`, removed: expected 404", r.status, model.id)
            });
        } else if shape.and_then(|s| s.availability_code.as_deref()) != Some("model_deprecated") {
            v.offend(&r.id, || {
                "the 404 has no error.availability.code = \"model_deprecated\"".into()
            });
        } else if !shape.is_some_and(|s| s.fallback_models.iter().any(|m| *m == *d.replacement)) {
            v.offend(&r.id, || {
                format!("error.availability.fallback_models does not name `{}`", d.replacement)
            });
        } else if !ix.attempts_of(&r.id).is_empty() {
            v.offend(&r.id, || "an upstream attempt was made for a removed model".into());
        } else if r.cost.as_deref().and_then(|c| ix.usd(c)).is_some_and(|c| c.0 != 0) {
            v.offend(&r.id, || "a removed model's request was charged".into());
        }
    }
    v.finish("requests after a removal")
}

/// `system-prefix`: every upstream attempt for a model with a
/// `system-prefix` carried it first in the system prompt, followed by the
/// caller's own system prompt.
pub fn system_prefix(ix: &Index<'_>, router: &RouterConfig) -> CheckResult {
    let mut v = Judging::new("system-prefix");
    let records: HashMap<&str, &RequestRecord> = ix.ev.records.iter().map(|r| (&*r.id, r)).collect();
    for (id, attempts) in &ix.attempts {
        let Some(r) = records.get(id) else { continue };
        let Some(mix) = ix.mix(r) else { continue };
        // The model that served it: the answer names it; else the model asked
        // for (or its replacement during a grace period).
        let served = r
            .model
            .as_deref()
            .and_then(|m| router.catalog.get(m))
            .or_else(|| ix.serving_model(router, r));
        let Some(prefix) = served.and_then(|m| m.system_prefix.as_deref()) else {
            continue;
        };
        for a in attempts {
            v.judged();
            let seen = a.system_prompt.as_deref().unwrap_or("");
            let Some(rest) = seen.strip_prefix(prefix) else {
                v.offend(id, || {
                    format!(
                        "`{}` received the system prompt {seen:?}, without the prefix {prefix:?}",
                        a.provider
                    )
                });
                continue;
            };
            if let Some(own) = mix.system.as_deref()
                && !rest.contains(own)
            {
                v.offend(id, || {
                    format!("the caller's system prompt {own:?} is missing after the prefix")
                });
            }
        }
    }
    v.finish("upstream attempts for models with a system prefix")
}

/// `error-shape`: every non-2xx answer is an OpenAI-shaped error: a JSON
/// object whose `error` has a non-empty `message` and a `type` or `code`.
pub fn error_shape(ix: &Index<'_>) -> CheckResult {
    let mut v = Judging::new("error-shape");
    for r in ix.ev.records.iter().filter(|r| r.status >= 300) {
        v.judged();
        if let Some(fault) = error_body_fault(ix, r) {
            v.offend(&r.id, || fault);
        }
    }
    v.finish("error answers")
}
