//! todo (`todo`/`tasks`): tasks with a priority and an optional due date.
//!
//! Record fields: title, description?, priority, dueDate? (YYYY-MM-DD), tags, isCompleted,
//! completedAt? (set by `todo_complete`), createdAt, updatedAt.

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{default_limit, default_true, tag_filter, text_search};
use crate::error::ToolError;
use crate::handler::{
    Collection, ListPlan, NewRecord, RecordPatch, ToolDef, not_blank, parse, timestamp,
};
use crate::registry::CallContext;
use crate::store::ListQuery;

pub(crate) static TASKS: Collection = Collection {
    module: "todo",
    app: "todo",
    table: "tasks",
    noun: "todo",
    list_tool: "todo_list",
    stamps: true,
    proposable: true,
};

pub(crate) fn tools() -> Vec<ToolDef> {
    vec![
        ToolDef::create::<Create>(
            "todo_create",
            &TASKS,
            "Create a todo (task) for the user. Returns the new todo with its id.",
        ),
        ToolDef::update::<Update>(
            "todo_update",
            &TASKS,
            "Change fields of an existing todo; only the fields you pass change.",
        ),
        ToolDef::patch::<Complete>(
            "todo_complete",
            &TASKS,
            "Mark a todo as done (or, with completed=false, as open again).",
            complete,
        ),
        ToolDef::list::<List>(
            "todo_list",
            &TASKS,
            "List the user's todos, newest first. Open todos only unless includeCompleted is true; \
             optionally filtered by text, priority or tag.",
            list,
        ),
        ToolDef::get("todo_get", &TASKS, "Read one todo by id."),
        ToolDef::delete("todo_delete", &TASKS, "Delete a todo permanently."),
    ]
}

/// How urgent a todo is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Priority {
    Low,
    Medium,
    High,
    Urgent,
}

impl Priority {
    fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Urgent => "urgent",
        }
    }
}

fn medium() -> Priority {
    Priority::Medium
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Create {
    /// Short title of the task.
    #[schemars(length(min = 1, max = 500))]
    title: String,
    /// Details, steps or context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10000))]
    description: Option<String>,
    /// How urgent the task is.
    #[serde(default = "medium")]
    priority: Priority,
    /// Day the task is due (YYYY-MM-DD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due_date: Option<NaiveDate>,
    /// Labels for grouping, e.g. ["work"].
    #[serde(default)]
    #[schemars(length(max = 20), inner(length(min = 1, max = 60)))]
    tags: Vec<String>,
}

impl NewRecord for Create {
    fn finish(&self, _ctx: &CallContext, data: &mut Map<String, Value>) -> Result<(), ToolError> {
        not_blank("title", &self.title)?;
        data.insert("isCompleted".to_owned(), Value::Bool(false));
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
    /// New details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10000))]
    description: Option<String>,
    /// New priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    priority: Option<Priority>,
    /// New due day (YYYY-MM-DD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due_date: Option<NaiveDate>,
    /// New labels (replace the old ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 20), inner(length(min = 1, max = 60)))]
    tags: Option<Vec<String>>,
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
struct Complete {
    /// Id of the record.
    #[schemars(length(min = 1, max = 200))]
    id: String,
    /// true marks the todo done, false opens it again.
    #[serde(default = "default_true")]
    completed: bool,
}

fn complete(args: Value, ctx: &CallContext) -> Result<(String, Map<String, Value>), ToolError> {
    let Complete { id, completed } = parse(args)?;
    let mut patch = Map::new();
    patch.insert("isCompleted".to_owned(), Value::Bool(completed));
    patch.insert(
        "completedAt".to_owned(),
        if completed {
            timestamp(ctx.now)
        } else {
            Value::Null
        },
    );
    Ok((id, patch))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct List {
    /// Include todos that are already done.
    #[serde(default)]
    include_completed: bool,
    /// Case-insensitive text to find in title or description.
    #[serde(default)]
    #[schemars(length(max = 500))]
    query: Option<String>,
    /// Only todos with this priority.
    #[serde(default)]
    priority: Option<Priority>,
    /// Only todos with this tag.
    #[serde(default)]
    #[schemars(length(min = 1, max = 60))]
    tag: Option<String>,
    /// Maximum number of todos to return.
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 100))]
    limit: u32,
}

fn list(args: Value, _ctx: &CallContext) -> Result<ListPlan, ToolError> {
    let args: List = parse(args)?;
    let mut query = ListQuery {
        search: text_search(args.query, &["title", "description"]),
        limit: args.limit,
        ..ListQuery::default()
    };
    if !args.include_completed {
        query
            .not_contains
            .insert("isCompleted".to_owned(), Value::Bool(true));
    }
    if let Some(priority) = args.priority {
        query
            .contains
            .insert("priority".to_owned(), Value::from(priority.as_str()));
    }
    tag_filter(&mut query.contains, args.tag);
    Ok(ListPlan::new(query))
}
