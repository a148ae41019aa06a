//! notes (`notes`/`notes`): free-text notes, pinnable and archivable.
//!
//! Record fields: title, content, tags, isPinned, isArchived, archivedAt?, createdAt, updatedAt.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{default_limit, tag_filter, text_search};
use crate::error::ToolError;
use crate::handler::{Collection, ListPlan, NewRecord, RecordPatch, ToolDef, not_blank, parse};
use crate::registry::CallContext;
use crate::store::ListQuery;

pub(crate) static NOTES: Collection = Collection {
    module: "notes",
    app: "notes",
    table: "notes",
    noun: "note",
    list_tool: "notes_search",
    stamps: true,
    proposable: true,
};

pub(crate) fn tools() -> Vec<ToolDef> {
    vec![
        ToolDef::create::<Create>(
            "notes_create",
            &NOTES,
            "Create a note for the user. Returns the new note with its id.",
        ),
        ToolDef::update::<Update>(
            "notes_update",
            &NOTES,
            "Change fields of an existing note; only the fields you pass change (content is replaced, not appended).",
        ),
        ToolDef::list::<Search>(
            "notes_search",
            &NOTES,
            "Search the user's notes (case-insensitive text in title, content or tags), newest first. \
             Without a query, lists the newest notes. Archived notes only with includeArchived.",
            search,
        ),
        ToolDef::get(
            "notes_get",
            &NOTES,
            "Read one note by id, with its full content.",
        ),
        ToolDef::archive(
            "notes_archive",
            &NOTES,
            "Archive a note (hidden from searches by default), or with archived=false restore it.",
        ),
    ]
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Create {
    /// Title of the note.
    #[schemars(length(min = 1, max = 500))]
    title: String,
    /// Body of the note (Markdown allowed).
    #[schemars(length(max = 200000))]
    content: String,
    /// Labels for grouping.
    #[serde(default)]
    #[schemars(length(max = 20), inner(length(min = 1, max = 60)))]
    tags: Vec<String>,
    /// Pin the note to the top.
    #[serde(default)]
    is_pinned: bool,
}

impl NewRecord for Create {
    fn finish(&self, _ctx: &CallContext, data: &mut Map<String, Value>) -> Result<(), ToolError> {
        not_blank("title", &self.title)?;
        data.insert("isArchived".to_owned(), Value::Bool(false));
        Ok(())
    }
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Update {
    /// Id of the record.
    #[schemars(length(min = 1, max = 200))]
    id: String,
    /// New title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 500))]
    title: Option<String>,
    /// New body (replaces the old one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200000))]
    content: Option<String>,
    /// New labels (replace the old ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 20), inner(length(min = 1, max = 60)))]
    tags: Option<Vec<String>>,
    /// Pin or unpin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    is_pinned: Option<bool>,
}

impl RecordPatch for Update {
    fn id(&self) -> &str {
        &self.id
    }

    fn finish(&self, _ctx: &CallContext, _patch: &mut Map<String, Value>) -> Result<(), ToolError> {
        self.title
            .as_deref()
            .map_or(Ok(()), |t| not_blank("title", t))
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Search {
    /// Case-insensitive text to find in title, content or tags.
    #[serde(default)]
    #[schemars(length(max = 500))]
    query: Option<String>,
    /// Include archived notes.
    #[serde(default)]
    include_archived: bool,
    /// Only notes with this tag.
    #[serde(default)]
    #[schemars(length(min = 1, max = 60))]
    tag: Option<String>,
    /// Maximum number of notes to return.
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 100))]
    limit: u32,
}

fn search(args: Value, _ctx: &CallContext) -> Result<ListPlan, ToolError> {
    let args: Search = parse(args)?;
    let mut query = ListQuery {
        search: text_search(args.query, &["title", "content", "tags"]),
        limit: args.limit,
        ..ListQuery::default()
    };
    if !args.include_archived {
        query
            .not_contains
            .insert("isArchived".to_owned(), Value::Bool(true));
    }
    tag_filter(&mut query.contains, args.tag);
    Ok(ListPlan::new(query))
}
