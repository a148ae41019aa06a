//! Fills a JSON schema with plausible values (the sim provider's tool arguments).
//!
//! Rules:
//! - Required properties are always present; optional ones sometimes; optional id-like
//!   properties never (a made-up `parentId` only produces "not found" errors).
//! - Constraints are honoured: `enum`/`const`, `minimum`/`maximum` (and exclusive forms),
//!   `multipleOf` for integers, `minLength`/`maxLength`, `minItems`/`maxItems`,
//!   `uniqueItems`, `format` (`date`, `date-time`, `time`, `email`, `uri`, `uuid`).
//!   `$ref` into the same document (`#/$defs/…`, `#/definitions/…`), `anyOf`/`oneOf`
//!   (a non-null branch) and `allOf` (merged) are followed. `pattern` is only recognised
//!   for a few common shapes (dates, times, hex colours).
//! - Strings are chosen by property name (title, content, email, …) in the persona's
//!   language; id-like properties reuse ids seen in earlier tool results.
//! - Recursion is bounded, so self-referential schemas terminate.

use chrono::{DateTime, Datelike, Duration, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::rng::SimRng;
use super::words::{self, Bank, Lang};

const MAX_DEPTH: usize = 8;

/// Everything the filler needs besides the schema itself.
pub(crate) struct Filler<'a> {
    pub(crate) rng: &'a mut SimRng,
    /// The document `$ref`s point into.
    pub(crate) root: &'a Value,
    pub(crate) lang: Lang,
    /// The tool's module, which decides what a "title" or "name" is.
    pub(crate) module: Option<&'a str>,
    pub(crate) now: DateTime<Utc>,
    /// Ids from earlier tool results, best candidates first.
    pub(crate) known_ids: &'a [String],
}

impl<'a> Filler<'a> {
    /// An arguments object for the root schema (always a JSON object).
    pub(crate) fn fill_arguments(&mut self) -> Value {
        let root = self.root;
        match self.fill(root, None, 0) {
            v @ Value::Object(_) => v,
            _ => json!({}),
        }
    }

    fn fill(&mut self, schema: &Value, name: Option<&str>, depth: usize) -> Value {
        if depth > MAX_DEPTH {
            return Value::Null;
        }
        let Some(obj) = schema.as_object() else {
            // `true` (anything goes) or junk: a string is as good as anything.
            return Value::String(self.string_by_name(name));
        };
        if let Some(target) = obj
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| self.resolve_ref(r))
        {
            return self.fill(target, name, depth + 1);
        }
        if let Some(c) = obj.get("const") {
            return c.clone();
        }
        if let Some(options) = obj.get("enum").and_then(Value::as_array) {
            let non_null: Vec<&Value> = options.iter().filter(|v| !v.is_null()).collect();
            return self
                .rng
                .pick(&non_null)
                .map(|v| (*v).clone())
                .or_else(|| options.first().cloned())
                .unwrap_or(Value::Null);
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(alts) = obj.get(key).and_then(Value::as_array) {
                let non_null: Vec<&Value> =
                    alts.iter().filter(|a| !self.is_null_schema(a)).collect();
                if let Some(alt) = self.rng.pick(&non_null) {
                    return self.fill(alt, name, depth + 1);
                }
                if !alts.is_empty() {
                    return Value::Null;
                }
            }
        }
        if let Some(all) = obj.get("allOf").and_then(Value::as_array) {
            let merged = self.merge_all_of(obj, all);
            return self.fill(&merged, name, depth + 1);
        }
        match self.type_of(obj).as_str() {
            "object" => self.fill_object(obj, depth),
            "array" => self.fill_array(obj, name, depth),
            "integer" => self.fill_integer(obj, name),
            "number" => self.fill_number(obj, name),
            "boolean" => Value::Bool(self.rng.chance(0.5)),
            "null" => Value::Null,
            _ => Value::String(self.fill_string(obj, name)),
        }
    }

    /// The target of a same-document `$ref`; borrowed from the root, not from `self`.
    fn resolve_ref(&self, reference: &str) -> Option<&'a Value> {
        let root: &'a Value = self.root;
        let pointer = reference.strip_prefix('#')?;
        if pointer.is_empty() {
            Some(root)
        } else {
            root.pointer(pointer)
        }
    }

    fn is_null_schema(&self, schema: &Value) -> bool {
        let target = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| self.resolve_ref(r))
            .unwrap_or(schema);
        target.get("type").and_then(Value::as_str) == Some("null")
            || target.get("const").is_some_and(Value::is_null)
    }

    fn merge_all_of(&self, obj: &Map<String, Value>, all: &[Value]) -> Value {
        let mut merged = obj.clone();
        merged.remove("allOf");
        let mut properties = merged
            .remove("properties")
            .and_then(|p| p.as_object().cloned())
            .unwrap_or_default();
        let mut required: Vec<Value> = merged
            .remove("required")
            .and_then(|r| r.as_array().cloned())
            .unwrap_or_default();
        for part in all {
            let part = part
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| self.resolve_ref(r))
                .unwrap_or(part);
            let Some(part) = part.as_object() else {
                continue;
            };
            for (k, v) in part {
                match k.as_str() {
                    "properties" => {
                        if let Some(p) = v.as_object() {
                            properties.extend(p.clone());
                        }
                    }
                    "required" => {
                        if let Some(r) = v.as_array() {
                            required.extend(r.iter().cloned());
                        }
                    }
                    _ => {
                        merged.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
            }
        }
        if !properties.is_empty() {
            merged.insert("properties".into(), Value::Object(properties));
        }
        if !required.is_empty() {
            merged.insert("required".into(), Value::Array(required));
        }
        Value::Object(merged)
    }

    fn type_of(&mut self, obj: &Map<String, Value>) -> String {
        match obj.get("type") {
            Some(Value::String(t)) => return t.clone(),
            Some(Value::Array(types)) => {
                let non_null: Vec<&str> = types
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|t| *t != "null")
                    .collect();
                if let Some(t) = non_null.first() {
                    return (*t).to_string();
                }
                return "null".into();
            }
            _ => {}
        }
        let has = |k: &str| obj.contains_key(k);
        if has("properties") || has("required") || has("additionalProperties") {
            "object".into()
        } else if has("items") || has("prefixItems") || has("minItems") {
            "array".into()
        } else if has("minimum") || has("maximum") || has("multipleOf") {
            "number".into()
        } else {
            "string".into()
        }
    }

    fn fill_object(&mut self, obj: &Map<String, Value>, depth: usize) -> Value {
        let empty = Map::new();
        let properties = obj
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let required: Vec<&str> = obj
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut out = Map::new();
        for (prop, sub) in properties {
            let is_required = required.contains(&prop.as_str());
            let include = if is_required {
                true
            } else if is_id_like(prop) {
                false
            } else {
                self.rng.chance(0.35)
            };
            if !include {
                continue;
            }
            let value = if is_id_like(prop) && self.accepts_id(sub) {
                Value::String(self.id())
            } else {
                self.fill(sub, Some(prop), depth + 1)
            };
            out.insert(prop.clone(), value);
        }
        // Required names without a property schema still get a value.
        for prop in required {
            if !out.contains_key(prop) {
                let value = if is_id_like(prop) {
                    self.id()
                } else {
                    self.string_by_name(Some(prop))
                };
                out.insert(prop.to_string(), Value::String(value));
            }
        }
        Value::Object(out)
    }

    /// Whether an id-like property takes a free string (not an enum, number, …).
    fn accepts_id(&self, sub: &Value) -> bool {
        let target = sub
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| self.resolve_ref(r))
            .unwrap_or(sub);
        let Some(obj) = target.as_object() else {
            return true;
        };
        if obj.contains_key("enum") || obj.contains_key("const") {
            return false;
        }
        match obj.get("type") {
            None => true,
            Some(Value::String(t)) => t == "string",
            Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
            Some(_) => false,
        }
    }

    fn id(&mut self) -> String {
        // Mostly the best candidate; sometimes one of the next two.
        let top = &self.known_ids[..self.known_ids.len().min(3)];
        let choice = if self.rng.chance(0.7) {
            top.first()
        } else {
            self.rng.pick(top)
        };
        match choice {
            Some(id) => id.clone(),
            None => self.rng.uuid().to_string(),
        }
    }

    fn fill_array(&mut self, obj: &Map<String, Value>, name: Option<&str>, depth: usize) -> Value {
        let tuple = obj
            .get("prefixItems")
            .or_else(|| obj.get("items").filter(|i| i.is_array()))
            .and_then(Value::as_array);
        if let Some(tuple) = tuple {
            return Value::Array(
                tuple
                    .iter()
                    .map(|s| self.fill(s, name, depth + 1))
                    .collect(),
            );
        }
        let min = obj.get("minItems").and_then(Value::as_u64).unwrap_or(0);
        let max = obj
            .get("maxItems")
            .and_then(Value::as_u64)
            .unwrap_or(2)
            .min(2)
            .max(min);
        let count = usize::try_from(min + self.rng.below(max - min + 1)).unwrap_or(0);
        let items = obj.get("items").cloned().unwrap_or_else(|| json!({}));
        let unique = obj.get("uniqueItems").and_then(Value::as_bool) == Some(true);
        let mut out: Vec<Value> = Vec::new();
        // Bounded retries: an enum with fewer values than `count` cannot be unique.
        for _ in 0..count.saturating_mul(4) {
            if out.len() >= count {
                break;
            }
            let v = self.fill(&items, name, depth + 1);
            if !unique || !out.contains(&v) {
                out.push(v);
            }
        }
        Value::Array(out)
    }

    fn bounds(&self, obj: &Map<String, Value>) -> (Option<f64>, bool, Option<f64>, bool) {
        let num = |k: &str| obj.get(k).and_then(Value::as_f64).filter(|v| v.is_finite());
        let flag = |k: &str| obj.get(k).and_then(Value::as_bool) == Some(true);
        // Draft 6+: exclusiveMinimum is a number; draft 4: a flag on minimum.
        let (lo, lo_ex) = match num("exclusiveMinimum") {
            Some(v) => (Some(v), true),
            None => (num("minimum"), flag("exclusiveMinimum")),
        };
        let (hi, hi_ex) = match num("exclusiveMaximum") {
            Some(v) => (Some(v), true),
            None => (num("maximum"), flag("exclusiveMaximum")),
        };
        (lo, lo_ex, hi, hi_ex)
    }

    fn fill_integer(&mut self, obj: &Map<String, Value>, name: Option<&str>) -> Value {
        let (lo, lo_ex, hi, hi_ex) = self.bounds(obj);
        let lo = lo.map(|v| if lo_ex { v.floor() + 1.0 } else { v.ceil() });
        let hi = hi.map(|v| if hi_ex { v.ceil() - 1.0 } else { v.floor() });
        let (dlo, dhi) = default_range(name, self.now);
        let (clo, chi) = combine(lo, hi, dlo as f64, dhi as f64, 10.0);
        let mut v = self.rng.range_i64(clo as i64, chi as i64);
        if let Some(m) = obj
            .get("multipleOf")
            .and_then(Value::as_i64)
            .filter(|m| *m > 0)
        {
            // Snap to a multiple inside the schema's own bounds (the name-based default
            // range may hold no multiple at all).
            let fits =
                |x: i64| lo.is_none_or(|l| x as f64 >= l) && hi.is_none_or(|h| x as f64 <= h);
            let down = v.div_euclid(m).saturating_mul(m);
            let up = down.saturating_add(m);
            v = [down, up].into_iter().find(|x| fits(*x)).unwrap_or(v);
        }
        json!(v)
    }

    fn fill_number(&mut self, obj: &Map<String, Value>, name: Option<&str>) -> Value {
        let (lo, lo_ex, hi, hi_ex) = self.bounds(obj);
        let (dlo, dhi) = default_range(name, self.now);
        let (mut lo_v, mut hi_v) = combine(lo, hi, dlo as f64, dhi as f64, 10.0);
        let span = hi_v - lo_v;
        let nudge = (span * 0.01).min(0.1);
        if lo_ex && lo.is_some_and(|l| l >= lo_v) {
            lo_v += nudge;
        }
        if hi_ex && hi.is_some_and(|h| h <= hi_v) {
            hi_v -= nudge;
        }
        let raw = lo_v + self.rng.unit() * (hi_v - lo_v).max(0.0);
        let rounded = (raw * 10.0).round() / 10.0;
        let v = if rounded >= lo_v && rounded <= hi_v {
            rounded
        } else {
            raw
        };
        json!(v)
    }

    fn fill_string(&mut self, obj: &Map<String, Value>, name: Option<&str>) -> String {
        let format = obj.get("format").and_then(Value::as_str);
        let pattern = obj.get("pattern").and_then(Value::as_str).unwrap_or("");
        let mut s = match format {
            Some("date") => self.date(),
            Some("date-time") => self.date_time(),
            Some("time") => self.time(),
            Some("email" | "idn-email") => self.email(),
            Some("uri" | "url" | "iri" | "uri-reference" | "iri-reference") => self.url(),
            Some("uuid") => self.id(),
            Some("hostname" | "idn-hostname") => "example.com".into(),
            Some("ipv4") => "192.0.2.10".into(),
            Some("ipv6") => "2001:db8::10".into(),
            _ if pattern.contains(r"\d{4}-\d{2}-\d{2}") && pattern.contains('T') => {
                self.date_time()
            }
            _ if pattern.contains(r"\d{4}-\d{2}-\d{2}") => self.date(),
            _ if pattern.contains("a-fA-F]{6}") || pattern.contains("a-f]{6}") => self.color(),
            _ if pattern.contains(r"\d{2}:") || pattern.contains(":[0-5]") => {
                format!(
                    "{:02}:{:02}",
                    self.rng.range_i64(7, 20),
                    15 * self.rng.range_i64(0, 3)
                )
            }
            _ => self.string_by_name(name),
        };
        let min = obj
            .get("minLength")
            .and_then(Value::as_u64)
            .and_then(|v| usize::try_from(v).ok())
            .unwrap_or(0);
        let max = obj
            .get("maxLength")
            .and_then(Value::as_u64)
            .and_then(|v| usize::try_from(v).ok());
        let mut guard = 0;
        while s.chars().count() < min && guard < 1000 {
            guard += 1;
            let word = self.word(&words::WORDS);
            s.push(' ');
            s.push_str(word);
        }
        if let Some(max) = max
            && s.chars().count() > max
        {
            s = s.chars().take(max).collect::<String>();
            // Trailing spaces look sloppy, but never drop below minLength for them.
            while s.ends_with(' ') && s.chars().count() > min {
                s.pop();
            }
        }
        s
    }

    fn word(&mut self, bank: &Bank) -> &'static str {
        self.rng.pick(self.lang.bank(bank)).copied().unwrap_or("x")
    }

    fn title(&mut self) -> String {
        let module = self.module.unwrap_or("").to_ascii_lowercase();
        let bank = if module.contains("calendar") || module.contains("event") {
            &words::EVENT_TITLES
        } else if module.contains("habit") {
            &words::HABIT_NAMES
        } else if module.contains("goal") {
            &words::GOAL_NAMES
        } else if module.contains("contact") {
            &words::PERSON_NAMES
        } else if module.contains("note") || module.contains("journal") || module.contains("diary")
        {
            &words::NOTE_TITLES
        } else {
            &words::TASK_TITLES
        };
        self.word(bank).to_string()
    }

    fn sentences(&mut self) -> String {
        let first = self.word(&words::SENTENCES);
        if self.rng.chance(0.5) {
            let second = self.word(&words::SENTENCES);
            if second != first {
                return format!("{first} {second}");
            }
        }
        first.to_string()
    }

    fn person(&mut self) -> &'static str {
        self.word(&words::PERSON_NAMES)
    }

    fn email(&mut self) -> String {
        let person = self.person().to_lowercase().replace(' ', ".");
        let ascii: String = person
            .chars()
            .map(|c| match c {
                'ä' => 'a',
                'ö' => 'o',
                'ü' => 'u',
                'ß' => 's',
                c if c.is_ascii_alphanumeric() || c == '.' => c,
                _ => '-',
            })
            .collect();
        format!("{ascii}@example.com")
    }

    fn url(&mut self) -> String {
        format!("https://example.com/{}", self.rng.range_i64(100, 999))
    }

    fn color(&mut self) -> String {
        let colors = ["#4a90d9", "#50b848", "#f5a623", "#d0021b", "#9013fe"];
        self.rng
            .pick(&colors)
            .copied()
            .unwrap_or("#4a90d9")
            .to_string()
    }

    fn date(&mut self) -> String {
        let day = self.now.date_naive() + Duration::days(self.rng.range_i64(0, 14));
        day.format("%Y-%m-%d").to_string()
    }

    fn date_time(&mut self) -> String {
        let day = self.now.date_naive() + Duration::days(self.rng.range_i64(0, 7));
        let hour = u32::try_from(self.rng.range_i64(8, 20)).unwrap_or(9);
        let minute = u32::try_from(15 * self.rng.range_i64(0, 3)).unwrap_or(0);
        day.and_hms_opt(hour, minute, 0)
            .map(|dt| dt.and_utc().to_rfc3339_opts(SecondsFormat::Secs, true))
            .unwrap_or_else(|| self.now.to_rfc3339_opts(SecondsFormat::Secs, true))
    }

    fn time(&mut self) -> String {
        format!(
            "{:02}:{:02}:00",
            self.rng.range_i64(7, 20),
            15 * self.rng.range_i64(0, 3)
        )
    }

    /// A plausible string for a property called `name`.
    fn string_by_name(&mut self, name: Option<&str>) -> String {
        let raw = name.unwrap_or("");
        let n = raw.to_ascii_lowercase();
        let has = |parts: &[&str]| parts.iter().any(|p| n.contains(p));
        let de = self.lang == Lang::De;
        if has(&["email", "mail"]) {
            self.email()
        } else if has(&["phone", "mobile"]) || n.starts_with("tel") {
            if de {
                "+49 30 1234567".into()
            } else {
                "+1 555 0100".into()
            }
        } else if has(&["url", "link", "website", "homepage"]) {
            self.url()
        } else if has(&["timezone", "time_zone"]) || n == "tz" {
            if de {
                "Europe/Berlin".into()
            } else {
                "America/New_York".into()
            }
        } else if has(&["birthday", "birthdate"]) || n.ends_with("date") || n == "day" {
            self.date()
        } else if raw.ends_with("At")
            || n.ends_with("_at")
            || n.contains("time")
            || n.starts_with("start")
            || n.starts_with("end")
        {
            self.date_time()
        } else if has(&["locale", "language"]) || n == "lang" {
            if de { "de-DE".into() } else { "en-US".into() }
        } else if has(&["color", "colour"]) {
            self.color()
        } else if has(&["emoji", "icon"]) {
            let icons = ["📝", "✅", "🌱", "📅"];
            self.rng.pick(&icons).copied().unwrap_or("📝").to_string()
        } else if has(&["mood", "feeling", "emotion"]) {
            self.word(&words::MOODS).to_string()
        } else if has(&["tag", "label", "category"]) {
            self.word(&words::TAGS).to_string()
        } else if has(&["query", "search", "keyword", "term", "filter"]) || n == "q" {
            self.word(&words::QUERIES).to_string()
        } else if has(&["location", "place", "address", "where", "venue"]) {
            self.word(&words::PLACES).to_string()
        } else if has(&["firstname", "first_name", "givenname"]) {
            self.person()
                .split(' ')
                .next()
                .unwrap_or("Anna")
                .to_string()
        } else if has(&["lastname", "last_name", "surname", "familyname"]) {
            self.person()
                .split(' ')
                .next_back()
                .unwrap_or("Schmidt")
                .to_string()
        } else if has(&[
            "contact",
            "person",
            "attendee",
            "fullname",
            "displayname",
            "author",
        ]) {
            self.person().to_string()
        } else if has(&[
            "title", "subject", "summary", "headline", "name", "goal", "habit",
        ]) {
            self.title()
        } else if has(&[
            "content",
            "body",
            "text",
            "note",
            "description",
            "details",
            "entry",
            "comment",
            "message",
            "reflection",
            "reason",
            "journal",
        ]) {
            self.sentences()
        } else if has(&["currency"]) {
            if de { "EUR".into() } else { "USD".into() }
        } else if has(&["status", "state"]) {
            "open".into()
        } else {
            self.word(&words::WORDS).to_string()
        }
    }
}

/// Whether a property names an id of another record.
pub(crate) fn is_id_like(name: &str) -> bool {
    name == "id" || name.ends_with("Id") || name.ends_with("_id") || name.ends_with("ID")
}

/// Whether the root schema requires an id-like property.
pub(crate) fn requires_id(schema: &Value) -> bool {
    schema
        .get("required")
        .and_then(Value::as_array)
        .is_some_and(|r| r.iter().filter_map(Value::as_str).any(is_id_like))
}

/// A name-based default range for numbers, intersected with the schema's bounds later.
fn default_range(name: Option<&str>, now: DateTime<Utc>) -> (i64, i64) {
    let n = name.unwrap_or("").to_ascii_lowercase();
    let has = |parts: &[&str]| parts.iter().any(|p| n.contains(p));
    if has(&[
        "rating",
        "score",
        "stars",
        "mood",
        "energy",
        "stress",
        "level",
        "intensity",
    ]) {
        (1, 5)
    } else if has(&["priority"]) {
        (1, 3)
    } else if has(&["minute"]) && !has(&["minutes"]) {
        (0, 59)
    } else if has(&["minutes", "duration"]) {
        (5, 120)
    } else if has(&["hour"]) {
        (7, 21)
    } else if has(&["year"]) {
        let y = i64::from(now.year());
        (y, y)
    } else if has(&["month"]) {
        (1, 12)
    } else if has(&["weekday", "dayofweek", "day_of_week"]) {
        (0, 6)
    } else if has(&["day"]) {
        (1, 28)
    } else if has(&["progress", "percent"]) {
        (0, 100)
    } else if has(&["limit", "pagesize", "page_size", "per_page", "top"]) {
        (5, 20)
    } else if has(&["offset", "skip"]) {
        (0, 0)
    } else if has(&["page"]) {
        (1, 1)
    } else {
        (1, 10)
    }
}

/// Intersects the schema's bounds with the name-based default; falls back to the schema's
/// own bounds when they do not overlap. Always returns `lo <= hi`.
fn combine(lo: Option<f64>, hi: Option<f64>, dlo: f64, dhi: f64, width: f64) -> (f64, f64) {
    let (lo, hi) = match (lo, hi) {
        (Some(lo), Some(hi)) => {
            let (a, b) = (lo.max(dlo), hi.min(dhi));
            if a <= b { (a, b) } else { (lo, hi) }
        }
        (Some(lo), None) => {
            let a = lo.max(dlo);
            (a, if dhi >= a { dhi } else { a + width })
        }
        (None, Some(hi)) => {
            let b = hi.min(dhi);
            (if dlo <= b { dlo } else { b - width }, b)
        }
        (None, None) => (dlo, dhi),
    };
    if lo <= hi { (lo, hi) } else { (lo, lo) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn fill(schema: &Value, seed: u64, ids: &[String], lang: Lang) -> Value {
        let mut rng = SimRng::new(seed);
        Filler {
            rng: &mut rng,
            root: schema,
            lang,
            module: Some("todo"),
            now: Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap(),
            known_ids: ids,
        }
        .fill_arguments()
    }

    #[test]
    fn required_enum_bounds_and_formats_are_respected() {
        let schema = json!({
            "type": "object",
            "required": ["title", "priority", "due", "at", "tags", "mood", "kind", "done"],
            "properties": {
                "title": {"type": "string", "maxLength": 10},
                "priority": {"type": "integer", "minimum": 1, "maximum": 3},
                "due": {"type": "string", "format": "date"},
                "at": {"type": "string", "format": "date-time"},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "uniqueItems": true},
                "mood": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                "kind": {"$ref": "#/$defs/Kind"},
                "done": {"type": "boolean"},
                "notes": {"type": ["string", "null"]}
            },
            "$defs": {"Kind": {"type": "string", "enum": ["a", "b"]}}
        });
        for seed in 0..200 {
            let v = fill(&schema, seed, &[], Lang::En);
            assert!(v["title"].as_str().unwrap().chars().count() <= 10);
            let p = v["priority"].as_i64().unwrap();
            assert!((1..=3).contains(&p));
            let due = v["due"].as_str().unwrap();
            chrono::NaiveDate::parse_from_str(due, "%Y-%m-%d").unwrap();
            DateTime::parse_from_rfc3339(v["at"].as_str().unwrap()).unwrap();
            let tags = v["tags"].as_array().unwrap();
            assert!((1..=2).contains(&tags.len()));
            let mood = v["mood"].as_f64().unwrap();
            assert!(mood > 0.0 && mood <= 1.0, "{mood}");
            assert!(["a", "b"].contains(&v["kind"].as_str().unwrap()));
            assert!(v["done"].is_boolean());
            if let Some(n) = v.get("notes") {
                assert!(n.is_string());
            }
        }
    }

    #[test]
    fn ids_are_reused_and_optional_ids_skipped() {
        let schema = json!({
            "type": "object",
            "required": ["id"],
            "properties": {"id": {"type": "string"}, "parentId": {"type": "string"}}
        });
        let ids = vec!["rec-1".to_string()];
        for seed in 0..50 {
            let v = fill(&schema, seed, &ids, Lang::En);
            assert_eq!(v, json!({"id": "rec-1"}));
        }
        let v = fill(&schema, 1, &[], Lang::En);
        uuid::Uuid::parse_str(v["id"].as_str().unwrap()).unwrap();
    }

    #[test]
    fn german_locale_writes_german() {
        let schema = json!({"type": "object", "required": ["title"], "properties": {"title": {"type": "string"}}});
        let de: Vec<Value> = (0..20)
            .map(|s| fill(&schema, s, &[], Lang::De)["title"].clone())
            .collect();
        assert!(
            de.iter()
                .all(|t| words::TASK_TITLES.de.contains(&t.as_str().unwrap()))
        );
    }

    #[test]
    fn odd_schemas_terminate_and_yield_objects() {
        let recursive = json!({
            "type": "object", "required": ["child"],
            "properties": {"child": {"$ref": "#"}}
        });
        assert!(fill(&recursive, 1, &[], Lang::En).is_object());
        assert_eq!(fill(&json!(true), 1, &[], Lang::En), json!({}));
        assert_eq!(
            fill(&json!({"type": "string"}), 1, &[], Lang::En),
            json!({})
        );
        let all_of = json!({"allOf": [
            {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer", "minimum": 5, "maximum": 5}}},
            {"required": ["b"], "properties": {"b": {"const": "x"}}}
        ]});
        assert_eq!(fill(&all_of, 1, &[], Lang::En), json!({"a": 5, "b": "x"}));
        let min_len = json!({"type": "object", "required": ["s"], "properties": {"s": {"type": "string", "minLength": 40, "maxLength": 45}}});
        let s = fill(&min_len, 2, &[], Lang::En)["s"]
            .as_str()
            .unwrap()
            .chars()
            .count();
        assert!((40..=45).contains(&s), "{s}");
        let multiple = json!({"type": "object", "required": ["m"], "properties": {"m": {"type": "integer", "minimum": 0, "maximum": 100, "multipleOf": 15}}});
        for seed in 0..30 {
            let m = fill(&multiple, seed, &[], Lang::En)["m"].as_i64().unwrap();
            assert_eq!(m % 15, 0);
            assert!((0..=100).contains(&m));
        }
    }

    #[test]
    fn combine_always_orders_bounds() {
        assert_eq!(combine(Some(1.0), Some(3.0), 1.0, 10.0, 10.0), (1.0, 3.0));
        assert_eq!(
            combine(Some(50.0), Some(60.0), 1.0, 10.0, 10.0),
            (50.0, 60.0)
        );
        assert_eq!(combine(Some(20.0), None, 1.0, 10.0, 10.0), (20.0, 30.0));
        assert_eq!(combine(None, Some(-5.0), 1.0, 10.0, 10.0), (-15.0, -5.0));
        assert_eq!(combine(Some(5.0), Some(1.0), 1.0, 10.0, 10.0), (5.0, 5.0));
    }
}
