//! Tick reports of the two runners.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Token usage, summed, in the four kinds a vendor bills apart.
///
/// `input` counts fresh (uncached) input tokens only: Anthropic's `input_tokens`
/// as reported, OpenAI's `prompt_tokens` minus its cached tokens. `cache_read`
/// and `cache_write` are the prompt-cache reads and writes. The wire shape is
/// `{input, output, cacheRead, cacheWrite}` everywhere tokens appear; the cache
/// fields default to 0 so older payloads still parse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    pub input: u64,
    pub output: u64,
    #[serde(default)]
    pub cache_read: u64,
    #[serde(default)]
    pub cache_write: u64,
}

impl TokenUsage {
    /// Every token of every kind.
    pub fn total(&self) -> u64 {
        self.input + self.output + self.cache_read + self.cache_write
    }

    pub fn add(&mut self, other: TokenUsage) {
        self.input += other.input;
        self.output += other.output;
        self.cache_read += other.cache_read;
        self.cache_write += other.cache_write;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PersonaFailure {
    pub persona_id: Uuid,
    pub error: String,
}

/// Report of one persona-runner tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PersonaTickReport {
    pub tick_id: String,
    pub due: u32,
    pub ran_successfully: u32,
    pub failed: Vec<PersonaFailure>,
    /// Runs in which the simulated user failed (refused, no tool call, broke character).
    pub simulator_failures: u32,
    /// Claimed personas not started because the runner was stopping (released
    /// `abandoned`: neither failed nor done).
    #[serde(default)]
    pub abandoned: u32,
    pub tokens: TokenUsage,
    pub duration_ms: u64,
}

/// Report of one mission-runner tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MissionTickReport {
    pub tick_id: String,
    pub due: u32,
    pub plans_produced: u32,
    pub parse_failures: u32,
    pub llm_failures: u32,
    pub write_back_failures: u32,
    pub tokens: TokenUsage,
    pub duration_ms: u64,
}
