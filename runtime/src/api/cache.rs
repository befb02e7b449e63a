//! Items as a GET by id answers them, kept per API with the revision and
//! stored document they were rendered from, and the store's version
//! (`Store::version`) as of the last read that found them current.
//!
//! A GET whose store is still at that version answers the kept bytes
//! without reading: nothing was committed since, by this process or any
//! other. Otherwise it asks the store whether the item is still exactly
//! what was kept (`Store::get_unless`) and answers the kept bytes if so,
//! marking them with the version read before. Either way a write from
//! anywhere (this process, another one on the same database, a restart
//! after a `SIGKILL`) is seen at once; an unchanged item is neither read
//! nor parsed nor rendered again while nothing is written.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use http::StatusCode;
use http::header::{CONTENT_TYPE, ETAG, HeaderMap, HeaderValue};

use crate::response::response;
use crate::store::Version;

/// Bytes kept at most per API; past it the cache starts again empty (the
/// next GETs fill it with what is read now).
const MAX_BYTES: usize = 16 << 20;
/// What an entry costs beyond its text (the map's slot, the `Arc`, the
/// strings' headers), roughly.
const ENTRY_OVERHEAD: usize = 128;

/// One item as a GET answers it.
pub(super) struct Cached {
    pub(super) rev: String,
    /// The document's text as the store holds it.
    pub(super) doc: String,
    /// The item's size, for the request units a read costs.
    pub(super) size: usize,
    pub(super) etag: Option<HeaderValue>,
    pub(super) body: String,
}

impl Cached {
    fn bytes(&self, id: &str) -> usize {
        ENTRY_OVERHEAD + id.len() + self.rev.len() + self.doc.len() + self.body.len()
    }

    /// The GET's answer: as `Api::item_response` makes it.
    pub(super) fn response(&self) -> ApiGatewayProxyResponse {
        let mut headers = HeaderMap::with_capacity(2);
        if let Some(etag) = &self.etag {
            headers.insert(ETAG, etag.clone());
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response(StatusCode::OK, headers, Some(self.body.clone()))
    }
}

#[derive(Default)]
pub(super) struct ItemCache {
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    items: HashMap<String, Entry>,
    bytes: usize,
}

struct Entry {
    cached: Arc<Cached>,
    /// The store's version before the last read that found `cached`
    /// current.
    seen: Option<Version>,
}

impl ItemCache {
    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn get(&self, id: &str) -> Option<Arc<Cached>> {
        self.entries().items.get(id).map(|e| Arc::clone(&e.cached))
    }

    /// The kept item, when a read at `version` found it current: nothing
    /// was written since.
    pub(super) fn current(&self, id: &str, version: Version) -> Option<Arc<Cached>> {
        let e = self.entries();
        let entry = e.items.get(id)?;
        (entry.seen == Some(version)).then(|| Arc::clone(&entry.cached))
    }

    /// Records that a read begun at `version` found `cached` current (if
    /// it is still the entry kept).
    pub(super) fn mark(&self, id: &str, cached: &Arc<Cached>, version: Option<Version>) {
        if let Some(entry) = self.entries().items.get_mut(id)
            && Arc::ptr_eq(&entry.cached, cached)
        {
            entry.seen = version;
        }
    }

    pub(super) fn put(&self, id: &str, cached: Cached, seen: Option<Version>) {
        let bytes = cached.bytes(id);
        if bytes > MAX_BYTES / 16 {
            // One huge item would push everything else out.
            self.remove(id);
            return;
        }
        let mut e = self.entries();
        if e.bytes + bytes > MAX_BYTES {
            e.items.clear();
            e.bytes = 0;
        }
        let entry = Entry {
            cached: Arc::new(cached),
            seen,
        };
        if let Some(old) = e.items.insert(id.to_owned(), entry) {
            e.bytes -= old.cached.bytes(id);
        }
        e.bytes += bytes;
    }

    pub(super) fn remove(&self, id: &str) {
        let mut e = self.entries();
        if let Some(old) = e.items.remove(id) {
            e.bytes -= old.cached.bytes(id);
        }
    }
}
