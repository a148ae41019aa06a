//! Text Postgres cannot store, refused at the edge instead of failing in the database.
//!
//! Rules:
//! - The one character valid UTF-8 text may hold and Postgres may not is NUL (U+0000):
//!   `text` rejects it (22021) and `jsonb` rejects the `\u0000` escape (22P05). Every
//!   other JSON string reaches the store unharmed (serde_json already refuses lone
//!   surrogates and raw control characters).
//! - JSON bodies: [`find_nul`] walks a parsed value (keys and strings) and names the
//!   first offending place as a JSON path (`personas[2].name`); the [`crate::Json`]
//!   extractor answers 422 `validation_failed` with it.
//! - Path and query parameters: [`reject_nul_in_uri`] (middleware) answers 422
//!   `validation_failed` naming the query key, or the path parameter by its name in the
//!   registered [`RouteTemplates`] (else its position), before any handler runs.
//! - Form bodies (`application/x-www-form-urlencoded`): [`parse_form`] refuses a field
//!   whose name or decoded value holds NUL before deserializing, as [`FormError::Nul`]
//!   naming the field; each caller answers it in its own shape (OAuth `invalid_request`,
//!   an HTML 400 page). [`StorableFields`] is the same check for `web::Form` maps.
//! - Checks are cheap when nothing is wrong: bodies are walked only when their bytes hold
//!   a `\u0000` escape (JSON) or a raw 0 byte or `%00` (forms), URIs are scanned once
//!   for `%00`.

use actix_web::{
    body::{EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::StatusCode,
    middleware::Next,
    web,
};
use std::collections::HashMap;

use serde::{Deserialize, Deserializer, de::DeserializeOwned};
use serde_json::Value;
use types::error::codes;

use crate::errors::json_error;

/// The message part that says what is wrong and how to fix it.
pub const NUL_MESSAGE: &str =
    "contains a NUL character (\\u0000), which cannot be stored; remove it and send again";

/// Whether `s` holds a character Postgres cannot store.
pub fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

/// Whether raw JSON bytes may hold a NUL (the only way is the `\u0000` escape, since
/// raw control characters are invalid JSON). False positives (an escaped backslash
/// before `u0000`) are settled by [`find_nul`].
pub fn may_hold_nul(json: &[u8]) -> bool {
    json.windows(6).any(|w| w == b"\\u0000")
}

/// The JSON path of the first key or string holding a NUL, under `root` (e.g. `""` for
/// a body, `"arguments"` for tool arguments). `None` when everything is storable.
pub fn find_nul(value: &Value, root: &str) -> Option<String> {
    fn walk(v: &Value, path: &mut String) -> bool {
        match v {
            Value::String(s) => has_nul(s),
            Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let found = walk(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            Value::Object(map) => map.iter().any(|(k, item)| {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&k.replace('\0', "\\u0000"));
                let found = has_nul(k) || walk(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            Value::Null | Value::Bool(_) | Value::Number(_) => false,
        }
    }
    let mut path = root.to_owned();
    walk(value, &mut path).then(|| {
        if path.is_empty() {
            ".".to_owned()
        } else {
            path
        }
    })
}

/// The JSON path of the first key or string holding a NUL in raw JSON bytes (`None`
/// when everything is storable or the bytes are not JSON, which the parser reports).
pub fn find_nul_in_json(bytes: &[u8]) -> Option<String> {
    if !may_hold_nul(bytes) {
        return None;
    }
    let value = serde_json::from_slice::<Value>(bytes).ok()?;
    find_nul(&value, "")
}

/// Whether a form-encoded body (or query string) may hold a NUL: a raw 0 byte or the
/// `%00` escape. Percent-decoding is one pass and `%` is no hex digit, so every `%00`
/// decodes to NUL: the check has no false positives either.
pub fn form_may_hold_nul(body: &[u8]) -> bool {
    body.contains(&0) || body.windows(3).any(|w| w == b"%00")
}

/// The name of the first field of a form-encoded body whose name or decoded value
/// holds a NUL (`None` when everything is storable).
pub fn find_nul_in_form(body: &[u8]) -> Option<String> {
    if !form_may_hold_nul(body) {
        return None;
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    pairs
        .into_iter()
        .find(|(k, v)| has_nul(k) || has_nul(v))
        .map(|(k, _)| k.replace('\0', "\\u0000"))
}

/// Why a form body was refused by [`parse_form`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// A field's name or value holds NUL; `field` names it.
    #[error("`{field}` {NUL_MESSAGE}")]
    Nul { field: String },
    /// Not a form of the expected fields.
    #[error("malformed form body: {0}")]
    Malformed(String),
}

/// Decode a form-encoded body into `T`, refusing NUL first (see the module rules).
pub fn parse_form<T: DeserializeOwned>(body: &[u8]) -> Result<T, FormError> {
    if let Some(field) = find_nul_in_form(body) {
        return Err(FormError::Nul { field });
    }
    serde_urlencoded::from_bytes(body).map_err(|e| FormError::Malformed(e.to_string()))
}

/// A form's fields by name, refused while deserializing when one holds NUL: the body
/// type of `web::Form<StorableFields>`, whose `FormConfig` error handler then sees a
/// parse error naming the field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorableFields(pub HashMap<String, String>);

impl std::ops::Deref for StorableFields {
    type Target = HashMap<String, String>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'de> Deserialize<'de> for StorableFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = HashMap::<String, String>::deserialize(deserializer)?;
        let mut bad: Vec<&String> = fields
            .iter()
            .filter(|(k, v)| has_nul(k) || has_nul(v))
            .map(|(k, _)| k)
            .collect();
        bad.sort();
        match bad.first() {
            Some(field) => Err(serde::de::Error::custom(format!(
                "`{}` {NUL_MESSAGE}",
                field.replace('\0', "\\u0000")
            ))),
            None => Ok(Self(fields)),
        }
    }
}

/// The path templates of the routes (`/api/v1/missions/{id}/…`), registered with
/// `app_data` so [`reject_nul_in_uri`] can name a path parameter.
#[derive(Debug, Clone)]
pub struct RouteTemplates(std::sync::Arc<Vec<String>>);

impl RouteTemplates {
    /// Templates in the OpenAPI form (`{name}` for a parameter).
    pub fn new(templates: Vec<String>) -> Self {
        Self(std::sync::Arc::new(templates))
    }
}

/// The name of the parameter at segment `index` of `path`, from the first template
/// whose literal segments match.
fn param_name(templates: &[String], path: &str, index: usize) -> Option<String> {
    let segments: Vec<&str> = path.split('/').collect();
    templates.iter().find_map(|template| {
        let t: Vec<&str> = template.split('/').collect();
        if t.len() != segments.len() {
            return None;
        }
        let literal_match = t
            .iter()
            .zip(&segments)
            .all(|(t, s)| t.starts_with('{') || t == s);
        let name = t.get(index)?;
        (literal_match && name.starts_with('{'))
            .then(|| name.trim_matches(|c| c == '{' || c == '}').to_owned())
    })
}

/// Where the URI of a request holds an encoded NUL (`%00`): the query key or the path
/// parameter, for the message.
pub fn nul_in_uri(templates: &[String], path: &str, query: &str) -> Option<String> {
    let nul = |s: &str| s.as_bytes().windows(3).any(|w| w == b"%00");
    if nul(query) {
        let key = query
            .split('&')
            .find(|pair| nul(pair))
            .map(|pair| pair.split('=').next().unwrap_or_default())
            .unwrap_or_default();
        return Some(if nul(key) || key.is_empty() {
            "a query parameter name".to_owned()
        } else {
            format!("query parameter `{key}`")
        });
    }
    if nul(path) {
        let index = path.split('/').position(nul).unwrap_or_default();
        return Some(match param_name(templates, path, index) {
            Some(name) => format!("path parameter `{name}`"),
            None => format!("path segment {index}"),
        });
    }
    None
}

/// Middleware (`from_fn`): refuse a request whose path or query holds `%00`; see the
/// module rules.
pub async fn reject_nul_in_uri(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let templates = req
        .app_data::<RouteTemplates>()
        .or_else(|| {
            req.app_data::<web::Data<RouteTemplates>>()
                .map(|d| d.get_ref())
        })
        .map(|t| t.0.clone())
        .unwrap_or_default();
    let uri = req.uri();
    if let Some(place) = nul_in_uri(&templates, uri.path(), uri.query().unwrap_or_default()) {
        let resp = json_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            codes::VALIDATION_FAILED,
            format!("{place} {NUL_MESSAGE}"),
        );
        return Ok(req.into_response(resp).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

#[cfg(test)]
mod tests {

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn finds_the_path_of_a_nul() {
        let v = json!({"a": [1, {"b": "ok"}, {"c": "x\u{0}y"}], "z": "fine"});
        assert_eq!(find_nul(&v, "").as_deref(), Some("a[2].c"));
        assert_eq!(
            find_nul(&json!({"k\u{0}": 1}), "arguments").as_deref(),
            Some("arguments.k\\u0000")
        );
        assert_eq!(find_nul(&json!("\u{0}"), "").as_deref(), Some("."));
        assert_eq!(find_nul(&json!({"a": ["b", "c"]}), ""), None);
    }

    #[test]
    fn uri_checks_name_the_parameter() {
        let routes = &["/api/v1/missions/{id}/iterations/{iterationId}".to_owned()];
        assert_eq!(
            nul_in_uri(routes, "/api/v1/missions/a%00b/iterations/x", "").as_deref(),
            Some("path parameter `id`")
        );
        assert_eq!(
            nul_in_uri(routes, "/api/v1/missions/a/iterations/%00", "").as_deref(),
            Some("path parameter `iterationId`")
        );
        assert_eq!(
            nul_in_uri(routes, "/x/%00", "").as_deref(),
            Some("path segment 2")
        );
        assert_eq!(
            nul_in_uri(routes, "/x", "limit=1&since=%00").as_deref(),
            Some("query parameter `since`")
        );
        assert_eq!(nul_in_uri(routes, "/x/%2500", "a=%2500"), None);
    }

    #[test]
    fn form_checks_name_the_field() {
        assert_eq!(
            find_nul_in_form(b"grant_type=x&client_id=a%00b").as_deref(),
            Some("client_id")
        );
        assert_eq!(
            find_nul_in_form(b"a=1&email=x\0y").as_deref(),
            Some("email")
        );
        assert_eq!(find_nul_in_form(b"k%00=1").as_deref(), Some("k\\u0000"));
        assert_eq!(find_nul_in_form(b"a=%2500&b=%%30"), None);
        assert_eq!(find_nul_in_form(b"a=plain+text"), None);
        #[derive(serde::Deserialize, Debug)]
        struct F {
            email: Option<String>,
        }
        assert_eq!(
            parse_form::<F>(b"email=a%00b").unwrap_err(),
            FormError::Nul {
                field: "email".into()
            }
        );
        assert_eq!(
            parse_form::<F>(b"email=a%40b").unwrap().email.as_deref(),
            Some("a@b")
        );
        let fields: Result<StorableFields, _> = serde_urlencoded::from_bytes(b"next=%2F&email=%00");
        assert!(fields.unwrap_err().to_string().contains("`email`"));
        let fields: StorableFields = serde_urlencoded::from_bytes(b"next=%2F").unwrap();
        assert_eq!(fields.get("next").map(String::as_str), Some("/"));
    }

    #[test]
    fn json_bytes_check_names_the_path() {
        assert_eq!(
            find_nul_in_json(br#"{"redirect_uris":["a\u0000"]}"#).as_deref(),
            Some("redirect_uris[0]")
        );
        assert_eq!(find_nul_in_json(br#"{"a":"\\u0000"}"#), None);
        assert_eq!(find_nul_in_json(b"not json \\u0000"), None);
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "\\PC{0,8}".prop_map(Value::String),
            "[a\u{0}b]{0,4}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map("[a-z\u{0}]{0,4}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn contains_nul(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(a) => a.iter().any(contains_nul),
            Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
            _ => false,
        }
    }

    proptest! {
        /// The walker finds a NUL exactly when there is one, and the byte pre-check
        /// never misses one.
        /// The JSON extractor's core refuses exactly the bodies holding a NUL, as 422
        /// naming a path, and otherwise parses as plain serde_json does.
        #[test]
        fn the_json_extractor_refuses_nul_and_nothing_else(v in json_value()) {
            let bytes = serde_json::to_vec(&v).unwrap();
            match crate::json::parse_json::<Value>(&bytes) {
                Ok(parsed) => {
                    prop_assert!(!contains_nul(&v));
                    prop_assert_eq!(parsed, v);
                }
                Err(e) => {
                    prop_assert!(contains_nul(&v));
                    prop_assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
                    prop_assert_eq!(e.code, codes::VALIDATION_FAILED);
                    prop_assert!(e.message.contains('`') && e.message.contains("NUL"));
                }
            }
        }

        /// The form check refuses exactly the forms holding a NUL somewhere.
        #[test]
        fn the_form_check_refuses_nul_and_nothing_else(
            pairs in prop::collection::vec(("[a-z\u{0}]{0,4}", "\\PC{0,6}|[a\u{0}%+&=]{0,4}"), 0..5)
        ) {
            let body = serde_urlencoded::to_string(&pairs).unwrap();
            let nul = pairs.iter().any(|(k, v)| k.contains('\0') || v.contains('\0'));
            prop_assert_eq!(find_nul_in_form(body.as_bytes()).is_some(), nul);
            let parsed = parse_form::<Vec<(String, String)>>(body.as_bytes());
            prop_assert_eq!(parsed.is_err(), nul);
        }

        #[test]
        fn walker_agrees_with_the_value(v in json_value()) {
            let bytes = serde_json::to_vec(&v).unwrap();
            let found = find_nul(&v, "");
            prop_assert_eq!(found.is_some(), contains_nul(&v));
            if contains_nul(&v) {
                prop_assert!(may_hold_nul(&bytes));
            }
        }
    }
}
