//! A tenant file's fields changed over items already stored, on the local
//! target: `plan` counts the items each change makes invalid (with their
//! ids), `apply` refuses such a change until given a way forward (a
//! `default`, or `--allow-invalid-data`), and `up` then serves the old
//! items with the default filled in and removed fields left unseen.

use std::path::Path;
use std::process::{Command, Output};

use apifactory_tests::server::Server;
use apifactory_tests::{bin_path, repo_root};
use serde_json::{Value, json};

fn apifactory(tenants: &Path, data: &Path, args: &[&str]) -> Output {
    Command::new(bin_path("apifactory"))
        .arg("--tenants")
        .arg(tenants)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .current_dir(repo_root())
        .output()
        .expect("apifactory runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn gigs(fields: &str) -> String {
    format!(
        "[tenant]\ndisplay_name = \"Gigs\"\n\n[collection]\nname = \"gigs\"\n\n[collection.fields]\n{fields}\n\n[usage_plan]\nrate = 100\nburst = 100\n\n[[clients]]\nname = \"app\"\n"
    )
}

/// The deployed function's tenant source: what an apply changed.
fn deployed_source(data: &Path) -> String {
    let db = rusqlite::Connection::open(data.join("apifactory.sqlite")).unwrap();
    db.query_row(
        "SELECT payload FROM deployed WHERE tenant = 'gigs' AND kind = 'function' LIMIT 1",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_that_strands_stored_items_is_shown_refused_and_given_a_way_forward() {
    let tmp = tempfile::tempdir().unwrap();
    let tenants = tmp.path().join("tenants");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&tenants).unwrap();
    let file = tenants.join("gigs.toml");
    let v1 = "title = { type = \"string\", max_length = 200 }\nnote = { type = \"string\" }";
    std::fs::write(&file, gigs(v1)).unwrap();

    // Items stored through the API, as clients store them.
    let server = Server::start(&tenants, &data, &[]).await;
    let key = server.keys()[&("gigs".to_owned(), "app".to_owned())].clone();
    let h = [("Host", "gigs.localhost"), ("x-api-key", key.as_str())];
    let c = server.client();
    for (id, title) in [
        ("g1", "Short"),
        ("g2", "A title far too long"),
        ("g3", "Another long title"),
    ] {
        let body = json!({"id": id, "title": title, "note": format!("note of {id}")}).to_string();
        let r = c.send("POST", "/prod/gigs", &h, Some(&body)).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    server.kill().await;

    // A tighter rule: two stored items break it.
    let v2 = "title = { type = \"string\", max_length = 5 }\nnote = { type = \"string\" }";
    std::fs::write(&file, gigs(v2)).unwrap();
    let out = apifactory(&tenants, &data, &["plan"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    assert!(
        plan.contains("gigs: 3 stored item(s) read\n  ~ field      title (max_length: 200 -> 5): 2 stored item(s) break it, e.g. g2, g3 (title must be at most 5 characters long, found 20)"),
        "{plan}"
    );
    let out = apifactory(&tenants, &data, &["plan", "--json"]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["data"][0]["tenant"], "gigs");
    assert_eq!(json["data"][0]["checked"], 3);
    assert_eq!(json["data"][0]["findings"][0]["invalid"], 2);
    assert_eq!(
        json["data"][0]["findings"][0]["examples"],
        json!(["g2", "g3"])
    );

    let before = deployed_source(&data);
    let out = apifactory(&tenants, &data, &["apply", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("stored items would no longer validate; nothing was changed")
            && stderr.contains(
                "gigs: title (max_length: 200 -> 5): 2 stored item(s) break it, e.g. g2, g3"
            )
            && stderr.contains("--allow-invalid-data"),
        "{stderr}"
    );
    assert_eq!(deployed_source(&data), before, "nothing changed");
    // `up` applies too, by the same rule.
    let out = Command::new(bin_path("apifactory"))
        .arg("--tenants")
        .arg(&tenants)
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("gigs: title (max_length: 200 -> 5): 2 stored item(s) break it"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(deployed_source(&data), before, "nothing changed");

    let out = apifactory(&tenants, &data, &["apply", "--yes", "--allow-invalid-data"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_ne!(deployed_source(&data), before);

    // A new required field: without a default every stored item lacks it
    // and apply refuses; with one, the items read with it. The note field
    // goes: its values stay, unseen.
    let v3 = "title = { type = \"string\", max_length = 5 }\nowner = { type = \"string\", required = true }";
    std::fs::write(&file, gigs(v3)).unwrap();
    let out = apifactory(&tenants, &data, &["apply", "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("gigs: owner (string, required true): 3 stored item(s) break it, e.g. g1, g2, g3 (owner is required)"),
        "{stderr}"
    );
    let v4 = "title = { type = \"string\", max_length = 5 }\nowner = { type = \"string\", required = true, default = \"nobody\" }";
    std::fs::write(&file, gigs(v4)).unwrap();
    let out = apifactory(&tenants, &data, &["plan"]);
    let plan = text(&out.stdout);
    assert!(
        plan.contains("  + field      owner (string, default \"nobody\", required true): 3 stored item(s) lack it and read as its default")
            && plan.contains("  - field      note: 3 stored item(s) keep their value, which the API no longer returns"),
        "{plan}"
    );
    let out = apifactory(&tenants, &data, &["apply", "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let server = Server::start(&tenants, &data, &[]).await;
    let c = server.client();
    let r = c.send("GET", "/prod/gigs/g1", &h, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"id": "g1", "title": "Short", "owner": "nobody"})
    );
    // An item stored invalid reads as stored; a write must fix it.
    let r = c.send("GET", "/prod/gigs/g2", &h, None).await;
    assert_eq!(r.json()["title"], "A title far too long");
    let r = c
        .send("PATCH", "/prod/gigs/g2", &h, Some(r#"{"owner": "ann"}"#))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = c
        .send("PATCH", "/prod/gigs/g2", &h, Some(r#"{"title": "Fixed"}"#))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"id": "g2", "title": "Fixed", "owner": "nobody"})
    );
    server.kill().await;
    let db = rusqlite::Connection::open(data.join("apifactory.sqlite")).unwrap();
    let doc: String = db
        .query_row("SELECT doc FROM items_gigs WHERE id = 'g2'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(doc["note"], "note of g2", "a removed field's value is kept");
}

/// A new index over stored items: the plan says it is built over them,
/// and after the apply a search on the field finds the old items.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_index_serves_the_items_stored_before_it() {
    let tmp = tempfile::tempdir().unwrap();
    let tenants = tmp.path().join("tenants");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&tenants).unwrap();
    let file = tenants.join("gigs.toml");
    std::fs::write(&file, gigs("city = { type = \"string\" }")).unwrap();
    let server = Server::start(&tenants, &data, &[]).await;
    let key = server.keys()[&("gigs".to_owned(), "app".to_owned())].clone();
    let h = [("Host", "gigs.localhost"), ("x-api-key", key.as_str())];
    let c = server.client();
    for (id, city) in [("g1", "Oslo"), ("g2", "Rome"), ("g3", "Oslo")] {
        let body = json!({"id": id, "city": city}).to_string();
        assert_eq!(
            c.send("POST", "/prod/gigs", &h, Some(&body)).await.status,
            201
        );
    }
    server.kill().await;

    std::fs::write(&file, gigs("city = { type = \"string\", index = true }")).unwrap();
    let out = apifactory(&tenants, &data, &["plan"]);
    let plan = text(&out.stdout);
    assert!(
        plan.contains("  + index      city: built over the stored items (3 hold the field) before the functions search it"),
        "{plan}"
    );
    let out = apifactory(&tenants, &data, &["apply", "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let server = Server::start(&tenants, &data, &[]).await;
    let r = server
        .client()
        .send("GET", "/prod/gigs?city=Oslo", &h, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ids: Vec<String> = r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["g1", "g3"]);
    server.kill().await;
}
