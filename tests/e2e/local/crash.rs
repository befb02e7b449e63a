//! Crashes and durability of the local target: `apifactory up` is SIGKILLed
//! at a random point under concurrent writes, twenty times in one test, and
//! after every restart:
//!
//! - every acknowledged write is there with its acknowledged value (for an
//!   item whose last write got no answer because of the kill, either the
//!   acknowledged value or that unanswered write's value), no item exists
//!   that no write created, and every ETag is the acknowledged one;
//! - the store passes SQLite's `PRAGMA integrity_check`, both the image the
//!   kill left behind and the live database after the restart;
//! - quota counters never go backwards, every request served was already
//!   counted, and no more requests than the quota's limit were ever served.
//!
//! The writers each own their items (so the expected state of an item is
//! exact), and mix POSTs with client ids, PUTs and PATCHes with `If-Match`,
//! stale `If-Match` writes that must be 412, DELETEs and read-your-write
//! GETs. The random choices come from one seed, printed at the start; set
//! `APIFACTORY_CRASH_SEED` to replay a run's choices (the kill points are
//! times, so a replay is close, not identical).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use apifactory_tests::server::{Client, Server};
use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};

const ROUNDS: usize = 20;
const WRITERS: usize = 8;
/// The metered tenant's quota: small enough to run out within the rounds on
/// a quiet machine (about 40 requests a second reach it). On a loaded one the
/// test drains what is left after the last round, so the refusal is always
/// seen; the rounds still check that no kill lets more through than this.
const METERED_LIMIT: u64 = 150;

/// xorshift64*: small, seedable, and enough for choosing operations.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A child generator for a task, independent of this one's next draws.
    fn fork(&mut self) -> Rng {
        Rng::new(self.next() | 1)
    }
}

fn seed() -> u64 {
    std::env::var("APIFACTORY_CRASH_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

/// The fields of a note; every write gives them values no other write
/// gives, so a stored value names the write that stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Doc {
    text: String,
    n: i64,
}

impl Doc {
    fn of(value: &Value) -> Option<Doc> {
        Some(Doc {
            text: value.get("text")?.as_str()?.to_owned(),
            n: value.get("n")?.as_i64()?,
        })
    }
}

#[derive(Debug, Clone)]
struct Acked {
    etag: String,
    doc: Doc,
}

/// What the test knows of one item.
#[derive(Debug, Clone)]
struct ItemModel {
    id: String,
    /// The last acknowledged state: `None` before the create was
    /// acknowledged and after an acknowledged delete.
    acked: Option<Acked>,
    /// A write sent but never answered (the server died): the document it
    /// would leave, or `None` for a delete.
    pending: Option<Option<Doc>>,
    /// Earlier ETags of the item, for stale `If-Match` writes.
    stale: Vec<String>,
    /// Written in the current round.
    touched: bool,
}

/// One writer's items and counters, carried from round to round.
/// Acknowledged writes of every writer so far, read between kills.
static ACKED: AtomicU64 = AtomicU64::new(0);

/// Each round runs its random time and then on until this many writes of
/// its own are acknowledged (at most [`ROUND_CAP`]), so that a loaded
/// machine still kills among many writes rather than failing a count.
const ROUND_MIN_ACKED: u64 = 30;
const ROUND_CAP: Duration = Duration::from_secs(20);

struct Writer {
    w: usize,
    rng: Rng,
    seq: i64,
    items: Vec<ItemModel>,
    stats: Stats,
}

#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    acked: u64,
    creates: u64,
    puts: u64,
    patches: u64,
    deletes: u64,
    stale_refused: u64,
    reads: u64,
    unanswered: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.acked += o.acked;
        self.creates += o.creates;
        self.puts += o.puts;
        self.patches += o.patches;
        self.deletes += o.deletes;
        self.stale_refused += o.stale_refused;
        self.reads += o.reads;
        self.unanswered += o.unanswered;
    }
}

const HOST: &str = "crash.localhost";

fn crash_tenant() -> String {
    // A quota far above the test (its block is 1,000 requests), so the
    // writers are never refused, and its counters are still checked.
    "[tenant]\ndisplay_name = \"Crash\"\n\n[collection]\nname = \"notes\"\n\n\
     [collection.fields]\ntext = { type = \"string\", required = true, max_length = 200 }\n\
     n = { type = \"integer\", required = true }\n\n\
     [usage_plan]\nrate = 10000\nburst = 5000\nquota = { limit = 100000000, period = \"DAY\" }\n\n\
     [[clients]]\nname = \"writer\"\n"
        .to_owned()
}

fn metered_tenant() -> String {
    format!(
        "[tenant]\ndisplay_name = \"Metered\"\n\n[collection]\nname = \"hits\"\n\n\
         [collection.fields]\ntext = {{ type = \"string\" }}\n\n\
         [usage_plan]\nrate = 10000\nburst = 5000\nquota = {{ limit = {METERED_LIMIT}, period = \"DAY\" }}\n\n\
         [[clients]]\nname = \"reader\"\n"
    )
}

impl Writer {
    /// Writes until the server goes away; returns itself for the next round.
    async fn run(mut self, c: Client, key: String) -> Writer {
        for item in &mut self.items {
            item.touched = false;
        }
        let h = [("Host", HOST), ("x-api-key", key.as_str())];
        loop {
            let live: Vec<usize> = (0..self.items.len())
                .filter(|&i| self.items[i].acked.is_some())
                .collect();
            let roll = self.rng.below(100);
            self.seq += 1;
            let seq = self.seq;
            let token = format!("writer {} write {seq}", self.w);
            let outcome = if live.len() < 3 || roll < 25 {
                self.create(&c, &h, seq, token).await
            } else {
                let i = live[self.rng.below(live.len() as u64) as usize];
                if roll < 48 {
                    self.update(&c, &h, i, seq, token, false).await
                } else if roll < 70 {
                    self.update(&c, &h, i, seq, token, true).await
                } else if roll < 80 {
                    self.stale_write(&c, &h, i, seq, token).await
                } else if roll < 88 {
                    self.delete(&c, &h, i).await
                } else {
                    self.read(&c, &h, i).await
                }
            };
            if outcome.is_none() {
                self.stats.unanswered += 1;
                return self;
            }
        }
    }

    async fn create(
        &mut self,
        c: &Client,
        h: &[(&str, &str)],
        seq: i64,
        text: String,
    ) -> Option<()> {
        let id = format!("w{}-{seq}", self.w);
        let doc = Doc { text, n: seq };
        let body = json!({"id": id, "text": doc.text, "n": doc.n}).to_string();
        self.items.push(ItemModel {
            id: id.clone(),
            acked: None,
            pending: Some(Some(doc.clone())),
            stale: Vec::new(),
            touched: true,
        });
        let r = c
            .try_send("POST", "/prod/notes", h, Some(&body))
            .await
            .ok()?;
        assert_eq!(r.status, 201, "POST {id}: {}", r.body);
        assert_eq!(Doc::of(&r.json()).as_ref(), Some(&doc), "POST {id} answer");
        let item = self.items.last_mut().unwrap();
        item.acked = Some(Acked {
            etag: r.header("etag").expect("an ETag").to_owned(),
            doc,
        });
        item.pending = None;
        self.stats.acked += 1;
        ACKED.fetch_add(1, Ordering::SeqCst);
        self.stats.creates += 1;
        Some(())
    }

    async fn update(
        &mut self,
        c: &Client,
        h: &[(&str, &str)],
        i: usize,
        seq: i64,
        text: String,
        patch: bool,
    ) -> Option<()> {
        let (id, current) = {
            let item = &self.items[i];
            (item.id.clone(), item.acked.clone().expect("a live item"))
        };
        let (doc, body, method, content_type) = if !patch {
            let doc = Doc { text, n: seq };
            let body = json!({"text": doc.text, "n": doc.n});
            (doc, body, "PUT", "application/json")
        } else if seq % 2 == 0 {
            let doc = Doc {
                text: current.doc.text.clone(),
                n: seq,
            };
            (
                doc,
                json!({"n": seq}),
                "PATCH",
                "application/merge-patch+json",
            )
        } else {
            let doc = Doc {
                text,
                n: current.doc.n,
            };
            let body = json!({"text": doc.text});
            (doc, body, "PATCH", "application/json")
        };
        let item = &mut self.items[i];
        item.pending = Some(Some(doc.clone()));
        item.touched = true;
        let mut headers = h.to_vec();
        headers.push(("If-Match", current.etag.as_str()));
        headers.push(("Content-Type", content_type));
        let r = c
            .try_send(
                method,
                &format!("/prod/notes/{id}"),
                &headers,
                Some(&body.to_string()),
            )
            .await
            .ok()?;
        assert_eq!(
            r.status, 200,
            "{method} {id} with its own latest ETag: {}",
            r.body
        );
        assert_eq!(
            Doc::of(&r.json()).as_ref(),
            Some(&doc),
            "{method} {id} answer"
        );
        let etag = r.header("etag").expect("an ETag").to_owned();
        assert_ne!(etag, current.etag, "{method} {id}: a new revision");
        let item = &mut self.items[i];
        item.stale.push(current.etag);
        item.acked = Some(Acked { etag, doc });
        item.pending = None;
        self.stats.acked += 1;
        ACKED.fetch_add(1, Ordering::SeqCst);
        if patch {
            self.stats.patches += 1;
        } else {
            self.stats.puts += 1;
        }
        Some(())
    }

    /// A write with an ETag the item has moved on from: always 412, and the
    /// item stays as it was (so no pending state: it must not apply).
    async fn stale_write(
        &mut self,
        c: &Client,
        h: &[(&str, &str)],
        i: usize,
        seq: i64,
        text: String,
    ) -> Option<()> {
        if self.items[i].stale.is_empty() {
            return self.update(c, h, i, seq, text, false).await;
        }
        let item = &self.items[i];
        let stale = item.stale[self.rng.below(item.stale.len() as u64) as usize].clone();
        let id = item.id.clone();
        let mut headers = h.to_vec();
        headers.push(("If-Match", stale.as_str()));
        let body = json!({"text": text, "n": seq}).to_string();
        let method = if seq % 2 == 0 { "PUT" } else { "PATCH" };
        let r = c
            .try_send(method, &format!("/prod/notes/{id}"), &headers, Some(&body))
            .await
            .ok()?;
        assert_eq!(r.status, 412, "{method} {id} with a stale ETag: {}", r.body);
        assert!(r.json().is_object(), "412 body: {}", r.body);
        self.stats.stale_refused += 1;
        Some(())
    }

    async fn delete(&mut self, c: &Client, h: &[(&str, &str)], i: usize) -> Option<()> {
        let item = &mut self.items[i];
        let current = item.acked.clone().expect("a live item");
        let id = item.id.clone();
        item.pending = Some(None);
        item.touched = true;
        let mut headers = h.to_vec();
        headers.push(("If-Match", current.etag.as_str()));
        let r = c
            .try_send("DELETE", &format!("/prod/notes/{id}"), &headers, None)
            .await
            .ok()?;
        assert_eq!(r.status, 204, "DELETE {id}: {}", r.body);
        let item = &mut self.items[i];
        item.acked = None;
        item.pending = None;
        self.stats.acked += 1;
        ACKED.fetch_add(1, Ordering::SeqCst);
        self.stats.deletes += 1;
        Some(())
    }

    /// Read-your-writes while the server runs.
    async fn read(&mut self, c: &Client, h: &[(&str, &str)], i: usize) -> Option<()> {
        let item = &self.items[i];
        let current = item.acked.clone().expect("a live item");
        let r = c
            .try_send("GET", &format!("/prod/notes/{}", item.id), h, None)
            .await
            .ok()?;
        assert_eq!(r.status, 200, "GET {}: {}", item.id, r.body);
        assert_eq!(
            r.header("etag"),
            Some(current.etag.as_str()),
            "GET {}",
            item.id
        );
        assert_eq!(Doc::of(&r.json()), Some(current.doc), "GET {}", item.id);
        self.stats.reads += 1;
        Some(())
    }
}

/// Every row of `quota_usage`: (key id, period start) -> used.
fn quota_rows(db: &Path) -> BTreeMap<(String, i64), u64> {
    let c = open_read_only(db);
    let mut stmt = c
        .prepare("SELECT key_id, period_start, used FROM quota_usage")
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            (r.get::<_, String>(0)?, r.get::<_, i64>(1)?),
            r.get::<_, i64>(2)? as u64,
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn open_read_only(db: &Path) -> Connection {
    let c = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap_or_else(|e| panic!("opening {} read-only: {e}", db.display()));
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c
}

fn integrity_check(c: &Connection) -> String {
    let rows: Vec<String> = c
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows.join("; ")
}

/// The database files exactly as the kill left them, copied and opened
/// read-write elsewhere (which replays the WAL the way the next start
/// will): they must pass the integrity check before anything touches them.
fn check_crash_image(data: &Path, scratch: &Path, round: usize) {
    let dir = scratch.join(format!("image-{round}"));
    std::fs::create_dir_all(&dir).unwrap();
    for suffix in ["", "-wal"] {
        let from = data.join(format!("apifactory.sqlite{suffix}"));
        if from.exists() {
            std::fs::copy(&from, dir.join(format!("apifactory.sqlite{suffix}"))).unwrap();
        }
    }
    let c = Connection::open(dir.join("apifactory.sqlite")).unwrap();
    assert_eq!(
        integrity_check(&c),
        "ok",
        "round {round}: the image the kill left fails PRAGMA integrity_check"
    );
    drop(c);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every note, through the API's own search (every page).
async fn all_notes(c: &Client, key: &str) -> BTreeMap<String, Doc> {
    let h = [("Host", HOST), ("x-api-key", key)];
    let mut out = BTreeMap::new();
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            None => "/prod/notes?limit=100".to_owned(),
            Some(n) => format!("/prod/notes?limit=100&next={n}"),
        };
        let r = c.send("GET", &path, &h, None).await;
        assert_eq!(r.status, 200, "search: {}", r.body);
        let page = r.json();
        for item in page["items"].as_array().expect("items") {
            let id = item["id"].as_str().expect("an id").to_owned();
            let doc =
                Doc::of(item).unwrap_or_else(|| panic!("a stored note without its fields: {item}"));
            assert!(out.insert(id.clone(), doc).is_none(), "{id} listed twice");
        }
        match page["next"].as_str() {
            Some(n) => next = Some(n.to_owned()),
            None => return out,
        }
    }
}

/// Checks every writer's items against what is stored, settles unanswered
/// writes (each either happened or not), and returns the ids to re-read
/// one by one (those written this round).
fn reconcile(
    round: usize,
    writers: &mut [Writer],
    stored: &BTreeMap<String, Doc>,
) -> Vec<(String, Option<Acked>)> {
    let mut known = BTreeSet::new();
    let mut reread = Vec::new();
    let mut settled_unanswered = 0;
    for w in writers.iter_mut() {
        for item in &mut w.items {
            known.insert(item.id.clone());
            let now = stored.get(&item.id);
            let acked_doc = item.acked.as_ref().map(|a| &a.doc);
            match item.pending.take() {
                None => assert_eq!(
                    now, acked_doc,
                    "round {round}: {} is not as its last acknowledged write left it",
                    item.id
                ),
                Some(attempt) => {
                    if now == acked_doc {
                        // The unanswered write did not happen.
                    } else if now == attempt.as_ref() {
                        // It happened: adopt it (its ETag comes from a GET).
                        settled_unanswered += 1;
                        item.acked = now.map(|doc| Acked {
                            etag: String::new(),
                            doc: doc.clone(),
                        });
                    } else {
                        panic!(
                            "round {round}: {} holds {now:?}: neither its acknowledged {acked_doc:?} nor the unanswered write {attempt:?}",
                            item.id
                        );
                    }
                    item.touched = true;
                }
            }
            if item.touched {
                reread.push((item.id.clone(), item.acked.clone()));
            }
        }
    }
    for id in stored.keys() {
        assert!(
            known.contains(id),
            "round {round}: {id} is stored, yet no write created it"
        );
    }
    if settled_unanswered > 0 {
        eprintln!("crash: round {round}: {settled_unanswered} unanswered writes had been applied");
    }
    reread
}

/// GETs each item written this round: 200 with the acknowledged ETag and
/// value, or 404 when it is gone. Fills in the ETags of adopted writes.
async fn reread(
    round: usize,
    c: &Client,
    key: &str,
    items: Vec<(String, Option<Acked>)>,
) -> BTreeMap<String, String> {
    let queue = Arc::new(std::sync::Mutex::new(items));
    let learned = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (c, key, queue, learned) = (c.clone(), key.to_owned(), queue.clone(), learned.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some((id, acked)) = queue.lock().unwrap().pop() else {
                    return;
                };
                let r = c
                    .send(
                        "GET",
                        &format!("/prod/notes/{id}"),
                        &[("Host", HOST), ("x-api-key", &key)],
                        None,
                    )
                    .await;
                match acked {
                    None => assert_eq!(
                        r.status, 404,
                        "round {round}: {id} should be gone: {}",
                        r.body
                    ),
                    Some(a) => {
                        assert_eq!(r.status, 200, "round {round}: {id}: {}", r.body);
                        assert_eq!(
                            Doc::of(&r.json()).as_ref(),
                            Some(&a.doc),
                            "round {round}: {id}"
                        );
                        let etag = r.header("etag").expect("an ETag").to_owned();
                        if a.etag.is_empty() {
                            learned.lock().unwrap().insert(id, etag);
                        } else {
                            assert_eq!(
                                etag, a.etag,
                                "round {round}: {id}: not the acknowledged ETag"
                            );
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    Arc::try_unwrap(learned).unwrap().into_inner().unwrap()
}

/// GETs on the metered tenant until its quota refuses one (at most one more
/// than the limit); counts what was served and returns the refusals (0 or 1).
async fn drain_quota(c: &Client, key: &str, served: &AtomicU64) -> u64 {
    let h = [("Host", "metered.localhost"), ("x-api-key", key)];
    for _ in 0..=METERED_LIMIT {
        let r = c.send("GET", "/prod/hits?limit=1", &h, None).await;
        match r.status {
            200 => served.fetch_add(1, Ordering::SeqCst),
            429 => {
                assert_eq!(r.json(), json!({"message": "Limit Exceeded"}));
                return 1;
            }
            other => panic!("metered: unexpected {other}: {}", r.body),
        };
    }
    0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_sigkills_under_concurrent_writes_lose_nothing() {
    let started = Instant::now();
    let seed = seed();
    eprintln!("crash: seed {seed} (APIFACTORY_CRASH_SEED={seed} replays the choices)");
    let mut rng = Rng::new(seed);

    let tmp = tempfile::tempdir().unwrap();
    let tenants = tmp.path().join("tenants");
    std::fs::create_dir_all(&tenants).unwrap();
    std::fs::write(tenants.join("crash.toml"), crash_tenant()).unwrap();
    std::fs::write(tenants.join("metered.toml"), metered_tenant()).unwrap();
    let data = tmp.path().join("data");
    let db: PathBuf = data.join("apifactory.sqlite");

    let mut server = Server::start(&tenants, &data, &[]).await;
    let keys = server.keys();
    let key = keys[&("crash".to_owned(), "writer".to_owned())].clone();
    let metered_key = keys[&("metered".to_owned(), "reader".to_owned())].clone();
    let metered_key_id: String = open_read_only(&db)
        .query_row(
            "SELECT id FROM api_keys WHERE tenant = 'metered'",
            [],
            |r| r.get(0),
        )
        .unwrap();

    let mut writers: Vec<Writer> = (0..WRITERS)
        .map(|w| Writer {
            w,
            rng: rng.fork(),
            seq: 0,
            items: Vec::new(),
            stats: Stats::default(),
        })
        .collect();
    // The highest count seen for every quota row, and what was served.
    let mut high_water: BTreeMap<(String, i64), u64> = BTreeMap::new();
    let metered_served = Arc::new(AtomicU64::new(0));
    let metered_refused = Arc::new(AtomicU64::new(0));
    let mut kills = 0;
    let mut load_time = Duration::ZERO;

    for round in 0..ROUNDS {
        let c = server.client();
        let tasks: Vec<_> = writers
            .drain(..)
            .map(|w| tokio::spawn(w.run(c.clone(), key.clone())))
            .collect();
        let metered = {
            let (c, k, served, refused) = (
                c.clone(),
                metered_key.clone(),
                metered_served.clone(),
                metered_refused.clone(),
            );
            tokio::spawn(async move {
                let h = [("Host", "metered.localhost"), ("x-api-key", k.as_str())];
                loop {
                    let Ok(r) = c.try_send("GET", "/prod/hits?limit=1", &h, None).await else {
                        return;
                    };
                    match r.status {
                        200 => served.fetch_add(1, Ordering::SeqCst),
                        429 => {
                            assert_eq!(r.json(), json!({"message": "Limit Exceeded"}));
                            refused.fetch_add(1, Ordering::SeqCst)
                        }
                        other => panic!("metered: unexpected {other}: {}", r.body),
                    };
                    tokio::time::sleep(Duration::from_millis(8)).await;
                }
            })
        };
        let acked_before = ACKED.load(Ordering::SeqCst);
        let round_started = Instant::now();
        let load = Duration::from_millis(150 + rng.below(451));
        tokio::time::sleep(load).await;
        while ACKED.load(Ordering::SeqCst) - acked_before < ROUND_MIN_ACKED
            && round_started.elapsed() < ROUND_CAP
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        load_time += round_started.elapsed();

        // The counters just before the kill; none may be lower afterwards.
        let before = quota_rows(&db);
        server.kill().await;
        kills += 1;
        for t in tasks {
            writers.push(t.await.expect("a writer failed"));
        }
        metered.await.expect("the metered client failed");
        check_crash_image(&data, tmp.path(), round);

        server = Server::start(&tenants, &data, &[]).await;
        assert!(
            server.keys().is_empty(),
            "keys are printed once, when created"
        );
        let c = server.client();

        // The store.
        let live = open_read_only(&db);
        assert_eq!(
            integrity_check(&live),
            "ok",
            "round {round}: PRAGMA integrity_check after the restart"
        );
        drop(live);

        // Quota counters.
        let after = quota_rows(&db);
        for (row, used) in before.iter().chain(high_water.iter()) {
            let now = after.get(row).copied().unwrap_or(0);
            assert!(
                now >= *used,
                "round {round}: quota counter {row:?} went back from {used} to {now}"
            );
        }
        for (row, used) in &after {
            let e = high_water.entry(row.clone()).or_default();
            *e = (*e).max(*used);
        }
        let metered_rows: Vec<u64> = after
            .iter()
            .filter(|((k, _), _)| *k == metered_key_id)
            .map(|(_, used)| *used)
            .collect();
        let periods = metered_rows.len().max(1) as u64;
        let counted: u64 = metered_rows.iter().sum();
        let served = metered_served.load(Ordering::SeqCst);
        assert!(
            served <= METERED_LIMIT * periods,
            "round {round}: {served} metered requests served, the quota is {METERED_LIMIT} a day"
        );
        assert!(
            counted >= served,
            "round {round}: {served} metered requests served but only {counted} counted durably"
        );
        assert!(
            counted <= METERED_LIMIT * periods,
            "round {round}: counted {counted} > limit"
        );

        // The items.
        let stored = all_notes(&c, &key).await;
        let to_reread = reconcile(round, &mut writers, &stored);
        let learned = reread(round, &c, &key, to_reread).await;
        for w in &mut writers {
            for item in &mut w.items {
                if let (Some(a), Some(etag)) = (&mut item.acked, learned.get(&item.id)) {
                    a.etag = etag.clone();
                }
            }
        }
        let mut round_stats = Stats::default();
        for w in &writers {
            round_stats.add(&w.stats);
        }
        eprintln!(
            "crash: round {round}: killed after {} ms; {} items stored, {} acknowledged writes so far",
            load.as_millis(),
            stored.len(),
            round_stats.acked
        );
    }

    let mut total = Stats::default();
    for w in &writers {
        total.add(&w.stats);
    }
    // Whatever quota the rounds left: spent now, so the refusal is seen
    // however fast the machine was, and the total still within the limit.
    let drained = drain_quota(&server.client(), &metered_key, &metered_served).await;
    metered_refused.fetch_add(drained, Ordering::SeqCst);
    let periods = quota_rows(&db)
        .keys()
        .filter(|(k, _)| *k == metered_key_id)
        .count()
        .max(1) as u64;
    let served = metered_served.load(Ordering::SeqCst);
    let refused = metered_refused.load(Ordering::SeqCst);
    assert!(
        served <= METERED_LIMIT * periods,
        "{served} metered requests served, the quota is {METERED_LIMIT} a day"
    );
    eprintln!(
        "crash: {kills} SIGKILLs survived in {:.1} s ({:.1} s of load); acknowledged writes: {} \
         ({} creates, {} puts, {} patches, {} deletes), {} stale writes refused, {} reads, \
         {} writes unanswered at a kill; metered: {served} served, {refused} refused (limit {METERED_LIMIT}); seed {seed}",
        started.elapsed().as_secs_f64(),
        load_time.as_secs_f64(),
        total.acked,
        total.creates,
        total.puts,
        total.patches,
        total.deletes,
        total.stale_refused,
        total.reads,
        total.unanswered,
    );
    assert_eq!(kills, ROUNDS);
    assert!(
        total.acked >= ROUND_MIN_ACKED * ROUNDS as u64,
        "only {} acknowledged writes in {ROUNDS} rounds",
        total.acked
    );
    assert!(total.puts > 0 && total.patches > 0 && total.deletes > 0 && total.stale_refused > 0);
    assert!(
        refused > 0,
        "the metered quota ({METERED_LIMIT}) never refused, even when drained: {served} served"
    );
    server.kill().await;
}
