use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::*;
use crate::field::{Auto, Kind};
use crate::tenant_error::TenantErrors;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_five_tenants_load() {
    let tenants = load_dir(&repo().join("tenants")).expect("tenants/ is valid");
    let ids: Vec<&str> = tenants.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["acme", "bookshop", "clinic", "events", "fleet"]);

    let acme = &tenants[0];
    assert_eq!(acme.collection.name, "accounts");
    let names: Vec<&str> = acme
        .collection
        .fields
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["name", "email", "company", "plan", "created"],
        "file order"
    );
    let plan = acme.collection.field("plan").unwrap();
    assert_eq!(plan.default, Some(json!("free")));
    assert!(plan.index);
    assert_eq!(
        acme.collection.field("created").unwrap().auto,
        Some(Auto::Create)
    );
    assert_eq!(acme.clients.len(), 2);
    assert_eq!(
        acme.usage_plan.quota,
        Some(Quota {
            limit: 100_000,
            period: Period::Month
        })
    );

    let clinic = &tenants[2];
    assert!(clinic.domain.is_none());
    assert!(!clinic.functions.enabled(Operation::Delete));
    assert_eq!(clinic.logs.retention_days, 365);

    // Together they exercise every field type and differ in usage plans.
    let kinds: BTreeSet<&str> = tenants
        .iter()
        .flat_map(|t| t.collection.fields.iter().map(|f| f.kind.name()))
        .collect();
    assert_eq!(kinds.len(), 6, "{kinds:?}");
    let rates: BTreeSet<u64> = tenants.iter().map(|t| t.usage_plan.rate as u64).collect();
    assert_eq!(rates.len(), tenants.len());
}

#[test]
fn defaults_fill_in_what_a_file_leaves_out() {
    let t = Tenant::parse(
        Path::new("tenants/mini.toml"),
        "[tenant]\ndisplay_name = \"M\"\n[collection]\nname = \"items\"\n[collection.fields]\nx = { type = \"string\" }\n[usage_plan]\nrate = 1\nburst = 1\n",
    )
    .unwrap();
    assert_eq!(t.id, "mini");
    assert_eq!(t.stage, "prod");
    assert_eq!(t.collection.key, "id");
    assert_eq!(t.functions.operations, Operation::ALL.to_vec());
    assert_eq!((t.functions.memory_mb, t.functions.timeout_s), (256, 10));
    assert_eq!(t.logs.retention_days, 30);
    assert!(t.clients.is_empty() && t.domain.is_none() && t.usage_plan.quota.is_none());
}

/// Each broken file yields exactly one error, and the whole directory yields
/// exactly the messages in `expected.txt` (the CLI test checks the same
/// file through `apifactory validate`).
#[test]
fn broken_files_each_give_one_clear_error() {
    let dir = repo().join("tests/data/broken-tenants");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        seen += 1;
        let errors = Tenant::load(&path).expect_err(&path.display().to_string());
        assert_eq!(errors.0.len(), 1, "{}: {errors}", path.display());
        let e = &errors.0[0];
        assert!(!e.expected.is_empty() && !e.found.is_empty(), "{e}");
    }
    assert!(seen >= 20, "only {seen} broken fixtures");
}

#[test]
fn two_tenants_may_not_claim_one_domain() {
    let errors = load_dir(&repo().join("tests/data/clashing-tenants")).unwrap_err();
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(errors.0[0].key, "domain.name");
    assert!(errors.0[0].found.contains("already claimed"), "{errors}");
}

#[test]
fn several_problems_in_one_file_are_all_reported() {
    let text = "[tenant]\ndisplay_name = \"X\"\nstage = \"a b\"\n[collection]\nname = \"Items\"\n[collection.fields]\nx = { type = \"boolean\", index = true }\n[usage_plan]\nrate = 0\nburst = 1\n";
    let errors = Tenant::parse(Path::new("x.toml"), text).unwrap_err();
    let keys: Vec<&str> = errors.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "tenant.stage",
            "collection.name",
            "collection.fields.x.index",
            "usage_plan.rate"
        ]
    );
    assert_eq!((errors.0[3].line, errors.0[3].column), (9, 8));
}

#[test]
fn nothing_a_user_types_panics() {
    // A few hostile shapes; the fuzz suite covers far more.
    for text in [
        "",
        "\u{0}",
        "[[tenant]]\n",
        "tenant = 5",
        "[collection.fields]\nx = 5",
        "[collection.fields.x]\ntype = \"string\"\ndefault = { a = 1 }",
        &"[a]\n".repeat(1000),
        "[usage_plan]\nrate = nan\nburst = 1",
    ] {
        let _ = Tenant::parse(Path::new("t.toml"), text);
    }
}

fn with_usage_plan(lines: &str) -> String {
    format!(
        "[tenant]\ndisplay_name = \"M\"\n[collection]\nname = \"items\"\n[collection.fields]\nx = {{ type = \"string\" }}\n[usage_plan]\n{lines}"
    )
}

#[test]
fn an_api_wide_total_is_optional_and_kept_apart_from_the_per_key_rate() {
    let parse = |lines: &str| Tenant::parse(Path::new("t.toml"), &with_usage_plan(lines));
    let t = parse("rate = 10\nburst = 20\n").unwrap();
    assert_eq!(t.usage_plan.api, None);
    let t = parse("rate = 10\nburst = 20\napi_rate = 25.5\napi_burst = 50\n").unwrap();
    assert_eq!(
        (t.usage_plan.rate, t.usage_plan.burst),
        (10.0, 20),
        "the per-key rate is untouched"
    );
    assert_eq!(
        t.usage_plan.api,
        Some(Throttle {
            rate: 25.5,
            burst: 50
        })
    );
    // Equal to the per-key limits is allowed: one client at full speed.
    assert!(parse("rate = 10\nburst = 20\napi_rate = 10\napi_burst = 20\n").is_ok());
    // The shipped fleet tenant shows the setting.
    let fleet = Tenant::load(&repo().join("tenants/fleet.toml")).unwrap();
    assert_eq!(
        fleet.usage_plan.api,
        Some(Throttle {
            rate: 300.0,
            burst: 600
        })
    );
}

#[test]
fn an_api_wide_total_needs_both_numbers_within_the_account_and_above_one_key() {
    let problems = |lines: &str| -> Vec<(String, usize, String)> {
        Tenant::parse(Path::new("t.toml"), &with_usage_plan(lines))
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| (e.key, e.line, e.found))
            .collect()
    };
    let one = |key: &str, line: usize, found: &str| vec![(key.to_owned(), line, found.to_owned())];
    assert_eq!(
        problems("rate = 10\nburst = 20\napi_rate = 30\n"),
        one("usage_plan.api_rate", 10, "`api_rate` alone")
    );
    assert_eq!(
        problems("rate = 10\nburst = 20\napi_burst = 30\n"),
        one("usage_plan.api_burst", 10, "`api_burst` alone")
    );
    assert_eq!(
        problems("rate = 10\nburst = 20\napi_rate = 5\napi_burst = 30\n"),
        one("usage_plan.api_rate", 10, "5")
    );
    assert_eq!(
        problems("rate = 10\nburst = 20\napi_rate = 30\napi_burst = 19\n"),
        one("usage_plan.api_burst", 11, "19")
    );
    assert_eq!(
        problems("rate = 10\nburst = 20\napi_rate = 10001\napi_burst = 5001\n"),
        [
            ("usage_plan.api_rate".to_owned(), 10, "10001".to_owned()),
            ("usage_plan.api_burst".to_owned(), 11, "5001".to_owned()),
        ]
    );
    assert_eq!(
        problems("rate = 10\nburst = 20\napi_rate = nan\napi_burst = 30\n"),
        one("usage_plan.api_rate", 10, "NaN")
    );
}

fn with_fields(fields: &str) -> Result<Tenant, TenantErrors> {
    Tenant::parse(
        Path::new("tenants/t.toml"),
        &format!(
            "[tenant]\ndisplay_name = \"T\"\n[collection]\nname = \"items\"\n[collection.fields]\n{fields}[usage_plan]\nrate = 1\nburst = 1\n"
        ),
    )
}

/// DynamoDB refuses an empty index key and one over 2,048 bytes: an
/// indexed string implies `min_length = 1`, and a file may not allow
/// either.
#[test]
fn indexed_strings_cannot_allow_what_dynamodb_cannot_index() {
    let t =
        with_fields("venue = { type = \"string\", index = true }\nnote = { type = \"string\" }\n")
            .unwrap();
    let rules = |name: &str| match &t.collection.field(name).unwrap().kind {
        Kind::String(r) => r.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(rules("venue").min_length, Some(1), "implied");
    assert_eq!(rules("note").min_length, None, "not indexed");

    for (fields, key, found) in [
        (
            "venue = { type = \"string\", min_length = 0, index = true }\n",
            "collection.fields.venue.min_length",
            "0",
        ),
        (
            "venue = { type = \"string\", max_length = 2049, index = true }\n",
            "collection.fields.venue.max_length",
            "2049",
        ),
        (
            "venue = { type = \"string\", enum = [\"a\", \"\"], index = true }\n",
            "collection.fields.venue.enum",
            "\"\"",
        ),
        (
            "venue = { type = \"string\", default = \"\", index = true }\n",
            "collection.fields.venue.default",
            "\"\"",
        ),
        (
            "venue = { type = \"string\", max_length = 0, index = true }\n",
            "collection.fields.venue.min_length",
            "1",
        ),
    ] {
        let errors = with_fields(fields).unwrap_err();
        assert_eq!(errors.0.len(), 1, "{fields}: {errors}");
        assert_eq!(errors.0[0].key, key, "{errors}");
        assert_eq!(errors.0[0].found, found, "{errors}");
        assert_eq!(errors.0[0].line, 6, "{errors}");
    }
    assert!(
        with_fields("venue = { type = \"string\", max_length = 2048, index = true }\n").is_ok()
    );
    assert!(
        with_fields("note = { type = \"string\", min_length = 0, max_length = 9999 }\n").is_ok()
    );
}

/// A table has at most 20 global secondary indexes: the 21st indexed
/// field is the error, wherever the others are.
#[test]
fn at_most_twenty_indexed_fields() {
    let fields = |n: usize| {
        (0..n)
            .map(|i| format!("f{i:02} = {{ type = \"integer\", index = true }}\nplain{i} = {{ type = \"integer\" }}\n"))
            .collect::<String>()
    };
    let t = with_fields(&fields(20)).unwrap();
    assert_eq!(t.collection.indexed().count(), 20);
    let errors = with_fields(&fields(22)).unwrap_err();
    assert_eq!(errors.0.len(), 1, "{errors}");
    let e = &errors.0[0];
    assert_eq!(e.key, "collection.fields.f20.index");
    assert_eq!(e.line, 6 + 40, "{e}");
    assert_eq!(e.found, "an index on `f20`, indexed field 21 of 22");
    assert!(e.expected.starts_with("at most 20 indexed fields"), "{e}");
}

fn with_alarms(alarms: &str) -> String {
    with_usage_plan(&format!(
        "rate = 10\nburst = 20\nquota = {{ limit = 100, period = \"DAY\" }}\n{alarms}"
    ))
}

#[test]
fn alarms_are_read_with_their_defaults() {
    let text = with_alarms(
        "[[alarms]]\nname = \"errors\"\nmetric = \"5xx_rate\"\nthreshold = 0.05\n\
         notify = [\"arn:aws:sns:us-east-1:123456789012:ops\"]\n\
         [[alarms]]\nname = \"slow\"\nmetric = \"p99_latency_ms\"\nthreshold = 800\nminutes = 15\n\
         [[alarms]]\nname = \"quota\"\nmetric = \"quota_share\"\nthreshold = 0.8\n",
    );
    let t = Tenant::parse(Path::new("t.toml"), &text).unwrap();
    let got: Vec<(&str, AlarmMetric, f64, u32, usize)> = t
        .alarms
        .iter()
        .map(|a| {
            (
                a.name.as_str(),
                a.metric,
                a.threshold,
                a.minutes,
                a.notify.len(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("errors", AlarmMetric::ServerErrorRate, 0.05, 5, 1),
            ("slow", AlarmMetric::P99LatencyMs, 800.0, 15, 0),
            ("quota", AlarmMetric::QuotaShare, 0.8, 5, 0),
        ]
    );
}

#[test]
fn a_bad_alarm_names_its_line_and_key() {
    let problems = |text: String| -> Vec<(String, usize)> {
        Tenant::parse(Path::new("t.toml"), &text)
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| (e.key, e.line))
            .collect()
    };
    // Lines 1 to 10 are the tenant, the collection and the usage plan.
    let head = "[[alarms]]\nname = \"a\"\n";
    assert_eq!(
        problems(with_alarms(&format!(
            "{head}metric = \"5xx_rate\"\nthreshold = 5\n"
        ))),
        [("alarms[0].threshold".to_owned(), 14)]
    );
    assert_eq!(
        problems(with_alarms(&format!(
            "{head}metric = \"p99_latency_ms\"\nthreshold = 100\nminutes = 0\n"
        ))),
        [("alarms[0].minutes".to_owned(), 15)]
    );
    assert_eq!(
        problems(with_alarms(&format!(
            "{head}metric = \"5xx_rate\"\nthreshold = 0.1\nnotify = [\"arn:aws:sqs:us-east-1:123456789012:q\"]\n"
        ))),
        [("alarms[0].notify[0]".to_owned(), 15)]
    );
    assert_eq!(
        problems(with_alarms(
            "[[alarms]]\nname = \"Bad Name\"\nmetric = \"5xx_rate\"\nthreshold = 0.1\n"
        )),
        [("alarms[0].name".to_owned(), 12)]
    );
    let unknown = Tenant::parse(
        Path::new("t.toml"),
        &with_alarms(&format!("{head}metric = \"cpu\"\nthreshold = 1\n")),
    )
    .unwrap_err()
    .to_string();
    assert!(unknown.contains("5xx_rate"), "{unknown}");
    // quota_share needs a quota.
    let no_quota = with_usage_plan(
        "rate = 10\nburst = 20\n[[alarms]]\nname = \"q\"\nmetric = \"quota_share\"\nthreshold = 0.5\n",
    );
    assert_eq!(problems(no_quota), [("alarms[0].metric".to_owned(), 12)]);
}

#[test]
fn a_collection_named_docs_is_refused_with_its_line() {
    let text = "[tenant]\ndisplay_name = \"D\"\n[collection]\nname = \"docs\"\n[collection.fields]\ntitle = { type = \"string\" }\n[usage_plan]\nrate = 1\nburst = 1\n";
    let errors = Tenant::parse(Path::new("d.toml"), text).expect_err("docs is reserved");
    assert_eq!(errors.0.len(), 1, "{errors}");
    let e = &errors.0[0];
    assert_eq!((e.key.as_str(), e.line), ("collection.name", 4), "{e}");
    assert!(e.expected.contains("other than `docs`"), "{e}");
    assert_eq!(e.found, "\"docs\"");
    assert!(e.to_string().starts_with("d.toml:4:"), "{e}");
    // A collection merely starting with the word is fine.
    let fine = text.replace("\"docs\"", "\"docsets\"");
    assert!(Tenant::parse(Path::new("d.toml"), &fine).is_ok());
}

/// `[collection] table` names an existing table to adopt: any name
/// DynamoDB allows, kept as written; the tenant's other names are
/// unchanged.
#[test]
fn an_adopted_table_is_any_name_dynamodb_allows() {
    let parse = |table: &str| {
        Tenant::parse(
            Path::new("tenants/t.toml"),
            &format!(
                "[tenant]\ndisplay_name = \"T\"\n[collection]\nname = \"items\"\ntable = {table:?}\n[collection.fields]\nx = {{ type = \"string\" }}\n[usage_plan]\nrate = 1\nburst = 1\n"
            ),
        )
    };
    let t = parse("Seed.accounts-v1_prod").unwrap();
    assert_eq!(t.collection.table.as_deref(), Some("Seed.accounts-v1_prod"));
    assert_eq!(t.collection.table_name(&t.id), "Seed.accounts-v1_prod");
    assert_eq!(
        with_fields("x = { type = \"string\" }\n")
            .unwrap()
            .collection
            .table_name("t"),
        "apifactory-t"
    );
    for bad in ["ab", "has space", "slash/no", &"a".repeat(256), "ünicode"] {
        let errors = parse(bad).unwrap_err();
        assert_eq!(errors.0.len(), 1, "{bad}: {errors}");
        assert_eq!(errors.0[0].key, "collection.table");
        assert_eq!((errors.0[0].line, errors.0[0].column), (5, 9), "{bad}");
    }
    assert!(parse(&"a".repeat(255)).is_ok());
}

#[test]
fn a_placement_is_optional_and_its_names_are_checked_where_they_are() {
    let plain = Tenant::parse(
        Path::new("t.toml"),
        &with_usage_plan("rate = 1\nburst = 1\n"),
    )
    .unwrap();
    assert!(plain.placement.is_default());
    // Lines 1 to 9 are the tenant, the collection and the usage plan.
    let placed = |deploy: &str| {
        Tenant::parse(
            Path::new("t.toml"),
            &with_usage_plan(&format!("rate = 1\nburst = 1\n[deploy]\n{deploy}")),
        )
    };
    let t = placed("region = \"eu-west-1\"\nprofile = \"cell-b\"\n").unwrap();
    assert_eq!(t.placement.region.as_deref(), Some("eu-west-1"));
    assert_eq!(t.placement.profile.as_deref(), Some("cell-b"));
    let bad: Vec<(String, usize)> = placed("region = \"Europe\"\nprofile = \"two words\"\n")
        .unwrap_err()
        .0
        .into_iter()
        .map(|e| (e.key, e.line))
        .collect();
    assert_eq!(
        bad,
        [
            ("deploy.region".to_owned(), 11),
            ("deploy.profile".to_owned(), 12)
        ]
    );
    let unknown = placed("account = \"123456789012\"\n")
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("account"), "{unknown}");
    assert!(crate::names::is_region("us-gov-west-1"));
    assert!(!crate::names::is_region("eu-west-0"));
}
