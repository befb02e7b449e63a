//! The provider's console served by `apifactory up` at `/_console/`, over
//! plain HTTP: the admin token's 401 and 303-and-cookie dance, the tenant
//! page's figures against `apifactory usage --json` after a scripted
//! load, and a rotation through the confirmation page with its CSRF token
//! (a form without it is refused and changes nothing). The browser tests
//! build on the same ids.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use apifactory_tests::bin_path;
use apifactory_tests::server::{Client, Response, Server};
use serde_json::Value;

/// Two clients with a small daily quota (so refusals show), and a bucket
/// large enough not to throttle the script.
const TENANT: &str = r#"[tenant]
display_name = "Console Co"
stage = "prod"

[collection]
name = "things"
key = "id"

[collection.fields]
name = { type = "string", max_length = 50 }

[usage_plan]
rate = 100
burst = 100
quota = { limit = 6, period = "DAY" }

[[clients]]
name = "alpha"

[[clients]]
name = "beta"
"#;

const HOST: &str = "board.localhost";

fn started_dirs() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let tenants = tmp.path().join("tenants");
    std::fs::create_dir_all(&tenants).unwrap();
    std::fs::write(tenants.join("board.toml"), TENANT).unwrap();
    let data = tmp.path().join("data");
    (tmp, tenants, data)
}

fn cli(tenants: &Path, data: &Path, args: &[&str]) -> Value {
    let out = Command::new(bin_path("apifactory"))
        .arg("--tenants")
        .arg(tenants)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "apifactory {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The admin's session: the cookie the 303 set.
struct Admin {
    client: Client,
    cookie: String,
}

impl Admin {
    async fn get(&self, path: &str) -> Response {
        self.client
            .send("GET", path, &[("Cookie", &self.cookie)], None)
            .await
    }

    async fn post(&self, path: &str, form: &str) -> Response {
        self.client
            .send(
                "POST",
                path,
                &[
                    ("Cookie", &self.cookie),
                    ("Content-Type", "application/x-www-form-urlencoded"),
                ],
                Some(form),
            )
            .await
    }
}

/// The token from `up`'s console line, exchanged for the cookie.
async fn sign_in(server: &Server) -> Admin {
    let url = server.console_url();
    let path = url
        .strip_prefix(&format!("http://{}", server.addr))
        .unwrap_or_else(|| panic!("{url} is not on {}", server.addr));
    assert!(path.starts_with("/_console/?token="), "{url}");
    let client = server.client();
    let r = client.send("GET", path, &[], None).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/_console/"));
    let set = r.header("set-cookie").expect("a cookie").to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    Admin { client, cookie }
}

/// The value of `attr` in the first tag holding `marker`.
fn attr(html: &str, marker: &str, attr: &str) -> Option<String> {
    let at = html.find(marker)?;
    let start = html[..at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    let tag = &html[start..end];
    let needle = format!("{attr}=\"");
    let v = tag.find(&needle)? + needle.len();
    Some(tag[v..v + tag[v..].find('"')?].to_owned())
}

/// The text of the element whose opening tag holds `marker`.
fn text_of(html: &str, marker: &str) -> Option<String> {
    let at = html.find(marker)?;
    let open = at + html[at..].find('>')? + 1;
    let close = open + html[open..].find('<')?;
    Some(html[open..close].to_owned())
}

/// `tr[data-key-id] td[data-metric]` of a tenant page: key id → metric →
/// the cell's text.
fn metric_rows(html: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut rows = BTreeMap::new();
    for piece in html.split("<tr data-key-id=\"").skip(1) {
        let id = &piece[..piece.find('"').unwrap()];
        let row = &piece[..piece.find("</tr>").unwrap()];
        let cells = row
            .split("data-metric=\"")
            .skip(1)
            .map(|c| {
                let name = &c[..c.find('"').unwrap()];
                let value = &c[c.find('>').unwrap() + 1..c.find('<').unwrap()];
                (name.to_owned(), value.to_owned())
            })
            .collect();
        rows.insert(id.to_owned(), cells);
    }
    rows
}

async fn call(c: &Client, method: &str, path: &str, key: &str, body: Option<&str>) -> u16 {
    let mut headers = vec![("Host", HOST)];
    if !key.is_empty() {
        headers.push(("x-api-key", key));
    }
    c.send(method, path, &headers, body).await.status
}

fn key_of(server: &Server, client: &str) -> String {
    server.keys()[&("board".to_owned(), client.to_owned())].clone()
}

/// The fields compared: counts, exactly as `usage --json` names them.
const COMPARED: [&str; 11] = [
    "requests",
    "status_2xx",
    "status_4xx",
    "status_5xx",
    "errors",
    "throttled",
    "quota_refused",
    "forbidden",
    "invocations",
    "bytes_in",
    "bytes_out",
];

#[tokio::test(flavor = "multi_thread")]
async fn the_console_needs_its_token_and_shows_what_usage_reports() {
    let (_tmp, tenants, data) = started_dirs();
    let server = Server::start(&tenants, &data, &[]).await;
    let lines = server.output();
    let console_line = lines.find("apifactory up: console at http://").unwrap();
    let listening = lines.find("apifactory up: listening on http://").unwrap();
    assert!(
        console_line < listening,
        "printed before the listening line"
    );

    let c = server.client();
    let refused = c.send("GET", "/_console/", &[], None).await;
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("name=\"token\""));
    assert!(!refused.body.contains("data-tenant") && !refused.body.contains("board"));
    let wrong = c.send("GET", "/_console/?token=guess", &[], None).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    // The gateway still answers everything else.
    assert_eq!(call(&c, "GET", "/prod/things", "", None).await, 403);

    let admin = sign_in(&server).await;
    let fleet = admin.get("/_console/").await;
    assert_eq!(fleet.status, 200, "{}", fleet.body);
    assert!(fleet.body.contains("<tr data-tenant=\"board\">"));

    // The script: alpha 3 created, 1 not found; beta its 6 a day and 2
    // refused by the quota; 1 without a key (already sent above) and 1
    // with a wrong one.
    let (alpha, beta) = (key_of(&server, "alpha"), key_of(&server, "beta"));
    for i in 0..3 {
        let body = format!(r#"{{"name":"n{i}"}}"#);
        assert_eq!(
            call(&c, "POST", "/prod/things", &alpha, Some(&body)).await,
            201
        );
    }
    assert_eq!(
        call(&c, "GET", "/prod/things/missing", &alpha, None).await,
        404
    );
    for _ in 0..6 {
        assert_eq!(call(&c, "GET", "/prod/things", &beta, None).await, 200);
    }
    for _ in 0..2 {
        assert_eq!(call(&c, "GET", "/prod/things", &beta, None).await, 429);
    }
    assert_eq!(
        call(&c, "GET", "/prod/things", "nobody-s-key", None).await,
        403
    );
    let expected_requests = 3 + 1 + 6 + 2 + 2;

    // Usage is written in the background: wait until the command sees it all.
    let deadline = Instant::now() + Duration::from_secs(20);
    let report = loop {
        let report = cli(&tenants, &data, &["usage"]);
        let seen = report["tenants"][0]["totals"]["requests"].as_u64();
        if seen == Some(expected_requests) || Instant::now() > deadline {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let tenant = &report["tenants"][0];
    assert_eq!(tenant["totals"]["requests"], expected_requests, "{report}");

    for period in ["hour", "day", "month"] {
        let page = admin
            .get(&format!("/_console/tenants/board?period={period}"))
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(
            page.body
                .contains(&format!("data-period=\"{period}\" aria-current=\"page\""))
        );
        for chart in ["requests", "errors", "throttled", "latency"] {
            assert!(
                page.body.contains(&format!("svg data-chart=\"{chart}\"")),
                "{chart}"
            );
        }
        let rows = metric_rows(&page.body);
        let mut compared = 0;
        for key in tenant["keys"].as_array().unwrap() {
            let id = key["key_id"].as_str().unwrap_or("none");
            let row = rows
                .get(id)
                .unwrap_or_else(|| panic!("{period}: no row for key {id}: {rows:?}"));
            for f in COMPARED {
                assert_eq!(
                    row[f],
                    key["totals"][f].to_string(),
                    "{period}: key {id}, {f}"
                );
                compared += 1;
            }
        }
        for f in COMPARED {
            assert_eq!(
                rows["total"][f],
                tenant["totals"][f].to_string(),
                "{period}: total {f}"
            );
        }
        assert!(
            compared >= 3 * COMPARED.len(),
            "alpha, beta and the keyless row"
        );
        assert_eq!(rows["total"]["requests"], expected_requests.to_string());
        assert_eq!(rows["total"]["quota_refused"], "2");
        assert_eq!(
            attr(&page.body, "svg data-chart=\"requests\"", "data-chart").as_deref(),
            Some("requests")
        );
        // The chart's series adds up to the same requests.
        assert_eq!(
            attr(&page.body, "data-series=\"requests\"", "data-total"),
            Some(expected_requests.to_string()),
            "{period}"
        );
    }

    // The log tail streams the same lines `apifactory logs` prints.
    let tail = tokio::time::timeout(Duration::from_secs(20), first_event(&server, &admin.cookie))
        .await
        .expect("a log line within 20 s");
    assert!(tail.contains("board") || tail.contains("things"), "{tail}");
}

/// The first `data:` line of the tenant's log stream.
async fn first_event(server: &Server, cookie: &str) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut s = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let req = format!(
        "GET /_console/tenants/board/logs HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n",
        server.addr
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut lines = BufReader::new(s).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(data) = line.strip_prefix("data:") {
            return data.trim().to_owned();
        }
    }
    panic!("the stream ended without an event");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_rotated_in_the_console_works_and_the_old_one_stops_after_its_grace() {
    let (_tmp, tenants, data) = started_dirs();
    let server = Server::start(&tenants, &data, &[]).await;
    let c = server.client();
    let admin = sign_in(&server).await;
    let old = key_of(&server, "alpha");
    let listed = cli(&tenants, &data, &["keys", "list", "--tenant", "board"]);
    let old_id = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["client"] == "alpha")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let keys = admin.get("/_console/tenants/board/keys").await;
    assert_eq!(keys.status, 200);
    assert!(
        keys.body
            .contains(&format!("data-action=\"rotate\" data-key-id=\"{old_id}\""))
    );
    assert!(!keys.body.contains(&old), "never a key's value");
    let confirm = admin
        .get(&format!(
            "/_console/tenants/board/keys/confirm?action=rotate&key_id={old_id}"
        ))
        .await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("id=\"confirm\""));
    let csrf = attr(&confirm.body, "name=\"csrf\"", "value").expect("a csrf field");
    let action = attr(&confirm.body, "method=\"post\"", "action").unwrap();
    assert_eq!(action, "/_console/tenants/board/keys/rotate");

    // Without the csrf token, or with another, nothing changes.
    for form in [
        format!("key_id={old_id}&grace=10s"),
        format!("key_id={old_id}&grace=10s&csrf=not-it"),
    ] {
        let r = admin.post(&action, &form).await;
        assert_eq!(r.status, 403, "{form}");
        assert!(!r.body.contains("id=\"new-key-value\""));
    }
    let revoke = admin
        .post(
            "/_console/tenants/board/keys/revoke",
            &format!("key_id={old_id}"),
        )
        .await;
    assert_eq!(revoke.status, 403);
    assert_eq!(
        cli(&tenants, &data, &["keys", "list", "--tenant", "board"]),
        listed
    );

    let done = admin
        .post(&action, &format!("key_id={old_id}&grace=10s&csrf={csrf}"))
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let new = text_of(&done.body, "id=\"new-key-value\"").expect("the new value, shown once");
    assert_ne!(new, old);
    // `up` re-reads its keys before the console answers.
    assert_eq!(
        call(&c, "GET", "/prod/things", &new, None).await,
        200,
        "the new key works on the next request"
    );
    assert_eq!(
        call(&c, "GET", "/prod/things", &old, None).await,
        200,
        "the old key works inside its grace"
    );
    let deadline = Instant::now() + Duration::from_secs(25);
    while call(&c, "GET", "/prod/things", &old, None).await != 403 {
        assert!(
            Instant::now() < deadline,
            "the old key stops after its grace"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(call(&c, "GET", "/prod/things", &new, None).await, 200);
    // The new value is not shown again anywhere.
    let keys = admin.get("/_console/tenants/board/keys").await;
    assert!(!keys.body.contains(&new));
}
