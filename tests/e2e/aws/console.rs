//! `apifactory console --target aws` against this run's moto behind the
//! realism layer: a tenant applied through the CLI shows on the fleet page
//! with its routes and keys, and on its keys page; nothing without the
//! admin token. The tenant is a copy of acme under a unique id.

use std::process::Stdio;
use std::time::Duration;

use apifactory_tests::aws::small_artifact;
use apifactory_tests::server::Client;
use apifactory_tests::{bin_path, realistic_endpoint, repo_root, unique_name};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn aws(cmd: &mut Command, tenants: &std::path::Path) {
    cmd.arg("--tenants")
        .arg(tenants)
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("APIFACTORY_PACE", "off")
        .current_dir(repo_root())
        .kill_on_drop(true);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_aws_console_lists_an_applied_tenant_and_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let id = unique_name("console");
    let text = std::fs::read_to_string(repo_root().join("tenants/acme.toml")).unwrap();
    // Without its custom domain: not what this test is about.
    let (start, end) = (text.find("[domain]").unwrap(), text.find("[logs]").unwrap());
    let text = format!("{}{}", &text[..start], &text[end..]);
    std::fs::write(dir.path().join(format!("{id}.toml")), text).unwrap();

    let mut apply = Command::new(bin_path("apifactory"));
    aws(&mut apply, dir.path());
    let out = apply
        .args([
            "apply",
            "--target",
            "aws",
            "--endpoint-url",
            realistic_endpoint(),
        ])
        .arg("--artifact")
        .arg(small_artifact())
        .args(["--tenant", &id, "--yes"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut list = Command::new(bin_path("apifactory"));
    aws(&mut list, dir.path());
    let out = list
        .args(["keys", "list", "--tenant", &id, "--json", "--target", "aws"])
        .args(["--endpoint-url", realistic_endpoint()])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys: Vec<Value> = serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(keys.len(), 2, "acme's two clients: {keys:?}");

    let mut console = Command::new(bin_path("apifactory"));
    aws(&mut console, dir.path());
    let mut child = console
        .args(["console", "--target", "aws", "--listen", "127.0.0.1:0"])
        .args(["--endpoint-url", realistic_endpoint()])
        // The code drift compares with the applied one.
        .arg("--artifact")
        .arg(small_artifact())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("apifactory console: ") {
                return url.trim().to_owned();
            }
        }
        panic!("apifactory console ended before printing its address");
    })
    .await
    .expect("the console starts within 60 s");
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_at(rest.find('/').unwrap());
    assert!(path.starts_with("/_console/?token="), "{url}");
    let c = Client {
        addr: addr.to_owned(),
    };

    let refused = c.send("GET", "/_console/", &[], None).await;
    assert_eq!(refused.status, 401);
    assert!(!refused.body.contains(&id));
    let signed = c.send("GET", path, &[], None).await;
    assert_eq!(signed.status, 303);
    let cookie = signed
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    let fleet = c
        .send("GET", "/_console/", &[("Cookie", &cookie)], None)
        .await;
    assert_eq!(fleet.status, 200, "{}", fleet.body);
    assert!(
        fleet.body.contains(&format!("<tr data-tenant=\"{id}\">")),
        "{}",
        fleet.body
    );
    assert!(fleet.body.contains("<code>GET /accounts</code>"));
    assert!(
        fleet.body.contains("id=\"check-drift\""),
        "drift is a button on AWS"
    );
    for k in &keys {
        let kid = k["id"].as_str().unwrap();
        assert!(
            fleet.body.contains(&format!("data-key-id=\"{kid}\"")),
            "{kid}"
        );
    }

    let page = c
        .send(
            "GET",
            &format!("/_console/tenants/{id}/keys"),
            &[("Cookie", &cookie)],
            None,
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    for k in &keys {
        let kid = k["id"].as_str().unwrap();
        assert!(
            page.body
                .contains(&format!("data-action=\"rotate\" data-key-id=\"{kid}\""))
        );
        assert!(page.body.contains(k["client"].as_str().unwrap()));
    }
    let usage = c
        .send(
            "GET",
            &format!("/_console/tenants/{id}?period=day"),
            &[("Cookie", &cookie)],
            None,
        )
        .await;
    assert_eq!(usage.status, 200, "{}", usage.body);
    assert!(usage.body.contains("svg data-chart=\"requests\""));
    assert!(usage.body.contains("<tr data-key-id=\"total\">"));

    // The live log is a stream of server-sent events from the log groups.
    let head = tokio::time::timeout(Duration::from_secs(30), async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "GET /_console/tenants/{id}/logs HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            if s.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            head.push(byte[0]);
        }
        String::from_utf8(head).unwrap()
    })
    .await
    .expect("the stream's head within 30 s");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );

    // Drift on request: a POST with the page's csrf token.
    let marker = "name=\"csrf\" value=\"";
    let at = fleet.body.find(marker).unwrap() + marker.len();
    let csrf = &fleet.body[at..at + fleet.body[at..].find('"').unwrap()];
    let form = [
        ("Cookie", cookie.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let forged = c
        .send("POST", "/_console/drift", &form, Some("csrf=forged"))
        .await;
    assert_eq!(forged.status, 403);
    let checked = c
        .send(
            "POST",
            "/_console/drift",
            &form,
            Some(&format!("csrf={csrf}")),
        )
        .await;
    assert_eq!(checked.status, 303, "{}", checked.body);
    let fleet = c
        .send("GET", "/_console/", &[("Cookie", &cookie)], None)
        .await;
    let row = &fleet.body[fleet
        .body
        .find(&format!("<tr data-tenant=\"{id}\">"))
        .unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("data-drift=\"none\""), "just applied: {row}");
    child.kill().await.unwrap();
}
