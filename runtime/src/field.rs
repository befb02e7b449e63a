//! A declared field of a tenant's collection and the checks a value must
//! pass. The same checks run on a tenant file's `default` values and on every
//! item a client sends, so the two can never disagree.

use regex_lite::Regex;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The most bytes (UTF-8) of a string DynamoDB takes as a partition key,
/// the table's or an index's ("Service, account, and table quotas in
/// Amazon DynamoDB", attributes: partition key value 1 to 2,048 bytes).
/// An indexed field's value is an index key, so it is held to the same
/// rule on both stores, and the local target answers as AWS does.
pub const MAX_KEY_BYTES: usize = 2048;
/// The most indexed fields of one collection: one DynamoDB global
/// secondary index each, and a table has at most 20 ("Service, account,
/// and table quotas in Amazon DynamoDB", secondary indexes).
pub const MAX_INDEXES: usize = 20;

/// One field of a collection, as declared in `[collection.fields]`.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub kind: Kind,
    pub required: bool,
    /// A secondary index (a DynamoDB GSI, an SQLite index) on this field, so
    /// an equality search on it is a Query, never a Scan.
    pub index: bool,
    pub default: Option<Value>,
    /// Set by the server, never by the client.
    pub auto: Option<Auto>,
    pub description: Option<String>,
}

/// When the server stamps an `auto` timestamp field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auto {
    /// Once, when the item is created.
    Create,
    /// On every write.
    Update,
}

/// The type of a field with the rules that apply to it.
#[derive(Debug, Clone)]
pub enum Kind {
    String(StringRules),
    Integer {
        min: Option<i64>,
        max: Option<i64>,
    },
    Number {
        min: Option<f64>,
        max: Option<f64>,
    },
    Boolean,
    /// An RFC 3339 date-time, stored as the string the client sent.
    Timestamp,
    StringList {
        max_items: Option<u32>,
        item: StringRules,
    },
}

#[derive(Debug, Clone, Default)]
pub struct StringRules {
    pub min_length: Option<u32>,
    pub max_length: Option<u32>,
    pub pattern: Option<Pattern>,
    pub allowed: Option<Vec<String>>,
    pub format: Option<Format>,
}

/// A compiled `pattern`, anchored to the whole value.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub source: String,
    regex: Regex,
}

impl Pattern {
    pub fn new(source: &str) -> Result<Self, String> {
        let regex = Regex::new(&format!("^(?:{source})$")).map_err(|e| e.to_string())?;
        Ok(Self {
            source: source.to_owned(),
            regex,
        })
    }

    pub fn is_match(&self, s: &str) -> bool {
        self.regex.is_match(s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Email,
    Uri,
    DateTime,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Email => "email",
            Format::Uri => "uri",
            Format::DateTime => "date-time",
        }
    }
}

impl Kind {
    /// The name used in tenant files and error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::String(_) => "string",
            Kind::Integer { .. } => "integer",
            Kind::Number { .. } => "number",
            Kind::Boolean => "boolean",
            Kind::Timestamp => "timestamp",
            Kind::StringList { .. } => "string_list",
        }
    }

    /// Whether a secondary index can be keyed on this type (DynamoDB index
    /// keys are strings, numbers or binary).
    pub fn indexable(&self) -> bool {
        matches!(
            self,
            Kind::String(_) | Kind::Integer { .. } | Kind::Number { .. } | Kind::Timestamp
        )
    }
}

impl Field {
    /// Checks one non-null value against this field's type and rules.
    /// The error is a sentence for a client or a tenant author.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        if let Value::String(s) = value
            && self.is_string_key()
        {
            check_key(s)?;
        }
        match (&self.kind, value) {
            (Kind::String(rules), Value::String(s)) => rules.check(s),
            (Kind::Integer { min, max }, Value::Number(n)) => {
                let Some(i) = n.as_i64() else {
                    return Err(format!("must be an integer, found {n}"));
                };
                if let Some(min) = min
                    && i < *min
                {
                    return Err(format!("must be at least {min}, found {i}"));
                }
                if let Some(max) = max
                    && i > *max
                {
                    return Err(format!("must be at most {max}, found {i}"));
                }
                Ok(())
            }
            (Kind::Number { min, max }, Value::Number(n)) => {
                let Some(x) = n.as_f64().filter(|x| x.is_finite()) else {
                    return Err(format!("must be a finite number, found {n}"));
                };
                check_storable(n)?;
                if let Some(min) = min
                    && x < *min
                {
                    return Err(format!("must be at least {min}, found {n}"));
                }
                if let Some(max) = max
                    && x > *max
                {
                    return Err(format!("must be at most {max}, found {n}"));
                }
                Ok(())
            }
            (Kind::Boolean, Value::Bool(_)) => Ok(()),
            (Kind::Timestamp, Value::String(s)) => check_date_time(s),
            (Kind::StringList { max_items, item }, Value::Array(values)) => {
                if let Some(max) = max_items
                    && values.len() > *max as usize
                {
                    return Err(format!(
                        "must have at most {max} items, found {}",
                        values.len()
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    let Value::String(s) = v else {
                        return Err(format!("item {i} must be a string, found {}", type_of(v)));
                    };
                    item.check(s).map_err(|e| format!("item {i} {e}"))?;
                }
                Ok(())
            }
            (kind, other) => Err(format!(
                "must be {}, found {}",
                article(kind.name()),
                type_of(other)
            )),
        }
    }

    /// Parses a query-string value into the JSON value an equality filter on
    /// this field compares with. For a string list the filter means
    /// "contains", so the value is one string.
    pub fn parse_filter(&self, raw: &str) -> Result<Value, String> {
        if self.is_string_key() {
            check_key(raw)?;
        }
        let value = match &self.kind {
            Kind::String(_) | Kind::Timestamp | Kind::StringList { .. } => {
                Value::String(raw.to_owned())
            }
            Kind::Integer { .. } => raw
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| format!("must be an integer, found {raw:?}"))?,
            Kind::Number { .. } => raw
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .and_then(serde_json::Number::from_f64)
                .ok_or_else(|| format!("must be a number, found {raw:?}"))
                .and_then(|n| check_storable(&n).map(|()| Value::Number(n)))?,
            Kind::Boolean => match raw {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err(format!("must be true or false, found {raw:?}")),
            },
        };
        Ok(value)
    }
}

impl Field {
    /// Whether this field's string values are index keys (an indexed
    /// string or timestamp), which DynamoDB refuses empty or over
    /// [`MAX_KEY_BYTES`].
    pub fn is_string_key(&self) -> bool {
        self.index && matches!(self.kind, Kind::String(_) | Kind::Timestamp)
    }
}

/// The rules DynamoDB holds a string key value to ("Service, account, and
/// table quotas in Amazon DynamoDB": a partition key value is 1 to 2,048
/// bytes; PutItem and Query answer `ValidationException` otherwise).
pub fn check_key(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty (the field is indexed)".to_owned());
    }
    if s.len() > MAX_KEY_BYTES {
        return Err(format!(
            "must be at most {MAX_KEY_BYTES} bytes long in UTF-8 (the field is indexed), found {}",
            s.len()
        ));
    }
    Ok(())
}

/// Why DynamoDB cannot store a number written as `text` (a JSON number),
/// if it cannot: "Supported data types and naming rules in Amazon
/// DynamoDB", Number: up to 38 digits of precision, positive and negative
/// magnitudes from 1E-130 to 9.9999999999999999999999999999999999999E+125,
/// or zero. Anything else is a `ValidationException` on any attribute,
/// key or not.
pub fn storable_number(text: &str) -> Result<(), &'static str> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], &unsigned[i + 1..]),
        None => (unsigned, "0"),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err("not a decimal number");
    }
    let Some(first) = digits.iter().position(|b| *b != b'0') else {
        return Ok(()); // zero, whatever its exponent
    };
    let last = digits.iter().rposition(|b| *b != b'0').unwrap_or(first);
    if last - first + 1 > 38 {
        return Err("more than 38 significant digits");
    }
    // A huge written exponent saturates: it is out of range either way.
    let exponent = exponent
        .parse::<i64>()
        .unwrap_or(if exponent.starts_with('-') {
            i64::MIN
        } else {
            i64::MAX
        });
    // The exponent of the first significant digit (d.ddd x 10^e).
    let magnitude = exponent.saturating_add(int.len() as i64 - 1 - first as i64);
    if magnitude > 125 {
        Err("too large")
    } else if magnitude < -130 {
        Err("too close to zero")
    } else {
        Ok(())
    }
}

/// A client's number held to [`storable_number`], on both stores alike.
fn check_storable(n: &serde_json::Number) -> Result<(), String> {
    let text = n.to_string();
    storable_number(&text).map_err(|why| {
        format!(
            "must be 0 or from 1E-130 to 9.9999999999999999999999999999999999999E+125 in magnitude with at most 38 significant digits, found {text} ({why})"
        )
    })
}

impl StringRules {
    pub fn check(&self, s: &str) -> Result<(), String> {
        let len = s.chars().count();
        if let Some(min) = self.min_length
            && len < min as usize
        {
            return Err(format!(
                "must be at least {min} characters long, found {len}"
            ));
        }
        if let Some(max) = self.max_length
            && len > max as usize
        {
            return Err(format!(
                "must be at most {max} characters long, found {len}"
            ));
        }
        if let Some(allowed) = &self.allowed
            && !allowed.iter().any(|a| a == s)
        {
            return Err(format!(
                "must be one of {}, found {s:?}",
                allowed
                    .iter()
                    .map(|a| format!("{a:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if let Some(pattern) = &self.pattern
            && !pattern.is_match(s)
        {
            return Err(format!("must match the pattern {:?}", pattern.source));
        }
        match self.format {
            Some(Format::Email) if !is_email(s) => {
                Err(format!("must be an email address, found {s:?}"))
            }
            Some(Format::Uri) if !is_uri(s) => Err(format!("must be an absolute URI, found {s:?}")),
            Some(Format::DateTime) => check_date_time(s),
            _ => Ok(()),
        }
    }
}

/// An RFC 3339 date-time such as `2026-11-25T13:00:00Z`.
pub fn check_date_time(s: &str) -> Result<(), String> {
    OffsetDateTime::parse(s, &Rfc3339).map(|_| ()).map_err(|_| {
        format!("must be an RFC 3339 date-time such as 2026-01-31T09:30:00Z, found {s:?}")
    })
}

/// The current time as an RFC 3339 string, for `auto` fields.
pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// A pragmatic address check: one `@`, a non-empty local part, a dotted
/// domain, no white space. Deliverability is not a schema's business.
fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && s.len() <= 254
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// An absolute URI: a scheme, a colon and something after it.
fn is_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The JSON type of a value, as said in error messages.
pub fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn article(kind: &str) -> String {
    match kind {
        "integer" => "an integer".to_owned(),
        "string_list" => "a list of strings".to_owned(),
        k => format!("a {k}"),
    }
}

#[cfg(test)]
mod tests;
