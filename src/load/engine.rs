//! The load engine: drives a plan's phases against a target and hands
//! one [`RequestRecord`] per request — sent or dropped — to a channel as each
//! completes.
//!
//! Phases run back to back on the wall clock: phase `i` starts at the run's
//! start plus the durations of the phases before it, whatever the target
//! does, and requests still in flight when a phase ends carry on while the
//! next one starts. The run ends once every request has finished (each is
//! bounded by the request timeout).
//!
//! - **Open loop**: the phase's [`Arrival`] schedule gives each request's
//!   intended send time; the generator sleeps until it and starts the
//!   request at once, or records it as [`Outcome::Dropped`] when the phase's
//!   `max_in_flight` requests are already out. Nothing is ever queued. A
//!   late generator sends immediately, without catching-up sleeps, so the
//!   record's `sent_us − intended_us` is the dispatch delay, and latency is
//!   measured from `intended_us` (no coordinated omission). A generator
//!   still sending [`LATE_LIMIT`] after its phase's end (a rate it cannot
//!   keep up with) gives the rest of the schedule up: the phase did not get
//!   its rate, which the run's validity check reports.
//! - **Closed loop**: `users` tasks each send, read the whole answer, think,
//!   and repeat until the phase ends or `max_requests` have started;
//!   `intended_us = sent_us`. The in-flight cap does not apply (at most
//!   `users` are in flight).
//!
//! Which mix entry a request uses is drawn, weighted, from a seeded RNG: for
//! an open-loop phase one stream in arrival order, for a closed-loop phase
//! one per user; the same seed gives the same choices. Request ids are
//! `r{phase}-{n}`, `n` counting the phase's requests from 0.
//!
//! When the `stop` future resolves, no new request starts and requests in
//! flight get [`EngineConfig::stop_grace`] to finish; those still running
//! then are recorded as [`Outcome::Timeout`]. Nothing is lost: every request
//! started or dropped has a record.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mock_providers::Clock;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, RngExt, SeedableRng};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout_at};

use super::arrival::Arrival;
use super::client::{HttpClient, Template, blank_record};
use super::plan::{Load, MixEntry, Phase, Plan};
use super::record::{Outcome, RequestRecord};

/// How long a request may take, head and body, unless configured.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long requests in flight may still run after a stop, unless configured.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(2);
/// The bound on a TCP connect (less when the request timeout is shorter).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The router under load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The API base, e.g. `http://127.0.0.1:8080/api/v1`; requests go to
    /// `{base_url}/chat/completions`. Plain HTTP only.
    pub base_url: String,
    /// Sent with every request (`[target] headers`).
    pub headers: Vec<(String, String)>,
    /// The response header the router writes each charge in, when its
    /// profile says so (otherwise `usage.cost` is read).
    pub cost_header: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// Seeds the arrival schedules and the mix choices.
    pub seed: u64,
    /// The most a request may take, from its send to its last byte.
    pub request_timeout: Duration,
    /// How long requests in flight may still run after a stop.
    pub stop_grace: Duration,
    /// The number of the scenario's first phase in request ids and records
    /// (`r<phase>-<n>`): a run made of several engine runs (a floor, sweep
    /// steps) numbers them apart, so no request id is sent twice.
    pub first_phase: u16,
}

impl EngineConfig {
    /// The defaults ([`DEFAULT_REQUEST_TIMEOUT`], [`DEFAULT_STOP_GRACE`]) with `seed`.
    pub fn new(seed: u64) -> EngineConfig {
        EngineConfig {
            seed,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            stop_grace: DEFAULT_STOP_GRACE,
            first_phase: 0,
        }
    }
}

/// The run's own accounting, to judge whether the generator kept up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunStats {
    /// One entry per phase that started, in order (a stop skips the rest).
    pub phases: Vec<PhaseStats>,
    /// The `stop` future ended the run early.
    pub stopped: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseStats {
    pub name: String,
    /// When the phase was scheduled to start (Unix µs).
    pub started_us: u64,
    /// When it stopped starting requests: its scheduled end, or the stop.
    pub ended_us: u64,
    /// Arrivals that came due (open loop) or requests started (closed loop).
    pub requested: u64,
    /// [`Arrival::expected`] over the duration, per second; 0 for a closed loop.
    pub expected_rate: f64,
    /// Requests sent.
    pub sent: u64,
    /// Arrivals not sent because the in-flight cap was reached.
    pub dropped: u64,
    /// Sent requests that finished, whatever their outcome.
    pub completed: u64,
    /// Whether every arrival of an open-loop schedule came due (and was sent
    /// or dropped) before the phase ended: a random schedule that did so kept
    /// pace, however few arrivals it happened to draw.
    pub schedule_done: bool,
}

/// Runs every phase of `plan` against `target`, sending one record per
/// request (sent or dropped) into `records` as it completes, and returns
/// once every request has finished. `clock` times everything (use the mock
/// journal's). When `stop` resolves, no new request starts and those in
/// flight get [`EngineConfig::stop_grace`]. The caller must drain `records`
/// while this runs: a full channel holds finished requests back.
pub async fn run(
    plan: Plan<'_>,
    target: &Endpoint,
    clock: Clock,
    config: EngineConfig,
    records: mpsc::Sender<RequestRecord>,
    stop: impl Future<Output = ()>,
) -> RunStats {
    run_counting(plan, target, clock, config, records, stop, Arc::default()).await
}

/// [`run`], also adding one to `sent` as each request is sent (for a live
/// progress display: requests in flight are `sent` less the records seen).
pub async fn run_counting(
    plan: Plan<'_>,
    target: &Endpoint,
    clock: Clock,
    config: EngineConfig,
    records: mpsc::Sender<RequestRecord>,
    stop: impl Future<Output = ()>,
    sent: Arc<AtomicU64>,
) -> RunStats {
    let (halt_tx, halt) = watch::channel(None);
    let (done_tx, done) = mpsc::channel(1);
    let shared = Arc::new(Shared {
        client: HttpClient::new(&target.base_url, clock, CONNECT_TIMEOUT.min(config.request_timeout))
            .with_headers(&target.headers)
            .with_cost_header(target.cost_header.as_deref()),
        clock,
        templates: plan
            .mix
            .iter()
            .enumerate()
            .map(|(index, entry)| Template::new(index, entry))
            .collect(),
        request_timeout: config.request_timeout,
        records,
        sent,
        halt,
        _done: done_tx,
    });
    let drive = drive(plan, config.seed, config.first_phase, shared, done);
    tokio::pin!(drive);
    tokio::pin!(stop);
    tokio::select! {
        biased;
        stats = &mut drive => stats,
        () = &mut stop => {
            halt_tx.send_replace(Some(Instant::now() + config.stop_grace));
            let mut stats = drive.await;
            stats.stopped = true;
            stats
        }
    }
}

/// What every request task shares. The run waits for the last copy to go.
#[derive(Debug)]
struct Shared {
    client: HttpClient,
    clock: Clock,
    /// One per [`Plan::mix`] entry.
    templates: Vec<Template>,
    request_timeout: Duration,
    records: mpsc::Sender<RequestRecord>,
    /// Requests sent over the whole run, for [`run_counting`]'s caller.
    sent: Arc<AtomicU64>,
    /// `Some(cutoff)` once stopped: nothing new starts, and nothing runs past `cutoff`.
    halt: watch::Receiver<Option<Instant>>,
    /// Closes the run's `done` channel when the last task drops it.
    _done: mpsc::Sender<()>,
}

/// A phase's counts, shared by its generator and its request tasks.
#[derive(Debug, Default)]
struct Counters {
    requested: AtomicU64,
    sent: AtomicU64,
    dropped: AtomicU64,
    completed: AtomicU64,
    schedule_done: std::sync::atomic::AtomicBool,
}

/// One phase being driven.
#[derive(Debug, Clone)]
struct PhaseRun {
    index: u16,
    seed: u64,
    start: Instant,
    end: Instant,
    max_requests: Option<u64>,
    picker: Arc<Picker>,
    counters: Arc<Counters>,
}

async fn drive(
    plan: Plan<'_>,
    seed: u64,
    first_phase: u16,
    shared: Arc<Shared>,
    mut done: mpsc::Receiver<()>,
) -> RunStats {
    let halt = shared.halt.clone();
    let mut phases = Vec::with_capacity(plan.phases.len());
    let mut start = Instant::now();
    for (index, phase) in plan.phases.iter().enumerate() {
        if halt.borrow().is_some() {
            break;
        }
        let run = PhaseRun {
            index: u16::try_from(index).unwrap_or(u16::MAX).saturating_add(first_phase),
            seed: derive_seed(seed, index as u64, 0),
            start,
            end: start + phase.duration,
            max_requests: phase.max_requests,
            picker: Arc::new(Picker::new(&phase.mix, plan.mix)),
            counters: Arc::new(Counters::default()),
        };
        let expected_rate = match &phase.load {
            Load::Open(arrival) => {
                open_loop(&shared, &run, phase, *arrival).await;
                let seconds = phase.duration.as_secs_f64();
                if seconds > 0.0 {
                    arrival.expected(phase.duration) / seconds
                } else {
                    0.0
                }
            }
            Load::Closed { users, think } => {
                closed_loop(&shared, &run, users.get(), *think).await;
                0.0
            }
        };
        let ended = if halt.borrow().is_some() {
            Instant::now().min(run.end)
        } else {
            run.end
        };
        let stats = PhaseStats {
            name: phase.name.clone(),
            started_us: shared.clock.at_us(run.start),
            ended_us: shared.clock.at_us(ended),
            requested: 0,
            expected_rate,
            sent: 0,
            dropped: 0,
            completed: 0,
            schedule_done: false,
        };
        phases.push((stats, run.counters));
        start = run.end;
    }
    drop(shared);
    // Every task holds the sender: this ends when the last request has finished.
    let _ = done.recv().await;
    let phases = phases
        .into_iter()
        .map(|(stats, counters)| PhaseStats {
            requested: counters.requested.load(Ordering::Relaxed),
            sent: counters.sent.load(Ordering::Relaxed),
            dropped: counters.dropped.load(Ordering::Relaxed),
            completed: counters.completed.load(Ordering::Relaxed),
            schedule_done: counters.schedule_done.load(Ordering::Relaxed),
            ..stats
        })
        .collect();
    RunStats { phases, stopped: false }
}

/// Sends the phase's arrivals at their intended times, then waits for the
/// phase's end (or a stop).
async fn open_loop(shared: &Arc<Shared>, run: &PhaseRun, phase: &Phase, arrival: Arrival) {
    let mut halt = shared.halt.clone();
    let in_flight = Arc::new(Semaphore::new(
        usize::try_from(phase.max_in_flight.get()).unwrap_or(usize::MAX),
    ));
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(derive_seed(run.seed, 0, MIX_STREAM));
    let schedule = arrival.schedule(
        derive_seed(run.seed, 0, ARRIVAL_STREAM),
        phase.duration,
        run.max_requests,
    );
    let mut done = true;
    let give_up = run.end.checked_add(LATE_LIMIT).unwrap_or(run.end);
    for offset in schedule {
        let intended = run.start + offset;
        if !wait_precisely(intended, &mut halt).await {
            return;
        }
        if Instant::now() > give_up {
            done = false;
            break;
        }
        let Some(mix) = run.picker.pick(&mut rng) else {
            done = false;
            break;
        };
        let n = run.counters.requested.fetch_add(1, Ordering::Relaxed);
        let id = request_id(run.index, n);
        let intended_us = shared.clock.at_us(intended);
        match Arc::clone(&in_flight).try_acquire_owned() {
            Ok(permit) => {
                run.counters.sent.fetch_add(1, Ordering::Relaxed);
                shared.sent.fetch_add(1, Ordering::Relaxed);
                let shared = Arc::clone(shared);
                let counters = Arc::clone(&run.counters);
                let phase = run.index;
                tokio::spawn(async move {
                    perform(&shared, phase, mix, id, Some(intended_us), &counters, Some(permit)).await;
                });
            }
            Err(_) => {
                run.counters.dropped.fetch_add(1, Ordering::Relaxed);
                let (mix_index, stream) = shared
                    .templates
                    .get(mix)
                    .map_or((u16::MAX, false), |t| (t.mix(), t.stream()));
                let record = blank_record(
                    id,
                    run.index,
                    mix_index,
                    stream,
                    intended_us,
                    intended_us,
                    Outcome::Dropped,
                );
                // A full channel holds the generator back rather than
                // queueing the record in a task of its own: a sink that
                // cannot keep up means a generator that cannot (the run is
                // invalid either way), and memory stays bounded at any rate.
                let _ = shared.records.send(record).await;
            }
        }
    }
    run.counters.schedule_done.store(done, Ordering::Relaxed);
    wait_until(run.end, &mut halt).await;
}

/// Starts the phase's users, then waits for the phase's end (or a stop);
/// the users finish on their own.
async fn closed_loop(shared: &Arc<Shared>, run: &PhaseRun, users: u32, think: Duration) {
    for user in 0..users {
        let rng = Xoshiro256PlusPlus::seed_from_u64(derive_seed(run.seed, u64::from(user), MIX_STREAM));
        tokio::spawn(user_loop(Arc::clone(shared), run.clone(), rng, think));
    }
    let mut halt = shared.halt.clone();
    wait_until(run.end, &mut halt).await;
}

/// One closed-loop user: send, read the whole answer, think, repeat.
async fn user_loop(shared: Arc<Shared>, run: PhaseRun, mut rng: Xoshiro256PlusPlus, think: Duration) {
    let mut halt = shared.halt.clone();
    loop {
        if Instant::now() >= run.end || halt.borrow().is_some() {
            return;
        }
        let claimed = run
            .counters
            .requested
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                run.max_requests.is_none_or(|max| n < max).then_some(n + 1)
            });
        let Ok(n) = claimed else {
            return;
        };
        let Some(mix) = run.picker.pick(&mut rng) else {
            return;
        };
        run.counters.sent.fetch_add(1, Ordering::Relaxed);
        shared.sent.fetch_add(1, Ordering::Relaxed);
        perform(
            &shared,
            run.index,
            mix,
            request_id(run.index, n),
            None,
            &run.counters,
            None,
        )
        .await;
        if !think.is_zero() && !wait_until((Instant::now() + think).min(run.end), &mut halt).await {
            return;
        }
    }
}

/// How a request's exchange ended.
enum Ended {
    Answered,
    TimedOut,
    Stopped,
}

/// Sends one request and delivers its record. `intended_us` is `None` for a
/// closed loop (intended = sent); `permit` is the open loop's in-flight slot.
async fn perform(
    shared: &Shared,
    phase: u16,
    mix: usize,
    id: Arc<str>,
    intended_us: Option<u64>,
    counters: &Counters,
    permit: Option<OwnedSemaphorePermit>,
) {
    let Some(template) = shared.templates.get(mix) else {
        return;
    };
    let call = template.call(id, phase);
    let sent = Instant::now();
    let sent_us = shared.clock.at_us(sent);
    let mut record = call.record(intended_us.unwrap_or(sent_us), sent_us, Outcome::Timeout);
    let mut halt = shared.halt.clone();
    let ended = tokio::select! {
        answered = timeout_at(sent + shared.request_timeout, shared.client.exchange(call, &mut record)) => {
            if answered.is_ok() { Ended::Answered } else { Ended::TimedOut }
        }
        () = cutoff(&mut halt) => Ended::Stopped,
    };
    match ended {
        Ended::Answered => {}
        Ended::TimedOut => {
            record.outcome = Outcome::Timeout;
            record.error = Some(format!(
                "no complete answer within {} ms",
                shared.request_timeout.as_millis()
            ));
        }
        Ended::Stopped => {
            record.outcome = Outcome::Timeout;
            record.error = Some("the run was stopped before the answer completed".to_owned());
        }
    }
    drop(permit);
    counters.completed.fetch_add(1, Ordering::Relaxed);
    // A closed receiver means nobody is listening any more: nothing to do.
    let _ = shared.records.send(record).await;
}

/// Sleeps until `at` (at once if it has passed); `false` if the run was
/// stopped first.
async fn wait_until(at: Instant, halt: &mut watch::Receiver<Option<Instant>>) -> bool {
    tokio::select! {
        biased;
        _ = stopped(halt) => false,
        () = sleep_until(at) => true,
    }
}

/// How long after its phase's end a generator behind its schedule still
/// sends: past it, the rest of the schedule is given up.
pub const LATE_LIMIT: Duration = Duration::from_secs(1);

/// How long before an intended send the open loop stops sleeping on the
/// timer (whose resolution is 1 ms) and yields until the moment instead.
const SPIN_WINDOW: Duration = Duration::from_micros(1500);

/// Waits until `at` to within a few microseconds: the timer until just
/// before, then yielding to other tasks until the moment, so that open-loop
/// requests leave when intended rather than on the timer's next tick (which
/// alone gave a dispatch delay p99 of 1.7 ms at 5,000 req/s). The cost is a
/// scheduler task that stays busy while arrivals are closer than the window.
/// `false` if the run was stopped first — also when `at` has passed: a
/// generator behind a rate it cannot keep up with (10 million a second)
/// sends back to back, so it spends its task's scheduling budget here too,
/// letting the stop through instead of running the whole schedule late.
async fn wait_precisely(at: Instant, halt: &mut watch::Receiver<Option<Instant>>) -> bool {
    tokio::task::coop::consume_budget().await;
    if halt.borrow().is_some() {
        return false;
    }
    if let Some(early) = at.checked_sub(SPIN_WINDOW)
        && Instant::now() < early
        && !wait_until(early, halt).await
    {
        return false;
    }
    while Instant::now() < at {
        if halt.borrow().is_some() {
            return false;
        }
        tokio::task::yield_now().await;
    }
    true
}

/// Resolves once the run is stopped, with the cutoff; never if it is not.
async fn stopped(halt: &mut watch::Receiver<Option<Instant>>) -> Instant {
    let cutoff = match halt.wait_for(Option::is_some).await {
        Ok(cutoff) => *cutoff,
        Err(_) => None,
    };
    match cutoff {
        Some(cutoff) => cutoff,
        None => std::future::pending().await,
    }
}

/// Resolves at the stop's cutoff; never if the run is not stopped.
async fn cutoff(halt: &mut watch::Receiver<Option<Instant>>) {
    sleep_until(stopped(halt).await).await;
}

/// `r{phase}-{n}`.
fn request_id(phase: u16, n: u64) -> Arc<str> {
    Arc::from(format!("r{phase}-{n}"))
}

/// The phase number in a request id `r{phase}-{n}` (as the mocks journal it
/// in `correlation_id`); `None` for an id the engine did not make.
pub fn phase_of_request_id(id: &str) -> Option<u16> {
    let (phase, n) = id.strip_prefix('r')?.split_once('-')?;
    n.parse::<u64>().ok()?;
    phase.parse().ok()
}

/// The seed stream of arrival schedules.
const ARRIVAL_STREAM: u64 = 1;
/// The seed stream of mix choices.
const MIX_STREAM: u64 = 2;

/// A seed for `(index, stream)` derived from `seed`, well mixed (SplitMix64),
/// so neighbouring phases and users draw unrelated sequences.
fn derive_seed(seed: u64, index: u64, stream: u64) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    mix(seed ^ mix(index.wrapping_mul(4).wrapping_add(stream)))
}

/// A weighted choice among a phase's mix entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picker {
    /// Indices into [`Plan::mix`].
    entries: Vec<usize>,
    /// Running totals of the entries' weights.
    cumulative: Vec<u64>,
}

impl Picker {
    /// A choice among `indices` of `mix`, by weight; indices out of range
    /// and zero weights are left out.
    pub fn new(indices: &[usize], mix: &[MixEntry]) -> Picker {
        let mut entries = Vec::with_capacity(indices.len());
        let mut cumulative = Vec::with_capacity(indices.len());
        let mut total = 0u64;
        for &index in indices {
            if let Some(entry) = mix.get(index)
                && entry.weight > 0
            {
                total += u64::from(entry.weight);
                entries.push(index);
                cumulative.push(total);
            }
        }
        Picker { entries, cumulative }
    }

    /// A mix index drawn by weight; `None` when there is nothing to choose.
    pub fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<usize> {
        let total = *self.cumulative.last()?;
        let draw = rng.random_range(0..total);
        let position = self.cumulative.partition_point(|&sum| sum <= draw);
        self.entries.get(position).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, weight: u32) -> MixEntry {
        MixEntry {
            name: name.into(),
            weight,
            api: crate::load::plan::Api::Chat,
            model: "m".into(),
            key: "k".into(),
            stream: false,
            prompt_chars: 16,
            system: None,
            max_tokens: None,
            tools: false,
            cache_control: false,
            headers: Vec::new(),
        }
    }

    fn draws(picker: &Picker, seed: u64, n: usize) -> Vec<usize> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        (0..n).map(|_| picker.pick(&mut rng).unwrap()).collect()
    }

    #[test]
    fn picker_is_weighted_and_deterministic() {
        let mix = [entry("a", 3), entry("b", 1), entry("c", 5), entry("d", 2)];
        // The phase draws from a, b and d only.
        let picker = Picker::new(&[0, 1, 3, 9], &mix);
        let got = draws(&picker, 7, 6_000);
        assert_eq!(got, draws(&picker, 7, 6_000));
        assert_ne!(got, draws(&picker, 8, 6_000));
        let count = |i: usize| got.iter().filter(|&&g| g == i).count() as f64;
        assert_eq!(count(2), 0.0);
        // Shares 3/6, 1/6, 2/6 within a few standard deviations.
        for (index, share) in [(0, 0.5f64), (1, 1.0 / 6.0), (3, 1.0 / 3.0)] {
            let expected = 6_000.0 * share;
            let sd = (6_000.0 * share * (1.0 - share)).sqrt();
            assert!((count(index) - expected).abs() < 5.0 * sd, "{index}: {}", count(index));
        }
        assert_eq!(
            Picker::new(&[], &mix).pick(&mut Xoshiro256PlusPlus::seed_from_u64(0)),
            None
        );
    }

    #[test]
    fn derived_seeds_differ() {
        let seeds: std::collections::HashSet<u64> = (0..4)
            .flat_map(|index| (1..4).map(move |stream| derive_seed(42, index, stream)))
            .collect();
        assert_eq!(seeds.len(), 12);
        assert_ne!(derive_seed(1, 0, 1), derive_seed(2, 0, 1));
        assert_eq!(derive_seed(1, 2, 3), derive_seed(1, 2, 3));
    }

    #[test]
    fn ids_are_short_nonce_safe_ascii() {
        let id = request_id(3, 12_345);
        assert_eq!(&*id, "r3-12345");
        let nonce = format!("[gauntlet:{id}]");
        assert_eq!(mock_providers::tokens::find_nonce(&nonce), Some(&*id));
    }

    #[test]
    fn an_id_names_its_phase() {
        assert_eq!(phase_of_request_id(&request_id(1003, 7)), Some(1003));
        assert_eq!(phase_of_request_id("r0-0"), Some(0));
        for other in ["", "r", "r1", "r-1", "rx-1", "r1-x", "q1-1", "r99999-1"] {
            assert_eq!(phase_of_request_id(other), None, "{other}");
        }
    }
}
