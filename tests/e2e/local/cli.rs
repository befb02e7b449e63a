//! `apifactory` as a user runs it: exit codes, stdout, stderr.

use std::process::{Command, Output};

use apifactory_tests::{bin_path, repo_root};

pub(super) fn apifactory(args: &[&str]) -> Output {
    Command::new(bin_path("apifactory"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("apifactory runs")
}

pub(super) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn validate_accepts_the_five_tenants() {
    let out = apifactory(&["validate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for id in ["acme", "bookshop", "clinic", "events", "fleet"] {
        assert!(stdout.contains(&format!("ok  {id}")), "{stdout}");
    }
    assert!(stdout.ends_with("5 tenant file(s) valid\n"), "{stdout}");
}

/// Every broken fixture gives its one exact message (file, line, column,
/// key, expected, found), and nothing panics.
#[test]
fn validate_rejects_each_broken_file_with_its_message() {
    let out = apifactory(&["validate", "--tenants", "tests/data/broken-tenants"]);
    assert_eq!(out.status.code(), Some(1));
    let expected =
        std::fs::read_to_string(repo_root().join("tests/data/broken-tenants/expected.txt"))
            .unwrap();
    assert_eq!(text(&out.stderr), expected);
    assert!(!text(&out.stderr).contains("panicked"));
}

#[test]
fn validate_rejects_two_tenants_on_one_domain() {
    let out = apifactory(&["validate", "--tenants", "tests/data/clashing-tenants"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("acme.toml:30:8: `domain.name`: expected a domain no other tenant claims, found \"api.acme.example.com\", already claimed by tests/data/clashing-tenants/acme-copy.toml"),
        "{stderr}"
    );
}

#[test]
fn validate_names_a_missing_directory() {
    let out = apifactory(&["validate", "--tenants", "no/such/dir"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no/such/dir: expected a directory of tenant files"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn openapi_prints_the_tenants_document() {
    let out = apifactory(&[
        "openapi",
        "acme",
        "--region",
        "eu-west-1",
        "--account",
        "111122223333",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["info"]["title"], "Acme APIs");
    assert!(
        doc["paths"]["/accounts/{id}"]["delete"]["x-amazon-apigateway-integration"]["uri"]
            .as_str()
            .unwrap()
            .contains("arn:aws:lambda:eu-west-1:111122223333:function:apifactory-acme-delete")
    );

    let missing = apifactory(&["openapi", "nobody"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("tenants/nobody.toml"),
        "{}",
        text(&missing.stderr)
    );
}
