//! Routing: every way a request names its tenant and stage, and the 403
//! `Missing Authentication Token` for anything else, hostile input included.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_crud_through_every_routing_style() {
    let dir = tempfile::tempdir().unwrap();
    let state = LocalState::open(dir.path()).await.unwrap();
    let secrets = deploy(
        &state,
        &[
            repo_tenant("acme"),
            repo_tenant("bookshop"),
            repo_tenant("clinic"),
        ],
    )
    .await;
    let gateway = Gateway::new(state.clone()).await.unwrap();
    let server = start(&gateway).await;
    let a = server.addr;
    let acme = key(&secrets, "acme", "acme-web").value.as_str();
    let local = format!("acme.localhost:{}", a.port());

    // Create through {tenant}.localhost.
    let r = send(
        a,
        "POST",
        &local,
        "/prod/accounts",
        Some(acme),
        Some(r#"{"name":"Ada","email":"ada@example.com"}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert!(r.header("x-amzn-requestid").is_some_and(|v| v.len() == 36));
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.header("location"),
        Some(format!("/prod/accounts/{id}").as_str())
    );

    // Read through the custom domain (any case, any port).
    let r = send(
        a,
        "GET",
        "API.Acme.Example.com:8443",
        &format!("/accounts/{id}"),
        Some(acme),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["name"], "Ada");
    assert!(r.header("etag").is_some());

    // Search through execute-api.localhost, with a percent-encoded query.
    let r = send(
        a,
        "GET",
        &format!("acme.execute-api.localhost:{}", a.port()),
        "/prod/accounts?email=ada%40example.com",
        Some(acme),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 1);

    // Patch through the path style, on any host.
    let mut raw = raw_request(
        "PATCH",
        "127.0.0.1",
        &format!("/restapis/acme/prod/_user_request_/accounts/{id}"),
        &[
            ("x-api-key", acme),
            ("Content-Type", "application/merge-patch+json"),
        ],
        None,
    );
    raw.truncate(raw.len() - 2);
    let patch = r#"{"company":"Analytical Engines"}"#;
    raw.extend_from_slice(format!("Content-Length: {}\r\n\r\n{patch}", patch.len()).as_bytes());
    let r = send_raw(a, &raw).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["company"], "Analytical Engines");

    // Replace through the custom domain, delete through localhost.
    let r = send(
        a,
        "PUT",
        "api.acme.example.com",
        &format!("/accounts/{id}"),
        Some(acme),
        Some(r#"{"name":"Ada L","email":"ada@example.com"}"#),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["name"].clone()),
        (200, json!("Ada L")),
        "{r:?}"
    );
    let r = send(
        a,
        "DELETE",
        &local,
        &format!("/prod/accounts/{id}"),
        Some(acme),
        None,
    )
    .await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = send(
        a,
        "GET",
        &local,
        &format!("/prod/accounts/{id}"),
        Some(acme),
        None,
    )
    .await;
    assert_eq!(r.status, 404, "the function's own 404: {r:?}");
    assert!(r.header("x-amzn-errortype").is_none());

    // The bookshop's custom domain maps the base path `books-api`.
    let books = key(&secrets, "bookshop", "storefront").value.as_str();
    let shop = "catalogue.pageturner.example";
    let r = send(
        a,
        "POST",
        shop,
        "/books-api/books",
        Some(books),
        Some(r#"{"isbn":"978-0-00-000000-2","title":"Notes","authors":["Ada"],"price":12.5}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(
        r.header("location"),
        Some("/books-api/books/978-0-00-000000-2")
    );
    let r = send(
        a,
        "GET",
        shop,
        "/books-api/books/978-0-00-000000-2",
        Some(books),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["title"].clone()),
        (200, json!("Notes")),
        "{r:?}"
    );
    // A percent-encoded id is decoded for the function.
    let r = send(
        a,
        "GET",
        shop,
        "/books-api/books/978%2D0-00-000000-2",
        Some(books),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    send(a, "GET", shop, "/books", Some(books), None)
        .await
        .assert_gateway(
            403,
            "Missing Authentication Token",
            "MissingAuthenticationTokenException",
        );

    // The clinic has no custom domain: path style and localhost.
    let clinic = key(&secrets, "clinic", "front-desk").value.as_str();
    let r = send(
        a,
        "POST",
        "localhost",
        "/restapis/clinic/prod/_user_request_/appointments",
        Some(clinic),
        Some(r#"{"patient_ref":"P-123456","starts_at":"2026-03-01T09:30:00Z"}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert!(
        r.header("location")
            .is_some_and(|l| l.starts_with("/restapis/clinic/prod/_user_request_/appointments/"))
    );
    let r = send(
        a,
        "GET",
        "clinic.localhost",
        "/prod/appointments?patient_ref=P-123456",
        Some(clinic),
        None,
    )
    .await;
    assert_eq!(r.json()["items"].as_array().map(Vec::len), Some(1), "{r:?}");

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_are_missing_authentication_token() {
    let dir = tempfile::tempdir().unwrap();
    let state = LocalState::open(dir.path()).await.unwrap();
    let secrets = deploy(&state, &[repo_tenant("acme"), repo_tenant("clinic")]).await;
    let gateway = Gateway::new(state.clone()).await.unwrap();
    let server = start(&gateway).await;
    let a = server.addr;
    let acme = key(&secrets, "acme", "acme-web").value.as_str();
    let clinic = key(&secrets, "clinic", "front-desk").value.as_str();

    let missing = [
        ("GET", "acme.localhost", "/prod/unknown", acme),
        ("GET", "acme.localhost", "/prod/accounts/a/b", acme),
        ("GET", "acme.localhost", "/prod/accounts/", acme),
        ("GET", "acme.localhost", "/prod", acme),
        ("GET", "acme.localhost", "/", acme),
        ("DELETE", "acme.localhost", "/prod/accounts", acme),
        ("PUT", "acme.localhost", "/prod/accounts", acme),
        ("HEAD", "acme.localhost", "/prod/accounts/x", acme),
        ("OPTIONS", "acme.localhost", "/prod/accounts", acme),
        ("GET", "acme.localhost", "/beta/accounts", acme),
        ("GET", "nobody.localhost", "/prod/accounts", acme),
        ("GET", "localhost", "/prod/accounts", acme),
        ("GET", "unknown.example.com", "/accounts", acme),
        ("GET", "api.acme.example.com", "/prod/accounts", acme),
        (
            "GET",
            "x",
            "/restapis/acme/beta/_user_request_/accounts",
            acme,
        ),
        (
            "GET",
            "x",
            "/restapis/nobody/prod/_user_request_/accounts",
            acme,
        ),
        ("GET", "x", "/restapis/acme/prod/_user_request_", acme),
        // The clinic deploys no delete function.
        ("DELETE", "clinic.localhost", "/prod/appointments/x", clinic),
    ];
    for (method, host, path, key) in missing {
        let r = send(a, method, host, path, Some(key), None).await;
        if method == "HEAD" {
            assert_eq!(r.status, 403, "{method} {host}{path}");
            continue;
        }
        r.assert_gateway(
            403,
            "Missing Authentication Token",
            "MissingAuthenticationTokenException",
        );
    }
    // Without a key too: routing comes first.
    send(a, "GET", "acme.localhost", "/prod/nothing", None, None)
        .await
        .assert_gateway(
            403,
            "Missing Authentication Token",
            "MissingAuthenticationTokenException",
        );

    // Hostile input never crashes the gateway.
    let hostile: [&[u8]; 6] = [
        b"GET /prod/accounts/%zz%ff HTTP/1.1\r\nHost: acme.localhost\r\nConnection: close\r\n\r\n",
        b"GET /prod/accounts?%zz=%&&=&a=%ff HTTP/1.1\r\nHost: acme.localhost\r\nConnection: close\r\n\r\n",
        b"GET /prod/accounts HTTP/1.1\r\nHost: \xff\xfe.localhost\r\nConnection: close\r\n\r\n",
        b"GET /prod/accounts HTTP/1.1\r\nHost: [::1\r\nConnection: close\r\n\r\n",
        b"GET /prod/accounts HTTP/1.1\r\nHost: acme.localhost:99999999999999999999\r\nx-api-key: \xff\r\nConnection: close\r\n\r\n",
        b"GET //restapis//acme HTTP/1.1\r\nHost: .\r\nConnection: close\r\n\r\n",
    ];
    for raw in hostile {
        let r = send_raw(a, raw).await;
        assert!(r.status < 500, "{r:?}");
    }
    // A long unknown key is refused like any unknown key; past API
    // Gateway's 10,240 bytes of request line and header values, the
    // request is refused before anything is looked at.
    for (len, status) in [(9_000, 403), (60_000, 431)] {
        let mut big =
            b"GET /prod/accounts HTTP/1.1\r\nHost: acme.localhost\r\nx-api-key: ".to_vec();
        big.extend(std::iter::repeat_n(b'k', len));
        big.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
        let r = send_raw(a, &big).await;
        if status == 403 {
            r.assert_gateway(403, "Forbidden", "ForbiddenException");
        } else {
            r.assert_gateway(
                431,
                "Request Header Fields Too Large",
                "RequestHeaderFieldsTooLargeException",
            );
        }
    }
    let r = send(
        a,
        "GET",
        "acme.localhost",
        "/prod/accounts/%zz%ff",
        Some(acme),
        None,
    )
    .await;
    assert_eq!(r.status, 400, "the function refuses the id: {r:?}");

    // Routing on odd strings directly.
    let live = gateway.live();
    let parts = http::Request::builder()
        .method("GET")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    for host in [
        "",
        ":",
        "[",
        "]",
        "é.localhost",
        "acme.localhost:",
        "ACME.LOCALHOST",
        "a..localhost",
    ] {
        for path in [
            "",
            "/",
            "//",
            "/prod//accounts",
            "/restapis/",
            "/restapis/acme/prod/_user_request_x",
            "/%",
            "/é/é",
        ] {
            let _ = route::resolve(&live, host, path, &parts);
        }
    }
    assert!(route::resolve(&live, "ACME.LOCALHOST:1", "/prod/accounts", &parts).is_some());

    server.stop().await;
}
