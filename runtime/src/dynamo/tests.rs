use super::*;
use serde_json::json;

fn collection() -> Collection {
    let text = r#"
        [tenant]
        display_name = "T"
        [collection]
        name = "things"
        [collection.fields]
        name  = { type = "string" }
        color = { type = "string", index = true }
        size  = { type = "integer", index = true }
        tags  = { type = "string_list" }
        [usage_plan]
        rate = 1
        burst = 1
    "#;
    crate::Tenant::parse(std::path::Path::new("t.toml"), text)
        .expect("valid tenant")
        .collection
}

fn store() -> DynamoStore {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .build();
    DynamoStore::new(Client::from_conf(config), "t", &collection())
}

#[test]
fn values_round_trip() {
    for v in [
        json!("x"),
        json!(""),
        json!(7),
        json!(-3),
        json!(2.5),
        json!(true),
        json!([]),
        json!(["b", "a", "b"]),
    ] {
        let av = to_attribute(&v).expect("not null");
        assert_eq!(from_attribute(&av), Some(v));
    }
    assert_eq!(to_attribute(&json!(null)), None);
    assert_eq!(
        to_attribute(&json!(2.5)),
        Some(AttributeValue::N("2.5".into()))
    );
    assert_eq!(
        to_attribute(&json!(["a"])),
        Some(AttributeValue::L(vec![AttributeValue::S("a".into())]))
    );
    assert_eq!(from_attribute(&AttributeValue::N("1e400".into())), None);
    assert_eq!(from_attribute(&AttributeValue::N("x".into())), None);
    assert_eq!(
        from_attribute(&AttributeValue::N("12345678901234567890".into())),
        Some(json!(12345678901234567890.0))
    );
}

#[test]
fn items_map_both_ways_and_ignore_unknown_attributes() {
    let s = store();
    let item = Item {
        id: "a".into(),
        rev: "r1".into(),
        doc: json!({"name": "n", "size": 3, "tags": [], "gone": null})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    };
    let mut map = s.to_attributes(&item);
    assert_eq!(map.get("id"), Some(&AttributeValue::S("a".into())));
    assert_eq!(map.get("_rev"), Some(&AttributeValue::S("r1".into())));
    assert!(!map.contains_key("gone"));
    map.insert("stranger".into(), AttributeValue::S("x".into()));
    let back = s.to_item(&map).expect("item");
    assert_eq!(
        back.doc,
        json!({"name": "n", "size": 3, "tags": []})
            .as_object()
            .cloned()
            .unwrap_or_default()
    );
    assert_eq!((back.id.as_str(), back.rev.as_str()), ("a", "r1"));
    // Without `_rev` (an adopted table's items): a revision derived from
    // the content, stable, and different for different content.
    map.remove("_rev");
    let derived = s.to_item(&map).expect("item without _rev").rev;
    assert!(derived.starts_with(DERIVED_REV), "{derived}");
    assert_eq!(s.to_item(&map.clone()).unwrap().rev, derived);
    let mut changed = map.clone();
    changed.insert("size".into(), AttributeValue::N("4".into()));
    assert_ne!(s.to_item(&changed).unwrap().rev, derived);
    map.insert("_rev".into(), AttributeValue::N("1".into()));
    assert!(matches!(s.to_item(&map), Err(StoreError::Backend(_))));
}

/// Sets and maps have no order in DynamoDB: the derived revision does not
/// depend on the order they come in.
#[test]
fn a_derived_revision_ignores_set_and_map_order() {
    let one = |ss: Vec<&str>, m: Vec<(&str, &str)>| {
        let map = HashMap::from([
            ("id".to_owned(), AttributeValue::S("a".into())),
            (
                "tags".to_owned(),
                AttributeValue::Ss(ss.into_iter().map(str::to_owned).collect()),
            ),
            (
                "m".to_owned(),
                AttributeValue::M(
                    m.into_iter()
                        .map(|(k, v)| (k.to_owned(), AttributeValue::S(v.to_owned())))
                        .collect(),
                ),
            ),
        ]);
        derived_rev(&map)
    };
    assert_eq!(
        one(vec!["x", "y"], vec![("a", "1"), ("b", "2")]),
        one(vec!["y", "x"], vec![("b", "2"), ("a", "1")])
    );
    assert_ne!(
        one(vec!["x", "y"], vec![("a", "1")]),
        one(vec!["xy"], vec![("a", "1")])
    );
}

#[test]
fn start_keys_are_checked() {
    let s = store();
    let red = AttributeValue::S("red".into());
    let ok = json!({"id": {"S": "a"}});
    assert!(s.decode_start(&ok, None).is_ok());
    let q = json!({"id": {"S": "a"}, "color": {"S": "red"}});
    assert!(s.decode_start(&q, Some(("color", &red))).is_ok());
    let three = AttributeValue::N("3".into());
    let n = json!({"id": {"S": "a"}, "size": {"N": "3"}});
    assert!(s.decode_start(&n, Some(("size", &three))).is_ok());
    for bad in [
        json!(null),
        json!("x"),
        json!([]),
        json!({}),
        json!({"id": "a"}),
        json!({"id": {"S": 1}}),
        json!({"id": {"S": ""}}),
        json!({"id": {"N": "1"}}),
        json!({"id": {"B": "YQ=="}}),
        json!({"id": {"S": "a", "N": "1"}}),
        json!({"id": {"S": "a"}, "name": {"S": "n"}}),
        json!({"id": {"S": "a"}, "color": {"S": "red"}}),
    ] {
        assert!(
            matches!(s.decode_start(&bad, None), Err(StoreError::BadStart(_))),
            "{bad}"
        );
    }
    for bad in [
        json!({"id": {"S": "a"}}),
        json!({"id": {"S": "a"}, "color": {"S": "blue"}}),
        json!({"id": {"S": "a"}, "color": {"N": "1"}}),
    ] {
        assert!(
            matches!(
                s.decode_start(&bad, Some(("color", &red))),
                Err(StoreError::BadStart(_))
            ),
            "{bad}"
        );
    }
    let n_bad = json!({"id": {"S": "a"}, "size": {"N": "x"}});
    assert!(matches!(
        s.decode_start(&n_bad, Some(("size", &three))),
        Err(StoreError::BadStart(_))
    ));
}

#[test]
fn start_keys_round_trip_through_json() {
    let key = HashMap::from([
        ("id".to_owned(), AttributeValue::S("a".into())),
        ("size".to_owned(), AttributeValue::N("3".into())),
    ]);
    let json = start_to_json(&key).expect("json");
    assert_eq!(json, json!({"id": {"S": "a"}, "size": {"N": "3"}}));
    let three = AttributeValue::N("3".into());
    assert_eq!(
        store()
            .decode_start(&json, Some(("size", &three)))
            .expect("key"),
        key
    );
}

#[tokio::test]
async fn a_lazy_store_makes_its_client_on_first_use_only() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let made = Arc::new(AtomicUsize::new(0));
    let counter = made.clone();
    let client = store().client().await.clone();
    let s = DynamoStore::lazy("t", &collection(), move || {
        counter.fetch_add(1, Ordering::SeqCst);
        let client = client.clone();
        async move { client }
    });
    let copy = s.clone();
    assert_eq!(made.load(Ordering::SeqCst), 0, "made before any use");
    let _ = s.client().await;
    let _ = copy.client().await;
    assert_eq!(
        made.load(Ordering::SeqCst),
        1,
        "made once, shared by clones"
    );
}
