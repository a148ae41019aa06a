//! A model of Anthropic's prompt cache, so tests can prove what caching saves.
//!
//! Rules (as the Messages API documents them):
//! - The prompt is read in the order tools → system → messages; every content block
//!   ends at a *boundary*. A block with `cache_control` is a *breakpoint*: the prefix up
//!   to and including it may be written to the cache.
//! - A prefix is keyed by a hash of the model and every block before the boundary,
//!   without the `cache_control` markers themselves (marking a block does not change it).
//! - Reads: for each breakpoint the cache is looked up at that boundary and up to
//!   [`LOOKBACK_BLOCKS`] boundaries before it; the longest hit is read
//!   (`cache_read_input_tokens`) and its lifetime refreshed.
//! - Writes: every breakpoint beyond the hit whose prefix holds at least the minimum
//!   cacheable length is written; `cache_creation_input_tokens` is the span from the hit
//!   to the furthest written breakpoint. A shorter prefix is silently not cached.
//! - `input_tokens` is everything else. Lifetimes are 5 minutes (`ttl: "1h"`: an hour)
//!   on the fake's own clock, which tests move with [`crate::FakeLlm::advance_cache_clock`].
//! - Tokens are estimated as ⌈bytes / 4⌉ of each block's compact JSON.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// How many boundaries before a breakpoint are checked for a hit.
pub const LOOKBACK_BLOCKS: usize = 20;
/// Anthropic's minimum cacheable prompt for Sonnet/Opus models.
pub const DEFAULT_MIN_CACHEABLE_TOKENS: u64 = 1024;

/// The prompt side of a response's `usage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PromptUsage {
    /// `input_tokens`: neither read from nor written to the cache.
    pub input: u64,
    /// `cache_read_input_tokens`.
    pub cache_read: u64,
    /// `cache_creation_input_tokens`.
    pub cache_write: u64,
}

/// One block of the prompt in reading order.
struct Segment {
    tokens: u64,
    /// `Some(ttl)` when the block carries `cache_control`.
    breakpoint: Option<Duration>,
    text: String,
}

/// The cache state of one fake server.
#[derive(Debug)]
pub(crate) struct PromptCache {
    pub(crate) min_tokens: u64,
    /// Prefix hash → (expiry on the fake clock, prefix tokens).
    entries: HashMap<[u8; 32], Duration>,
    /// The fake clock: only moved by tests.
    now: Duration,
}

fn ttl_of(cache_control: &Value) -> Duration {
    match cache_control.get("ttl").and_then(Value::as_str) {
        Some("1h") => Duration::from_secs(3600),
        _ => Duration::from_secs(300),
    }
}

/// Tokens of a block: ⌈bytes / 4⌉ of its compact JSON.
pub fn estimate_tokens(text: &str) -> u64 {
    u64::try_from(text.len().div_ceil(4)).unwrap_or(u64::MAX)
}

fn segment(block: &Value, role: Option<&str>) -> Segment {
    let mut clean = block.clone();
    let breakpoint = clean
        .as_object_mut()
        .and_then(|o| o.remove("cache_control"))
        .map(|cc| ttl_of(&cc));
    let body = clean.to_string();
    let text = match role {
        Some(r) => format!("{r}:{body}"),
        None => body,
    };
    Segment {
        tokens: estimate_tokens(&text),
        breakpoint,
        text,
    }
}

/// The blocks of a (validated) Messages API body in reading order.
fn segments(body: &Value) -> Vec<Segment> {
    let mut out = Vec::new();
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        out.extend(tools.iter().map(|t| segment(t, Some("tool"))));
    }
    match body.get("system") {
        Some(Value::String(s)) => out.push(segment(&Value::String(s.clone()), Some("system"))),
        Some(Value::Array(blocks)) => {
            out.extend(blocks.iter().map(|b| segment(b, Some("system"))));
        }
        _ => {}
    }
    for m in body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        match m.get("content") {
            Some(Value::String(s)) => out.push(segment(&Value::String(s.clone()), Some(role))),
            Some(Value::Array(blocks)) => out.extend(blocks.iter().map(|b| segment(b, Some(role)))),
            _ => {}
        }
    }
    out
}

impl PromptCache {
    pub(crate) fn new(min_tokens: u64) -> Self {
        Self {
            min_tokens,
            entries: HashMap::new(),
            now: Duration::ZERO,
        }
    }

    pub(crate) fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// Accounts one valid request: reads, writes, and what is left as fresh input.
    pub(crate) fn account(&mut self, body: &Value) -> PromptUsage {
        let segs = segments(body);
        let model = body.get("model").and_then(Value::as_str).unwrap_or("");
        // Prefix hash and cumulative tokens after each block.
        let mut hasher = Sha256::new();
        hasher.update(model.as_bytes());
        let mut hashes = Vec::with_capacity(segs.len());
        let mut cumulative = Vec::with_capacity(segs.len());
        let mut total = 0u64;
        for s in &segs {
            hasher.update((s.text.len() as u64).to_le_bytes());
            hasher.update(s.text.as_bytes());
            hashes.push(<[u8; 32]>::from(hasher.clone().finalize()));
            total += s.tokens;
            cumulative.push(total);
        }
        let now = self.now;
        self.entries.retain(|_, expiry| *expiry > now);
        let breakpoints: Vec<usize> = segs
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.breakpoint.map(|_| i))
            .collect();
        // The longest cached prefix at or shortly before any breakpoint.
        let mut hit: Option<usize> = None;
        for &b in &breakpoints {
            let from = b.saturating_sub(LOOKBACK_BLOCKS);
            if let Some(pos) = (from..=b)
                .rev()
                .find(|&p| self.entries.contains_key(&hashes[p]))
                && hit.is_none_or(|h| pos > h)
            {
                hit = Some(pos);
            }
        }
        let read = hit.map_or(0, |h| cumulative[h]);
        if let Some(h) = hit
            && let Some(expiry) = self.entries.get_mut(&hashes[h])
        {
            // A read refreshes the entry for another lifetime (5 minutes unless it was
            // written for an hour; the fake keeps the longer of the two).
            let ttl = segs[h].breakpoint.unwrap_or(Duration::from_secs(300));
            *expiry = (*expiry).max(now + ttl);
        }
        let mut written_to = None;
        for &b in &breakpoints {
            if hit.is_some_and(|h| b <= h) || cumulative[b] < self.min_tokens {
                continue;
            }
            let ttl = segs[b].breakpoint.unwrap_or(Duration::from_secs(300));
            self.entries.insert(hashes[b], now + ttl);
            written_to = Some(b);
        }
        let write = written_to.map_or(0, |b| cumulative[b] - read);
        PromptUsage {
            input: total - read - write,
            cache_read: read,
            cache_write: write,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(big: &str, turns: usize, marked: bool) -> Value {
        let cc = |mut b: Value| {
            if marked {
                b["cache_control"] = json!({"type": "ephemeral"});
            }
            b
        };
        let mut messages =
            vec![json!({"role": "user", "content": [{"type": "text", "text": "day 1"}]})];
        for t in 0..turns {
            messages.push(json!({"role": "assistant", "content": [{"type": "text", "text": format!("a{t}")}]}));
            messages.push(
                json!({"role": "user", "content": [{"type": "text", "text": format!("u{t}")}]}),
            );
        }
        let last = messages.len() - 1;
        messages[last]["content"][0] = cc(messages[last]["content"][0].clone());
        json!({
            "model": "m",
            "system": [cc(json!({"type": "text", "text": big}))],
            "messages": messages,
        })
    }

    #[test]
    fn first_request_writes_later_ones_read() {
        let big = "x".repeat(8000);
        let mut c = PromptCache::new(1024);
        let first = c.account(&body(&big, 0, true));
        assert_eq!(first.cache_read, 0);
        assert!(first.cache_write > 2000, "{first:?}");
        assert_eq!(
            first.input, 0,
            "everything up to the last breakpoint is written"
        );
        let second = c.account(&body(&big, 1, true));
        assert_eq!(
            second.cache_read, first.cache_write,
            "turn 2 reads turn 1's prefix"
        );
        assert!(
            second.cache_write > 0 && second.cache_write < 20,
            "{second:?}"
        );
        // Without markers nothing is cached.
        let mut c = PromptCache::new(1024);
        let plain = c.account(&body(&big, 0, false));
        assert_eq!((plain.cache_read, plain.cache_write), (0, 0));
        assert_eq!(plain.input, first.cache_write);
    }

    #[test]
    fn short_prefixes_are_not_cached_and_entries_expire() {
        let mut c = PromptCache::new(1024);
        let short = c.account(&body("tiny", 0, true));
        assert_eq!((short.cache_read, short.cache_write), (0, 0));
        let big = "y".repeat(8000);
        c.account(&body(&big, 0, true));
        c.advance(Duration::from_secs(299));
        assert!(c.account(&body(&big, 0, true)).cache_read > 0);
        // The read refreshed the lifetime: 299 s later it is still there…
        c.advance(Duration::from_secs(299));
        assert!(c.account(&body(&big, 0, true)).cache_read > 0);
        // …but not after five quiet minutes.
        c.advance(Duration::from_secs(301));
        let cold = c.account(&body(&big, 0, true));
        assert_eq!(cold.cache_read, 0);
        assert!(cold.cache_write > 0);
    }
}
