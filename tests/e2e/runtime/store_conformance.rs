//! The store conformance suite: every case is written once, generic over
//! `S: Store`, and instantiated for each store (DynamoDB on moto, SQLite in
//! a temporary folder). Each test gets a fresh table, so the tests run in
//! parallel. The tenant is `tests/data/conformance.toml`: every field type,
//! an indexed string (`color`), an indexed integer (`size`), a string list.

use std::collections::BTreeSet;

use apifactory_tests::{
    RecordedRequest, Recording, data_path, realistic_endpoint, sdk_config_at, unique_name,
};
use runtime::dynamo::DynamoStore;
use runtime::{Expect, Filter, Item, Search, Store, StoreError, Tenant};
use serde_json::{Map, Value, json};

/// The conformance tenant.
pub fn tenant() -> Tenant {
    let path = data_path("conformance.toml");
    Tenant::load(&path).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()))
}

fn doc(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("a document must be an object, not {other}"),
    }
}

fn item(id: &str, rev: &str, value: Value) -> Item {
    Item {
        id: id.to_owned(),
        rev: rev.to_owned(),
        doc: doc(value),
    }
}

fn eq(field: &str, value: Value) -> Filter {
    Filter {
        field: field.to_owned(),
        value,
        list: false,
    }
}

fn contains(field: &str, value: &str) -> Filter {
    Filter {
        field: field.to_owned(),
        value: json!(value),
        list: true,
    }
}

fn search(filters: Vec<Filter>, index: Option<&str>, limit: usize) -> Search {
    Search {
        filters,
        index: index.map(str::to_owned),
        limit,
        start: None,
    }
}

/// Every page of a search, following `next` until it is `None`. Checks each
/// page's size against the limit; fails on a search that never ends.
async fn all_pages<S: Store>(store: &S, mut s: Search) -> Vec<Item> {
    let mut items = Vec::new();
    for _ in 0..100 {
        let page = store.search(&s).await.expect("search");
        assert!(
            page.items.len() <= s.limit,
            "a page of {} items for limit {}",
            page.items.len(),
            s.limit
        );
        items.extend(page.items);
        match page.next {
            Some(next) => s.start = Some(next),
            None => return items,
        }
    }
    panic!("a search still had a next page after 100 pages");
}

/// The ids of every matching item, checking that none comes twice.
async fn ids<S: Store>(store: &S, s: Search) -> BTreeSet<String> {
    let items = all_pages(store, s).await;
    let ids: BTreeSet<String> = items.iter().map(|i| i.id.clone()).collect();
    assert_eq!(ids.len(), items.len(), "an item came twice: {items:?}");
    ids
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

// ---------------------------------------------------------------------------
// The cases.

/// Every field type survives a write and a read, the empty list included;
/// absent fields stay absent.
pub async fn round_trip<S: Store>(store: &S) {
    let full = item(
        "full",
        "r1",
        json!({
            "name": "Widget \"deluxe\" ü",
            "color": "green",
            "size": 42,
            "weight": -2.75,
            "active": true,
            "seen": "2026-11-25T13:00:00Z",
            "tags": ["b", "a", "b"],
        }),
    );
    let sparse = item(
        "sparse",
        "r1",
        json!({"name": "x", "active": false, "size": 0, "tags": []}),
    );
    store.create(&full).await.expect("create full");
    store.create(&sparse).await.expect("create sparse");
    assert_eq!(store.get("full").await.expect("get"), Some(full));
    assert_eq!(store.get("sparse").await.expect("get"), Some(sparse));
    assert_eq!(store.get("missing").await.expect("get"), None);
}

/// `create` never overwrites.
pub async fn create_existing<S: Store>(store: &S) {
    let first = item("a", "r1", json!({"name": "first"}));
    store.create(&first).await.expect("create");
    let second = item("a", "r2", json!({"name": "second"}));
    assert!(matches!(
        store.create(&second).await,
        Err(StoreError::Exists)
    ));
    assert_eq!(store.get("a").await.expect("get"), Some(first));
}

pub async fn replace_outcomes<S: Store>(store: &S) {
    store
        .create(&item(
            "a",
            "r1",
            json!({"name": "one", "color": "red", "size": 1}),
        ))
        .await
        .expect("create");

    // Any revision; the new document replaces the old one whole.
    let two = item("a", "r2", json!({"name": "two"}));
    store.replace(&two, &Expect::Exists).await.expect("replace");
    assert_eq!(store.get("a").await.expect("get"), Some(two));

    // The right revision.
    let three = item("a", "r3", json!({"name": "three", "tags": ["x"]}));
    store
        .replace(&three, &Expect::Rev("r2".into()))
        .await
        .expect("replace at r2");
    assert_eq!(store.get("a").await.expect("get"), Some(three.clone()));

    // A stale revision changes nothing.
    let stale = item("a", "r4", json!({"name": "stale"}));
    assert!(matches!(
        store.replace(&stale, &Expect::Rev("r2".into())).await,
        Err(StoreError::RevMismatch)
    ));
    assert_eq!(store.get("a").await.expect("get"), Some(three));

    // No item.
    let ghost = item("ghost", "r1", json!({"name": "ghost"}));
    assert!(matches!(
        store.replace(&ghost, &Expect::Exists).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.replace(&ghost, &Expect::Rev("r1".into())).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.get("ghost").await.expect("get"), None);
}

pub async fn delete_outcomes<S: Store>(store: &S) {
    let a = item("a", "r1", json!({"name": "a"}));
    store.create(&a).await.expect("create a");
    store
        .create(&item("b", "r1", json!({"name": "b"})))
        .await
        .expect("create b");

    assert!(matches!(
        store.delete("a", &Expect::Rev("r0".into())).await,
        Err(StoreError::RevMismatch)
    ));
    assert_eq!(store.get("a").await.expect("get"), Some(a));
    store
        .delete("a", &Expect::Rev("r1".into()))
        .await
        .expect("delete at r1");
    assert_eq!(store.get("a").await.expect("get"), None);
    store.delete("b", &Expect::Exists).await.expect("delete b");
    assert_eq!(store.get("b").await.expect("get"), None);

    for id in ["a", "b", "never"] {
        assert!(matches!(
            store.delete(id, &Expect::Exists).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            store.delete(id, &Expect::Rev("r1".into())).await,
            Err(StoreError::NotFound)
        ));
    }
}

/// Creates the items the search cases look for.
async fn search_fixture<S: Store>(store: &S) {
    let items = [
        (
            "1",
            json!({"name": "apple", "color": "red", "size": 1, "active": true, "tags": ["fruit", "round"]}),
        ),
        (
            "2",
            json!({"name": "cherry", "color": "red", "size": 1, "active": false, "tags": ["fruit"]}),
        ),
        (
            "3",
            json!({"name": "brick", "color": "red", "size": 3, "active": true, "tags": []}),
        ),
        (
            "4",
            json!({"name": "leaf", "color": "green", "size": 1, "active": true, "tags": ["round"]}),
        ),
        ("5", json!({"name": "sky", "color": "blue", "weight": 0.5})),
        (
            "6",
            json!({"name": "apple", "color": "green", "size": 2, "tags": ["fruit", "sour"]}),
        ),
        ("7", json!({"name": "nothing"})),
    ];
    for (id, value) in items {
        store.create(&item(id, "r1", value)).await.expect("create");
    }
}

pub async fn search_filters<S: Store>(store: &S) {
    search_fixture(store).await;
    let cases: Vec<(&str, Search, &[&str])> = vec![
        (
            "everything",
            search(vec![], None, 100),
            &["1", "2", "3", "4", "5", "6", "7"],
        ),
        (
            "a non-indexed string",
            search(vec![eq("name", json!("apple"))], None, 100),
            &["1", "6"],
        ),
        (
            "a boolean",
            search(vec![eq("active", json!(true))], None, 100),
            &["1", "3", "4"],
        ),
        (
            "a number",
            search(vec![eq("weight", json!(0.5))], None, 100),
            &["5"],
        ),
        (
            "an indexed string",
            search(vec![eq("color", json!("red"))], Some("color"), 100),
            &["1", "2", "3"],
        ),
        (
            "an indexed integer",
            search(vec![eq("size", json!(1))], Some("size"), 100),
            &["1", "2", "4"],
        ),
        (
            "a list containing a string",
            search(vec![contains("tags", "fruit")], None, 100),
            &["1", "2", "6"],
        ),
        (
            "indexed and non-indexed together",
            search(
                vec![eq("color", json!("red")), eq("active", json!(true))],
                Some("color"),
                100,
            ),
            &["1", "3"],
        ),
        (
            "an index, a list and a string",
            search(
                vec![
                    eq("name", json!("apple")),
                    contains("tags", "fruit"),
                    eq("size", json!(1)),
                ],
                Some("size"),
                100,
            ),
            &["1"],
        ),
        (
            "an indexed value nobody has",
            search(vec![eq("color", json!("purple"))], Some("color"), 100),
            &[],
        ),
        (
            "a list value nobody has",
            search(vec![contains("tags", "square")], None, 100),
            &[],
        ),
    ];
    for (what, s, expected) in cases {
        assert_eq!(ids(store, s).await, set(expected), "search by {what}");
    }

    // Whole items come back, not just ids.
    let page = store
        .search(&search(vec![eq("name", json!("brick"))], None, 10))
        .await
        .expect("search");
    assert_eq!(
        page.items,
        vec![item(
            "3",
            "r1",
            json!({"name": "brick", "color": "red", "size": 3, "active": true, "tags": []})
        )]
    );
}

/// 25 matching items among others, read 10 at a time by each kind of
/// search: every one exactly once. (A DynamoDB page may hold fewer than the
/// limit, so the pages are followed until `next` is `None`.)
pub async fn paging<S: Store>(store: &S) {
    // 33 items; every fourth one (8 in all) does not match, so a store that
    // reads in key order meets non-matching items inside every page.
    let mut matching = BTreeSet::new();
    for i in 0..33 {
        let id = format!("p{i:02}");
        let value = if i % 4 == 1 {
            json!({"name": "other", "color": "red", "size": 8, "tags": []})
        } else {
            matching.insert(id.clone());
            json!({"name": "page", "color": "blue", "size": 7, "tags": ["p"]})
        };
        store.create(&item(&id, "r1", value)).await.expect("create");
    }
    assert_eq!(matching.len(), 25);
    let cases = [
        ("a scan", search(vec![eq("name", json!("page"))], None, 10)),
        (
            "an indexed string",
            search(vec![eq("color", json!("blue"))], Some("color"), 10),
        ),
        (
            "an indexed integer",
            search(vec![eq("size", json!(7))], Some("size"), 10),
        ),
        ("a list", search(vec![contains("tags", "p")], None, 10)),
    ];
    for (what, s) in cases {
        assert_eq!(ids(store, s).await, matching, "paging through {what}");
    }
    let everything = ids(store, search(vec![], None, 10)).await;
    assert_eq!(everything.len(), 33, "paging through the whole table");
}

/// A `start` no store ever returned is refused, not trusted.
pub async fn bad_start<S: Store>(store: &S) {
    store
        .create(&item("a", "r1", json!({"name": "a", "color": "red"})))
        .await
        .expect("create");
    let garbage = [
        json!(42),
        json!("garbage"),
        json!([1, {"x": null}]),
        json!({"garbage": [true]}),
        json!({}),
    ];
    for start in garbage {
        for index in [None, Some("color")] {
            let mut s = search(vec![eq("color", json!("red"))], index, 10);
            s.start = Some(start.clone());
            let result = store.search(&s).await;
            assert!(
                matches!(result, Err(StoreError::BadStart(_))),
                "start {start} with index {index:?}: {result:?}"
            );
        }
    }
}

/// Instantiates every case for one store. `$make` is an async fn returning
/// a fixture that derefs to the store and keeps what it needs alive.
macro_rules! conformance {
    ($backend:ident, $make:path) => {
        mod $backend {
            #[tokio::test(flavor = "multi_thread")]
            async fn round_trip() {
                let f = $make().await;
                super::round_trip(&f.store).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn create_existing() {
                let f = $make().await;
                super::create_existing(&f.store).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn replace_outcomes() {
                let f = $make().await;
                super::replace_outcomes(&f.store).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn delete_outcomes() {
                let f = $make().await;
                super::delete_outcomes(&f.store).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn search_filters() {
                let f = $make().await;
                super::search_filters(&f.store).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn paging() {
                let f = $make().await;
                super::paging(&f.store).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn bad_start() {
                let f = $make().await;
                super::bad_start(&f.store).await;
            }
        }
    };
}

/// A store under test and whatever must outlive it.
pub struct Fixture<S> {
    pub store: S,
    _keep: Option<tempfile::TempDir>,
}

// ---------------------------------------------------------------------------
// DynamoDB, on moto.

/// A fresh table of the conformance tenant on moto (through the realism
/// layer), as the deploy factory creates it.
pub async fn dynamo_store() -> Fixture<DynamoStore> {
    let tenant = tenant();
    let client = aws_sdk_dynamodb::Client::new(&sdk_config_at(realistic_endpoint()).await);
    let table = unique_name("conformance-");
    apifactory::aws::table::create_table(
        &client,
        &apifactory::aws::Pacer::new(apifactory::aws::Pace::Off),
        &table,
        &runtime::schema::TableSchema::of(&tenant.collection),
        &Default::default(),
    )
    .await
    .expect("create_table");
    Fixture {
        store: DynamoStore::new(client, table, &tenant.collection),
        _keep: None,
    }
}

conformance!(dynamodb, super::dynamo_store);

/// The requests moto recorded for one table, in order.
fn requests_for(table: &str, recorded: &[RecordedRequest]) -> Vec<(String, Value)> {
    recorded
        .iter()
        .filter_map(|r| {
            let body = r.json_body()?;
            (body.get("TableName")?.as_str()? == table)
                .then(|| (r.json_operation().unwrap_or_default().to_owned(), body))
        })
        .collect()
}

/// An indexed search is a Query on the field's GSI; any other is a Scan.
/// Read from moto's request recorder, filtered by this test's table (tests
/// running in parallel record too).
#[tokio::test(flavor = "multi_thread")]
async fn dynamodb_indexed_search_is_a_query_on_the_index() {
    let f = dynamo_store().await;
    search_fixture(&f.store).await;

    let recording = Recording::start().await;
    let by_color = search(
        vec![eq("color", json!("red")), eq("active", json!(true))],
        Some("color"),
        100,
    );
    let by_size = search(vec![eq("size", json!(1))], Some("size"), 100);
    let by_name = search(vec![eq("name", json!("apple"))], None, 100);
    assert_eq!(ids(&f.store, by_color).await, set(&["1", "3"]));
    assert_eq!(ids(&f.store, by_size).await, set(&["1", "2", "4"]));
    assert_eq!(ids(&f.store, by_name).await, set(&["1", "6"]));
    let recorded = recording.requests().await;
    recording.stop().await;

    let calls = requests_for(f.store.table(), &recorded);
    let summary: Vec<(&str, Option<&str>)> = calls
        .iter()
        .map(|(op, body)| (op.as_str(), body.get("IndexName").and_then(Value::as_str)))
        .collect();
    assert_eq!(
        summary,
        [
            ("Query", Some("by_color")),
            ("Query", Some("by_size")),
            ("Scan", None),
        ],
        "the calls on table {}: {calls:?}",
        f.store.table()
    );
    let (_, query) = &calls[0];
    assert_eq!(query["KeyConditionExpression"], json!("#n0 = :v0"));
    assert_eq!(query["FilterExpression"], json!("#n1 = :v1"));
    assert_eq!(
        query["ExpressionAttributeNames"],
        json!({"#n0": "color", "#n1": "active"})
    );
    let (_, scan) = &calls[2];
    assert_eq!(scan["FilterExpression"], json!("#n0 = :v0"));
    assert!(scan.get("KeyConditionExpression").is_none());
}

/// DynamoDB applies `Limit` before the filter, so one call may return fewer
/// matches than asked for: a search keeps calling, asking for what is still
/// missing, from where the last call stopped, until the page is full.
#[tokio::test(flavor = "multi_thread")]
async fn dynamodb_fills_a_page_across_round_trips() {
    let f = dynamo_store().await;
    for i in 0..12 {
        let name = if i % 2 == 0 { "even" } else { "odd" };
        f.store
            .create(&item(&format!("e{i:02}"), "r1", json!({ "name": name })))
            .await
            .expect("create");
    }

    let recording = Recording::start().await;
    let page = f
        .store
        .search(&search(vec![eq("name", json!("even"))], None, 4))
        .await
        .expect("search");
    let recorded = recording.requests().await;
    recording.stop().await;

    assert_eq!(page.items.len(), 4, "{page:?}");
    assert!(page.items.iter().all(|i| i.doc["name"] == "even"));
    let calls = requests_for(f.store.table(), &recorded);
    let limits: Vec<i64> = calls
        .iter()
        .map(|(op, body)| {
            assert_eq!(op, "Scan");
            body["Limit"].as_i64().expect("a Limit")
        })
        .collect();
    assert!(limits.len() > 1, "one call filled the page: {calls:?}");
    assert_eq!(limits[0], 4);
    assert!(limits.windows(2).all(|w| w[1] < w[0]), "limits {limits:?}");
    assert!(calls[0].1.get("ExclusiveStartKey").is_none());
    assert!(
        calls[1..]
            .iter()
            .all(|(_, body)| body.get("ExclusiveStartKey").is_some()),
        "{calls:?}"
    );

    // The rest, from where the page stopped.
    let mut rest = search(vec![eq("name", json!("even"))], None, 4);
    rest.start = page.next.clone();
    assert!(rest.start.is_some());
    let mut seen: BTreeSet<String> = page.items.iter().map(|i| i.id.clone()).collect();
    for item in all_pages(&f.store, rest).await {
        assert!(seen.insert(item.id.clone()), "{} came twice", item.id);
    }
    assert_eq!(seen.len(), 6);
}

// ---------------------------------------------------------------------------
// SQLite, in a temporary folder.

/// A fresh database file holding the conformance tenant's table.
pub async fn sqlite_store() -> Fixture<runtime::sqlite::SqliteTable> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let db = runtime::sqlite::Database::open(&dir.path().join("store.db")).expect("open");
    let table = db.table(&tenant()).await.expect("table");
    Fixture {
        store: table,
        _keep: Some(dir),
    }
}

conformance!(sqlite, super::sqlite_store);

/// Items another program wrote into a table apifactory adopted have no
/// `_rev`: they read, search, update and delete all the same, with a
/// revision derived from their content that is stable across reads, and a
/// write expecting that revision is a real condition (it fails once the
/// item changed, through this store or not), never a blind overwrite.
#[tokio::test(flavor = "multi_thread")]
async fn dynamodb_items_without_a_revision_are_read_and_written_under_a_derived_one() {
    use aws_sdk_dynamodb::types::AttributeValue as Av;
    let f = dynamo_store().await;
    let raw = aws_sdk_dynamodb::Client::new(&sdk_config_at(realistic_endpoint()).await);
    let table = f.store.table().to_owned();
    let put = |id: &str, size: &str| {
        raw.put_item()
            .table_name(&table)
            .item("id", Av::S(id.to_owned()))
            .item("name", Av::S(format!("seed {id}")))
            .item("color", Av::S("red".into()))
            .item("size", Av::N(size.to_owned()))
            .item("tags", Av::L(vec![Av::S("old".into())]))
            // An attribute the tenant file does not declare: kept, unread.
            .item("legacy_flag", Av::Bool(true))
            .send()
    };
    put("s1", "1").await.expect("seed s1");
    put("s2", "2").await.expect("seed s2");

    let first = f.store.get("s1").await.expect("get").expect("s1");
    assert!(
        first.rev.starts_with(runtime::dynamo::DERIVED_REV),
        "{}",
        first.rev
    );
    assert_eq!(first.doc["name"], json!("seed s1"));
    assert_eq!(first.doc["tags"], json!(["old"]));
    let again = f.store.get("s1").await.expect("get").expect("s1");
    assert_eq!(again.rev, first.rev, "the same item, the same revision");
    let found = all_pages(
        &f.store,
        search(vec![eq("color", json!("red"))], Some("color"), 10),
    )
    .await;
    let revs: Vec<(&str, &str)> = found
        .iter()
        .map(|i| (i.id.as_str(), i.rev.as_str()))
        .collect();
    assert!(revs.contains(&("s1", first.rev.as_str())), "{revs:?}");
    assert_ne!(
        found.iter().find(|i| i.id == "s2").map(|i| &i.rev),
        Some(&first.rev),
        "another content, another revision"
    );

    // The old stack changes the item behind the store's back: the revision
    // read before no longer holds.
    raw.update_item()
        .table_name(&table)
        .key("id", Av::S("s1".into()))
        .update_expression("SET #n = :n")
        .expression_attribute_names("#n", "name")
        .expression_attribute_values(":n", Av::S("changed by the old stack".into()))
        .send()
        .await
        .expect("update behind the store's back");
    let next = item("s1", "r-new", json!({"name": "mine", "color": "blue"}));
    assert!(matches!(
        f.store
            .replace(&next, &Expect::Rev(first.rev.clone()))
            .await,
        Err(StoreError::RevMismatch)
    ));
    assert!(matches!(
        f.store
            .replace(
                &next,
                &Expect::Rev(format!("{}0", runtime::dynamo::DERIVED_REV))
            )
            .await,
        Err(StoreError::RevMismatch)
    ));
    let current = f.store.get("s1").await.expect("get").expect("s1");
    assert_eq!(current.doc["name"], json!("changed by the old stack"));
    assert_ne!(current.rev, first.rev);
    f.store
        .replace(&next, &Expect::Rev(current.rev.clone()))
        .await
        .expect("a replace at the current derived revision");
    let written = f.store.get("s1").await.expect("get").expect("s1");
    assert_eq!(
        written.rev, "r-new",
        "written through the store: a _rev of its own"
    );
    assert_eq!(written.doc["name"], json!("mine"));
    // A derived revision no longer matches an item that has a _rev now.
    assert!(matches!(
        f.store.replace(&next, &Expect::Rev(current.rev)).await,
        Err(StoreError::RevMismatch)
    ));

    // Delete: a stale derived revision is refused, the current one deletes.
    let s2 = f.store.get("s2").await.expect("get").expect("s2");
    put("s2", "3").await.expect("the old stack rewrites s2");
    assert!(matches!(
        f.store.delete("s2", &Expect::Rev(s2.rev.clone())).await,
        Err(StoreError::RevMismatch)
    ));
    let s2 = f.store.get("s2").await.expect("get").expect("s2");
    f.store
        .delete("s2", &Expect::Rev(s2.rev.clone()))
        .await
        .expect("delete at the current derived revision");
    assert_eq!(f.store.get("s2").await.expect("get"), None);
    assert!(matches!(
        f.store.delete("s2", &Expect::Rev(s2.rev)).await,
        Err(StoreError::NotFound)
    ));
}
