//! The load plan the engine runs: phases of open-loop arrivals or
//! closed-loop users, each drawing requests from a weighted mix. The
//! scenario validates it; the engine needs nothing else of the scenario.

use std::num::NonZeroU32;
use std::time::Duration;

use super::arrival::Arrival;

/// The phases and the mix of one engine run.
#[derive(Debug, Clone, Copy)]
pub struct Plan<'a> {
    pub phases: &'a [Phase],
    pub mix: &'a [MixEntry],
}

/// One phase of load.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub name: String,
    pub duration: Duration,
    pub max_requests: Option<u64>,
    pub load: Load,
    pub max_in_flight: NonZeroU32,
    /// Indices into [`Plan::mix`] this phase draws from.
    pub mix: Vec<usize>,
    /// A warm-up phase: the engine drives it like any other, and the
    /// harness leaves its requests (and their upstream attempts) out of
    /// every metric and check; they are only written down, marked.
    pub warm_up: bool,
}

/// How a phase sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Load {
    /// Open loop: requests at the schedule's intended times.
    Open(Arrival),
    /// Closed loop: `users` each send, wait for the answer, think, repeat.
    Closed { users: NonZeroU32, think: Duration },
}

/// The API a mix entry's requests speak.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Api {
    /// OpenAI chat completions: `POST {base}/chat/completions`.
    #[default]
    Chat,
    /// Anthropic's Messages API, as Claude Code and the `anthropic` SDK
    /// speak it: `POST {base}/messages`, the key in `x-api-key`.
    Messages,
}

impl Api {
    /// As scenarios write it.
    pub fn name(self) -> &'static str {
        match self {
            Api::Chat => "chat",
            Api::Messages => "messages",
        }
    }
}

/// One kind of request of the mix, and how often it is drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MixEntry {
    pub name: String,
    pub weight: u32,
    pub api: Api,
    pub model: String,
    pub key: String,
    pub stream: bool,
    pub prompt_chars: u32,
    pub system: Option<String>,
    pub max_tokens: Option<u32>,
    pub tools: bool,
    /// Messages API only: the system prompt as a text block and the tool
    /// marked `cache_control: {"type": "ephemeral"}`, as Claude Code sends
    /// them.
    pub cache_control: bool,
    /// Sent with this entry's requests, after the target's (replacing one
    /// of the same name): a routing header per entry, say.
    pub headers: Vec<(String, String)>,
}
