use super::*;
use serde_json::json;

fn field(kind: Kind) -> Field {
    Field {
        name: "f".into(),
        kind,
        required: false,
        index: false,
        default: None,
        auto: None,
        description: None,
    }
}

#[test]
fn strings_follow_their_rules() {
    let f = field(Kind::String(StringRules {
        max_length: Some(3),
        pattern: Some(Pattern::new("[a-z]+").unwrap()),
        ..Default::default()
    }));
    assert!(f.check(&json!("abc")).is_ok());
    assert!(f.check(&json!("abcd")).unwrap_err().contains("at most 3"));
    assert!(f.check(&json!("AB")).unwrap_err().contains("pattern"));
    assert_eq!(
        f.check(&json!(5)).unwrap_err(),
        "must be a string, found an integer"
    );
}

#[test]
fn formats() {
    let email = field(Kind::String(StringRules {
        format: Some(Format::Email),
        ..Default::default()
    }));
    assert!(email.check(&json!("a@b.co")).is_ok());
    for bad in ["a@b", "@b.co", "a b@c.co", "a@@b.co"] {
        assert!(email.check(&json!(bad)).is_err(), "{bad}");
    }
    let uri = field(Kind::String(StringRules {
        format: Some(Format::Uri),
        ..Default::default()
    }));
    assert!(uri.check(&json!("https://x.example/a")).is_ok());
    assert!(uri.check(&json!("not a uri")).is_err());
    let ts = field(Kind::Timestamp);
    assert!(ts.check(&json!("2026-11-25T13:00:00Z")).is_ok());
    assert!(ts.check(&json!("2026-11-25T13:00:00+01:00")).is_ok());
    assert!(ts.check(&json!("2026-13-25")).is_err());
}

#[test]
fn numbers_and_integers() {
    let i = field(Kind::Integer {
        min: Some(1),
        max: Some(10),
    });
    assert!(i.check(&json!(1)).is_ok());
    assert!(i.check(&json!(0)).is_err());
    assert!(i.check(&json!(1.5)).unwrap_err().contains("integer"));
    let n = field(Kind::Number {
        min: Some(0.0),
        max: None,
    });
    assert!(n.check(&json!(0.5)).is_ok());
    assert!(n.check(&json!(-0.5)).is_err());
    assert_eq!(n.parse_filter("2.5").unwrap(), json!(2.5));
    assert!(n.parse_filter("NaN").is_err());
    assert!(i.parse_filter("x").is_err());
}

#[test]
fn numbers_are_held_to_what_dynamodb_stores() {
    for ok in [
        "0",
        "-0.0",
        "0e999",
        "1E-130",
        "-1e-130",
        "9.9999999999999999999999999999999999999E+125",
        "-9.9999999999999999999999999999999999999E+125",
        "12345678901234567890123456789012345678",
        "1000000000000000000000000000000000000000000",
        "0.000123",
        "9223372036854775807",
    ] {
        assert_eq!(storable_number(ok), Ok(()), "{ok}");
    }
    for (bad, why) in [
        ("1e126", "too large"),
        ("10E+125", "too large"),
        ("-1.5e300", "too large"),
        ("9.9e-131", "too close to zero"),
        ("0.00001e-126", "too close to zero"),
        ("5e-324", "too close to zero"),
        (
            "123456789012345678901234567890123456789",
            "more than 38 significant digits",
        ),
        ("1e99999999999999999999999", "too large"),
        ("1e-99999999999999999999999", "too close to zero"),
        ("", "not a decimal number"),
        ("1x", "not a decimal number"),
    ] {
        assert_eq!(storable_number(bad), Err(why), "{bad}");
    }
    let n = field(Kind::Number {
        min: None,
        max: None,
    });
    assert!(n.check(&json!(1e125)).is_ok());
    let e = n.check(&json!(1e200)).unwrap_err();
    assert!(e.ends_with("found 1e+200 (too large)"), "{e}");
    assert!(
        n.check(&json!(1e-131))
            .unwrap_err()
            .contains("too close to zero")
    );
    assert!(
        n.parse_filter("1e-200")
            .unwrap_err()
            .contains("too close to zero")
    );
    assert_eq!(n.parse_filter("1e-130").unwrap(), json!(1e-130));
}

#[test]
fn indexed_strings_are_keys_dynamodb_accepts() {
    let mut f = field(Kind::String(StringRules::default()));
    assert!(f.check(&json!("")).is_ok(), "not indexed: empty is a value");
    assert!(f.parse_filter("").is_ok());
    f.index = true;
    assert_eq!(
        f.check(&json!("")).unwrap_err(),
        "must not be empty (the field is indexed)"
    );
    assert!(f.parse_filter("").is_err());
    assert!(f.check(&json!("x".repeat(MAX_KEY_BYTES))).is_ok());
    assert_eq!(
        f.check(&json!("x".repeat(MAX_KEY_BYTES + 1))).unwrap_err(),
        "must be at most 2048 bytes long in UTF-8 (the field is indexed), found 2049"
    );
    // Bytes, not characters: 513 four-byte characters are 2,052 bytes.
    assert!(f.check(&json!("\u{1F600}".repeat(512))).is_ok());
    assert!(f.check(&json!("\u{1F600}".repeat(513))).is_err());
    assert!(f.parse_filter(&"\u{1F600}".repeat(513)).is_err());
    let mut ts = field(Kind::Timestamp);
    ts.index = true;
    assert!(ts.parse_filter("").unwrap_err().contains("indexed"));
    let mut i = field(Kind::Integer {
        min: None,
        max: None,
    });
    i.index = true;
    assert!(!i.is_string_key());
    assert!(i.parse_filter("").unwrap_err().contains("integer"));
}

#[test]
fn string_lists_check_each_item() {
    let l = field(Kind::StringList {
        max_items: Some(2),
        item: StringRules {
            max_length: Some(2),
            ..Default::default()
        },
    });
    assert!(l.check(&json!(["a", "bb"])).is_ok());
    assert!(l.check(&json!(["a", "b", "c"])).is_err());
    assert_eq!(
        l.check(&json!(["a", 1])).unwrap_err(),
        "item 1 must be a string, found an integer"
    );
    assert!(l.check(&json!(["abc"])).unwrap_err().starts_with("item 0"));
}
