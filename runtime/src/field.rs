//! A declared field of a tenant's collection and the checks a value must
//! pass. The same checks run on a tenant file's `default` values and on every
//! item a client sends, so the two can never disagree.

use regex_lite::Regex;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

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
                .map(Value::Number)
                .ok_or_else(|| format!("must be a number, found {raw:?}"))?,
            Kind::Boolean => match raw {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err(format!("must be true or false, found {raw:?}")),
            },
        };
        Ok(value)
    }
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
mod tests {
    use super::*;
    use serde_json::json;

    fn field(kind: Kind) -> Field {
        Field {
            name: "f".into(),
            kind,
            required: false,
            index: false,
            default: None,
            auto: None,
            description: None,
        }
    }

    #[test]
    fn strings_follow_their_rules() {
        let f = field(Kind::String(StringRules {
            max_length: Some(3),
            pattern: Some(Pattern::new("[a-z]+").unwrap()),
            ..Default::default()
        }));
        assert!(f.check(&json!("abc")).is_ok());
        assert!(f.check(&json!("abcd")).unwrap_err().contains("at most 3"));
        assert!(f.check(&json!("AB")).unwrap_err().contains("pattern"));
        assert_eq!(
            f.check(&json!(5)).unwrap_err(),
            "must be a string, found an integer"
        );
    }

    #[test]
    fn formats() {
        let email = field(Kind::String(StringRules {
            format: Some(Format::Email),
            ..Default::default()
        }));
        assert!(email.check(&json!("a@b.co")).is_ok());
        for bad in ["a@b", "@b.co", "a b@c.co", "a@@b.co"] {
            assert!(email.check(&json!(bad)).is_err(), "{bad}");
        }
        let uri = field(Kind::String(StringRules {
            format: Some(Format::Uri),
            ..Default::default()
        }));
        assert!(uri.check(&json!("https://x.example/a")).is_ok());
        assert!(uri.check(&json!("not a uri")).is_err());
        let ts = field(Kind::Timestamp);
        assert!(ts.check(&json!("2026-11-25T13:00:00Z")).is_ok());
        assert!(ts.check(&json!("2026-11-25T13:00:00+01:00")).is_ok());
        assert!(ts.check(&json!("2026-13-25")).is_err());
    }

    #[test]
    fn numbers_and_integers() {
        let i = field(Kind::Integer {
            min: Some(1),
            max: Some(10),
        });
        assert!(i.check(&json!(1)).is_ok());
        assert!(i.check(&json!(0)).is_err());
        assert!(i.check(&json!(1.5)).unwrap_err().contains("integer"));
        let n = field(Kind::Number {
            min: Some(0.0),
            max: None,
        });
        assert!(n.check(&json!(0.5)).is_ok());
        assert!(n.check(&json!(-0.5)).is_err());
        assert_eq!(n.parse_filter("2.5").unwrap(), json!(2.5));
        assert!(n.parse_filter("NaN").is_err());
        assert!(i.parse_filter("x").is_err());
    }

    #[test]
    fn string_lists_check_each_item() {
        let l = field(Kind::StringList {
            max_items: Some(2),
            item: StringRules {
                max_length: Some(2),
                ..Default::default()
            },
        });
        assert!(l.check(&json!(["a", "bb"])).is_ok());
        assert!(l.check(&json!(["a", "b", "c"])).is_err());
        assert_eq!(
            l.check(&json!(["a", 1])).unwrap_err(),
            "item 1 must be a string, found an integer"
        );
        assert!(l.check(&json!(["abc"])).unwrap_err().starts_with("item 0"));
    }
}
