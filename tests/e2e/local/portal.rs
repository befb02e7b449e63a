//! The developer portal on the local target: `apifactory up` serves each
//! tenant's page at `/{stage}/docs` on every routing form without a key,
//! while the API beside it still wants one; a collection may not take the
//! name; `apifactory docs` writes the pages as files.

use std::process::{Command, Output};

use apifactory::openapi::{self, Document, Integration};
use apifactory::portal;
use apifactory_tests::server::{Server, copy_tenants};
use apifactory_tests::{bin_path, repo_root};
use runtime::Tenant;

fn apifactory(args: &[&str]) -> Output {
    Command::new(bin_path("apifactory"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("apifactory runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn tenant(id: &str) -> Tenant {
    Tenant::load(&repo_root().join(format!("tenants/{id}.toml"))).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_routing_form_serves_the_page_without_a_key_and_the_api_still_wants_one() {
    let tmp = tempfile::tempdir().unwrap();
    let tenants = copy_tenants(tmp.path());
    let server = Server::start(&tenants, &tmp.path().join("data"), &[]).await;
    let c = server.client();
    let acme = portal::render(&tenant("acme")).unwrap();
    let bookshop = portal::render(&tenant("bookshop")).unwrap();

    // (host, path, the page expected)
    let forms: [(Option<&str>, &str, &str); 5] = [
        (None, "/restapis/acme/prod/_user_request_/docs", &acme),
        (Some("acme.localhost"), "/prod/docs", &acme),
        (Some("acme.execute-api.localhost:4000"), "/prod/docs", &acme),
        (Some("api.acme.example.com"), "/docs", &acme),
        (
            Some("catalogue.pageturner.example"),
            "/books-api/docs",
            &bookshop,
        ),
    ];
    for (host, path, page) in forms {
        let headers: Vec<(&str, &str)> = host.map(|h| ("Host", h)).into_iter().collect();
        let r = c.send("GET", path, &headers, None).await;
        assert_eq!(r.status, 200, "{host:?} {path}: {}", r.body);
        assert_eq!(
            r.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{host:?} {path}"
        );
        assert!(r.header("x-amzn-requestid").is_some(), "{host:?} {path}");
        // The page the AWS target puts in the API's definition, byte for
        // byte: rendered from what the functions ship with.
        assert!(r.body == *page, "{host:?} {path}: not the rendered page");
        let head = c.send("HEAD", path, &headers, None).await;
        assert_eq!(head.status, 200, "HEAD {host:?} {path}");
        assert_eq!(
            head.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert!(head.body.is_empty(), "HEAD {host:?} {path}: a body");
    }

    // The API beside the page still refuses a request without a key, and
    // anything else under /docs is no route.
    let h = [("Host", "acme.localhost")];
    let r = c.send("GET", "/prod/accounts", &h, None).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (403, r#"{"message":"Forbidden"}"#)
    );
    for (method, path) in [
        ("POST", "/prod/docs"),
        ("DELETE", "/prod/docs"),
        ("GET", "/prod/docs/"),
        ("GET", "/prod/docs/x"),
        ("GET", "/v9/docs"),
        ("GET", "/prod/Docs"),
    ] {
        let r = c.send(method, path, &h, None).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (403, r#"{"message":"Missing Authentication Token"}"#),
            "{method} {path}"
        );
    }
    let r = c
        .send(
            "GET",
            "/books/docs",
            &[("Host", "catalogue.pageturner.example")],
            None,
        )
        .await;
    assert_eq!(r.status, 403, "outside the base path");
    let r = c
        .send("GET", "/prod/docs", &[("Host", "nobody.localhost")], None)
        .await;
    assert_eq!(r.status, 403, "no such tenant");
    // A key changes nothing for the page.
    let keys = server.keys();
    let (_, value) = keys.iter().find(|((t, _), _)| t == "acme").unwrap();
    let r = c
        .send(
            "GET",
            "/prod/docs",
            &[("Host", "acme.localhost"), ("x-api-key", value)],
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    server.terminate().await;
}

#[test]
fn a_collection_named_docs_is_a_tenant_file_error() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("manuals.toml"),
        "[tenant]\ndisplay_name = \"Manuals\"\n[collection]\nname = \"docs\"\n[collection.fields]\ntitle = { type = \"string\" }\n[usage_plan]\nrate = 1\nburst = 1\n",
    )
    .unwrap();
    let out = apifactory(&["validate", "--tenants", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "manuals.toml:4:8: `collection.name`: expected a collection name other than `docs`"
        ) && stderr.contains("found \"docs\""),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn docs_writes_the_page_and_document_of_every_tenant_or_the_listed_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("site");
    let out = apifactory(&["docs", "--out", out_dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let integration = Integration::new("aws", "us-east-1", "123456789012");
    for id in ["acme", "bookshop", "clinic", "events", "fleet"] {
        let t = tenant(id);
        let page = std::fs::read_to_string(out_dir.join(id).join("index.html")).unwrap();
        assert!(
            page == portal::render_static(&t).unwrap(),
            "{id}: not the static page"
        );
        let doc = std::fs::read_to_string(out_dir.join(id).join("openapi.json")).unwrap();
        assert_eq!(
            doc.trim_end(),
            openapi::render(&t, &integration, Document::Client).unwrap(),
            "{id}"
        );
        assert!(text(&out.stdout).contains(&format!("{id}/index.html")));
    }
    // The static page starts from the API's domain.
    let acme = std::fs::read_to_string(out_dir.join("acme/index.html")).unwrap();
    assert!(acme.contains("value=\"https://api.acme.example.com\""));

    let some = tmp.path().join("some");
    let out = apifactory(&[
        "docs",
        "--tenant",
        "clinic,fleet",
        "--out",
        some.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut written: Vec<String> = std::fs::read_dir(&some)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written, ["clinic", "fleet"]);

    let out = apifactory(&[
        "docs",
        "--tenant",
        "acme,nope",
        "--out",
        some.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no tenant \"nope\""),
        "{}",
        text(&out.stderr)
    );
}
