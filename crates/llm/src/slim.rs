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

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

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

/// A tool's input schema as sent on the wire: always an object schema (`"type":
/// "object"` added when missing; a non-object becomes the empty object schema), slimmed
/// when `mode` is [`ToolSchema::Slim`]. Serialized straight from the tool's schema, with
/// no copy of it: a day's every request sends every tool.
pub(crate) fn wire_schema(schema: &Value, mode: ToolSchema) -> WireSchema<'_> {
    WireSchema { schema, mode }
}

/// See [`wire_schema`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct WireSchema<'a> {
    schema: &'a Value,
    mode: ToolSchema,
}

impl Serialize for WireSchema<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Value::Object(obj) = self.schema else {
            let mut map = s.serialize_map(Some(2))?;
            map.serialize_entry("type", "object")?;
            map.serialize_entry("properties", &Map::new())?;
            return map.end();
        };
        let slim = self.mode == ToolSchema::Slim;
        let mut map = s.serialize_map(None)?;
        for (key, value) in obj {
            if slim {
                slim_entry(&mut map, obj, key, value)?;
            } else {
                map.serialize_entry(key, value)?;
            }
        }
        if !obj.contains_key("type") {
            map.serialize_entry("type", "object")?;
        }
        map.end()
    }
}

/// The slim copy of `schema` (see the module rules).
pub fn slim_schema(schema: &Value) -> Value {
    // Serializing into a `Value` fails only for a map key that is not a string, and a
    // `Value`'s keys all are.
    serde_json::to_value(Slim(schema)).unwrap_or_else(|_| schema.clone())
}

/// A schema serialized with the slim rules.
struct Slim<'a>(&'a Value);

impl Serialize for Slim<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Value::Object(obj) = self.0 else {
            return self.0.serialize(s);
        };
        let mut map = s.serialize_map(None)?;
        for (key, value) in obj {
            slim_entry(&mut map, obj, key, value)?;
        }
        map.end()
    }
}

/// One keyword of the schema object `obj` under the slim rules: left out, capped, walked
/// into, or as it is.
fn slim_entry<M: SerializeMap>(
    map: &mut M,
    obj: &Map<String, Value>,
    key: &str,
    value: &Value,
) -> Result<(), M::Error> {
    let key_is = |keys: &[&str]| keys.contains(&key);
    if key_is(DROPPED) {
        return Ok(());
    }
    match (key, value) {
        ("format", f) if !f.as_str().is_some_and(|f| KEPT_FORMATS.contains(&f)) => Ok(()),
        ("maxLength", max) => cap_entry(map, key, max, obj.get("minLength"), MAX_STRING_LENGTH),
        ("maxItems", max) => cap_entry(map, key, max, obj.get("minItems"), MAX_ITEMS),
        // A list under `items` is the draft-7 tuple form.
        (_, Value::Array(subs)) if key_is(ONE_SCHEMA) || key_is(SCHEMA_LISTS) => {
            map.serialize_entry(key, &SlimList(subs))
        }
        (_, sub) if key_is(ONE_SCHEMA) => map.serialize_entry(key, &Slim(sub)),
        (_, Value::Object(subs)) if key_is(SCHEMA_MAPS) => map.serialize_entry(key, &SlimMap(subs)),
        _ => map.serialize_entry(key, value),
    }
}

/// `max` capped at `limit`, but not below `min`; a bound that is not a whole number
/// stays as it is.
fn cap_entry<M: SerializeMap>(
    map: &mut M,
    key: &str,
    max: &Value,
    min: Option<&Value>,
    limit: u64,
) -> Result<(), M::Error> {
    let Some(bound) = max.as_u64() else {
        return map.serialize_entry(key, max);
    };
    let min = min.and_then(Value::as_u64).unwrap_or(0);
    map.serialize_entry(key, &bound.min(limit.max(min)))
}

/// A list of subschemas, each slimmed.
struct SlimList<'a>(&'a [Value]);

impl Serialize for SlimList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(Slim))
    }
}

/// Named subschemas, each slimmed (the names are data and stay).
struct SlimMap<'a>(&'a Map<String, Value>);

impl Serialize for SlimMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(name, sub)| (name, Slim(sub))))
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

    #[test]
    fn wire_schemas_are_object_schemas_in_both_modes() {
        let wire = |schema: &Value, mode| serde_json::to_value(wire_schema(schema, mode)).unwrap();
        let untyped = json!({"properties": {"q": {"type": "string", "maxLength": 5000}}});
        assert_eq!(
            wire(&untyped, ToolSchema::Full),
            json!({"type": "object", "properties": {"q": {"type": "string", "maxLength": 5000}}})
        );
        assert_eq!(
            wire(&untyped, ToolSchema::Slim),
            json!({"type": "object", "properties": {"q": {"type": "string", "maxLength": 1000}}})
        );
        for mode in [ToolSchema::Full, ToolSchema::Slim] {
            assert_eq!(
                wire(&json!(true), mode),
                json!({"type": "object", "properties": {}})
            );
        }
        // A schema's own type is kept, and its keywords keep their order on the wire.
        let typed =
            json!({"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}});
        assert_eq!(wire(&typed, ToolSchema::Full), typed);
        assert_eq!(
            serde_json::to_string(&wire_schema(&typed, ToolSchema::Slim)).unwrap(),
            typed.to_string()
        );
    }
}
