//! One field of the collection, built from its spec: the rules that apply
//! to its type, the rules an index adds, and a default that must pass the
//! field's own checks.

use serde_json::Value;

use super::raw;
use crate::field::{Auto, Field, Format, Kind, MAX_KEY_BYTES, Pattern, StringRules};

type Problems = Vec<(String, String, String)>;

/// Builds one field from its spec, checking the rules against the type.
pub(super) fn field(name: String, s: raw::FieldSection, path: &str) -> Result<Field, Problems> {
    use raw::KindName as K;
    let mut problems: Problems = Vec::new();
    let mut bad = |key: &str, expected: String, found: String| {
        problems.push((format!("{path}.{key}"), expected, found));
    };
    let type_name = match s.kind {
        K::String => "string",
        K::Integer => "integer",
        K::Number => "number",
        K::Boolean => "boolean",
        K::Timestamp => "timestamp",
        K::StringList => "string_list",
    };
    let not_for = |rule: &str, applies: &str| {
        (
            rule.to_owned(),
            format!("`{rule}` only on {applies} fields"),
            format!("`{rule}` on {} field", a_or_an(type_name)),
        )
    };
    let stringy = matches!(s.kind, K::String | K::StringList);
    let mut misplaced = Vec::new();
    if !stringy {
        for (rule, set) in [
            ("min_length", s.min_length.is_some()),
            ("max_length", s.max_length.is_some()),
            ("pattern", s.pattern.is_some()),
            ("enum", s.allowed.is_some()),
        ] {
            if set {
                misplaced.push(not_for(rule, "string and string_list"));
            }
        }
    }
    if s.kind != K::String && s.format.is_some() {
        misplaced.push(not_for("format", "string"));
    }
    if !matches!(s.kind, K::Integer | K::Number) {
        for (rule, set) in [("min", s.min.is_some()), ("max", s.max.is_some())] {
            if set {
                misplaced.push(not_for(rule, "integer and number"));
            }
        }
    }
    if s.kind != K::StringList && s.max_items.is_some() {
        misplaced.push(not_for("max_items", "string_list"));
    }
    if s.kind != K::Timestamp && s.auto.is_some() {
        misplaced.push(not_for("auto", "timestamp"));
    }
    for (key, expected, found) in misplaced {
        bad(&key, expected, found);
    }

    let pattern = match s.pattern.as_deref().map(Pattern::new) {
        Some(Err(e)) => {
            bad(
                "pattern",
                "a regular expression".into(),
                format!("{:?} ({e})", s.pattern.as_deref().unwrap_or_default()),
            );
            None
        }
        Some(Ok(p)) => Some(p),
        None => None,
    };
    // An indexed string is an index key, which DynamoDB refuses empty or
    // over 2,048 bytes: a file may not allow either (1 is implied as the
    // least length), and the API refuses both on every store.
    let string_key = s.index == Some(true) && s.kind == K::String;
    let min_length = match s.min_length {
        Some(0) if string_key => {
            bad(
                "min_length",
                "a min_length of at least 1 on an indexed field (an index key cannot be empty), or none (1 is implied)".into(),
                "0".into(),
            );
            Some(1)
        }
        None if string_key => Some(1),
        other => other,
    };
    if string_key
        && let Some(max) = s.max_length
        && max as usize > MAX_KEY_BYTES
    {
        bad(
            "max_length",
            format!(
                "a max_length of at most {MAX_KEY_BYTES} on an indexed field (an index key is at most {MAX_KEY_BYTES} bytes)"
            ),
            max.to_string(),
        );
    }
    if string_key
        && let Some(allowed) = &s.allowed
        && allowed.iter().any(String::is_empty)
    {
        bad(
            "enum",
            "no empty string in the enum of an indexed field (an index key cannot be empty)".into(),
            "\"\"".into(),
        );
    }
    if let (Some(min), Some(max)) = (min_length, s.max_length)
        && min > max
    {
        bad(
            "min_length",
            format!("at most max_length ({max})"),
            min.to_string(),
        );
    }
    if let Some(allowed) = &s.allowed
        && allowed.is_empty()
    {
        bad("enum", "at least one value".into(), "an empty list".into());
    }
    let rules = StringRules {
        min_length,
        max_length: s.max_length,
        pattern,
        allowed: s.allowed.clone(),
        format: s.format.map(|f| match f {
            raw::FormatName::Email => Format::Email,
            raw::FormatName::Uri => Format::Uri,
            raw::FormatName::DateTime => Format::DateTime,
        }),
    };
    let int_bound =
        |key: &str, v: &Option<toml::Value>, bad: &mut dyn FnMut(&str, String, String)| match v {
            None => None,
            Some(toml::Value::Integer(i)) => Some(*i),
            Some(other) => {
                bad(key, "an integer".into(), toml_type(other).into());
                None
            }
        };
    let num_bound =
        |key: &str, v: &Option<toml::Value>, bad: &mut dyn FnMut(&str, String, String)| match v {
            None => None,
            Some(toml::Value::Integer(i)) => Some(*i as f64),
            Some(toml::Value::Float(f)) if f.is_finite() => Some(*f),
            Some(other) => {
                bad(key, "a number".into(), toml_type(other).into());
                None
            }
        };
    let kind = match s.kind {
        K::String => Kind::String(rules),
        K::Integer => {
            let min = int_bound("min", &s.min, &mut bad);
            let max = int_bound("max", &s.max, &mut bad);
            if let (Some(a), Some(b)) = (min, max)
                && a > b
            {
                bad("min", format!("at most max ({b})"), a.to_string());
            }
            Kind::Integer { min, max }
        }
        K::Number => {
            let min = num_bound("min", &s.min, &mut bad);
            let max = num_bound("max", &s.max, &mut bad);
            if let (Some(a), Some(b)) = (min, max)
                && a > b
            {
                bad("min", format!("at most max ({b})"), a.to_string());
            }
            Kind::Number { min, max }
        }
        K::Boolean => Kind::Boolean,
        K::Timestamp => Kind::Timestamp,
        K::StringList => Kind::StringList {
            max_items: s.max_items,
            item: rules,
        },
    };
    let index = s.index.unwrap_or(false);
    if index && !kind.indexable() {
        bad(
            "index",
            "an index only on string, integer, number or timestamp fields".into(),
            format!("an index on {} field", a_or_an(type_name)),
        );
    }
    let auto = s.auto.map(|a| match a {
        raw::AutoName::Create => Auto::Create,
        raw::AutoName::Update => Auto::Update,
    });
    let required = s.required.unwrap_or(false);
    if auto.is_some() && (required || s.default.is_some()) {
        bad(
            "auto",
            "an auto field that is neither required nor defaulted (the server sets it)".into(),
            "auto with required or default".into(),
        );
    }
    let mut f = Field {
        name,
        kind,
        required,
        index,
        default: None,
        auto,
        description: s.description,
    };
    if let Some(default) = s.default {
        let value = toml_to_json(&default);
        match f.check(&value) {
            Ok(()) => f.default = Some(value),
            Err(e) => {
                let (must, found) = e
                    .rsplit_once(", found ")
                    .map(|(m, f)| (m.to_owned(), f.to_owned()))
                    .unwrap_or_else(|| (e.clone(), default.to_string()));
                bad(
                    "default",
                    format!("a default valid for the field (it {must})"),
                    found,
                )
            }
        }
    }
    if problems.is_empty() {
        Ok(f)
    } else {
        Err(problems)
    }
}

fn a_or_an(word: &str) -> String {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {word}")
    } else {
        format!("a {word}")
    }
}

fn toml_type(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a TOML date-time",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}
