//! Errors in tenant files, each pinned to file, line, column and key.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

/// One problem in one tenant file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantError {
    pub path: PathBuf,
    /// 1-based; 0 when the problem is not in the file's text (an unreadable
    /// file, a bad file name).
    pub line: usize,
    pub column: usize,
    /// Dotted key path, `clients[1].name`; empty for the whole file.
    pub key: String,
    pub expected: String,
    pub found: String,
}

impl fmt::Display for TenantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": `{}`", self.key)?;
        }
        write!(f, ": expected {}, found {}", self.expected, self.found)
    }
}

impl std::error::Error for TenantError {}

/// Every problem found in one or more tenant files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantErrors(pub Vec<TenantError>);

impl fmt::Display for TenantErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TenantErrors {}

impl From<TenantError> for TenantErrors {
    fn from(e: TenantError) -> Self {
        TenantErrors(vec![e])
    }
}

/// The text of one tenant file with the spans of its keys and values, so that
/// errors found after parsing can still point at the source.
pub(crate) struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
    /// (key path, span of the key, span of the value), in document order.
    spans: Vec<(String, Range<usize>, Range<usize>)>,
}

impl<'a> Source<'a> {
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        let mut spans = Vec::new();
        // Recoverable, so a file with a syntax error still has spans for
        // the keys before (and around) the error.
        let (table, _) = DeTable::parse_recoverable(text);
        collect(table.get_ref(), "", &mut spans);
        Source { path, text, spans }
    }

    /// An error at a byte span.
    pub fn at(
        &self,
        span: Range<usize>,
        key: &str,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> TenantError {
        let (line, column) = line_column(self.text, span.start);
        TenantError {
            path: self.path.to_owned(),
            line,
            column,
            key: key.to_owned(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    /// An error at a key path: the span of its value, or of the nearest
    /// ancestor that exists (a missing key points at its table).
    pub fn key(
        &self,
        key: &str,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> TenantError {
        let mut probe = key.to_owned();
        loop {
            if let Some((_, _, value)) = self.spans.iter().find(|(k, _, _)| *k == probe) {
                return self.at(value.clone(), key, expected, found);
            }
            match probe.rfind(['.', '[']) {
                Some(i) => probe.truncate(i),
                None => return self.at(0..0, key, expected, found),
            }
        }
    }

    /// Where a key starts in the text.
    pub fn key_offset(&self, key: &str) -> Option<usize> {
        self.spans
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, k, _)| k.start)
    }

    /// The key whose table spans exactly `span` (serde reports a missing
    /// key at its table); empty for the top level.
    pub fn table_at(&self, span: &Range<usize>) -> String {
        self.spans
            .iter()
            .find(|(_, _, v)| v == span)
            .map(|(k, _, _)| k.clone())
            .unwrap_or_default()
    }

    /// The deepest key whose key or value span holds `span`.
    pub fn key_at(&self, span: &Range<usize>) -> Option<String> {
        self.spans
            .iter()
            .filter(|(_, k, v)| contains(k, span) || contains(v, span))
            .max_by_key(|(k, _, _)| k.len())
            .map(|(k, _, _)| k.clone())
    }

    /// The source text of a span, shortened for a message.
    pub fn snippet(&self, span: &Range<usize>) -> String {
        let s = self.text.get(span.clone()).unwrap_or("").trim();
        let s: String = s.lines().next().unwrap_or("").chars().take(60).collect();
        s
    }
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end.max(outer.start + 1)
}

fn collect(table: &DeTable<'_>, prefix: &str, out: &mut Vec<(String, Range<usize>, Range<usize>)>) {
    for (k, v) in table.iter() {
        let path = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        out.push((path.clone(), k.span(), v.span()));
        collect_value(v.get_ref(), &path, out);
    }
}

fn collect_value(
    value: &DeValue<'_>,
    path: &str,
    out: &mut Vec<(String, Range<usize>, Range<usize>)>,
) {
    match value {
        DeValue::Table(t) => collect(t, path, out),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                out.push((p.clone(), item.span(), item.span()));
                collect_value(item.get_ref(), &p, out);
            }
        }
        _ => {}
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 10), (2, 4));
    }

    #[test]
    fn keys_point_at_values_or_their_table() {
        let text = "[usage_plan]\nrate = 5\n\n[[clients]]\nname = \"a\"\n";
        let src = Source::new(Path::new("t.toml"), text);
        let e = src.key("usage_plan.rate", "x", "y");
        assert_eq!((e.line, e.column), (2, 8));
        let e = src.key("usage_plan.burst", "x", "y");
        assert_eq!(e.line, 1, "a missing key points at its table");
        let e = src.key("clients[0].name", "x", "y");
        assert_eq!((e.line, e.column), (5, 8));
        assert_eq!(
            e.to_string(),
            "t.toml:5:8: `clients[0].name`: expected x, found y"
        );
    }
}
