//! The SQLite store's own tests: the writer's batching and durability,
//! the readers, the DDL and the search SQL the indexes serve. Over 600
//! lines because each of those has its cases; they share one fixture (a
//! database in a temporary directory), so they stay one suite.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::params_from_iter;
use serde_json::{Value, json};
use tempfile::TempDir;

use super::table::search_sql;
use super::*;
use crate::store::{Expect, Filter, Item, Search, Store};
use crate::tenant::Tenant;

fn tenant() -> Tenant {
    Tenant::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/conformance.toml"
    )))
    .unwrap()
}

async fn setup() -> (TempDir, Database, SqliteTable) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&dir.path().join("local.db")).unwrap();
    let table = db.table(&tenant()).await.unwrap();
    (dir, db, table)
}

fn item(id: &str, rev: &str, doc: Value) -> Item {
    let Value::Object(doc) = doc else {
        panic!("doc must be an object")
    };
    Item {
        id: id.to_owned(),
        rev: rev.to_owned(),
        doc,
    }
}

fn eq(field: &str, value: Value) -> Filter {
    Filter {
        field: field.into(),
        value,
        list: false,
    }
}

fn search(filters: Vec<Filter>, index: Option<&str>) -> Search {
    Search {
        filters,
        index: index.map(str::to_owned),
        limit: 100,
        start: None,
    }
}

async fn ids(table: &SqliteTable, s: Search) -> Vec<String> {
    let page = table.search(&s).await.unwrap();
    assert_eq!(page.next, None);
    page.items.into_iter().map(|i| i.id).collect()
}

#[tokio::test]
async fn round_trip_and_conditions() {
    let (_dir, _db, t) = setup().await;
    assert_eq!(t.name(), "items_conformance");
    assert_eq!(t.get("a").await.unwrap(), None);

    let a1 = item("a", "r1", json!({"name": "A", "size": 3, "tags": ["x"]}));
    t.create(&a1).await.unwrap();
    assert_eq!(t.get("a").await.unwrap(), Some(a1.clone()));
    let again = item("a", "r9", json!({"name": "other"}));
    assert!(matches!(t.create(&again).await, Err(StoreError::Exists)));
    assert_eq!(t.get("a").await.unwrap(), Some(a1.clone()));

    let a2 = item("a", "r2", json!({"name": "A2"}));
    let missing = item("zz", "r1", json!({"name": "Z"}));
    assert!(matches!(
        t.replace(&missing, &Expect::Exists).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        t.replace(&missing, &Expect::Rev("r1".into())).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        t.replace(&a2, &Expect::Rev("r0".into())).await,
        Err(StoreError::RevMismatch)
    ));
    assert_eq!(t.get("a").await.unwrap(), Some(a1.clone()));
    t.replace(&a2, &Expect::Rev("r1".into())).await.unwrap();
    assert_eq!(t.get("a").await.unwrap(), Some(a2.clone()));
    let a3 = item("a", "r3", json!({"name": "A3", "active": true}));
    t.replace(&a3, &Expect::Exists).await.unwrap();
    assert_eq!(t.get("a").await.unwrap(), Some(a3.clone()));

    assert!(matches!(
        t.delete("a", &Expect::Rev("r2".into())).await,
        Err(StoreError::RevMismatch)
    ));
    assert!(matches!(
        t.delete("zz", &Expect::Exists).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(t.get("a").await.unwrap(), Some(a3));
    t.delete("a", &Expect::Rev("r3".into())).await.unwrap();
    assert_eq!(t.get("a").await.unwrap(), None);
    assert!(matches!(
        t.delete("a", &Expect::Exists).await,
        Err(StoreError::NotFound)
    ));

    t.create(&item("b", "r1", json!({}))).await.unwrap();
    t.delete("b", &Expect::Exists).await.unwrap();
    assert_eq!(t.get("b").await.unwrap(), None);
    // A deleted id can be created again.
    t.create(&item("b", "r2", json!({}))).await.unwrap();
    assert_eq!(t.get("b").await.unwrap().unwrap().rev, "r2");
}

#[tokio::test]
async fn awkward_ids_and_values_are_just_data() {
    let (_dir, _db, t) = setup().await;
    let huge = "é".repeat(1 << 20);
    let ids = [
        "it's",
        "\"quoted\"",
        "'; DROP TABLE items_conformance; --",
        "ünïcødé 🦀",
        "nul\0byte",
        "",
        huge.as_str(),
    ];
    for id in ids {
        let it = item(id, "r'1\"", json!({"name": id, "tags": [id, "\u{0}"]}));
        t.create(&it).await.unwrap();
        assert_eq!(t.get(id).await.unwrap(), Some(it));
    }
    let found = t
        .search(&Search {
            filters: vec![Filter {
                field: "tags".into(),
                value: json!("it's"),
                list: true,
            }],
            index: None,
            limit: 10,
            start: Some(json!({"id": "'"})),
        })
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);
    let page = t.search(&search(vec![], None)).await.unwrap();
    assert_eq!(page.items.len(), ids.len());
    // A filter on a field name that could break out of the JSON path is
    // refused, not run.
    let bad = search(vec![eq("x') OR 1=1 --", json!(1))], None);
    assert!(matches!(t.search(&bad).await, Err(StoreError::Backend(_))));
    for id in ids {
        t.delete(id, &Expect::Exists).await.unwrap();
    }
    assert!(
        t.search(&search(vec![], None))
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_batches_concurrent_writes() {
    let (_dir, db, t) = setup().await;
    let before = db.commits();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let t = t.clone();
            tokio::spawn(async move {
                t.create(&item(&format!("i{i:03}"), "r1", json!({"size": i})))
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let commits = db.commits() - before;
    println!("200 concurrent creates took {commits} commits");
    assert!(commits >= 1);
    assert!(
        commits < 200,
        "no batching: {commits} commits for 200 writes"
    );

    // With the writer held up, the writes queued meanwhile go in as few
    // transactions as MAX_BATCH allows: 600 jobs need two.
    let before = db.commits();
    let gate = {
        let db = db.clone();
        tokio::spawn(async move {
            db.write(|_| {
                std::thread::sleep(Duration::from_millis(300));
                Ok(())
            })
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let tasks: Vec<_> = (200..800)
        .map(|i| {
            let t = t.clone();
            tokio::spawn(async move {
                t.create(&item(&format!("i{i:03}"), "r1", json!({"size": i})))
                    .await
            })
        })
        .collect();
    gate.await.unwrap().unwrap();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let commits = db.commits() - before;
    println!("a gate and 600 queued creates took {commits} commits");
    assert!(
        (3..=10).contains(&commits),
        "{commits} commits for a gate and 600 queued writes"
    );

    let mut s = search(vec![], None);
    s.limit = 100;
    let mut seen = 0;
    loop {
        let page = t.search(&s).await.unwrap();
        seen += page.items.len();
        match page.next {
            Some(next) => s.start = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, 800);
    let check = db
        .read(|c| Ok(c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))?))
        .await
        .unwrap();
    assert_eq!(check, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_job_is_rolled_back_alone() {
    let (_dir, db, t) = setup().await;
    for i in 0..50 {
        t.create(&item(&format!("k{i:03}"), "old", json!({"size": i})))
            .await
            .unwrap();
    }

    // Half of the creates collide with stored ids.
    let before = db.commits();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let t = t.clone();
            tokio::spawn(async move {
                t.create(&item(&format!("k{i:03}"), "new", json!({"size": 1000 + i})))
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(()) => {
                assert!(i >= 50);
                created += 1;
            }
            Err(StoreError::Exists) => assert!(i < 50),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(created, 50);
    assert!(db.commits() - before < 100);
    for i in 0..100 {
        let got = t.get(&format!("k{i:03}")).await.unwrap().unwrap();
        assert_eq!(got.rev, if i < 50 { "old" } else { "new" });
    }

    // Jobs that wrote and then failed are undone; their neighbours in
    // the same transaction are kept.
    let before = db.commits();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                db.write(move |c| {
                    c.execute(
                        "INSERT INTO items_conformance (id, rev, doc) VALUES (?1, 'r', '{}')",
                        [format!("w{i:03}")],
                    )?;
                    if i % 2 == 1 {
                        return Err(StoreError::Backend("boom".into()));
                    }
                    if i == 10 {
                        panic!("a panicking job");
                    }
                    Ok(i)
                })
                .await
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let result = task.await.unwrap();
        match i {
            10 => {
                assert!(matches!(result, Err(StoreError::Backend(m)) if m.contains("panicked")))
            }
            i if i % 2 == 1 => {
                assert!(matches!(result, Err(StoreError::Backend(m)) if m == "boom"))
            }
            i => assert_eq!(result.unwrap(), i),
        }
    }
    assert!(db.commits() - before < 100);
    for i in 0..100 {
        let stored = t.get(&format!("w{i:03}")).await.unwrap().is_some();
        assert_eq!(stored, i % 2 == 0 && i != 10, "w{i:03}");
    }
    let check = db
        .read(|c| Ok(c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))?))
        .await
        .unwrap();
    assert_eq!(check, "ok");
}

#[tokio::test]
async fn writes_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("local.db");
    let it = item("kept", "r1", json!({"name": "kept", "weight": 2.5}));
    {
        let db = Database::open(&path).unwrap();
        let (mode, synchronous) = db
            .write(|c| {
                let mode = c.query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))?;
                let sync = c.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0))?;
                Ok((mode, sync))
            })
            .await
            .unwrap();
        assert_eq!(
            (mode.as_str(), synchronous),
            ("wal", 2),
            "WAL, synchronous=FULL"
        );
        let t = db.table(&tenant()).await.unwrap();
        t.create(&it).await.unwrap();
        // Clones keep it open; the writer stops with the last one.
        let other = db.clone();
        drop(db);
        assert!(other.commits() >= 3);
    }
    let db = Database::open(&path).unwrap();
    let t = db.table(&tenant()).await.unwrap();
    assert_eq!(t.get("kept").await.unwrap(), Some(it));
    assert_eq!(db.commits(), 1);
    db.drop_table(&crate::names::table("conformance"))
        .await
        .unwrap();
    let gone = db
        .read(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM sqlite_schema WHERE tbl_name = 'items_conformance'",
                [],
                |r| r.get::<_, i64>(0),
            )?)
        })
        .await
        .unwrap();
    assert_eq!(gone, 0);
    db.drop_table(&crate::names::table("conformance"))
        .await
        .unwrap();
}

async fn fill(t: &SqliteTable) {
    let colors = ["red", "green", "blue"];
    for i in 0..25_i64 {
        let doc = json!({
            "name": format!("thing {i}"),
            "color": colors[(i % 3) as usize],
            "size": i % 5,
            "weight": (i as f64) + 0.5,
            "active": i % 2 == 0,
            "seen": "2026-01-31T09:30:00Z",
            "tags": if i % 4 == 0 { json!(["four", "all"]) } else { json!(["all"]) },
        });
        t.create(&item(&format!("t{i:02}"), "r1", doc))
            .await
            .unwrap();
    }
    // Same-looking values of other types must not match.
    t.create(&item(
        "odd",
        "r1",
        json!({"name": "1", "color": "3", "size": 2.5, "tags": "four"}),
    ))
    .await
    .unwrap();
}

fn expected(pred: impl Fn(i64) -> bool) -> Vec<String> {
    (0..25)
        .filter(|i| pred(*i))
        .map(|i| format!("t{i:02}"))
        .collect()
}

#[tokio::test]
async fn searches() {
    let (_dir, _db, t) = setup().await;
    fill(&t).await;

    // Non-indexed fields of every type.
    assert_eq!(
        ids(&t, search(vec![eq("name", json!("thing 7"))], None)).await,
        ["t07"]
    );
    assert_eq!(
        ids(&t, search(vec![eq("weight", json!(3.5))], None)).await,
        ["t03"]
    );
    assert_eq!(
        ids(&t, search(vec![eq("active", json!(true))], None)).await,
        expected(|i| i % 2 == 0)
    );
    assert_eq!(
        ids(&t, search(vec![eq("active", json!(false))], None)).await,
        expected(|i| i % 2 == 1)
    );
    assert_eq!(
        ids(
            &t,
            search(vec![eq("seen", json!("2026-01-31T09:30:00Z"))], None)
        )
        .await
        .len(),
        25
    );
    assert!(
        ids(&t, search(vec![eq("name", json!(1))], None))
            .await
            .is_empty()
    );

    // Indexed fields, with and without naming the index.
    for index in [None, Some("color")] {
        assert_eq!(
            ids(&t, search(vec![eq("color", json!("green"))], index)).await,
            expected(|i| i % 3 == 1)
        );
    }
    for index in [None, Some("size")] {
        assert_eq!(
            ids(&t, search(vec![eq("size", json!(2))], index)).await,
            expected(|i| i % 5 == 2)
        );
        assert_eq!(
            ids(&t, search(vec![eq("size", json!(2.5))], index)).await,
            ["odd"]
        );
    }

    // String-list contains.
    let tags = |v: &str| Filter {
        field: "tags".into(),
        value: json!(v),
        list: true,
    };
    assert_eq!(
        ids(&t, search(vec![tags("four")], None)).await,
        expected(|i| i % 4 == 0)
    );
    assert_eq!(ids(&t, search(vec![tags("all")], None)).await.len(), 25);
    assert!(ids(&t, search(vec![tags("none")], None)).await.is_empty());

    // Combined.
    assert_eq!(
        ids(
            &t,
            search(
                vec![
                    eq("color", json!("red")),
                    eq("active", json!(true)),
                    tags("four")
                ],
                Some("color")
            )
        )
        .await,
        expected(|i| i % 3 == 0 && i % 2 == 0 && i % 4 == 0)
    );
    assert_eq!(
        ids(
            &t,
            search(
                vec![eq("size", json!(1)), eq("color", json!("blue"))],
                Some("size")
            )
        )
        .await,
        expected(|i| i % 5 == 1 && i % 3 == 2)
    );

    // An index the table does not have, or one with nothing to look up.
    for bad in [
        search(vec![eq("name", json!("x"))], Some("name")),
        search(vec![eq("name", json!("x"))], Some("color")),
        search(vec![eq("name", json!(null))], None),
        search(vec![eq("name", json!([1]))], None),
    ] {
        assert!(matches!(t.search(&bad).await, Err(StoreError::Backend(_))));
    }
}

#[tokio::test]
async fn paging() {
    let (_dir, _db, t) = setup().await;
    fill(&t).await;
    t.delete("odd", &Expect::Exists).await.unwrap();

    for (filters, index) in [
        (vec![], None),
        (vec![eq("seen", json!("2026-01-31T09:30:00Z"))], None),
        (
            vec![Filter {
                field: "tags".into(),
                value: json!("all"),
                list: true,
            }],
            None,
        ),
    ] {
        let mut s = Search {
            filters,
            index,
            limit: 10,
            start: None,
        };
        let mut sizes = Vec::new();
        let mut all = Vec::new();
        loop {
            let page = t.search(&s).await.unwrap();
            sizes.push(page.items.len());
            all.extend(page.items.into_iter().map(|i| i.id));
            match page.next {
                Some(next) => s.start = Some(next),
                None => break,
            }
        }
        assert_eq!(sizes, [10, 10, 5]);
        assert_eq!(all, expected(|_| true));
        assert_eq!(all.iter().collect::<BTreeSet<_>>().len(), 25);
    }

    // Exactly a page: no next.
    let mut s = search(vec![], None);
    s.limit = 25;
    let page = t.search(&s).await.unwrap();
    assert_eq!((page.items.len(), page.next), (25, None));

    // Paging on an index.
    let mut s = search(vec![eq("color", json!("red"))], Some("color"));
    s.limit = 5;
    let first = t.search(&s).await.unwrap();
    assert_eq!(first.next, Some(json!({"id": "t12"})));
    s.start = first.next;
    let second = t.search(&s).await.unwrap();
    assert_eq!(second.items.len(), 4);
    assert_eq!(second.items[0].id, "t15");
    assert_eq!(second.next, None);

    for bad in [
        json!("t05"),
        json!(5),
        json!(null),
        json!([]),
        json!({}),
        json!({"id": 5}),
        json!({"id": null}),
        json!({"key": "t05"}),
        json!({"id": "t05", "extra": 1}),
    ] {
        let mut s = search(vec![], None);
        s.start = Some(bad.clone());
        assert!(
            matches!(t.search(&s).await, Err(StoreError::BadStart(_))),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn indexed_searches_use_the_index() {
    let (_dir, db, t) = setup().await;
    fill(&t).await;
    assert_eq!(
        *t.indexes,
        BTreeMap::from([
            ("color".to_owned(), "items_conformance_by_color".to_owned()),
            ("size".to_owned(), "items_conformance_by_size".to_owned()),
        ])
    );
    for (field, value) in [("color", json!("red")), ("size", json!(3))] {
        let mut s = search(
            vec![eq("name", json!("thing 3")), eq(field, value)],
            Some(field),
        );
        s.start = Some(json!({"id": "t00"}));
        let (sql, params) = search_sql(&t.table, &t.indexes, &s).unwrap();
        let plan = db
            .read(move |c| {
                let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let rows = stmt
                    .query_map(params_from_iter(params.iter()), |r| r.get::<_, String>(3))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows.join("\n"))
            })
            .await
            .unwrap();
        println!("{field}: {plan}");
        let index = format!("items_conformance_by_{field}");
        assert!(plan.contains(&index), "{plan}");
        assert!(plan.contains("SEARCH"), "{plan}");
    }
}

#[tokio::test]
async fn table_is_idempotent_and_follows_the_indexes() {
    let (_dir, db, _t) = setup().await;
    let index_names = || {
        db.read(|c| {
            Ok(c.prepare(
                "SELECT name FROM sqlite_schema WHERE type = 'index' \
                 AND tbl_name = 'items_conformance' ORDER BY name",
            )?
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?)
        })
    };
    let mut tenant = tenant();
    db.table(&tenant).await.unwrap();
    assert_eq!(
        index_names().await.unwrap(),
        ["items_conformance_by_color", "items_conformance_by_size"]
    );
    for f in &mut tenant.collection.fields {
        f.index = f.name == "name";
    }
    let t = db.table(&tenant).await.unwrap();
    assert_eq!(index_names().await.unwrap(), ["items_conformance_by_name"]);
    t.create(&item("n", "r", json!({"name": "N"})))
        .await
        .unwrap();
    assert_eq!(
        ids(&t, search(vec![eq("name", json!("N"))], Some("name"))).await,
        ["n"]
    );

    tenant.id = "other-tenant".into();
    let other = db.table(&tenant).await.unwrap();
    assert_eq!(other.name(), "items_other_tenant");
    assert_eq!(other.get("n").await.unwrap(), None);
}

/// `Database::version` reads SQLite's WAL index header: it must stay put
/// while nothing is committed (reads included) and move on every commit,
/// this process's writer's and another connection's alike (as another
/// process's would). Fails if the bundled SQLite's layout ever changes.
#[tokio::test]
async fn version_sees_every_commit() {
    let (dir, db, table) = setup().await;
    let first = db.version().expect("a WAL database has a version");
    assert_eq!(db.version(), Some(first), "nothing was committed");

    table
        .create(&item("a", "r1", json!({"name": "A"})))
        .await
        .unwrap();
    let written = db.version().unwrap();
    assert_ne!(written, first, "this process's commit");

    table.get("a").await.unwrap().unwrap();
    table.search(&search(vec![], None)).await.unwrap();
    assert_eq!(db.version(), Some(written), "reads commit nothing");

    // Another connection, as `apifactory data import` in another process.
    let other = Connection::open(dir.path().join("local.db")).unwrap();
    other.busy_timeout(BUSY_TIMEOUT).unwrap();
    let name = table.table.to_string();
    other
        .execute(
            &format!("UPDATE \"{name}\" SET rev = 'r2' WHERE id = 'a'"),
            [],
        )
        .unwrap();
    let elsewhere = db.version().unwrap();
    assert_ne!(elsewhere, written, "another connection's commit");
    other
        .execute(&format!("DELETE FROM \"{name}\" WHERE id = 'a'"), [])
        .unwrap();
    assert_ne!(db.version().unwrap(), elsewhere);
}

/// A search's statement is prepared once per connection and kept
/// (`prepare_cached`): running it again with new values must not compile
/// it again (a profile once showed SQLite re-preparing it at every step,
/// most of what a search cost).
#[tokio::test]
async fn a_cached_search_is_not_prepared_again() {
    let (_dir, db, t) = setup().await;
    fill(&t).await;
    let s = search(vec![eq("color", json!("red"))], Some("color"));
    let (sql, _) = search_sql(&t.table, &t.indexes, &s).unwrap();
    for color in ["red", "green", "blue", "red"] {
        t.search(&search(vec![eq("color", json!(color))], Some("color")))
            .await
            .unwrap();
    }
    let reprepared = db
        .read_now(move |c| {
            let stmt = c.prepare_cached(&sql)?;
            Ok(stmt.get_status(rusqlite::StatementStatus::RePrepare))
        })
        .await
        .unwrap();
    assert_eq!(reprepared, 0, "the search statement was compiled again");
}
