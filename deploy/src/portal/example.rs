//! Example values for the portal's request and response bodies: each one
//! passes its field's own checks (`Field::check`, the code the API runs on
//! every item), so an example the page shows is one the API accepts.

use runtime::field::{Field, Format, Kind, StringRules};
use runtime::tenant::Collection;
use serde_json::{Map, Value, json};

/// An item id as the API generates them (a ULID).
pub(super) const ITEM_ID: &str = "01JD7Q5X4ZK3M8N2P6R9T0VWXY";
/// Every timestamp the examples show.
const WHEN: &str = "2026-01-01T12:00:00Z";

/// A value that passes the field's checks: its default when it has one,
/// else the first that passes of a few candidates (an enum value, an
/// example of its format, a string made from its pattern, a plain word
/// fitted to its lengths). `None` only when none passes.
pub(super) fn value(f: &Field) -> Option<Value> {
    if let Some(d) = &f.default {
        return Some(d.clone());
    }
    candidates(f).into_iter().find(|v| f.check(v).is_ok())
}

fn candidates(f: &Field) -> Vec<Value> {
    match &f.kind {
        Kind::String(rules) => strings(rules, &f.name)
            .into_iter()
            .map(Value::String)
            .collect(),
        Kind::Integer { min, max } => {
            let mut n = 42i64;
            if let Some(max) = max {
                n = n.min(*max);
            }
            if let Some(min) = min {
                n = n.max(*min);
            }
            vec![json!(n)]
        }
        Kind::Number { min, max } => {
            let mut x = 9.5f64;
            if let Some(max) = max {
                x = x.min(*max);
            }
            if let Some(min) = min {
                x = x.max(*min);
            }
            vec![json!(x)]
        }
        Kind::Boolean => vec![json!(true)],
        Kind::Timestamp => vec![json!(WHEN)],
        Kind::StringList { max_items, item } => {
            if *max_items == Some(0) {
                return vec![json!([])];
            }
            strings(item, &f.name)
                .into_iter()
                .map(|s| json!([s]))
                .chain([json!([])])
                .collect()
        }
    }
}

fn strings(r: &StringRules, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(first) = r.allowed.as_ref().and_then(|a| a.first()) {
        out.push(first.clone());
    }
    match r.format {
        Some(Format::Email) => out.push("ada@example.com".into()),
        Some(Format::Uri) => out.push("https://example.com/".into()),
        Some(Format::DateTime) => out.push(WHEN.into()),
        None => {}
    }
    if let Some(p) = &r.pattern {
        out.push(from_pattern(&p.source));
    }
    let min = r.min_length.unwrap_or(0) as usize;
    let max = r.max_length.map_or(usize::MAX, |m| m as usize);
    let mut word: String = format!("example {}", name.replace('_', " "));
    while word.chars().count() < min {
        word.push('x');
    }
    out.push(word.chars().take(max).collect());
    out
}

/// A string matching a simple regular expression: literals, escapes
/// (`\d`, `\w`, `\s`, an escaped character), classes (`[A-Z0-9 -]`, the
/// first range or character taken), groups (the first alternative) and
/// quantifiers (the least count, at least one for `+`). Anything else
/// gives a string the caller's check refuses, and the next candidate is
/// taken: never a panic.
pub(super) fn from_pattern(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut i = 0;
    let (out, _) = sequence(&chars, &mut i);
    out
}

/// Parses a sequence up to `)` or the end; at `|` the rest of the group is
/// skipped (the first alternative is the example). The bool says whether
/// the sequence ended at a `)`.
fn sequence(c: &[char], i: &mut usize) -> (String, bool) {
    let mut out = String::new();
    while *i < c.len() {
        let atom: String = match c[*i] {
            ')' => {
                *i += 1;
                return (out, true);
            }
            '|' => {
                skip_group(c, i);
                return (out, true);
            }
            '^' | '$' => {
                *i += 1;
                continue;
            }
            '(' => {
                *i += 1;
                // Non-capturing and named groups: skip their marker.
                if c.get(*i) == Some(&'?') {
                    while *i < c.len() && c[*i] != ':' && c[*i] != '>' {
                        *i += 1;
                    }
                    *i += 1;
                }
                sequence(c, i).0
            }
            '[' => class(c, i),
            '\\' => {
                *i += 1;
                let e = c.get(*i).copied().unwrap_or('\\');
                *i += 1;
                match e {
                    'd' => "0".into(),
                    'w' => "a".into(),
                    's' => " ".into(),
                    other => other.to_string(),
                }
            }
            '.' => {
                *i += 1;
                "a".into()
            }
            other => {
                *i += 1;
                other.to_string()
            }
        };
        let count = quantifier(c, i);
        for _ in 0..count {
            out.push_str(&atom);
        }
    }
    (out, false)
}

/// Skips to just past the `)` that closes the current group (or the end).
fn skip_group(c: &[char], i: &mut usize) {
    let mut depth = 0usize;
    while *i < c.len() {
        match c[*i] {
            '\\' => *i += 1,
            '[' => {
                class(c, i);
                continue;
            }
            '(' => depth += 1,
            ')' if depth == 0 => {
                *i += 1;
                return;
            }
            ')' => depth -= 1,
            _ => {}
        }
        *i += 1;
    }
}

/// A character class: its first character (or range start); past its `]`.
fn class(c: &[char], i: &mut usize) -> String {
    *i += 1;
    let negated = c.get(*i) == Some(&'^');
    if negated {
        *i += 1;
    }
    let mut first: Option<char> = None;
    let mut at_start = true;
    while *i < c.len() && (c[*i] != ']' || at_start) {
        let ch = if c[*i] == '\\' {
            *i += 1;
            match c.get(*i).copied() {
                Some('d') => '0',
                Some('w') => 'a',
                Some('s') => ' ',
                Some(other) => other,
                None => break,
            }
        } else {
            c[*i]
        };
        first.get_or_insert(ch);
        at_start = false;
        *i += 1;
    }
    *i += 1;
    if negated {
        // Something outside most negated classes.
        return "a".into();
    }
    first.map(String::from).unwrap_or_default()
}

/// The least count a quantifier allows (`+` one, `{n,m}` n); past it.
fn quantifier(c: &[char], i: &mut usize) -> usize {
    let n = match c.get(*i) {
        Some('*') | Some('?') => {
            *i += 1;
            0
        }
        Some('+') => {
            *i += 1;
            1
        }
        Some('{') => {
            let close = c[*i..].iter().position(|&x| x == '}');
            let Some(close) = close else {
                return 1;
            };
            let inner: String = c[*i + 1..*i + close].iter().collect();
            *i += close + 1;
            inner
                .split(',')
                .next()
                .and_then(|n| n.trim().parse::<usize>().ok())
                .unwrap_or(1)
                .min(64)
        }
        _ => return 1,
    };
    // A lazy or possessive marker after the quantifier.
    if matches!(c.get(*i), Some('?') | Some('+')) {
        *i += 1;
    }
    n
}

/// The collection's example item as the client sends it: every field the
/// client may set that has a valid example (auto fields are the server's),
/// the key left out (the server generates it).
pub(super) fn new_item(c: &Collection) -> Map<String, Value> {
    c.fields
        .iter()
        .filter(|f| f.auto.is_none())
        .filter_map(|f| Some((f.name.clone(), value(f)?)))
        .collect()
}

/// The example item as the API answers it: the key, the fields sent, and
/// the server's timestamps.
pub(super) fn item(c: &Collection) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(c.key.clone(), json!(ITEM_ID));
    for f in &c.fields {
        let v = if f.auto.is_some() {
            Some(json!(WHEN))
        } else {
            value(f)
        };
        if let Some(v) = v {
            out.insert(f.name.clone(), v);
        }
    }
    out
}

/// A merge patch changing one field: the first the client may set.
pub(super) fn patch(c: &Collection) -> Map<String, Value> {
    c.fields
        .iter()
        .filter(|f| f.auto.is_none())
        .find_map(|f| Some((f.name.clone(), value(f)?)))
        .into_iter()
        .collect()
}

/// A search filter to show: the first indexed field (a query), else the
/// first field, with its example value as the query string gives it.
pub(super) fn filter(c: &Collection) -> Option<(String, String)> {
    let f = c
        .fields
        .iter()
        .find(|f| f.index)
        .or_else(|| c.fields.first())?;
    let v = value(f)?;
    let text = match v {
        Value::String(s) => s,
        Value::Array(items) => items.first()?.as_str()?.to_owned(),
        other => other.to_string(),
    };
    Some((f.name.clone(), text))
}
