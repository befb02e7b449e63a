//! Where a tenant's items live. Two implementations: DynamoDB (inside
//! Lambda) and an embedded SQLite database (the local target). One
//! conformance suite (`tests/e2e/runtime/store_conformance.rs`) runs
//! against both.

use std::future::Future;

use serde_json::{Map, Value};

/// One stored item.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The value of the collection's key attribute.
    pub id: String,
    /// Changes on every write; the item's ETag.
    pub rev: String,
    /// The declared fields that are set. Never holds the key attribute or
    /// `rev`; the API adds the key when it renders the item.
    pub doc: Map<String, Value>,
}

/// What a write requires of the item already stored under its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// An item with this id exists (any revision).
    Exists,
    /// An item with this id exists at exactly this revision (`If-Match`).
    Rev(String),
}

/// An equality filter of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub field: String,
    /// A string, number or boolean. For a string-list field the filter
    /// matches items whose list contains this string.
    pub value: Value,
    pub list: bool,
}

/// A search: every filter must match. When `index` names a filter's field,
/// the store must answer from that field's secondary index (a Query on
/// DynamoDB), never by scanning the whole table.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub filters: Vec<Filter>,
    /// The indexed field to query, if any filter is on one.
    pub index: Option<String>,
    /// At most this many items (1 to 100).
    pub limit: usize,
    /// Where the previous page stopped, as the store returned it.
    pub start: Option<Value>,
}

/// One page of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Item>,
    /// Where to continue, or `None` at the end. Opaque to callers; the API
    /// signs it into a cursor.
    pub next: Option<Value>,
}

/// An item as a reader last saw it stored: its revision, its document's
/// text exactly as the store holds it, and its size (for the request units
/// a read of it costs).
#[derive(Debug, Clone, Copy)]
pub struct Known<'a> {
    pub rev: &'a str,
    pub doc: &'a str,
    pub size: usize,
}

/// A mark of everything a store holds at one moment: two equal marks mean
/// nothing was committed in between, by this process or any other. Opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version(pub(crate) [u8; 48]);

/// What [`Store::get_unless`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Fresh {
    /// No item with this id.
    Missing,
    /// Still exactly the known item: the same revision and the same
    /// stored document.
    Same,
    /// Another item than the known one (or none was known).
    Changed(Item),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `create` found an item with the same id.
    #[error("an item with this id already exists")]
    Exists,
    #[error("no item with this id")]
    NotFound,
    /// The item exists but not at the expected revision.
    #[error("the item has changed since it was read")]
    RevMismatch,
    /// A search `start` the store cannot use.
    #[error("invalid start key: {0}")]
    BadStart(String),
    /// The backend failed; the message is for logs, never for clients.
    #[error("store backend: {0}")]
    Backend(String),
}

/// A tenant's table. Every method that returns `Ok` after a write has made
/// that write durable. Writes are conditional and never overwrite a change
/// they did not expect.
pub trait Store: Send + Sync + 'static {
    /// Whether [`Store::get_unless`] can answer `Fresh::Same` (else
    /// keeping what was made of an item is of no use).
    const CHECKS_KNOWN: bool = false;

    /// The item with this id, read consistently (a read after an
    /// acknowledged write sees it).
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<Item>, StoreError>> + Send;

    /// Like [`Store::get`], but answers `Same` when the stored item is
    /// still exactly `known` (its revision and its document's text), so a
    /// reader that kept what it made of that item can use it again. A
    /// store that cannot compare cheaply always answers as `get` does.
    fn get_unless(
        &self,
        id: &str,
        known: Option<Known<'_>>,
    ) -> impl Future<Output = Result<Fresh, StoreError>> + Send {
        let _ = known;
        async move {
            Ok(match self.get(id).await? {
                Some(item) => Fresh::Changed(item),
                None => Fresh::Missing,
            })
        }
    }

    /// The store's [`Version`] now, when it can tell without reading any
    /// item; `None` when it cannot (then every read goes to the store).
    fn version(&self) -> Option<Version> {
        None
    }

    /// Stores a new item; `Exists` if the id is taken.
    fn create(&self, item: &Item) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Replaces a stored item; `NotFound` if there is none, `RevMismatch`
    /// if `expect` names another revision.
    fn replace(
        &self,
        item: &Item,
        expect: &Expect,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes a stored item, with the same conditions as `replace`.
    fn delete(
        &self,
        id: &str,
        expect: &Expect,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One page of matching items in a stable order.
    fn search(&self, search: &Search) -> impl Future<Output = Result<Page, StoreError>> + Send;
}
