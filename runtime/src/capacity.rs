//! DynamoDB on-demand request units, counted the way DynamoDB counts them,
//! for stores that are not DynamoDB (the local target's SQLite tables), so
//! the local target can report and price a tenant's table use.
//!
//! The rules ("Read/write capacity mode" and "Item sizes and formats" in
//! the DynamoDB developer guide):
//! - a strongly consistent read is one read request unit per 4 KB of the
//!   item (rounded up), half that when eventually consistent; a read that
//!   finds nothing still costs the minimum;
//! - a Query or Scan adds up the sizes of the items it reads and rounds
//!   the sum up to 4 KB once;
//! - a write is one write request unit per 1 KB (rounded up) of the larger
//!   of the item before and after; a conditional write that fails still
//!   costs it;
//! - every global secondary index the item is in costs a write of its own
//!   (indexes project all attributes here), two when the write moves the
//!   item from one index key to another.
//!
//! The sizes come from [`item_size`]. What differs from DynamoDB: a Scan
//! is charged for the items it returns, not for every item it examined
//! (the local store filters in SQL), so filtered scans cost less here.
//!
//! Counting is per task: the caller wraps an invocation in [`metered`],
//! and the store adds to its [`Units`] (a task-local cell: nothing is
//! allocated or shared per request). Outside it nothing is counted (inside
//! Lambda, CloudWatch has the table's figures).

use std::cell::Cell;
use std::future::Future;

use serde_json::{Map, Value};

use crate::store::Item;

/// A read request unit covers this much of an item.
const READ_BYTES: usize = 4096;
/// A write request unit covers this much of an item.
const WRITE_BYTES: usize = 1024;
/// The attribute that holds an item's revision.
const REV: &str = crate::names::REV_ATTRIBUTE;

tokio::task_local! {
    static METER: Cell<Units>;
}

/// The request units of one invocation.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Units {
    /// In half units (an eventually consistent read of 4 KB).
    read_halves: u64,
    writes: u64,
}

impl Units {
    pub fn read_units(&self) -> f64 {
        self.read_halves as f64 / 2.0
    }

    pub fn write_units(&self) -> f64 {
        self.writes as f64
    }
}

/// Runs `f`, counting the request units its store uses.
pub async fn metered<F: Future>(f: F) -> (F::Output, Units) {
    METER
        .scope(Cell::new(Units::default()), async move {
            let out = f.await;
            (out, METER.with(Cell::get))
        })
        .await
}

fn add(read_halves: u64, writes: u64) {
    let _ = METER.try_with(|m| {
        let u = m.get();
        m.set(Units {
            read_halves: u.read_halves + read_halves,
            writes: u.writes + writes,
        });
    });
}

/// Counts a read of `bytes` (one item, or the sum of a page's items).
pub fn read(bytes: usize, consistent: bool) {
    let units = bytes.div_ceil(READ_BYTES).max(1) as u64;
    add(if consistent { units * 2 } else { units }, 0);
}

/// Counts a write of an item that was `before` bytes and is `after` bytes
/// (0 for none), in a table whose indexes it enters or leaves `indexes`
/// times.
pub fn write(before: usize, after: usize, indexes: usize) {
    let units = before.max(after).div_ceil(WRITE_BYTES).max(1) as u64;
    add(0, units * (1 + indexes as u64));
}

/// The index writes a change from `before` to `after` costs: one per
/// indexed field either side has, two where both have it with different
/// values (the item leaves one index key for another).
pub fn index_writes<'a>(
    indexed: impl Iterator<Item = &'a str>,
    before: Option<&Map<String, Value>>,
    after: Option<&Map<String, Value>>,
) -> usize {
    indexed
        .map(|field| {
            let old = before.and_then(|d| d.get(field)).filter(|v| !v.is_null());
            let new = after.and_then(|d| d.get(field)).filter(|v| !v.is_null());
            match (old, new) {
                (Some(a), Some(b)) if a != b => 2,
                (None, None) => 0,
                _ => 1,
            }
        })
        .sum()
}

/// The size DynamoDB gives an item: the lengths of its attribute names
/// and values, with the key attribute and the revision.
pub fn item_size(key: &str, item: &Item) -> usize {
    key.len() + item.id.len() + REV.len() + item.rev.len() + doc_size(&item.doc)
}

/// The size of a document's attributes.
pub fn doc_size(doc: &Map<String, Value>) -> usize {
    doc.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(name, v)| name.len() + value_size(v))
        .sum()
}

/// A value's size: strings their UTF-8 length; numbers one byte per two
/// significant digits plus one; booleans and null one byte; lists and
/// maps three bytes plus one per element plus their contents.
fn value_size(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 1,
        Value::String(s) => s.len(),
        Value::Number(n) => {
            let digits = n
                .to_string()
                .chars()
                .filter(char::is_ascii_digit)
                .collect::<String>();
            let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
            significant.max(1).div_ceil(2) + 1
        }
        Value::Array(items) => 3 + items.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        Value::Object(m) => {
            3 + m
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(doc: Value) -> Item {
        Item {
            id: "a1".into(),
            rev: "r".into(),
            doc: doc.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn item_sizes_follow_dynamodbs_rules() {
        // "id" + "a1" + "_rev" + "r" = 9; "name" + "Ada" = 7; "n" + 123.45
        // (5 significant digits: 3 + 1) = 5; "ok" + true = 3.
        let it = item(json!({"name": "Ada", "n": 123.45, "ok": true}));
        assert_eq!(item_size("id", &it), 9 + 7 + 5 + 3);
        // A list: 3 + (1 + 1) + (1 + 2).
        assert_eq!(
            doc_size(json!({"t": ["a", "bc"]}).as_object().unwrap()),
            1 + 8
        );
    }

    #[tokio::test]
    async fn units_round_up_per_item_and_count_only_inside_a_meter() {
        read(10, true); // outside a meter: nothing, no panic
        let ((), units) = metered(async {
            read(10, true); // 1
            read(4097, true); // 2
            tokio::task::yield_now().await;
            read(4096, false); // 0.5
            write(0, 1025, 0); // 2
            write(3000, 100, 1); // 3 + 3 for the index
        })
        .await;
        assert_eq!(units.read_units(), 3.5);
        assert_eq!(units.write_units(), 8.0);
    }

    #[test]
    fn index_writes_count_entering_leaving_and_moving() {
        let a = json!({"c": "x", "d": 1});
        let b = json!({"c": "y"});
        let fields = ["c", "d", "e"];
        let (a, b) = (a.as_object(), b.as_object());
        assert_eq!(index_writes(fields.into_iter(), None, a), 2);
        assert_eq!(index_writes(fields.into_iter(), a, b), 2 + 1);
        assert_eq!(index_writes(fields.into_iter(), b, b), 1);
        assert_eq!(index_writes(fields.into_iter(), b, None), 1);
    }
}
