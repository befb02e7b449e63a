use serde_json::json;

use super::*;

fn collection(fields: &str) -> Collection {
    let text = format!(
        "[tenant]\ndisplay_name = \"Gigs\"\n[collection]\nname = \"gigs\"\n[collection.fields]\n{fields}\n[usage_plan]\nrate = 1\nburst = 1\n"
    );
    Tenant::parse(Path::new("tenants/gigs.toml"), &text)
        .unwrap()
        .collection
}

fn doc(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn find<'a>(findings: &'a [Finding], field: &str, what: What) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.field == field && f.what == what)
        .unwrap_or_else(|| panic!("no {what:?} finding for {field} in {findings:#?}"))
}

/// Each kind of change is found, and only what changed: a description
/// or an index dropped is no finding (neither can strand an item).
#[test]
fn compare_names_what_changed_and_nothing_else() {
    let old = collection(
        "title = { type = \"string\", max_length = 200, description = \"old\" }\n\
         seats = { type = \"integer\", min = 0 }\n\
         kind = { type = \"string\", enum = [\"a\", \"b\", \"c\"] }\n\
         venue = { type = \"string\", index = true }\n\
         note = { type = \"string\" }\n\
         same = { type = \"boolean\" }",
    );
    let new = collection(
        "title = { type = \"string\", max_length = 20, description = \"new\" }\n\
         seats = { type = \"number\", min = 0 }\n\
         kind = { type = \"string\", enum = [\"a\", \"b\"] }\n\
         venue = { type = \"string\" }\n\
         same = { type = \"boolean\" }\n\
         city = { type = \"string\", index = true, pattern = \"[A-Z].*\" }\n\
         status = { type = \"string\", required = true, default = \"on\" }\n\
         email = { type = \"string\", format = \"email\", index = true }",
    );
    let findings = compare(Some(&old), &new);
    assert_eq!(
        find(&findings, "title", What::Changed).rules,
        "max_length: 200 -> 20"
    );
    assert_eq!(
        find(&findings, "seats", What::Changed).rules,
        "type: integer -> number"
    );
    assert_eq!(
        find(&findings, "kind", What::Changed).rules,
        r#"enum: ["a", "b", "c"] -> ["a", "b"]"#
    );
    assert_eq!(
        find(&findings, "status", What::Added).rules,
        r#"string, default "on", required true"#
    );
    find(&findings, "note", What::Removed);
    find(&findings, "city", What::Indexed);
    find(&findings, "city", What::Added);
    // email changed from nothing to indexed and formatted: both found.
    find(&findings, "email", What::Indexed);
    assert!(
        findings
            .iter()
            .all(|f| f.field != "venue" && f.field != "same"),
        "{findings:#?}"
    );
    assert_eq!(findings.len(), 9, "{findings:#?}");
    assert!(compare(Some(&new), &new).is_empty());
}

/// Stored items counted against the change with the runtime's own
/// checks: invalid ones with the smallest ids as examples and the first's
/// problem, missing values filled by a default, removed values kept, new
/// index entries.
#[test]
fn the_tally_counts_what_each_change_means_for_stored_items() {
    let old = collection(
        "title = { type = \"string\", max_length = 200 }\n\
         note = { type = \"string\" }\n\
         city = { type = \"string\" }",
    );
    let new = collection(
        "title = { type = \"string\", max_length = 5 }\n\
         city = { type = \"string\", index = true }\n\
         status = { type = \"string\", required = true, default = \"on\" }\n\
         owner = { type = \"string\", required = true }",
    );
    let mut tally = Tally::new(&new, compare(Some(&old), &new));
    // Out of id order, as a Scan returns them.
    for (id, item) in [
        (
            "i5",
            json!({"title": "far too long", "note": "n", "city": "Oslo"}),
        ),
        (
            "i1",
            json!({"title": "short", "owner": "ann", "status": "off"}),
        ),
        ("i4", json!({"title": "longer still"})),
        ("i2", json!({"title": "also too long", "note": "m"})),
        ("i3", json!({"title": "tiny!!", "city": "Rome"})),
    ] {
        tally.add(id, &doc(item));
    }
    let data = tally.done("gigs");
    assert_eq!(data.checked, Some(5));
    let title = find(&data.findings, "title", What::Changed);
    assert_eq!(title.invalid, 4);
    assert_eq!(title.examples, ["i2", "i3", "i4"]);
    assert_eq!(
        title.problem.as_deref(),
        Some("must be at most 5 characters long, found 13")
    );
    let status = find(&data.findings, "status", What::Added);
    assert_eq!((status.invalid, status.filled), (0, 4));
    let owner = find(&data.findings, "owner", What::Added);
    assert_eq!(owner.invalid, 4);
    assert_eq!(owner.problem.as_deref(), Some("is required"));
    assert_eq!(find(&data.findings, "note", What::Removed).holding, 2);
    assert_eq!(find(&data.findings, "city", What::Indexed).holding, 2);
    let refusal = refusal(std::slice::from_ref(&data)).unwrap();
    assert!(refusal.contains("gigs: title (max_length: 200 -> 5): 4 stored item(s) break it, e.g. i2, i3, i4 (title must be at most 5 characters long, found 13)"), "{refusal}");
    assert!(refusal.contains("gigs: owner"), "{refusal}");
    assert!(!refusal.contains("status"), "{refusal}");
    let text = data.to_string();
    assert!(
        text.contains("  + field      status (string, default \"on\", required true): 4 stored item(s) lack it and read as its default"),
        "{text}"
    );
    assert!(
        text.contains("  - field      note: 2 stored item(s) keep their value, which the API no longer returns"),
        "{text}"
    );
}

/// A parallel Scan's segments add up to what one pass gives, examples
/// included.
#[test]
fn segments_merge_into_one_tally() {
    let new = collection("title = { type = \"string\", max_length = 3 }");
    let items: Vec<(String, Map<String, Value>)> = (0..10)
        .map(|i| (format!("i{i}"), doc(json!({"title": "x".repeat(i)}))))
        .collect();
    let mut whole = Tally::new(&new, compare(None, &new));
    for (id, d) in &items {
        whole.add(id, d);
    }
    let mut parts: Vec<Tally> = (0..3)
        .map(|_| Tally::new(&new, compare(None, &new)))
        .collect();
    for (n, (id, d)) in items.iter().enumerate().rev() {
        parts[n % 3].add(id, d);
    }
    let mut merged = parts.remove(0);
    for p in parts {
        merged.merge(p);
    }
    assert_eq!(merged.done("gigs"), whole.clone().done("gigs"));
    let data = whole.done("gigs");
    assert_eq!(data.findings[0].invalid, 6);
    assert_eq!(data.findings[0].examples, ["i4", "i5", "i6"]);
    // Nothing breaks a rule: a check without the deployed file says nothing.
    let mut fine = Tally::new(&new, compare(None, &new));
    fine.add("a", &doc(json!({"title": "ok"})));
    assert!(fine.done("gigs").findings.is_empty());
}

/// The local target's items are read from its database, against the
/// fields its deployed functions ship with; a tenant not deployed, or
/// deployed with the same fields, has nothing to say.
#[tokio::test]
async fn the_local_target_reads_its_deployed_file_and_items() {
    let dir = tempfile::tempdir().unwrap();
    let state = LocalState::open(dir.path()).await.unwrap();
    let old = "[tenant]\ndisplay_name = \"Gigs\"\n[collection]\nname = \"gigs\"\n[collection.fields]\ntitle = { type = \"string\" }\n[usage_plan]\nrate = 1\nburst = 1\n";
    let new = old.replace("type = \"string\" }", "type = \"string\", max_length = 3 }");
    let tenant = |text: &str| Tenant::parse(Path::new("tenants/gigs.toml"), text).unwrap();
    assert!(local(&state, &[tenant(&new)]).await.unwrap().is_empty());

    let source = crate::tenants::package_source(old).unwrap();
    let function = crate::resource::Address::new("gigs", crate::resource::Kind::Function, "f");
    state
        .put(&function, &Default::default(), Some(source))
        .await
        .unwrap();
    let t = tenant(old);
    let table = state.database().table(&t).await.unwrap();
    for (id, title) in [("a", "ok"), ("b", "too long"), ("c", "longer")] {
        let item = runtime::store::Item {
            id: id.into(),
            rev: "r".into(),
            doc: doc(json!({ "title": title })),
        };
        runtime::Store::create(&table, &item).await.unwrap();
    }
    assert!(local(&state, &[tenant(old)]).await.unwrap().is_empty());
    let data = local(&state, &[tenant(&new)]).await.unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0].checked, Some(3));
    let title = find(&data[0].findings, "title", What::Changed);
    assert_eq!(
        (title.invalid, title.examples.clone()),
        (2, vec!["b".to_owned(), "c".to_owned()])
    );
}

/// A new index on a table with items covers them before anything
/// searches it: SQLite builds an index over the rows already there when
/// it is created, in the apply's table action.
#[tokio::test]
async fn a_new_local_index_covers_the_items_stored_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = LocalState::open(dir.path()).await.unwrap();
    let text = |index: bool| {
        format!(
            "[tenant]\ndisplay_name = \"Gigs\"\n[collection]\nname = \"gigs\"\n[collection.fields]\ncity = {{ type = \"string\", index = {index} }}\n[usage_plan]\nrate = 1\nburst = 1\n"
        )
    };
    let before = Tenant::parse(Path::new("tenants/gigs.toml"), &text(false)).unwrap();
    let table = state.database().table(&before).await.unwrap();
    for (id, city) in [("a", "Oslo"), ("b", "Rome"), ("c", "Oslo")] {
        let item = runtime::store::Item {
            id: id.into(),
            rev: "r".into(),
            doc: doc(json!({ "city": city })),
        };
        runtime::Store::create(&table, &item).await.unwrap();
    }
    let after = Tenant::parse(Path::new("tenants/gigs.toml"), &text(true)).unwrap();
    let table = state.database().table(&after).await.unwrap();
    let search = runtime::store::Search {
        filters: vec![runtime::store::Filter {
            field: "city".into(),
            value: json!("Oslo"),
            list: false,
        }],
        index: Some("city".into()),
        limit: 10,
        start: None,
    };
    let page = runtime::Store::search(&table, &search).await.unwrap();
    let ids: Vec<&str> = page.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["a", "c"]);
    // The search is served by the index, which holds the old rows.
    let plan: Vec<String> = state
        .database()
        .read(|c| {
            let mut s = c
                .prepare("EXPLAIN QUERY PLAN SELECT id FROM items_gigs WHERE json_extract(doc, '$.city') = 'Oslo'")
                .unwrap();
            Ok(s.query_map([], |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap())
        })
        .await
        .unwrap();
    assert!(
        plan.iter().any(|p| p.contains("INDEX items_gigs_by_city")),
        "{plan:?}"
    );
}
