//! Persona runs: the upsert written as a day goes, the keyset-paged list, the detail
//! with its actions and feedback, and transcript retention.
//!
//! Rules:
//! - The upsert never goes backwards: a snapshot replaces the stored row only when its
//!   `revision` is higher, and a finished run (outcome set) is never turned back into an
//!   in-progress one. An equal revision is a retry and writes nothing.
//! - The list is ordered `(started_at DESC, id DESC)`, a total order, and the cursor is
//!   the last row's `(started_at, id)`: pages never overlap and never skip a row.
//! - Retention nulls transcripts in bounded batches (`LIMIT` inside the `UPDATE`'s
//!   sub-select, `FOR UPDATE SKIP LOCKED` so replicas share the work); the summary stays.
//! - `q` matches the run's error (`ILIKE`, over the period's runs) or a rating note of it
//!   (the trigram index `persona_feedback_notes_trgm_idx`, looked up once per query).
//! - `now` and every period bound are parameters, so tests move time freely.

use std::sync::LazyLock;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{BigInt, Bool, Integer, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use types::{
    personas::ActionResult,
    runs::{
        RunAction, RunDetail, RunFeedback, RunOutcome, RunRecord, RunSummary, RunsPage, Transcript,
    },
    tick::TokenUsage,
};
use uuid::Uuid;

use super::{
    cached::CachedExt,
    schema::{persona_actions, persona_feedback, persona_runs},
};

/// A validated run snapshot ready to store (see `routes::runs` for the checks).
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    pub persona_id: Uuid,
    pub tick_id: String,
    pub revision: i32,
    pub worker: String,
    pub provider: String,
    pub model: String,
    pub app_version: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub error: Option<String>,
    pub error_class: Option<String>,
    pub turns: i32,
    pub tool_calls: i32,
    pub tool_errors: i32,
    pub tokens_input: i64,
    pub tokens_output: i64,
    pub tokens_cache_read: i64,
    pub tokens_cache_write: i64,
    pub first_prompt_tokens: Option<i64>,
    pub transcript: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Why a record cannot be stored as given (the route maps it to 422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {message}")]
pub struct InvalidRun {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> InvalidRun {
    InvalidRun {
        field,
        message: message.into(),
    }
}

fn to_i32(field: &'static str, v: u32) -> Result<i32, InvalidRun> {
    i32::try_from(v).map_err(|_| invalid(field, "is too large"))
}

fn to_i64(field: &'static str, v: u64) -> Result<i64, InvalidRun> {
    i64::try_from(v).map_err(|_| invalid(field, "is too large"))
}

impl NewRun {
    /// Converts a record whose transcript was already capped.
    pub fn from_record(
        persona_id: Uuid,
        r: &RunRecord,
        transcript: Option<serde_json::Value>,
        now: DateTime<Utc>,
    ) -> Result<Self, InvalidRun> {
        Ok(Self {
            id: r.id.clone(),
            persona_id,
            tick_id: r.tick_id.clone(),
            revision: to_i32("revision", r.revision)?,
            worker: r.worker.clone(),
            provider: r.provider.clone(),
            model: r.model.clone(),
            app_version: r.app_version.clone(),
            started_at: r.started_at,
            finished_at: r.finished_at,
            outcome: r.outcome.map(|o| o.as_str().to_owned()),
            error: r.error.clone(),
            error_class: r.error_class.clone(),
            turns: to_i32("turns", r.turns)?,
            tool_calls: to_i32("toolCalls", r.tool_calls)?,
            tool_errors: to_i32("toolErrors", r.tool_errors)?,
            tokens_input: to_i64("tokens.input", r.tokens.input)?,
            tokens_output: to_i64("tokens.output", r.tokens.output)?,
            tokens_cache_read: to_i64("tokens.cacheRead", r.tokens.cache_read)?,
            tokens_cache_write: to_i64("tokens.cacheWrite", r.tokens.cache_write)?,
            first_prompt_tokens: r
                .first_prompt_tokens
                .map(|t| to_i64("firstPromptTokens", t))
                .transpose()?,
            transcript,
            created_at: now,
            updated_at: now,
        })
    }
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunWrite {
    /// First snapshot of this run.
    Inserted,
    /// A newer snapshot replaced the stored one.
    Updated,
    /// The stored snapshot is as new or newer (a retry, or an out-of-order write);
    /// nothing changed. Carries the stored revision.
    Unchanged { stored_revision: i32 },
}

#[derive(QueryableByName)]
struct Written {
    #[diesel(sql_type = Bool)]
    inserted: bool,
}

/// The columns the upsert writes, in bind order.
const RUN_COLUMNS: &str = "id, persona_id, tick_id, revision, worker, provider, model, app_version, \
     started_at, finished_at, outcome, error, error_class, turns, tool_calls, tool_errors, \
     tokens_input, tokens_output, tokens_cache_read, tokens_cache_write, first_prompt_tokens, \
     transcript, created_at, updated_at";

/// The run upsert: fixed text, so each connection prepares it once.
static UPSERT_RUN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO persona_runs ({RUN_COLUMNS}) VALUES \
           ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
            $19, $20, $21, $22, $23, $23) \
         ON CONFLICT (id) DO UPDATE SET \
           revision = EXCLUDED.revision, worker = EXCLUDED.worker, provider = EXCLUDED.provider, \
           model = EXCLUDED.model, app_version = EXCLUDED.app_version, \
           started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at, \
           outcome = EXCLUDED.outcome, error = EXCLUDED.error, error_class = EXCLUDED.error_class, \
           turns = EXCLUDED.turns, tool_calls = EXCLUDED.tool_calls, \
           tool_errors = EXCLUDED.tool_errors, tokens_input = EXCLUDED.tokens_input, \
           tokens_output = EXCLUDED.tokens_output, tokens_cache_read = EXCLUDED.tokens_cache_read, \
           tokens_cache_write = EXCLUDED.tokens_cache_write, \
           first_prompt_tokens = EXCLUDED.first_prompt_tokens, transcript = EXCLUDED.transcript, \
           updated_at = EXCLUDED.updated_at \
         -- Never backwards: a higher revision only, and never finished -> in progress.
         WHERE persona_runs.revision < EXCLUDED.revision \
           AND persona_runs.persona_id = EXCLUDED.persona_id \
           AND (persona_runs.outcome IS NULL OR EXCLUDED.outcome IS NOT NULL) \
         RETURNING (xmax = 0) AS inserted"
    )
});

/// Insert or advance a run; see the module rules.
pub async fn upsert_run(conn: &mut AsyncPgConnection, run: &NewRun) -> QueryResult<RunWrite> {
    let written: Option<Written> = diesel::sql_query(UPSERT_RUN.as_str())
        .bind::<Text, _>(&run.id)
        .bind::<SqlUuid, _>(run.persona_id)
        .bind::<Text, _>(&run.tick_id)
        .bind::<Integer, _>(run.revision)
        .bind::<Text, _>(&run.worker)
        .bind::<Text, _>(&run.provider)
        .bind::<Text, _>(&run.model)
        .bind::<Text, _>(&run.app_version)
        .bind::<Timestamptz, _>(run.started_at)
        .bind::<Nullable<Timestamptz>, _>(run.finished_at)
        .bind::<Nullable<Text>, _>(run.outcome.as_deref())
        .bind::<Nullable<Text>, _>(run.error.as_deref())
        .bind::<Nullable<Text>, _>(run.error_class.as_deref())
        .bind::<Integer, _>(run.turns)
        .bind::<Integer, _>(run.tool_calls)
        .bind::<Integer, _>(run.tool_errors)
        .bind::<BigInt, _>(run.tokens_input)
        .bind::<BigInt, _>(run.tokens_output)
        .bind::<BigInt, _>(run.tokens_cache_read)
        .bind::<BigInt, _>(run.tokens_cache_write)
        .bind::<Nullable<BigInt>, _>(run.first_prompt_tokens)
        .bind::<Nullable<Jsonb>, _>(run.transcript.as_ref())
        .bind::<Timestamptz, _>(run.updated_at)
        .cached()
        .get_result(conn)
        .await
        .optional()?;
    match written {
        Some(Written { inserted: true }) => Ok(RunWrite::Inserted),
        Some(Written { inserted: false }) => Ok(RunWrite::Updated),
        None => {
            let stored_revision = persona_runs::table
                .find(&run.id)
                .select(persona_runs::revision)
                .first::<i32>(conn)
                .await?;
            Ok(RunWrite::Unchanged { stored_revision })
        }
    }
}

/// The persona a stored run belongs to, if the run exists.
pub async fn run_owner(conn: &mut AsyncPgConnection, run_id: &str) -> QueryResult<Option<Uuid>> {
    persona_runs::table
        .find(run_id)
        .select(persona_runs::persona_id)
        .first::<Uuid>(conn)
        .await
        .optional()
}

/// Position in the runs list: the last row of a page, `(started_at, id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCursor {
    pub started_at: DateTime<Utc>,
    pub id: String,
}

impl RunCursor {
    /// Opaque, URL-safe form (`base64url("<micros>|<id>")`).
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}|{}",
            self.started_at.timestamp_micros(),
            self.id
        ))
    }

    /// `None` for anything [`RunCursor::encode`] did not produce.
    pub fn decode(s: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (micros, id) = text.split_once('|')?;
        let started_at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
        (!id.is_empty()).then(|| Self {
            started_at,
            id: id.to_owned(),
        })
    }
}

/// Filters of the runs list; the period is `[from, to)` on `started_at`.
#[derive(Debug, Clone)]
pub struct RunFilter {
    pub persona: Option<Uuid>,
    pub outcome: Option<RunOutcome>,
    pub error_class: Option<String>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Case-insensitive substring of the run's error or of one of its rating notes.
    pub q: Option<String>,
    /// 1 to 500.
    pub limit: u32,
    pub cursor: Option<RunCursor>,
}

/// The columns of a run summary.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = persona_runs, check_for_backend(diesel::pg::Pg))]
pub struct RunSummaryRow {
    pub id: String,
    pub persona_id: Uuid,
    pub tick_id: String,
    pub outcome: Option<String>,
    pub error_class: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub tool_calls: i32,
    pub tool_errors: i32,
    pub tokens_input: i64,
    pub tokens_output: i64,
    pub tokens_cache_read: i64,
    pub tokens_cache_write: i64,
}

fn u32_of(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Tokens from the four stored columns.
pub fn tokens_of(input: i64, output: i64, cache_read: i64, cache_write: i64) -> TokenUsage {
    TokenUsage {
        input: u64_of(input),
        output: u64_of(output),
        cache_read: u64_of(cache_read),
        cache_write: u64_of(cache_write),
    }
}

impl From<RunSummaryRow> for RunSummary {
    fn from(r: RunSummaryRow) -> Self {
        Self {
            outcome: r.outcome.as_deref().and_then(RunOutcome::parse),
            tokens: tokens_of(
                r.tokens_input,
                r.tokens_output,
                r.tokens_cache_read,
                r.tokens_cache_write,
            ),
            id: r.id,
            persona_id: r.persona_id,
            tick_id: r.tick_id,
            error_class: r.error_class,
            started_at: r.started_at,
            finished_at: r.finished_at,
            tool_calls: u32_of(r.tool_calls),
            tool_errors: u32_of(r.tool_errors),
        }
    }
}

/// `%q%`, with `%`, `_` and `\` escaped so `q` is matched literally by `ILIKE`.
fn like_pattern(q: &str) -> String {
    let mut p = String::with_capacity(q.len() + 2);
    p.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// One page of runs, newest first (see the module rules).
pub async fn list_runs(conn: &mut AsyncPgConnection, f: &RunFilter) -> QueryResult<RunsPage> {
    use persona_runs::dsl as r;
    let mut q = persona_runs::table
        .select(RunSummaryRow::as_select())
        .filter(r::started_at.ge(f.from))
        .filter(r::started_at.lt(f.to))
        .into_boxed();
    if let Some(p) = f.persona {
        q = q.filter(r::persona_id.eq(p));
    }
    if let Some(o) = f.outcome {
        q = q.filter(r::outcome.eq(o.as_str()));
    }
    if let Some(c) = &f.error_class {
        q = q.filter(r::error_class.eq(c.clone()));
    }
    if let Some(text) = f.q.as_deref().filter(|t| !t.is_empty()) {
        let pattern = like_pattern(text);
        // The notes' matches come from the trigram index `persona_feedback_notes_trgm_idx`
        // once (a hashed sub-plan), not from a probe per run of the period.
        q = q.filter(
            r::error.ilike(pattern.clone()).or(r::id.eq_any(
                persona_feedback::table
                    .filter(persona_feedback::notes.ilike(pattern))
                    .select(persona_feedback::tick_id),
            )),
        );
    }
    if let Some(c) = &f.cursor {
        q = q.filter(
            r::started_at
                .lt(c.started_at)
                .or(r::started_at.eq(c.started_at).and(r::id.lt(c.id.clone()))),
        );
    }
    let limit = i64::from(f.limit.clamp(1, 500));
    let mut rows: Vec<RunSummaryRow> = q
        .order((r::started_at.desc(), r::id.desc()))
        .limit(limit + 1)
        .load(conn)
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(500));
    let next_cursor = if more {
        rows.last().map(|l| {
            RunCursor {
                started_at: l.started_at,
                id: l.id.clone(),
            }
            .encode()
        })
    } else {
        None
    };
    Ok(RunsPage {
        runs: rows.into_iter().map(RunSummary::from).collect(),
        next_cursor,
    })
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = persona_runs, check_for_backend(diesel::pg::Pg))]
struct RunDetailRow {
    #[diesel(embed)]
    summary: RunSummaryRow,
    revision: i32,
    worker: String,
    provider: String,
    model: String,
    app_version: String,
    error: Option<String>,
    turns: i32,
    first_prompt_tokens: Option<i64>,
    updated_at: DateTime<Utc>,
    transcript: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = persona_actions, check_for_backend(diesel::pg::Pg))]
struct ActionRowDb {
    id: String,
    tool_name: String,
    module: String,
    input: Option<serde_json::Value>,
    result: String,
    error_message: Option<String>,
    latency_ms: Option<i32>,
    created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = persona_feedback, check_for_backend(diesel::pg::Pg))]
struct FeedbackRowDb {
    id: String,
    module: String,
    rating: Option<i16>,
    notes: Option<String>,
    created_at: DateTime<Utc>,
}

/// Action batches of one run the detail looks up (500 rows each: 10,000 tool calls).
const MAX_ACTION_BATCHES: usize = 20;

/// A run with its transcript, actions (in order) and feedback; `None` if unknown.
pub async fn get_run(conn: &mut AsyncPgConnection, run_id: &str) -> QueryResult<Option<RunDetail>> {
    let Some(row) = persona_runs::table
        .find(run_id)
        .select(RunDetailRow::as_select())
        .first::<RunDetailRow>(conn)
        .await
        .optional()?
    else {
        return Ok(None);
    };
    // Batches after the first of a long day carry `{runId}~{k}` (persona-runner's api.rs);
    // listing the ids keeps the lookup on `persona_actions_tick_idx` (a LIKE prefix would
    // not use it under a non-C collation).
    let batch_ids: Vec<String> = std::iter::once(run_id.to_owned())
        .chain((1..MAX_ACTION_BATCHES).map(|k| format!("{run_id}~{k}")))
        .collect();
    let actions: Vec<ActionRowDb> = persona_actions::table
        .filter(persona_actions::tick_id.eq_any(batch_ids))
        .select(ActionRowDb::as_select())
        .order((persona_actions::created_at.asc(), persona_actions::id.asc()))
        .load(conn)
        .await?;
    let feedback: Vec<FeedbackRowDb> = persona_feedback::table
        .filter(persona_feedback::tick_id.eq(run_id))
        .select(FeedbackRowDb::as_select())
        .order(persona_feedback::module.asc())
        .load(conn)
        .await?;
    let transcript = row
        .transcript
        .map(serde_json::from_value::<Transcript>)
        .transpose()
        .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))?;
    Ok(Some(RunDetail {
        summary: row.summary.into(),
        revision: u32_of(row.revision),
        worker: row.worker,
        provider: row.provider,
        model: row.model,
        app_version: row.app_version,
        error: row.error,
        turns: u32_of(row.turns),
        first_prompt_tokens: row.first_prompt_tokens.map(u64_of),
        updated_at: row.updated_at,
        transcript,
        actions: actions
            .into_iter()
            .map(|a| RunAction {
                id: a.id,
                tool_name: a.tool_name,
                module: a.module,
                input: a.input,
                result: if a.result == "error" {
                    ActionResult::Error
                } else {
                    ActionResult::Ok
                },
                error_message: a.error_message,
                latency_ms: a.latency_ms,
                created_at: a.created_at,
            })
            .collect(),
        feedback: feedback
            .into_iter()
            .map(|f| RunFeedback {
                id: f.id,
                module: f.module,
                rating: f.rating,
                notes: f.notes,
                created_at: f.created_at,
            })
            .collect(),
    }))
}

/// Nulls the transcripts of at most `batch` runs started before `cutoff`; returns how
/// many. Call until it returns less than `batch`.
pub async fn drop_transcripts_before(
    conn: &mut AsyncPgConnection,
    cutoff: DateTime<Utc>,
    batch: u32,
) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE persona_runs SET transcript = NULL \
         WHERE id IN (SELECT id FROM persona_runs \
                      WHERE has_transcript AND started_at < $1 \
                      ORDER BY started_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind::<Timestamptz, _>(cutoff)
    .bind::<Integer, _>(i32::try_from(batch).unwrap_or(i32::MAX))
    .execute(conn)
    .await
}

/// Runs still holding a transcript and started before `cutoff` (for tests and metrics).
pub async fn count_transcripts_before(
    conn: &mut AsyncPgConnection,
    cutoff: DateTime<Utc>,
) -> QueryResult<i64> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    diesel::sql_query(
        "SELECT count(*) AS n FROM persona_runs WHERE has_transcript AND started_at < $1",
    )
    .bind::<Timestamptz, _>(cutoff)
    .get_result::<N>(conn)
    .await
    .map(|r| r.n)
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = RunCursor {
            started_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: "tick-1.6f1c…|x".into(),
        };
        assert_eq!(RunCursor::decode(&c.encode()), Some(c));
        assert_eq!(RunCursor::decode("not base64!"), None);
        assert_eq!(RunCursor::decode(&URL_SAFE_NO_PAD.encode("12|")), None);
        assert_eq!(RunCursor::decode(&URL_SAFE_NO_PAD.encode("x|id")), None);
    }

    #[test]
    fn search_patterns_are_literal() {
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
