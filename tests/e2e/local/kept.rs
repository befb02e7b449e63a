//! The gateway keeps each item as a GET answered it and answers those
//! bytes again only while the store holds exactly the item they were made
//! from: a write through any path, by this process or another one, and a
//! restart after `SIGKILL`, are never followed by a stale read. Every
//! read is made twice: the second GET of an item nothing wrote to since
//! is answered without reading the store (its version is unchanged), so
//! both ways of answering are checked after every write.

use std::path::Path;

use apifactory_tests::bin_path;
use apifactory_tests::server::{Client, Server, copy_tenants};
use serde_json::{Value, json};

const ITEM: &str = "/prod/accounts/kept-1";

/// The item, read twice: both answers must agree.
async fn get(client: &Client, key: &str) -> (u16, Value, String) {
    let first = get_once(client, key).await;
    let second = get_once(client, key).await;
    assert_eq!(first, second, "a second GET with nothing written between");
    second
}

async fn get_once(client: &Client, key: &str) -> (u16, Value, String) {
    let r = client
        .send(
            "GET",
            ITEM,
            &[("Host", "acme.localhost"), ("x-api-key", key)],
            None,
        )
        .await;
    let etag = r.header("etag").unwrap_or_default().to_owned();
    let body = if r.status == 200 {
        r.json()
    } else {
        Value::Null
    };
    (r.status, body, etag)
}

async fn write(client: &Client, key: &str, method: &str, path: &str, body: Value) -> String {
    let text = body.to_string();
    let r = client
        .send(
            method,
            path,
            &[
                ("Host", "acme.localhost"),
                ("x-api-key", key),
                ("content-type", "application/json"),
            ],
            Some(&text),
        )
        .await;
    assert!(r.status < 300, "{method} {path}: {}", r.status);
    r.header("etag").unwrap_or_default().to_owned()
}

/// `apifactory data import` in its own process, replacing what is stored.
fn import(tenants: &Path, data: &Path, dir: &Path, line: Value) {
    let file = dir.join("line.jsonl");
    std::fs::write(&file, format!("{line}\n")).unwrap();
    let out = std::process::Command::new(bin_path("apifactory"))
        .arg("--tenants")
        .arg(tenants)
        .args(["data", "import", "acme"])
        .arg(&file)
        .args(["--on-conflict", "replace", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_through_any_path_is_never_followed_by_a_stale_read() {
    let tmp = tempfile::tempdir().unwrap();
    let tenants = copy_tenants(tmp.path());
    let data = tmp.path().join("data");
    let server = Server::start(&tenants, &data, &[]).await;
    let key = server.keys()[&("acme".to_owned(), "acme-web".to_owned())].clone();
    let client = server.client();

    let first = write(
        &client,
        &key,
        "POST",
        "/prod/accounts",
        json!({"id": "kept-1", "name": "One", "email": "one@example.com"}),
    )
    .await;
    let (status, body, etag) = get(&client, &key).await;
    assert_eq!((status, &body["name"], &etag), (200, &json!("One"), &first));

    let put = write(
        &client,
        &key,
        "PUT",
        ITEM,
        json!({"name": "Two", "email": "one@example.com"}),
    )
    .await;
    let (_, body, etag) = get(&client, &key).await;
    assert_eq!((&body["name"], &etag), (&json!("Two"), &put));

    let patch = write(&client, &key, "PATCH", ITEM, json!({"name": "Three"})).await;
    let (_, body, etag) = get(&client, &key).await;
    assert_eq!((&body["name"], &etag), (&json!("Three"), &patch));

    // Another process writes new content under the very revision the kept
    // answer has (an import line naming the revision it was exported
    // with, after the item moved on).
    // The kept answer is still Three's: Four is written but not read.
    let kept_rev = patch.trim_matches('"').to_owned();
    write(&client, &key, "PATCH", ITEM, json!({"name": "Four"})).await;
    import(
        &tenants,
        &data,
        tmp.path(),
        json!({"id": "kept-1", "_rev": kept_rev, "name": "Five", "email": "one@example.com"}),
    );
    let (_, body, etag) = get(&client, &key).await;
    assert_eq!((&body["name"], &etag), (&json!("Five"), &patch));

    let r = client
        .send(
            "DELETE",
            ITEM,
            &[("Host", "acme.localhost"), ("x-api-key", &key)],
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(get(&client, &key).await.0, 404);
    write(
        &client,
        &key,
        "POST",
        "/prod/accounts",
        json!({"id": "kept-1", "name": "Six", "email": "six@example.com"}),
    )
    .await;
    assert_eq!(get(&client, &key).await.1["name"], "Six");

    // SIGKILL, a write while nothing serves, and a restart.
    server.kill().await;
    import(
        &tenants,
        &data,
        tmp.path(),
        json!({"id": "kept-1", "name": "Seven", "email": "six@example.com"}),
    );
    let server = Server::start(&tenants, &data, &[]).await;
    let client = server.client();
    let (status, body, _) = get(&client, &key).await;
    assert_eq!((status, &body["name"]), (200, &json!("Seven")));
    server.kill().await;
}
