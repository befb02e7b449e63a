use super::*;

fn acme() -> Collection {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tenants/acme.toml");
    runtime::Tenant::load(&path).unwrap().collection
}

fn one(text: &str) -> Line {
    let mut lines = parse(&acme(), text).unwrap();
    assert_eq!(lines.len(), 1);
    lines.remove(0)
}

#[test]
fn a_line_is_key_rev_then_fields_in_name_order() {
    let line = one(
        r#"{"plan":"pro","name":"Ann","_rev":"r1","email":"a@example.com","id":"a1","created":"2026-01-02T03:04:05Z"}"#,
    );
    assert_eq!(
        encode(&acme(), &line.item),
        r#"{"id":"a1","_rev":"r1","created":"2026-01-02T03:04:05Z","email":"a@example.com","name":"Ann","plan":"pro"}"#
    );
    assert!(line.rev_given);
}

#[test]
fn a_line_from_elsewhere_is_completed_as_a_create_would_be() {
    let line = one(r#"{"id":"a1","name":"Ann","email":"a@example.com"}"#);
    assert!(!line.rev_given);
    assert_eq!(line.item.rev.len(), 26, "a fresh ULID");
    assert_eq!(line.item.doc["plan"], "free", "the default");
    assert!(line.item.doc["created"].is_string(), "the auto timestamp");
}

#[test]
fn every_bad_line_is_reported_by_number_and_field() {
    let text = [
        r#"{"id":"a1","name":"Ann","email":"a@example.com"}"#,
        r#"{"id":"a2","name":5,"email":"b@example.com"}"#,
        r#"{"id":"a3","email":"c@example.com"}"#,
        r#"{"id":"a4","name":"D","email":"d@example.com","colour":"red"}"#,
        r#"{"id":"a1","name":"E","email":"e@example.com"}"#,
        r#"{"id":"a6","name":"F""#,
        "",
        r#"[1,2]"#,
        r#"{"id":"a/8","name":"H","email":"h@example.com","plan":"gold"}"#,
    ]
    .join("\n");
    let problems = parse(&acme(), &text).unwrap_err();
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let expect = [
        ("line 2: name: must be a string", 2),
        ("line 3: name: is required", 3),
        ("line 4: colour: is not a field of accounts", 4),
        ("line 5: id: \"a1\" is also the id on line 1", 5),
        ("line 6: is not JSON", 6),
        ("line 8: must be a JSON object, found an array", 8),
        ("line 9: id: \"a/8\" is not an item id", 9),
        ("line 9: plan: ", 9),
    ];
    for (start, _) in expect {
        assert!(
            shown.iter().any(|s| s.starts_with(start)),
            "{start:?} in {shown:#?}"
        );
    }
    assert_eq!(shown.len(), expect.len(), "{shown:#?}");
}

#[test]
fn numbers_keep_their_exact_text() {
    let c = runtime::Tenant::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tenants/bookshop.toml"),
    )
    .unwrap()
    .collection;
    let number = c
        .fields
        .iter()
        .find(|f| matches!(f.kind, runtime::field::Kind::Number { .. }))
        .map(|f| f.name.clone());
    let Some(number) = number else {
        panic!("bookshop has a number field")
    };
    for text in ["0.1", "12.5", "1e-7", "3"] {
        let item = Item {
            id: "x".into(),
            rev: "r".into(),
            doc: [(number.clone(), serde_json::from_str::<Value>(text).unwrap())]
                .into_iter()
                .collect(),
        };
        let line = encode(&c, &item);
        assert!(line.contains(&format!(":{text}")), "{line}");
        // Through DynamoDB's N text and back.
        let av = runtime::dynamo::to_attribute(&item.doc[&number]).unwrap();
        let back = runtime::dynamo::from_attribute(&av).unwrap();
        assert_eq!(back.to_string(), text);
    }
}

fn stored(line: &Line) -> Item {
    line.item.clone()
}

#[test]
fn an_equal_line_is_unchanged_in_every_mode_and_a_different_one_follows_the_mode() {
    let line = one(r#"{"id":"a1","_rev":"r1","name":"Ann","email":"a@example.com"}"#);
    for mode in [OnConflict::Skip, OnConflict::Replace, OnConflict::Fail] {
        let put = decide(line.clone(), Some(stored(&line)), mode);
        assert!(
            matches!(put, Put::Keep((Verdict::Unchanged, _))),
            "{mode:?}"
        );
        assert!(matches!(
            decide(line.clone(), None, mode),
            Put::Write(_, (Verdict::New, _))
        ));
    }
    let mut other = stored(&line);
    other.doc.insert("name".into(), "Bob".into());
    assert!(matches!(
        decide(line.clone(), Some(other.clone()), OnConflict::Skip),
        Put::Keep((Verdict::Skipped, _))
    ));
    assert!(matches!(
        decide(line.clone(), Some(other.clone()), OnConflict::Fail),
        Put::Abort((Verdict::Conflict, _))
    ));
    match decide(line.clone(), Some(other), OnConflict::Replace) {
        Put::Write(item, (Verdict::Replaced, _)) => {
            assert_eq!(item.doc["name"], "Ann");
            assert_ne!(
                item.rev, "r1",
                "new content never keeps the stored revision"
            );
        }
        other => panic!("{other:?}"),
    }
    // Without a revision of its own, the same fields are the same item
    // (a re-run gives the line another fresh revision).
    let bare = one(r#"{"id":"a1","name":"Ann","email":"a@example.com"}"#);
    let mut kept = bare.item.clone();
    kept.rev = "stored".into();
    // Stamped by an earlier run at another time.
    kept.doc
        .insert("created".into(), "2020-01-01T00:00:00Z".into());
    assert!(matches!(
        decide(bare, Some(kept), OnConflict::Fail),
        Put::Keep((Verdict::Unchanged, _))
    ));
}
