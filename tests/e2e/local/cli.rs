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

/// `apifactory new` writes a tenant file that `validate` accepts and `up`
/// serves; it refuses to replace a file and names a bad flag.
#[tokio::test(flavor = "multi_thread")]
async fn new_writes_a_tenant_that_up_serves_and_never_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tenants");
    let d = dir.to_str().unwrap();
    let new = [
        "--tenants",
        d,
        "new",
        "shop",
        "--collection",
        "orders",
        "--field",
        "email:string:index:required",
        "--field",
        "total:number",
        "--client",
        "web",
        "--quota",
        "1000/DAY",
    ];
    let out = apifactory(&new);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("apifactory plan --tenant shop")
            && stdout.contains("apifactory apply --tenant shop"),
        "{stdout}"
    );
    let written = std::fs::read_to_string(dir.join("shop.toml")).unwrap();
    assert!(written.contains("# "), "the file explains itself");

    let out = apifactory(&["--tenants", d, "validate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Again: refused, the file untouched.
    let out = apifactory(&new);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("already exists"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("shop.toml")).unwrap(),
        written
    );

    // A bad type: clap's exit status 2 and what was expected.
    let out = apifactory(&[
        "--tenants",
        d,
        "new",
        "other",
        "--collection",
        "x",
        "--field",
        "a:strin",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("expected a type, one of string, integer"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.join("other.toml").exists());

    // Served as written: the client's key adds an order, a missing
    // required field is the API's 400.
    let server = apifactory_tests::server::Server::start(&dir, &tmp.path().join("data"), &[]).await;
    let key = server.keys()[&("shop".to_owned(), "web".to_owned())].clone();
    let c = server.client();
    let headers = [("Host", "shop.localhost"), ("x-api-key", key.as_str())];
    let created = c
        .send(
            "POST",
            "/prod/orders",
            &headers,
            Some(r#"{"email":"a@b.example","total":9.5}"#),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let refused = c
        .send("POST", "/prod/orders", &headers, Some(r#"{"total":1}"#))
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    server.kill().await;
}

/// On a terminal, `new` without `--collection` asks for each part (a bad
/// field is named and asked again). The terminal is `script`'s
/// pseudo-terminal (util-linux, essential on Debian).
#[test]
fn new_on_a_terminal_asks_for_what_the_flags_left_out() {
    use std::io::Write;
    use std::process::Stdio;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tenants");
    let command = format!(
        "{} --tenants {} new asked",
        bin_path("apifactory").display(),
        dir.display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"orders\n\nemail:string:index:required\nbad:strin\n\nweb, mobile\n5\n\n100/DAY\n",
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("Collection (the resource name"), "{stdout}");
    assert!(stdout.contains("found \"strin\""), "{stdout}");
    let written = std::fs::read_to_string(dir.join("asked.toml")).unwrap();
    let t = runtime::Tenant::parse(&dir.join("asked.toml"), &written).unwrap();
    assert_eq!(t.collection.name, "orders");
    assert_eq!(t.collection.fields.len(), 1);
    assert_eq!(t.clients.len(), 2);
    assert!(
        written.contains("quota = { limit = 100, period = \"DAY\" }"),
        "{written}"
    );
    assert!(written.contains("rate = 5\n"), "{written}");
}
