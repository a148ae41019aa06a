//! Run records: one row per persona run (`<tickId>.<personaId>`), with its transcript.
//!
//! Rules:
//! - A run is written as the day goes (`POST /api/v1/internal/personas/{id}/runs`); every
//!   write carries a `revision` that grows with each snapshot of the same run, and the
//!   server keeps the highest one, so a retried older snapshot never overwrites a newer.
//! - `outcome` is `null` while the run is in progress and one of `ok`,
//!   `simulator_failure`, `failed` once it has finished.
//! - The transcript cap ([`Transcript::cap`]) is the one home of the rule "at most N bytes,
//!   cut from the middle, with a marker saying what was cut"; the runner and the server
//!   both call it.
//! - Tokens are [`TokenUsage`] (`{input, output, cacheRead, cacheWrite}`) everywhere.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{personas::ActionResult, tick::TokenUsage};

/// Default transcript cap: 256 KiB of serialized JSON.
pub const TRANSCRIPT_CAP_BYTES: usize = 256 * 1024;

/// How a finished run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// The day ran and was written (rated, or a `__parse` row).
    Ok,
    /// The simulated user failed (refused, no tool call, broke character); the product did not.
    SimulatorFailure,
    /// The product or the infrastructure failed (see `errorClass`).
    Failed,
}

impl RunOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::SimulatorFailure => "simulator_failure",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ok" => Some(Self::Ok),
            "simulator_failure" => Some(Self::SimulatorFailure),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// The error classes the persona-runner writes. The set is open (any snake_case name of
/// at most 64 characters is accepted), these are the ones with a fixed meaning.
pub mod error_class {
    /// Logging in as the persona failed.
    pub const LOGIN: &str = "login";
    /// The MCP session could not be opened or broke.
    pub const MCP: &str = "mcp";
    /// The model call failed (after retries).
    pub const LLM: &str = "llm";
    /// The conversation no longer fits the model's context.
    pub const CONTEXT_LENGTH: &str = "context_length";
    /// The per-persona deadline passed.
    pub const DEADLINE: &str = "deadline";
    /// The token budget was used up.
    pub const BUDGET: &str = "budget";
    /// Writing actions or feedback back failed.
    pub const WRITE_BACK: &str = "write_back";
    /// The runner shut down during the run.
    pub const SHUTDOWN: &str = "shutdown";
    /// The simulated user failed (outcome `simulator_failure`).
    pub const SIMULATOR: &str = "simulator";
}

/// One tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TranscriptToolCall {
    pub id: String,
    pub name: String,
    pub arguments: serde_json::Value,
}

/// One message of a transcript, in conversation order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "role", rename_all = "camelCase")]
pub enum TranscriptMessage {
    /// A user turn (the day prompt).
    User { text: String },
    /// A model turn: its text and the tool calls it made.
    #[serde(rename_all = "camelCase")]
    Assistant {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<TranscriptToolCall>,
    },
    /// A tool result exactly as the model saw it.
    #[serde(rename_all = "camelCase")]
    Tool {
        call_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        content: String,
        is_error: bool,
    },
    /// The marker left where [`Transcript::cap`] cut messages out of the middle.
    #[serde(rename_all = "camelCase")]
    Omitted {
        /// Messages removed here.
        messages: u32,
        /// Serialized bytes removed here.
        bytes: u64,
    },
}

/// A run's conversation: system prompt, every message, then the rating exchange.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Transcript {
    pub system: String,
    pub messages: Vec<TranscriptMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating_prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating_reply: Option<String>,
    /// Set when the transcript was cut to fit the cap: what was cut, in total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut: Option<TranscriptCut>,
}

/// What [`Transcript::cap`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TranscriptCut {
    /// Whole messages removed from the middle (replaced by one `omitted` marker).
    pub messages: u32,
    /// Texts shortened in their middle (each says how much it lost).
    pub texts: u32,
    /// Serialized size before the cut.
    pub original_bytes: u64,
}

fn json_len<T: Serialize>(v: &T) -> usize {
    serde_json::to_vec(v).map_or(0, |b| b.len())
}

/// Shortens `s` to about `keep` bytes by removing its middle, leaving a marker that says
/// how many bytes were cut. Char boundaries are respected.
pub fn cut_middle(s: &str, keep: usize) -> String {
    if s.len() <= keep {
        return s.to_owned();
    }
    let half = keep / 2;
    let mut head_end = half.min(s.len());
    while !s.is_char_boundary(head_end) {
        head_end -= 1;
    }
    let mut tail_start = s.len().saturating_sub(half).max(head_end);
    while !s.is_char_boundary(tail_start) {
        tail_start += 1;
    }
    let cut = tail_start - head_end;
    format!("{}…[{cut} bytes cut]…{}", &s[..head_end], &s[tail_start..])
}

impl Transcript {
    /// Serialized size in bytes.
    pub fn json_bytes(&self) -> usize {
        json_len(self)
    }

    /// Makes the transcript fit in `max_bytes` of serialized JSON.
    ///
    /// First whole messages are removed from the middle (the start of the day and its end
    /// are what explain a rating), replaced by one `omitted` marker naming how many
    /// messages and bytes went. If the kept messages are still too large (a single huge
    /// tool result, a huge system prompt), the longest texts are cut in their middle,
    /// each with a marker. Returns whether anything was cut; `cut` records the totals.
    pub fn cap(&mut self, max_bytes: usize) -> bool {
        let original = self.json_bytes();
        if original <= max_bytes {
            return false;
        }
        let mut cut = self.cut.unwrap_or(TranscriptCut {
            original_bytes: original as u64,
            ..TranscriptCut::default()
        });
        // Room for the marker and the `cut` field.
        let budget = max_bytes.saturating_sub(200);

        // 0. No single text may take more than an eighth of the cap: a huge tool result
        //    keeps its head and tail instead of pushing whole turns out.
        let per_text = (max_bytes / 8).max(64);
        for t in self.texts_mut() {
            if t.len() > per_text {
                *t = cut_middle(t, per_text);
                cut.texts += 1;
            }
        }

        // 1. Drop whole messages from the middle, keeping alternately from both ends.
        let existing_marker = self
            .messages
            .iter()
            .position(|m| matches!(m, TranscriptMessage::Omitted { .. }));
        let (mut prior_msgs, mut prior_bytes) = (0u32, 0u64);
        if let Some(i) = existing_marker
            && let TranscriptMessage::Omitted { messages, bytes } = self.messages.remove(i)
        {
            prior_msgs = messages;
            prior_bytes = bytes;
        }
        let fixed = json_len(&Transcript {
            messages: Vec::new(),
            ..self.clone()
        });
        let sizes: Vec<usize> = self.messages.iter().map(|m| json_len(m) + 1).collect();
        let total: usize = sizes.iter().sum();
        if fixed + total > budget && self.messages.len() > 2 {
            let room = budget.saturating_sub(fixed);
            let (mut lo, mut hi) = (0usize, self.messages.len());
            let mut used = 0usize;
            // Always keep the first message (the day prompt) and the last one.
            let mut from_front = true;
            while lo < hi {
                let idx = if from_front { lo } else { hi - 1 };
                let forced = lo == 0 || hi == self.messages.len();
                if !forced && used + sizes[idx] > room {
                    break;
                }
                used += sizes[idx];
                if from_front {
                    lo += 1;
                } else {
                    hi -= 1;
                }
                from_front = !from_front;
            }
            if lo < hi {
                let removed: Vec<TranscriptMessage> = self.messages.drain(lo..hi).collect();
                let removed_bytes: usize = sizes[lo..hi].iter().sum();
                let n = u32::try_from(removed.len()).unwrap_or(u32::MAX);
                cut.messages = cut.messages.saturating_add(n);
                self.messages.insert(
                    lo,
                    TranscriptMessage::Omitted {
                        messages: prior_msgs.saturating_add(n),
                        bytes: prior_bytes + removed_bytes as u64,
                    },
                );
            } else if existing_marker.is_some() {
                self.messages.insert(
                    existing_marker.unwrap_or(0).min(self.messages.len()),
                    TranscriptMessage::Omitted {
                        messages: prior_msgs,
                        bytes: prior_bytes,
                    },
                );
            }
        } else if let Some(i) = existing_marker {
            self.messages.insert(
                i.min(self.messages.len()),
                TranscriptMessage::Omitted {
                    messages: prior_msgs,
                    bytes: prior_bytes,
                },
            );
        }

        // 2. Still too large: cut the longest texts in their middle, halving until it fits.
        let mut guard = 0;
        while self.json_bytes() > budget && guard < 64 {
            guard += 1;
            let Some(longest) = self.longest_text_mut() else {
                break;
            };
            let len = longest.len();
            if len < 64 {
                break;
            }
            *longest = cut_middle(longest, len / 2);
            cut.texts += 1;
        }
        self.cut = Some(cut);
        true
    }

    fn texts_mut(&mut self) -> Vec<&mut String> {
        let mut texts: Vec<&mut String> = vec![&mut self.system];
        if let Some(p) = self.rating_prompt.as_mut() {
            texts.push(p);
        }
        if let Some(r) = self.rating_reply.as_mut() {
            texts.push(r);
        }
        for m in &mut self.messages {
            match m {
                TranscriptMessage::User { text } => texts.push(text),
                TranscriptMessage::Assistant { text: Some(t), .. } => texts.push(t),
                TranscriptMessage::Tool { content, .. } => texts.push(content),
                _ => {}
            }
        }
        texts
    }

    fn longest_text_mut(&mut self) -> Option<&mut String> {
        self.texts_mut().into_iter().max_by_key(|t| t.len())
    }
}

/// `POST /api/v1/internal/personas/{id}/runs`: one snapshot of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunRecord {
    /// `<tickId>.<personaId>`.
    pub id: String,
    pub tick_id: String,
    /// Grows with every snapshot of this run (e.g. turns written so far, then one more
    /// for the final write); the server keeps the highest.
    pub revision: u32,
    pub worker: String,
    pub provider: String,
    pub model: String,
    /// The app release under test (`PERSONA_APP_VERSION`), `""` when not set.
    #[serde(default)]
    pub app_version: String,
    pub started_at: DateTime<Utc>,
    /// `null` while the run is in progress.
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// `null` while the run is in progress.
    #[serde(default)]
    pub outcome: Option<RunOutcome>,
    #[serde(default)]
    pub error: Option<String>,
    /// One of [`error_class`] (or another snake_case name) when the run failed.
    #[serde(default)]
    pub error_class: Option<String>,
    #[serde(default)]
    pub turns: u32,
    #[serde(default)]
    pub tool_calls: u32,
    #[serde(default)]
    pub tool_errors: u32,
    #[serde(default)]
    pub tokens: TokenUsage,
    /// Prompt tokens of the first model request, as the provider reported them
    /// (input + cache read + cache write).
    #[serde(default)]
    pub first_prompt_tokens: Option<u64>,
    #[serde(default)]
    pub transcript: Option<Transcript>,
    /// Action rows written with this snapshot, in the same transaction (the same rules
    /// as `POST …/actions`; its `tickId` is this run's id or an action batch of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<crate::personas::ActionsBatch>,
    /// Feedback rows written with this snapshot, in the same transaction (the same rules
    /// as `POST …/feedback`; its `tickId` is this run's id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<crate::personas::FeedbackBatch>,
}

/// Answer of the run upsert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunWritten {
    pub run_id: String,
    /// `false`: the stored revision was already this one or newer; nothing changed.
    pub written: bool,
    /// The revision stored now.
    pub revision: u32,
    /// Whether the server cut the transcript to fit its cap.
    pub transcript_cut: bool,
}

/// One run in a list (`GET /api/v1/internal/runs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub id: String,
    pub persona_id: Uuid,
    pub tick_id: String,
    /// `null` while in progress.
    pub outcome: Option<RunOutcome>,
    pub error_class: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub tool_calls: u32,
    pub tool_errors: u32,
    pub tokens: TokenUsage,
}

/// `GET /api/v1/internal/runs`: newest first, keyset-paged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunsPage {
    pub runs: Vec<RunSummary>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// One action row of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunAction {
    pub id: String,
    pub tool_name: String,
    pub module: String,
    pub input: Option<serde_json::Value>,
    pub result: ActionResult,
    pub error_message: Option<String>,
    pub latency_ms: Option<i32>,
    pub created_at: DateTime<Utc>,
}

/// One feedback row of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunFeedback {
    pub id: String,
    pub module: String,
    /// `null` only for `__parse`.
    pub rating: Option<i16>,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// `GET /api/v1/internal/runs/{runId}`: the summary, every stored field, the transcript
/// (`null` once retention dropped it), the run's actions and feedback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunDetail {
    #[serde(flatten)]
    pub summary: RunSummary,
    pub revision: u32,
    pub worker: String,
    pub provider: String,
    pub model: String,
    pub app_version: String,
    pub error: Option<String>,
    pub turns: u32,
    pub first_prompt_tokens: Option<u64>,
    pub updated_at: DateTime<Utc>,
    pub transcript: Option<Transcript>,
    /// In the order they happened.
    pub actions: Vec<RunAction>,
    pub feedback: Vec<RunFeedback>,
}

#[cfg(test)]
mod tests {

    use super::*;

    fn day(n: usize, each: usize) -> Transcript {
        let mut messages = vec![TranscriptMessage::User {
            text: "live one day".into(),
        }];
        for i in 0..n {
            messages.push(TranscriptMessage::Assistant {
                text: Some(format!("turn {i}")),
                tool_calls: vec![TranscriptToolCall {
                    id: format!("c{i}"),
                    name: "todo_create".into(),
                    arguments: serde_json::json!({"title": "x".repeat(each)}),
                }],
            });
            messages.push(TranscriptMessage::Tool {
                call_id: format!("c{i}"),
                name: Some("todo_create".into()),
                content: "y".repeat(each),
                is_error: false,
            });
        }
        messages.push(TranscriptMessage::Assistant {
            text: Some("good night".into()),
            tool_calls: vec![],
        });
        Transcript {
            system: "you are Anna".into(),
            messages,
            rating_prompt: Some("rate".into()),
            rating_reply: Some("{\"todo\":4}".into()),
            cut: None,
        }
    }

    #[test]
    fn a_small_transcript_is_untouched() {
        let mut t = day(3, 10);
        let before = t.clone();
        assert!(!t.cap(TRANSCRIPT_CAP_BYTES));
        assert_eq!(t, before);
    }

    #[test]
    fn a_long_day_is_cut_from_the_middle_with_a_marker() {
        let mut t = day(400, 1000);
        let original = t.json_bytes();
        let n_before = t.messages.len();
        assert!(original > TRANSCRIPT_CAP_BYTES);
        assert!(t.cap(TRANSCRIPT_CAP_BYTES));
        assert!(t.json_bytes() <= TRANSCRIPT_CAP_BYTES, "{}", t.json_bytes());
        // The start and the end of the day survive; the rating exchange too.
        assert_eq!(
            t.messages[0],
            TranscriptMessage::User {
                text: "live one day".into()
            }
        );
        assert!(matches!(
            t.messages.last(),
            Some(TranscriptMessage::Assistant { text: Some(s), .. }) if s == "good night"
        ));
        assert_eq!(t.rating_reply.as_deref(), Some("{\"todo\":4}"));
        // One marker, in the middle, that accounts for every removed message.
        let markers: Vec<(usize, u32, u64)> = t
            .messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| match m {
                TranscriptMessage::Omitted { messages, bytes } => Some((i, *messages, *bytes)),
                _ => None,
            })
            .collect();
        assert_eq!(markers.len(), 1);
        let (at, removed, bytes) = markers[0];
        assert!(at > 1 && at < t.messages.len() - 2, "marker at {at}");
        assert_eq!(t.messages.len() - 1 + removed as usize, n_before);
        assert!(bytes > (original - TRANSCRIPT_CAP_BYTES) as u64);
        let cut = t.cut.unwrap();
        assert_eq!(cut.messages, removed);
        assert_eq!(cut.original_bytes, original as u64);
        assert_eq!(cut.texts, 0);
        // Kept messages on both sides of the marker: roughly balanced.
        let after = t.messages.len() - at - 1;
        assert!(at.abs_diff(after) <= 2, "{at} vs {after}");
    }

    #[test]
    fn one_huge_tool_result_is_cut_in_its_middle() {
        let mut t = day(1, 10);
        if let TranscriptMessage::Tool { content, .. } = &mut t.messages[2] {
            *content = format!("HEAD{}TAIL", "z".repeat(600_000));
        }
        assert!(t.cap(TRANSCRIPT_CAP_BYTES));
        assert!(t.json_bytes() <= TRANSCRIPT_CAP_BYTES);
        let TranscriptMessage::Tool { content, .. } = &t.messages[2] else {
            panic!("tool message moved: {:?}", t.messages);
        };
        assert!(content.starts_with("HEAD") && content.ends_with("TAIL"));
        assert!(content.contains("bytes cut]"), "{}", &content[..100]);
        assert!(t.cut.unwrap().texts >= 1);
    }

    #[test]
    fn capping_twice_keeps_one_marker_and_the_totals() {
        let mut t = day(400, 1000);
        t.cap(TRANSCRIPT_CAP_BYTES);
        let first = t.cut.unwrap();
        t.cap(64 * 1024);
        assert!(t.json_bytes() <= 64 * 1024);
        let markers = t
            .messages
            .iter()
            .filter(|m| matches!(m, TranscriptMessage::Omitted { .. }))
            .count();
        assert_eq!(markers, 1);
        let second = t.cut.unwrap();
        assert_eq!(second.original_bytes, first.original_bytes);
        assert!(second.messages > first.messages);
    }

    #[test]
    fn cut_middle_respects_char_boundaries_and_says_what_went() {
        let s = "ä".repeat(100);
        let c = cut_middle(&s, 51);
        assert!(c.contains("bytes cut]"));
        assert!(c.starts_with('ä') && c.ends_with('ä'));
        assert_eq!(cut_middle("short", 10), "short");
    }

    #[test]
    fn the_wire_shape_is_camel_case_with_role_tags() {
        let t = day(1, 1);
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["messages"][1]["role"], "assistant");
        assert_eq!(v["messages"][1]["toolCalls"][0]["name"], "todo_create");
        assert_eq!(v["messages"][2]["role"], "tool");
        assert_eq!(v["messages"][2]["callId"], "c0");
        assert_eq!(v["messages"][2]["isError"], false);
        assert_eq!(v["ratingPrompt"], "rate");
        let back: Transcript = serde_json::from_value(v).unwrap();
        assert_eq!(back, t);
        assert_eq!(
            serde_json::to_value(RunOutcome::SimulatorFailure).unwrap(),
            "simulator_failure"
        );
    }
}
