//! Items as a GET by id answers them, kept per API with the revision and
//! stored document they were rendered from. A GET asks the store whether
//! the item is still exactly that (`Store::get_unless`) and answers the
//! kept bytes if so: it still reads the store, so a write from anywhere
//! (this process, another one on the same database, a restart after a
//! `SIGKILL`) is seen at once, but an unchanged item is neither parsed
//! nor rendered again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use http::StatusCode;
use http::header::{CONTENT_TYPE, ETAG, HeaderMap, HeaderValue};

use crate::response::response;

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
    items: HashMap<String, Arc<Cached>>,
    bytes: usize,
}

impl ItemCache {
    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn get(&self, id: &str) -> Option<Arc<Cached>> {
        self.entries().items.get(id).cloned()
    }

    pub(super) fn put(&self, id: &str, cached: Cached) {
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
        if let Some(old) = e.items.insert(id.to_owned(), Arc::new(cached)) {
            e.bytes -= old.bytes(id);
        }
        e.bytes += bytes;
    }

    pub(super) fn remove(&self, id: &str) {
        let mut e = self.entries();
        if let Some(old) = e.items.remove(id) {
            e.bytes -= old.bytes(id);
        }
    }
}
