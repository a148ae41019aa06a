//! contacts (`contacts`/`contacts`): people the user knows.
//!
//! Record fields: name, email?, phone?, company?, birthday? (YYYY-MM-DD), notes?, tags,
//! createdAt, updatedAt.

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{default_limit, tag_filter, text_search};
use crate::error::ToolError;
use crate::handler::{Collection, ListPlan, NewRecord, RecordPatch, ToolDef, not_blank, parse};
use crate::registry::CallContext;
use crate::store::ListQuery;

pub(crate) static CONTACTS: Collection = Collection {
    module: "contacts",
    app: "contacts",
    table: "contacts",
    noun: "contact",
    list_tool: "contacts_search",
    stamps: true,
    proposable: true,
};

pub(crate) fn tools() -> Vec<ToolDef> {
    vec![
        ToolDef::create::<Create>(
            "contacts_create",
            &CONTACTS,
            "Add a contact (a person) to the user's address book. Returns the new contact with its id.",
        ),
        ToolDef::update::<Update>(
            "contacts_update",
            &CONTACTS,
            "Change fields of an existing contact; only the fields you pass change.",
        ),
        ToolDef::list::<Search>(
            "contacts_search",
            &CONTACTS,
            "Search the user's contacts (case-insensitive text in name, email, phone, company, notes \
             or tags), newest first. Without a query, lists the newest contacts.",
            search,
        ),
        ToolDef::get("contacts_get", &CONTACTS, "Read one contact by id."),
    ]
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Create {
    /// Full name.
    #[schemars(length(min = 1, max = 200))]
    name: String,
    /// Email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(email, length(max = 320))]
    email: Option<String>,
    /// Phone number, any format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 50))]
    phone: Option<String>,
    /// Company or organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200))]
    company: Option<String>,
    /// Birthday (YYYY-MM-DD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    birthday: Option<NaiveDate>,
    /// Anything worth remembering about the person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10000))]
    notes: Option<String>,
    /// Labels for grouping, e.g. ["family"].
    #[serde(default)]
    #[schemars(length(max = 20), inner(length(min = 1, max = 60)))]
    tags: Vec<String>,
}

impl NewRecord for Create {
    fn finish(&self, _ctx: &CallContext, _data: &mut Map<String, Value>) -> Result<(), ToolError> {
        not_blank("name", &self.name)
    }
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Update {
    /// Id of the record.
    #[schemars(length(min = 1, max = 200))]
    id: String,
    /// New full name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 200))]
    name: Option<String>,
    /// New email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(email, length(max = 320))]
    email: Option<String>,
    /// New phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 50))]
    phone: Option<String>,
    /// New company.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200))]
    company: Option<String>,
    /// New birthday (YYYY-MM-DD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    birthday: Option<NaiveDate>,
    /// New notes (replace the old ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10000))]
    notes: Option<String>,
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
        self.name
            .as_deref()
            .map_or(Ok(()), |n| not_blank("name", n))
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Search {
    /// Case-insensitive text to find in name, email, phone, company, notes or tags.
    #[serde(default)]
    #[schemars(length(max = 500))]
    query: Option<String>,
    /// Only contacts with this tag.
    #[serde(default)]
    #[schemars(length(min = 1, max = 60))]
    tag: Option<String>,
    /// Maximum number of contacts to return.
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 100))]
    limit: u32,
}

fn search(args: Value, _ctx: &CallContext) -> Result<ListPlan, ToolError> {
    let args: Search = parse(args)?;
    let mut query = ListQuery {
        search: text_search(
            args.query,
            &["name", "email", "phone", "company", "notes", "tags"],
        ),
        limit: args.limit,
        ..ListQuery::default()
    };
    tag_filter(&mut query.contains, args.tag);
    Ok(ListPlan::new(query))
}
