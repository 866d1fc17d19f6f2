//! The model catalog: prices, ordered providers, free models, system
//! prefixes and the deprecation lifecycle, resolved against calendar time.
//!
//! Lifecycle of a model with `deprecation = { announced, removed, replacement }`:
//! before `announced` it is served as itself; from `announced` until `removed`
//! (the grace period, at least 14 days) requests are served by the
//! replacement, billed at the replacement's price, and the response names
//! both; from `removed` on, the router answers 404 `model_deprecated` naming
//! the replacement and makes no upstream attempt. A replacement is followed
//! one hop only: validation refuses a replacement that is itself deprecated.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::defects::Defects;
use super::pricing::Prices;

/// The shortest grace period between `announced` and `removed`.
pub const MIN_GRACE: Duration = Duration::from_secs(14 * 86_400);

/// The suffix that marks a free model.
pub const FREE_SUFFIX: &str = ":free";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deprecation {
    pub announced: Timestamp,
    pub removed: Timestamp,
    pub replacement: Arc<str>,
}

/// One upstream route of a model: a provider (by index into the router's
/// provider list) and the model name to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub provider: usize,
    pub upstream_model: Arc<str>,
}

/// A scheduled change of a model's prices: from `at` on, requests that
/// start then are billed at `prices`. Announced at `announced`, at least the
/// terms' notice ahead (derouter.ai's prices "may change with 7 days' prior
/// notice"); `GET /models` shows it from then until it takes effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceChange {
    pub at: Timestamp,
    pub announced: Timestamp,
    pub prices: Prices,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub id: Arc<str>,
    pub routes: Vec<Route>,
    /// The prices until the first of `price_changes`.
    pub prices: Prices,
    /// Scheduled changes of `prices`, in the order they take effect.
    pub price_changes: Vec<PriceChange>,
    pub free: bool,
    pub system_prefix: Option<Arc<str>>,
    pub deprecation: Option<Deprecation>,
    /// Completion tokens assumed when a request sets no `max_tokens`.
    pub default_max_tokens: u32,
    pub context_length: u32,
}

impl Model {
    pub fn is_free(id: &str) -> bool {
        id.ends_with(FREE_SUFFIX)
    }

    /// The prices in force at `when`: a request is billed at those of the
    /// moment it started, however long it runs.
    pub fn prices_at(&self, when: Timestamp) -> Prices {
        self.price_changes
            .iter()
            .rev()
            .find(|c| c.at <= when)
            .map_or(self.prices, |c| c.prices)
    }

    /// The changes announced by `now` that have not taken effect yet.
    pub fn upcoming_changes(&self, now: Timestamp) -> impl Iterator<Item = &PriceChange> {
        self.price_changes
            .iter()
            .filter(move |c| c.announced <= now && now < c.at)
    }
}

/// What a requested model id means now.
#[derive(Debug, Clone)]
pub enum Resolution {
    /// Serve `model`; `requested` differs from it during a grace period.
    Serve {
        model: Arc<Model>,
        requested: Arc<Model>,
    },
    /// The model was removed; `replacement` is what to use instead.
    Removed {
        model: Arc<Model>,
        replacement: Arc<str>,
    },
    Unknown,
}

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    models: HashMap<Arc<str>, Arc<Model>>,
    order: Vec<Arc<Model>>,
}

impl Catalog {
    /// Builds a catalog from validated models (ids unique, replacements present).
    pub fn new(models: Vec<Model>) -> Self {
        let order: Vec<Arc<Model>> = models.into_iter().map(Arc::new).collect();
        let models = order.iter().map(|m| (Arc::clone(&m.id), Arc::clone(m))).collect();
        Catalog { models, order }
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Model>> {
        self.models.get(id)
    }

    /// Models in configuration order.
    pub fn models(&self) -> &[Arc<Model>] {
        &self.order
    }

    /// Resolves a requested id at calendar time `now`.
    pub fn resolve(&self, id: &str, now: Timestamp) -> Resolution {
        let Some(model) = self.models.get(id) else {
            return Resolution::Unknown;
        };
        match &model.deprecation {
            Some(d) if now >= d.removed => Resolution::Removed {
                model: Arc::clone(model),
                replacement: Arc::clone(&d.replacement),
            },
            Some(d) if now >= d.announced => match self.models.get(&d.replacement) {
                Some(replacement) => Resolution::Serve {
                    model: Arc::clone(replacement),
                    requested: Arc::clone(model),
                },
                // Validation guarantees the replacement exists; serve the model itself if not.
                None => Resolution::Serve {
                    model: Arc::clone(model),
                    requested: Arc::clone(model),
                },
            },
            _ => Resolution::Serve {
                model: Arc::clone(model),
                requested: Arc::clone(model),
            },
        }
    }

    /// [`Catalog::resolve`] as a router with `defects` sees it: under the
    /// deliberate `serve-removed-model` defect a removed model is still
    /// served by its replacement, as in its grace period.
    pub fn resolve_with(&self, id: &str, now: Timestamp, defects: &Defects) -> Resolution {
        match self.resolve(id, now) {
            Resolution::Removed { model, replacement } if defects.serve_removed_model => {
                match self.models.get(&replacement) {
                    Some(served) => Resolution::Serve {
                        model: Arc::clone(served),
                        requested: model,
                    },
                    None => Resolution::Removed { model, replacement },
                }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::clock::parse_time;

    fn model(id: &str, deprecation: Option<Deprecation>) -> Model {
        Model {
            id: id.into(),
            routes: vec![Route {
                provider: 0,
                upstream_model: id.into(),
            }],
            prices: Prices::default(),
            price_changes: Vec::new(),
            free: Model::is_free(id),
            system_prefix: None,
            deprecation,
            default_max_tokens: 1024,
            context_length: 128_000,
        }
    }

    #[test]
    fn lifecycle_follows_the_calendar() {
        let d = Deprecation {
            announced: parse_time("2026-01-01").unwrap(),
            removed: parse_time("2026-01-15").unwrap(),
            replacement: "new".into(),
        };
        let catalog = Catalog::new(vec![model("old", Some(d)), model("new", None)]);
        let served = |day: &str| match catalog.resolve("old", parse_time(day).unwrap()) {
            Resolution::Serve { model, requested } => format!("{}<-{}", model.id, requested.id),
            Resolution::Removed { replacement, .. } => format!("removed->{replacement}"),
            Resolution::Unknown => "unknown".into(),
        };
        assert_eq!(served("2025-12-31"), "old<-old");
        assert_eq!(served("2026-01-01"), "new<-old");
        assert_eq!(served("2026-01-14T23:59:59Z"), "new<-old");
        assert_eq!(served("2026-01-15"), "removed->new");
        assert!(matches!(
            catalog.resolve("nope", Timestamp::UNIX_EPOCH),
            Resolution::Unknown
        ));
        assert!(Model::is_free("meta/llama-3-8b:free"));
    }

    #[test]
    fn serve_removed_model_keeps_the_replacement_serving() {
        let d = Deprecation {
            announced: parse_time("2026-01-01").unwrap(),
            removed: parse_time("2026-01-15").unwrap(),
            replacement: "new".into(),
        };
        let catalog = Catalog::new(vec![model("old", Some(d)), model("new", None)]);
        let after = parse_time("2026-02-01").unwrap();
        let defects = Defects {
            serve_removed_model: true,
            ..Defects::default()
        };
        assert!(matches!(
            catalog.resolve_with("old", after, &Defects::default()),
            Resolution::Removed { .. }
        ));
        match catalog.resolve_with("old", after, &defects) {
            Resolution::Serve { model, requested } => assert_eq!((&*model.id, &*requested.id), ("new", "old")),
            other => panic!("{other:?}"),
        }
    }
}
