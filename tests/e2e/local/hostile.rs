//! Hostile input against the real `apifactory up` over HTTP: bodies above
//! the item size, oversized headers, deeply nested JSON, ids with path
//! separators or control characters, tampered `next` cursors. Each gets a
//! clear 4xx with a JSON body, and the server keeps serving.

use std::time::Duration;

use apifactory_tests::server::{Client, Keys, Response, Server, copy_tenants};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn key<'a>(keys: &'a Keys, tenant: &str) -> &'a str {
    keys.iter()
        .find(|((t, _), _)| t == tenant)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no key printed for {tenant}: {keys:?}"))
}

/// A problem from the API: the status, RFC 9457 JSON with that status and
/// a detail.
#[track_caller]
fn problem(r: &Response, status: u16, what: &str) -> Value {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{what}"
    );
    let body = r.json();
    assert_eq!(body["status"], status, "{what}: {}", r.body);
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{what}: {}",
        r.body
    );
    body
}

/// An answer of the gateway itself: the status and `{"message": ...}`.
#[track_caller]
fn gateway(r: &Response, status: u16, message: &str, what: &str) {
    assert_eq!(
        (r.status, r.json()),
        (status, json!({ "message": message })),
        "{what}: {}",
        r.body
    );
    assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
}

/// Sends raw bytes on a fresh connection and reads the answer (or the
/// status line only, when the server closes without a full response).
async fn raw(addr: &str, request: &[u8]) -> Response {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before reading everything.
    let _ = stream.write_all(request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer to a raw request: {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// Still serving normally after whatever came before.
async fn still_serving(c: &Client, h: &[(&str, &str)]) {
    let r = c.send("GET", "/prod/accounts?limit=1", h, None).await;
    assert_eq!(r.status, 200, "the server still serves: {}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_requests_get_clear_4xx_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let tenants = copy_tenants(tmp.path());
    // Far more requests than acme's plan allows a second: raise it.
    let acme_file = tenants.join("acme.toml");
    let text = std::fs::read_to_string(&acme_file)
        .unwrap()
        .replace("rate = 50\n", "rate = 5000\n")
        .replace("burst = 100\n", "burst = 5000\n");
    assert!(text.contains("burst = 5000"), "acme's plan raised");
    std::fs::write(&acme_file, text).unwrap();
    let server = Server::start(&tenants, &tmp.path().join("data"), &[]).await;
    let keys = server.keys();
    let acme = key(&keys, "acme").to_owned();
    let c = server.client();
    let h = [("Host", "acme.localhost"), ("x-api-key", acme.as_str())];
    let post = |body: String| {
        let c = c.clone();
        let acme = acme.clone();
        async move {
            c.send(
                "POST",
                "/prod/accounts",
                &[("Host", "acme.localhost"), ("x-api-key", &acme)],
                Some(&body),
            )
            .await
        }
    };

    // Bodies above the item size (DynamoDB's 400 KB): 413 from the API;
    // above API Gateway's 10 MB payload: 413 from the gateway, without
    // reading the body.
    let big = json!({"name": "x".repeat(410 * 1024), "email": "big@example.com"}).to_string();
    problem(&post(big).await, 413, "a body over 400 KB");
    let parts = vec!["y".repeat(1000); 450];
    let list = json!({"name": "n", "email": "e@example.com", "company": parts});
    problem(
        &post(list.to_string()).await,
        413,
        "many fields over 400 KB",
    );
    let head = format!(
        "POST /prod/accounts HTTP/1.1\r\nHost: acme.localhost\r\nx-api-key: {acme}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        11 * 1024 * 1024
    );
    gateway(
        &raw(&server.addr, head.as_bytes()).await,
        413,
        "Request Too Long",
        "a declared body over 10 MB",
    );

    // Oversized headers: over API Gateway's 10,240 bytes of request line
    // and header values, 431 with a JSON message before any routing; past
    // what the HTTP server itself accepts (more than 100 headers, or a
    // head over its buffer), its own bare 431. The server lives on.
    let fat = "a".repeat(11 * 1024);
    let mut with_fat = h.to_vec();
    with_fat.push(("x-fat", &fat));
    gateway(
        &c.send("GET", "/prod/accounts", &with_fat, None).await,
        431,
        "Request Header Fields Too Large",
        "an 11 KB header",
    );
    let cookie = format!("session={}", "c".repeat(6000));
    let mut two = h.to_vec();
    two.push(("cookie", &cookie));
    two.push(("x-trace", &cookie));
    gateway(
        &c.send("GET", "/prod/accounts", &two, None).await,
        431,
        "Request Header Fields Too Large",
        "two 6 KB headers",
    );
    let near = "n".repeat(8 * 1024);
    let mut under = h.to_vec();
    under.push(("x-near", &near));
    assert_eq!(
        c.send("GET", "/prod/accounts", &under, None).await.status,
        200,
        "8 KB of headers are within the limit"
    );
    let mut many = format!(
        "GET /prod/accounts HTTP/1.1\r\nHost: acme.localhost\r\nx-api-key: {acme}\r\nConnection: close\r\n"
    );
    for i in 0..150 {
        many += &format!("x-h{i}: v\r\n");
    }
    many += "\r\n";
    let r = raw(&server.addr, many.as_bytes()).await;
    assert_eq!(r.status, 431, "150 headers: {}", r.body);
    let mut huge = format!(
        "GET /prod/accounts HTTP/1.1\r\nHost: acme.localhost\r\nx-api-key: {acme}\r\nConnection: close\r\nx-huge: "
    );
    huge += &"h".repeat(1024 * 1024);
    huge += "\r\n\r\n";
    let r = raw(&server.addr, huge.as_bytes()).await;
    assert_eq!(r.status, 431, "a 1 MB header: {}", r.body);
    still_serving(&c, &h).await;

    // Deeply nested JSON: past the parser's depth limit, and within it.
    for depth in [200, 10_000] {
        let body = format!(
            "{{\"name\":{}{},\"email\":\"d@example.com\"}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let p = problem(&post(body).await, 400, &format!("arrays {depth} deep"));
        assert!(
            p["detail"].as_str().unwrap().contains("not valid JSON"),
            "{p}"
        );
        let body = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        problem(&post(body).await, 400, &format!("objects {depth} deep"));
    }
    let body = format!(
        "{{\"name\":{}\"x\"{},\"email\":\"d@example.com\"}}",
        "[".repeat(100),
        "]".repeat(100)
    );
    let p = problem(&post(body).await, 400, "arrays 100 deep");
    assert_eq!(p["errors"][0]["field"], "name", "{p}");

    // Ids with path separators, dot segments, control characters and
    // other characters an id cannot have: 400 from the API; a second path
    // segment is no route at all (403, as API Gateway answers).
    for id in [
        "a%2Fb",
        "a%2fb",
        "%2F",
        "..",
        ".",
        "%2E%2E",
        "..%2F..%2Fbooks",
        "a%5Cb",
        "a%00b",
        "a%0Ab",
        "a%0D%0AX-Injected:%201",
        "%7F",
        "%C3%A9",
        "%F0%9F%98%80",
        "%FF%FE",
        "a%20b",
        "%25",
        "a%3Fb",
        "a%23b",
    ] {
        for method in ["GET", "DELETE"] {
            let r = c
                .send(method, &format!("/prod/accounts/{id}"), &h, None)
                .await;
            let p = problem(&r, 400, &format!("{method} id {id}"));
            assert!(
                p["detail"].as_str().unwrap().contains("an id is"),
                "{id}: {p}"
            );
        }
        let r = c
            .send(
                "PUT",
                &format!("/prod/accounts/{id}"),
                &h,
                Some(r#"{"name":"n","email":"e@example.com"}"#),
            )
            .await;
        problem(&r, 400, &format!("PUT id {id}"));
    }
    let long = "i".repeat(129);
    problem(
        &c.send("GET", &format!("/prod/accounts/{long}"), &h, None)
            .await,
        400,
        "a 129-character id",
    );
    for path in [
        "/prod/accounts/a/b",
        "/prod/accounts/../books",
        "/prod/accounts/a/",
    ] {
        gateway(
            &c.send("GET", path, &h, None).await,
            403,
            "Missing Authentication Token",
            path,
        );
    }
    // Raw bytes no HTTP server takes in a request target: a bare 400.
    for target in [
        "/prod/accounts/a\\b",
        "/prod/accounts/a\u{1}b",
        "/prod/accounts/a b",
    ] {
        let req = format!(
            "GET {target} HTTP/1.1\r\nHost: acme.localhost\r\nx-api-key: {acme}\r\nConnection: close\r\n\r\n"
        );
        let r = raw(&server.addr, req.as_bytes()).await;
        assert!(
            (400..500).contains(&r.status),
            "{target:?}: {} {}",
            r.status,
            r.body
        );
    }
    // Ids sent in the body.
    for id in ["../etc/passwd", "a/b", "a\u{0}b", "a\nb", "", "é"] {
        let body = json!({"id": id, "name": "n", "email": "e@example.com"}).to_string();
        let p = problem(&post(body).await, 400, &format!("POST id {id:?}"));
        assert_eq!(p["errors"][0]["field"], "id", "{p}");
    }
    still_serving(&c, &h).await;

    // Tampered `next` cursors: 400; the real one works.
    for i in 0..3 {
        let body = json!({"name": format!("n{i}"), "email": format!("n{i}@example.com")});
        assert_eq!(post(body.to_string()).await.status, 201);
    }
    let page = c.send("GET", "/prod/accounts?limit=1", &h, None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let next = page.json()["next"].as_str().expect("a cursor").to_owned();
    let ok = c
        .send(
            "GET",
            &format!("/prod/accounts?limit=1&next={next}"),
            &h,
            None,
        )
        .await;
    assert_eq!(ok.status, 200, "the real cursor: {}", ok.body);

    let fleet = key(&keys, "fleet").to_owned();
    let fh = [("Host", "fleet.localhost"), ("x-api-key", fleet.as_str())];
    for vin in ["V1", "V2"] {
        let body = json!({"vin": vin, "plate": "AB 12", "make": "Volvo"}).to_string();
        assert_eq!(
            c.send("POST", "/live/vehicles", &fh, Some(&body))
                .await
                .status,
            201
        );
    }
    let foreign = c
        .send("GET", "/live/vehicles?limit=1", &fh, None)
        .await
        .json()["next"]
        .as_str()
        .expect("a fleet cursor")
        .to_owned();

    let (payload, tag) = next.split_once('.').unwrap();
    let flipped = {
        let mut b = next.clone().into_bytes();
        b[2] = if b[2] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    let forged_payload = format!("eyJpZCI6Inp6eiJ9.{tag}");
    let tampered = [
        ("one character changed", flipped),
        ("truncated", next[..next.len() - 3].to_owned()),
        ("no tag", payload.to_owned()),
        ("another payload, the same tag", forged_payload),
        ("an extra character", format!("{next}A")),
        ("another tenant's cursor", foreign.clone()),
        ("garbage", "%00%FF..".to_owned()),
        ("empty", String::new()),
    ];
    for (what, cursor) in &tampered {
        let r = c
            .send(
                "GET",
                &format!("/prod/accounts?limit=1&next={cursor}"),
                &h,
                None,
            )
            .await;
        let p = problem(&r, 400, what);
        assert!(
            p["detail"].as_str().unwrap().contains("`next`"),
            "{what}: {p}"
        );
    }
    // The real cursor under another search is not its cursor either.
    let r = c
        .send(
            "GET",
            &format!("/prod/accounts?limit=1&plan=pro&next={next}"),
            &h,
            None,
        )
        .await;
    problem(&r, 400, "a cursor from another search");
    let r = c
        .send(
            "GET",
            &format!("/prod/accounts?next={next}&next={next}"),
            &h,
            None,
        )
        .await;
    problem(&r, 400, "next given twice");

    still_serving(&c, &h).await;
    assert!(
        server.child.id().is_some(),
        "the server is still running after all of it"
    );
    server.kill().await;
}
