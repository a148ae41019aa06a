//! Slim tool schemas for servers that compile tool schemas into a sampling grammar.
//!
//! llama.cpp (`--chat_format chatml-function-calling` of llama-cpp-python, the llama.cpp
//! server's `--jinja` tool calls), and grammar back-ends of vLLM/SGLang (outlines,
//! xgrammar) turn a tool's JSON Schema into a grammar. Length bounds become one nested
//! optional per allowed character (`maxLength: 200000` is a grammar 200,000 groups
//! deep: megabytes of rules, a parser that overflows its stack), and regex `pattern`s are
//! only partly supported (an unsupported one silently drops the grammar of the whole tool).
//!
//! Rules of [`slim_schema`]:
//! - Only schema keywords are touched, never property names: a property called `pattern`
//!   or `title` stays. The walk follows `properties`, `patternProperties`, `$defs`,
//!   `definitions` (maps of schemas), `items`, `prefixItems`, `anyOf`, `oneOf`, `allOf`,
//!   `not`, `if`/`then`/`else`, `contains`, `additionalProperties`.
//! - `maxLength` is capped at [`MAX_STRING_LENGTH`] and `maxItems` at [`MAX_ITEMS`] (never
//!   below the schema's own `minLength`/`minItems`). A cap only tightens the bound, so
//!   whatever the grammar lets the model write is still valid against the real schema; it
//!   also stops a small model from writing thousands of tokens into one string.
//! - `pattern`, `uniqueItems`, `$schema`, `$comment`, `title` and `examples` are dropped,
//!   and so is every `format` except `date`, `time`, `date-time` and `uuid` (the ones the
//!   grammar converters implement).
//! - Everything else (types, `properties`, `required`, `enum`, `const`, bounds of numbers,
//!   `minLength`, `minItems`, descriptions, defaults) is kept.
//! - The server still validates the real schema (MCP), so a value the slim schema let
//!   through but the full one forbids comes back as a clear tool error.

use serde_json::{Map, Value};

use crate::anthropic::object_schema;
use crate::settings::ToolSchema;

/// Largest `maxLength` a slim schema keeps.
pub const MAX_STRING_LENGTH: u64 = 1000;
/// Largest `maxItems` a slim schema keeps.
pub const MAX_ITEMS: u64 = 20;

/// Keywords a slim schema drops.
const DROPPED: &[&str] = &[
    "pattern",
    "uniqueItems",
    "$schema",
    "$comment",
    "title",
    "examples",
];
/// The `format`s grammar converters implement.
const KEPT_FORMATS: &[&str] = &["date", "time", "date-time", "uuid"];
/// Keywords whose value is one subschema.
const ONE_SCHEMA: &[&str] = &[
    "items",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "additionalProperties",
];
/// Keywords whose value is an array of subschemas.
const SCHEMA_LISTS: &[&str] = &["prefixItems", "anyOf", "oneOf", "allOf"];
/// Keywords whose value maps names to subschemas.
const SCHEMA_MAPS: &[&str] = &["properties", "patternProperties", "$defs", "definitions"];

/// A tool's input schema as sent on the wire: always an object schema, slimmed when `mode`
/// is [`ToolSchema::Slim`].
pub(crate) fn wire_schema(schema: &Value, mode: ToolSchema) -> Value {
    // One copy per tool: the object form is slimmed in place.
    let mut schema = object_schema(schema);
    if mode == ToolSchema::Slim {
        slim(&mut schema);
    }
    schema
}

/// The slim copy of `schema` (see the module rules).
pub fn slim_schema(schema: &Value) -> Value {
    let mut out = schema.clone();
    slim(&mut out);
    out
}

fn slim(schema: &mut Value) {
    let Value::Object(obj) = schema else { return };
    for key in DROPPED {
        obj.remove(*key);
    }
    if obj
        .get("format")
        .is_some_and(|f| !f.as_str().is_some_and(|f| KEPT_FORMATS.contains(&f)))
    {
        obj.remove("format");
    }
    cap(obj, "maxLength", "minLength", MAX_STRING_LENGTH);
    cap(obj, "maxItems", "minItems", MAX_ITEMS);
    for key in ONE_SCHEMA {
        if let Some(sub) = obj.get_mut(*key) {
            // A list under `items` is the draft-7 tuple form.
            match sub {
                Value::Array(subs) => subs.iter_mut().for_each(slim),
                other => slim(other),
            }
        }
    }
    for key in SCHEMA_LISTS {
        if let Some(Value::Array(subs)) = obj.get_mut(*key) {
            subs.iter_mut().for_each(slim);
        }
    }
    for key in SCHEMA_MAPS {
        if let Some(Value::Object(subs)) = obj.get_mut(*key) {
            subs.values_mut().for_each(slim);
        }
    }
}

/// Caps `obj[max_key]` at `limit`, but not below `obj[min_key]`.
fn cap(obj: &mut Map<String, Value>, max_key: &str, min_key: &str, limit: u64) {
    let Some(max) = obj.get(max_key).and_then(Value::as_u64) else {
        return;
    };
    let min = obj.get(min_key).and_then(Value::as_u64).unwrap_or(0);
    let capped = max.min(limit.max(min));
    if capped != max {
        obj.insert(max_key.to_owned(), Value::from(capped));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn long_bounds_are_capped_and_short_ones_kept() {
        let full = json!({
            "type": "object",
            "required": ["title", "body"],
            "additionalProperties": false,
            "properties": {
                "title": {"type": "string", "minLength": 1, "maxLength": 200, "description": "Title."},
                "body": {"type": "string", "minLength": 1, "maxLength": 200000},
                "tags": {"type": "array", "maxItems": 500,
                         "items": {"type": "string", "minLength": 1, "maxLength": 60}},
                "few": {"type": "array", "maxItems": 5, "items": {"type": "integer"}},
                "huge_min": {"type": "string", "minLength": 3000, "maxLength": 5000}
            }
        });
        let slim = slim_schema(&full);
        let p = &slim["properties"];
        assert_eq!(
            p["title"],
            json!({"type": "string", "minLength": 1, "maxLength": 200, "description": "Title."})
        );
        assert_eq!(
            p["body"],
            json!({"type": "string", "minLength": 1, "maxLength": 1000})
        );
        assert_eq!(p["tags"]["maxItems"], json!(20));
        assert_eq!(p["tags"]["items"]["maxLength"], json!(60));
        assert_eq!(p["few"]["maxItems"], json!(5));
        // Never below the minimum: the capped schema must stay satisfiable.
        assert_eq!(p["huge_min"]["maxLength"], json!(3000));
        assert_eq!(slim["required"], full["required"]);
        assert_eq!(slim["additionalProperties"], json!(false));
    }

    #[test]
    fn patterns_and_unknown_formats_go_but_property_names_stay() {
        let full = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Args",
            "type": "object",
            "properties": {
                // Properties named like keywords are data, not keywords.
                "pattern": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
                "title": {"type": "string", "title": "T", "examples": ["x"]},
                "format": {"type": "string", "format": "email"},
                "due": {"type": "string", "format": "date-time"},
                "day": {"type": "string", "format": "date"},
                "id": {"type": "string", "format": "uuid"},
                "set": {"type": "array", "uniqueItems": true, "items": {"type": "string"}},
                "when": {"anyOf": [
                    {"type": "string", "format": "uri", "maxLength": 9000},
                    {"type": "integer", "minimum": 0, "maximum": 10}
                ]}
            },
            "required": ["pattern"]
        });
        let slim = slim_schema(&full);
        assert_eq!(
            slim,
            json!({
                "type": "object",
                "properties": {
                    "pattern": {"type": "string"},
                    "title": {"type": "string"},
                    "format": {"type": "string"},
                    "due": {"type": "string", "format": "date-time"},
                    "day": {"type": "string", "format": "date"},
                    "id": {"type": "string", "format": "uuid"},
                    "set": {"type": "array", "items": {"type": "string"}},
                    "when": {"anyOf": [
                        {"type": "string", "maxLength": 1000},
                        {"type": "integer", "minimum": 0, "maximum": 10}
                    ]}
                },
                "required": ["pattern"]
            })
        );
    }

    #[test]
    fn nested_schemas_are_walked() {
        let full = json!({
            "type": "object",
            "$defs": {"Step": {"type": "object", "properties": {
                "note": {"type": "string", "maxLength": 50000, "pattern": "x"}}}},
            "properties": {
                "steps": {"type": "array", "items": {"$ref": "#/$defs/Step"}},
                "pair": {"type": "array", "prefixItems": [{"type": "string", "maxLength": 4000}]},
                "extra": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 3000}},
                "not_that": {"not": {"type": "string", "pattern": "y"}}
            },
            "enum_values_untouched": {"enum": [{"pattern": "kept", "maxLength": 99999}]}
        });
        let slim = slim_schema(&full);
        assert_eq!(
            slim["$defs"]["Step"]["properties"]["note"],
            json!({"type": "string", "maxLength": 1000})
        );
        let p = &slim["properties"];
        assert_eq!(p["pair"]["prefixItems"][0]["maxLength"], json!(1000));
        assert_eq!(p["extra"]["additionalProperties"]["maxLength"], json!(1000));
        assert_eq!(p["not_that"]["not"], json!({"type": "string"}));
        // Not a schema position: left exactly as it was.
        assert_eq!(slim["enum_values_untouched"], full["enum_values_untouched"]);
        // Non-objects pass through.
        assert_eq!(slim_schema(&json!(true)), json!(true));
    }
}
