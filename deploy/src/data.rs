//! `apifactory data export` and `import`: a tenant's items as JSON Lines,
//! in and out of either target.
//!
//! One line per item: the collection's key attribute first, then `_rev`
//! (so ETags survive a move), then the declared fields in name order. The
//! order is fixed so that the same items give the same bytes whatever
//! target they come from: local -> file -> AWS -> file is byte for byte
//! the same file. Numbers are written as serde_json writes them from what
//! the store returns (an integer as an integer, a float by its shortest
//! round-tripping text), and both stores hand back the numbers they were
//! given, so they survive exactly.
//!
//! An export holds what the API would serve: declared fields only. Values
//! of a field since removed from the tenant file stay in the table but not
//! in the file (an import into this tenant would refuse them as unknown).
//!
//! An import checks every line before it writes anything, with the
//! runtime's own field checks (`Field::check`, the item size limit), and
//! refuses the whole file if any line is bad or two lines share an id.
//! Then it writes in batches. A line identical to the stored item (same
//! fields, and the same `_rev` when the line has one) is "unchanged" under
//! every `--on-conflict` mode, so an import that was killed half-way and
//! is run again finishes the job: no duplicates (an id is a key) and no
//! conflicts with its own first half.

pub mod aws;
pub mod local;

use std::collections::HashMap;
use std::fmt;
use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::{Map, Value};

use runtime::field::{Auto, now_rfc3339};
use runtime::names::{self, REV_ATTRIBUTE};
use runtime::sqlite::{Put, SqliteTable};
use runtime::store::Item;
use runtime::tenant::Collection;

pub use aws::AwsTable;

/// What an import does with a line whose id is stored with other content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnConflict {
    /// Keep the stored item.
    Skip,
    /// Store the file's item.
    Replace,
    /// Write nothing and name the conflicting ids.
    Fail,
}

/// One item line of an import file, checked.
#[derive(Debug, Clone)]
pub struct Line {
    /// 1-based, as an editor counts.
    pub number: usize,
    pub item: Item,
    /// Whether the line carried `_rev` (else `item.rev` is a fresh one).
    pub rev_given: bool,
    /// `auto` timestamps the line left out, stamped by the import.
    pub stamped: Vec<String>,
}

/// Why a line cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineProblem {
    pub line: usize,
    /// The field (or key attribute) at fault; none when the line is not an
    /// object at all.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for LineProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "line {}: {field}: {}", self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

/// The line of an item: key, `_rev` (left out when the item has none, as
/// one in a table that apifactory did not write), then the declared fields
/// in name order, compact.
pub fn encode(c: &Collection, item: &Item) -> String {
    let mut out = Map::new();
    out.insert(c.key.clone(), Value::String(item.id.clone()));
    if !item.rev.is_empty() {
        out.insert(REV_ATTRIBUTE.to_owned(), Value::String(item.rev.clone()));
    }
    let mut names: Vec<&String> = item
        .doc
        .keys()
        .filter(|k| **k != c.key && c.field(k).is_some())
        .collect();
    names.sort();
    for name in names {
        out.insert(name.clone(), item.doc[name].clone());
    }
    // A map of strings and JSON values always serializes.
    serde_json::to_string(&Value::Object(out)).unwrap_or_default()
}

/// Checks every line of an import file: the items, or every problem of
/// every line. Blank lines are skipped (a trailing newline is usual).
pub fn parse(c: &Collection, text: &str) -> Result<Vec<Line>, Vec<LineProblem>> {
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let now = now_rfc3339();
    for (i, raw) in text.lines().enumerate() {
        let number = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        match parse_line(c, number, raw, &now) {
            Ok(line) => match seen.get(&line.item.id) {
                Some(first) => problems.push(LineProblem {
                    line: number,
                    field: Some(c.key.clone()),
                    message: format!("{:?} is also the id on line {first}", line.item.id),
                }),
                None => {
                    seen.insert(line.item.id.clone(), number);
                    lines.push(line);
                }
            },
            Err(mut found) => problems.append(&mut found),
        }
    }
    if problems.is_empty() {
        Ok(lines)
    } else {
        Err(problems)
    }
}

fn parse_line(
    c: &Collection,
    number: usize,
    raw: &str,
    now: &str,
) -> Result<Line, Vec<LineProblem>> {
    let problem = |field: Option<&str>, message: String| LineProblem {
        line: number,
        field: field.map(str::to_owned),
        message,
    };
    let mut obj = match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(obj)) => obj,
        Ok(other) => {
            return Err(vec![problem(
                None,
                format!(
                    "must be a JSON object, found {}",
                    runtime::field::type_of(&other)
                ),
            )]);
        }
        Err(e) => return Err(vec![problem(None, format!("is not JSON: {e}"))]),
    };
    let mut problems = Vec::new();

    let id = match obj.remove(&c.key) {
        Some(Value::String(id)) if names::is_item_id(&id) => {
            if let Some(Err(e)) = c.field(&c.key).map(|f| f.check(&Value::String(id.clone()))) {
                problems.push(problem(Some(&c.key), e));
            }
            id
        }
        Some(Value::String(id)) => {
            problems.push(problem(
                Some(&c.key),
                format!("{id:?} is not an item id: 1 to 128 letters, digits, '-', '_', '.' or '~'"),
            ));
            String::new()
        }
        Some(other) => {
            problems.push(problem(
                Some(&c.key),
                format!(
                    "must be a string, found {}",
                    runtime::field::type_of(&other)
                ),
            ));
            String::new()
        }
        None => {
            problems.push(problem(Some(&c.key), "is missing (the item's key)".into()));
            String::new()
        }
    };
    let (rev, rev_given) = match obj.remove(REV_ATTRIBUTE) {
        None => (new_rev(), false),
        Some(Value::String(rev)) if !rev.is_empty() && rev.len() <= 128 => (rev, true),
        Some(other) => {
            problems.push(problem(
                Some(REV_ATTRIBUTE),
                format!("must be a revision (a string of 1 to 128 characters), found {other}"),
            ));
            (String::new(), false)
        }
    };

    // What the API's create checks, but that an `auto` timestamp is kept
    // as given: it is the stored value being moved, not a client's.
    let mut doc = Map::new();
    let mut stamped = Vec::new();
    for (name, value) in obj {
        let Some(field) = c.field(&name) else {
            problems.push(problem(
                Some(&name),
                format!("is not a field of {}", c.name),
            ));
            continue;
        };
        if value.is_null() {
            problems.push(problem(
                Some(&name),
                "is null; leave an unset field out".into(),
            ));
            continue;
        }
        match field.check(&value) {
            Ok(()) => {
                doc.insert(name, value);
            }
            Err(e) => problems.push(problem(Some(&name), e)),
        }
    }
    for field in c.fields.iter().filter(|f| f.name != c.key) {
        if doc.contains_key(&field.name)
            || problems
                .iter()
                .any(|p| p.field.as_ref() == Some(&field.name))
        {
            continue;
        }
        // An item from elsewhere: completed as the API completes a create.
        match (field.auto, &field.default) {
            (Some(Auto::Create | Auto::Update), _) => {
                doc.insert(field.name.clone(), Value::String(now.to_owned()));
                stamped.push(field.name.clone());
            }
            (None, Some(default)) => {
                doc.insert(field.name.clone(), default.clone());
            }
            (None, None) if field.required => {
                problems.push(problem(Some(&field.name), "is required".into()));
            }
            (None, None) => {}
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    doc.sort_keys();
    let item = Item { id, rev, doc };
    let size = runtime::api::item_size(c, &item);
    if size > runtime::api::MAX_ITEM_BYTES {
        return Err(vec![problem(
            None,
            format!(
                "the item would be {size} bytes; an item may be at most {} bytes",
                runtime::api::MAX_ITEM_BYTES
            ),
        )]);
    }
    Ok(Line {
        number,
        item,
        rev_given,
        stamped,
    })
}

/// A revision for an item that came without one, made as the API makes
/// them.
fn new_rev() -> String {
    ulid::Ulid::new().to_string()
}

/// What became of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    New,
    Unchanged,
    Skipped,
    Replaced,
    Conflict,
}

/// The one rule both targets follow: what to do with a line, given the
/// item stored under its id (read in the same transaction locally; just
/// before the write on AWS).
pub fn decide(mut line: Line, stored: Option<Item>, mode: OnConflict) -> Put<(Verdict, String)> {
    let id = line.item.id.clone();
    let Some(stored) = stored else {
        return Put::Write(line.item, (Verdict::New, id));
    };
    if same(&line, &stored) {
        return Put::Keep((Verdict::Unchanged, id));
    }
    match mode {
        OnConflict::Skip => Put::Keep((Verdict::Skipped, id)),
        OnConflict::Fail => Put::Abort((Verdict::Conflict, id)),
        OnConflict::Replace => {
            for name in &line.stamped {
                if let Some(v) = stored.doc.get(name) {
                    line.item.doc.insert(name.clone(), v.clone());
                }
            }
            let mut item = line.item;
            // New content under the stored revision would let a client's
            // `If-Match` on the old content overwrite the new.
            if item.rev == stored.rev {
                item.rev = new_rev();
            }
            Put::Write(item, (Verdict::Replaced, id))
        }
    }
}

/// Whether the line holds the stored item: the same fields with the same
/// values, and the same revision if the line names one. A timestamp the
/// line left out counts as the stored one, as an update through the API
/// keeps `created`: otherwise a second run of the same file would differ
/// from its first by the clock.
fn same(line: &Line, stored: &Item) -> bool {
    let doc = &line.item.doc;
    (!line.rev_given || stored.rev == line.item.rev)
        && doc.iter().all(|(k, v)| match stored.doc.get(k) {
            Some(s) => s == v || line.stamped.contains(k),
            None => false,
        })
        && stored.doc.keys().all(|k| doc.contains_key(k))
}

/// The end of an import.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Item lines in the file.
    pub read: u64,
    /// New items written.
    pub written: u64,
    pub replaced: u64,
    pub skipped: u64,
    pub unchanged: u64,
}

impl Counts {
    fn add(&mut self, v: Verdict) {
        match v {
            Verdict::New => self.written += 1,
            Verdict::Replaced => self.replaced += 1,
            Verdict::Skipped => self.skipped += 1,
            Verdict::Unchanged => self.unchanged += 1,
            Verdict::Conflict => {}
        }
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} line(s) read: {} written, {} replaced, {} skipped, {} unchanged",
            self.read, self.written, self.replaced, self.skipped, self.unchanged
        )
    }
}

/// A tenant's table on one of the targets.
pub enum Table {
    Local(SqliteTable),
    Aws(AwsTable),
}

/// A progress bar on a terminal, nothing elsewhere (a pipe or a log file
/// would fill with redraws).
fn progress(total: Option<u64>, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(n) => (
            ProgressBar::new(n),
            "{msg} [{bar:30}] {pos}/{len} ({per_sec})",
        ),
        None => (ProgressBar::no_length(), "{msg} {pos} ({per_sec})"),
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Items a local export reads at a time.
const EXPORT_PAGE: usize = 1000;

/// Writes every item of the table, one line each, in id order; how many.
pub async fn export(table: &Table, c: &Collection, out: &mut dyn Write) -> anyhow::Result<u64> {
    let bar = progress(None, "exported");
    let mut count = 0u64;
    match table {
        Table::Local(t) => {
            let mut after = None;
            loop {
                let page = t.items_after(after.take(), EXPORT_PAGE).await?;
                for item in &page {
                    writeln!(out, "{}", encode(c, item))?;
                }
                count += page.len() as u64;
                bar.set_position(count);
                match page.last() {
                    Some(last) if page.len() == EXPORT_PAGE => after = Some(last.id.clone()),
                    _ => break,
                }
            }
        }
        Table::Aws(t) => {
            // A Scan returns items in hash order; sorting by id gives the
            // same file as the local target's. The lines are held until
            // then, which a table that fits a migration's file allows.
            let mut lines = Vec::new();
            t.scan(|item| {
                lines.push((item.id.clone(), encode(c, &item)));
                bar.set_position(lines.len() as u64);
            })
            .await?;
            lines.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            for (_, line) in &lines {
                writeln!(out, "{line}")?;
            }
            count = lines.len() as u64;
        }
    }
    out.flush()?;
    bar.finish_and_clear();
    Ok(count)
}

/// Imports checked lines in batches of `batch`. With `Fail`, every id is
/// looked up before the first write, so a conflict writes nothing.
pub async fn import(
    table: &Table,
    lines: Vec<Line>,
    mode: OnConflict,
    batch: usize,
) -> anyhow::Result<Counts> {
    let mut counts = Counts {
        read: lines.len() as u64,
        ..Counts::default()
    };
    if mode == OnConflict::Fail {
        let conflicts = conflicts(table, &lines).await?;
        if !conflicts.is_empty() {
            let shown: Vec<&str> = conflicts.iter().take(10).map(String::as_str).collect();
            anyhow::bail!(
                "{} line(s) have an id stored with other content ({}{}); nothing written. \
                 --on-conflict skip keeps the stored items, replace stores the file's",
                conflicts.len(),
                shown.join(", "),
                if conflicts.len() > shown.len() {
                    ", ..."
                } else {
                    ""
                }
            );
        }
    }
    let bar = progress(Some(counts.read), "imported");
    let mut done = 0u64;
    let mut rest = lines.into_iter().peekable();
    while rest.peek().is_some() {
        let chunk: Vec<Line> = rest.by_ref().take(batch.max(1)).collect();
        let n = chunk.len() as u64;
        let verdicts = match table {
            Table::Local(t) => {
                let keyed = chunk.into_iter().map(|l| (l.item.id.clone(), l)).collect();
                t.put_many(keyed, move |line, stored| decide(line, stored, mode))
                    .await?
            }
            Table::Aws(t) => t.put_many(chunk, mode).await?,
        };
        match verdicts {
            Ok(vs) => vs.into_iter().for_each(|(v, _)| counts.add(v)),
            // Checked before the first write: only an item stored by
            // someone else since then gets here.
            Err((_, id)) => anyhow::bail!(
                "item {id:?} was stored by someone else while this import ran; \
                 {done} line(s) imported before it ({counts}); run the import again \
                 (what is already in is unchanged) with --on-conflict skip or replace"
            ),
        }
        done += n;
        bar.set_position(done);
    }
    bar.finish_and_clear();
    Ok(counts)
}

/// The ids of lines that `Fail` would refuse.
async fn conflicts(table: &Table, lines: &[Line]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for chunk in lines.chunks(table.lookup_batch()) {
        let ids: Vec<String> = chunk.iter().map(|l| l.item.id.clone()).collect();
        let stored = match table {
            Table::Local(t) => t.get_many(ids).await?,
            Table::Aws(t) => t.get_many(&ids).await?,
        };
        let stored: HashMap<String, Item> =
            stored.into_iter().map(|it| (it.id.clone(), it)).collect();
        for line in chunk {
            if stored.get(&line.item.id).is_some_and(|s| !same(line, s)) {
                out.push(line.item.id.clone());
            }
        }
    }
    Ok(out)
}

impl Table {
    /// Ids looked up at once: BatchGetItem takes 100.
    fn lookup_batch(&self) -> usize {
        match self {
            Table::Local(_) => 1000,
            Table::Aws(_) => aws::GET_BATCH,
        }
    }
}

#[cfg(test)]
mod tests;
