//! Input schemas: derived with `schemars`, tidied into the shape LLM tool APIs accept, and
//! validated with `jsonschema`.
//!
//! Rules for every tool's input schema:
//! - self-contained: subschemas are inlined, no `$ref`, no `$schema`, no root `title`;
//! - the root is `{"type":"object","properties":{…},"required":[…],"additionalProperties":false}`;
//! - optional properties are not nullable: omit a field instead of sending `null`;
//! - no non-standard `format`s (schemars' `uint32`, `double` …); `date`, `date-time`, `email`
//!   stay and are validated.
//!
//! Validation errors name the offending field by JSON pointer and never echo long values.

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

/// Formats schemars emits for Rust number types; not JSON Schema formats.
const NUMERIC_FORMATS: &[&str] = &[
    "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64",
    "float", "double",
];

/// Values whose JSON text is longer than this are shown as `value` in error messages.
const MAX_ECHO_CHARS: usize = 64;

/// At most this many validation errors are reported for one call.
const MAX_ERRORS: usize = 10;

/// The tidied input schema of `T`.
pub(crate) fn input_schema<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();
    let mut value = generator.into_root_schema_for::<T>().to_value();
    tidy(&mut value);
    if let Value::Object(root) = &mut value {
        // The tool's description says what the tool does; the args struct's doc is for readers.
        root.remove("title");
        root.remove("description");
        root.remove("$schema");
        root.insert("type".to_owned(), Value::from("object"));
        root.entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        root.entry("required")
            .or_insert_with(|| Value::Array(Vec::new()));
        root.insert("additionalProperties".to_owned(), Value::Bool(false));
    }
    value
}

/// Recursively drops non-standard formats and the `null` alternative of optional properties.
fn tidy(schema: &mut Value) {
    let Value::Object(obj) = schema else { return };
    if obj
        .get("format")
        .and_then(Value::as_str)
        .is_some_and(|f| NUMERIC_FORMATS.contains(&f))
    {
        obj.remove("format");
    }
    let required: Vec<String> = obj
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if let Some(Value::Object(props)) = obj.get_mut("properties") {
        for (name, prop) in props.iter_mut() {
            if !required.contains(name) {
                strip_null(prop);
            }
            tidy(prop);
        }
    }
    for key in [
        "items",
        "additionalProperties",
        "not",
        "if",
        "then",
        "else",
        "contains",
    ] {
        if let Some(sub) = obj.get_mut(key) {
            tidy(sub);
        }
    }
    for key in ["oneOf", "anyOf", "allOf", "prefixItems"] {
        if let Some(Value::Array(subs)) = obj.get_mut(key) {
            subs.iter_mut().for_each(tidy);
        }
    }
    if let Some(Value::Object(defs)) = obj.get_mut("$defs") {
        defs.values_mut().for_each(tidy);
    }
}

/// `Option<T>` derives as "T or null"; we want "T, or leave the property out".
fn strip_null(prop: &mut Value) {
    let Value::Object(obj) = prop else { return };
    if let Some(Value::Array(types)) = obj.get_mut("type") {
        types.retain(|t| t != "null");
        if let [only] = types.as_slice() {
            let only = only.clone();
            obj.insert("type".to_owned(), only);
        }
    }
    if let Some(Value::Array(options)) = obj.get_mut("enum") {
        options.retain(|o| !o.is_null());
    }
    if obj.get("default").is_some_and(Value::is_null) {
        obj.remove("default");
    }
    for key in ["anyOf", "oneOf"] {
        let Some(Value::Array(alts)) = obj.get_mut(key) else {
            continue;
        };
        alts.retain(|a| a.get("type").and_then(Value::as_str) != Some("null"));
        if alts.len() == 1 {
            let Some(Value::Object(single)) = alts.pop() else {
                continue;
            };
            obj.remove(key);
            for (k, v) in single {
                // The property's own description wins over the type's.
                obj.entry(k).or_insert(v);
            }
        }
    }
}

/// Compiles a tool's input schema (draft 2020-12, formats asserted).
pub(crate) fn compile(schema: &Value) -> Result<Validator, String> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| e.to_string())
}

/// `None` when `instance` is valid, else one line per error (`/path: message`), `; `-joined.
pub(crate) fn check(validator: &Validator, instance: &Value) -> Option<String> {
    let mut lines = Vec::new();
    for error in validator.iter_errors(instance) {
        describe(&error, &mut lines);
    }
    if lines.is_empty() {
        return None;
    }
    lines.dedup();
    let extra = lines.len().saturating_sub(MAX_ERRORS);
    lines.truncate(MAX_ERRORS);
    if extra > 0 {
        lines.push(format!("… and {extra} more"));
    }
    Some(lines.join("; "))
}

fn describe(error: &ValidationError<'_>, out: &mut Vec<String>) {
    let path = error.instance_path().as_str().to_owned();
    if let ValidationErrorKind::OneOfNotValid { context } = error.kind() {
        // A tagged union (e.g. a cadence): explain the branch whose tag matched, or list the tags.
        // A branch matched when its tag constant held and the tag was present: a property every
        // branch reports as missing is the tag.
        let missing_everywhere: Vec<String> = context
            .first()
            .map(|first| {
                first
                    .iter()
                    .filter_map(missing_property)
                    .filter(|p| {
                        context
                            .iter()
                            .all(|b| b.iter().filter_map(missing_property).any(|q| &q == p))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !missing_everywhere.is_empty() {
            for property in missing_everywhere {
                out.push(line(&path, &format!("{property} is a required property")));
            }
            return;
        }
        let matched = context.iter().find(|branch| {
            !branch
                .iter()
                .any(|e| matches!(e.kind(), ValidationErrorKind::Constant { .. }))
        });
        if let Some(branch) = matched {
            branch.iter().for_each(|e| describe(e, out));
            return;
        }
        let constants: Vec<&ValidationError<'static>> = context
            .iter()
            .flatten()
            .filter(|e| matches!(e.kind(), ValidationErrorKind::Constant { .. }))
            .collect();
        let tags: Vec<String> = constants
            .iter()
            .filter_map(|e| match e.kind() {
                ValidationErrorKind::Constant { expected_value } => {
                    Some(expected_value.to_string())
                }
                _ => None,
            })
            .collect();
        let tag_path = constants
            .first()
            .map_or_else(|| path.clone(), |e| e.instance_path().as_str().to_owned());
        if tags.is_empty() {
            out.push(line(&path, &error.masked().to_string()));
        } else {
            out.push(line(
                &tag_path,
                &format!("must be one of {}", tags.join(", ")),
            ));
        }
        return;
    }
    let short = serde_json::to_string(error.instance().as_ref())
        .is_ok_and(|s| s.chars().count() <= MAX_ECHO_CHARS);
    let message = if short {
        error.to_string()
    } else {
        error.masked().to_string()
    };
    out.push(line(&path, &message));
}

/// The property a `required` error names, as JSON text (`"kind"`).
fn missing_property(error: &ValidationError<'_>) -> Option<String> {
    match error.kind() {
        ValidationErrorKind::Required { property } => Some(property.to_string()),
        _ => None,
    }
}

fn line(path: &str, message: &str) -> String {
    if path.is_empty() {
        message.to_owned()
    } else {
        format!("{path}: {message}")
    }
}
