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

    /// Prompt tokens as the provider counted them: fresh input plus cache reads and
    /// writes (what a context window has to hold).
    pub fn prompt(&self) -> u64 {
        self.input + self.cache_read + self.cache_write
    }

    /// What budgets count: tokens weighted by what they cost next to a fresh input
    /// token. The rule (Anthropic's price ratios; OpenAI bills no cache writes, so they
    /// are 0 there): `input + output + ⌈cacheRead / 10⌉ + ⌈cacheWrite × 5 / 4⌉`, i.e. a
    /// cache read counts 0.1×, a cache write 1.25×, computed on the summed usage.
    pub fn billed_equivalent(&self) -> u64 {
        self.input
            .saturating_add(self.output)
            .saturating_add(self.cache_read.div_ceil(10))
            .saturating_add(self.cache_write.saturating_mul(5).div_ceil(4))
    }

    /// The input side of [`TokenUsage::billed_equivalent`] (output left out): what
    /// prompt caching saves.
    pub fn billed_input_equivalent(&self) -> u64 {
        self.billed_equivalent() - self.output
    }

    /// Adds `other`, kind by kind.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billed_equivalent_weighs_cache_reads_and_writes() {
        let u = TokenUsage {
            input: 100,
            output: 50,
            cache_read: 1000,
            cache_write: 400,
        };
        assert_eq!(u.total(), 1550);
        assert_eq!(u.prompt(), 1500);
        // 100 + 50 + 1000/10 + 400*1.25
        assert_eq!(u.billed_equivalent(), 100 + 50 + 100 + 500);
        assert_eq!(u.billed_input_equivalent(), 700);
        // Rounded up, so a cache read is never free.
        let r = TokenUsage {
            cache_read: 1,
            cache_write: 1,
            ..Default::default()
        };
        assert_eq!(r.billed_equivalent(), 1 + 2);
        assert_eq!(TokenUsage::default().billed_equivalent(), 0);
    }

    #[test]
    fn wire_shape_has_four_kinds_and_old_payloads_parse() {
        let u = TokenUsage {
            input: 1,
            output: 2,
            cache_read: 3,
            cache_write: 4,
        };
        assert_eq!(
            serde_json::to_value(u).unwrap_or_default(),
            serde_json::json!({"input": 1, "output": 2, "cacheRead": 3, "cacheWrite": 4})
        );
        let old: TokenUsage = serde_json::from_str(r#"{"input":5,"output":6}"#).unwrap_or_default();
        assert_eq!(old.input + old.output, 11);
    }
}
