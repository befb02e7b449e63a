//! The event: what API Gateway sends the function, and the 10 MB and 6 MB
//! limits on the way.

use std::time::{Duration, UNIX_EPOCH};

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use axum::body::{Body, Bytes};
use runtime::Operation;
use runtime::api::Api;

use super::*;
use crate::local::gateway::route::Routed;

/// Between Lambda's 6 MB and API Gateway's 10 MB, a body passes the
/// gateway's own limit and Lambda refuses the event: 413 as AWS relays it.
/// The event counts, not only the body: a body that JSON escaping makes
/// six times longer is refused at a sixth of the size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_past_lambdas_payload_limit_are_413() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let state = LocalState::open(dir.path()).await.unwrap();
    let small = write_tenant(
        files.path(),
        "small",
        &small_tenant("prod", 100.0, 100, None),
    );
    let secrets = deploy(&state, &[small]).await;
    let one = key(&secrets, "small", "one").value.clone();
    let gateway = Gateway::new(state.clone()).await.unwrap();
    let server = start(&gateway).await;
    let a = server.addr;
    let post = |body: String| {
        let one = one.clone();
        async move {
            send(
                a,
                "POST",
                "small.localhost",
                "/prod/notes",
                Some(&one),
                Some(&body),
            )
            .await
        }
    };

    let seven_mb = format!(r#"{{"text":"{}"}}"#, "x".repeat(7 * 1024 * 1024));
    let r = post(seven_mb).await;
    r.assert_gateway(413, "Request Too Long", "BadRequestException");
    assert_eq!(r.body, r#"{"message": "Request Too Long"}"#);

    // 1.1 MB of control characters: each is six bytes in the event.
    let escaped = format!(r#"{{"text":"{}"}}"#, "\u{1}".repeat(1_100_000));
    post(escaped)
        .await
        .assert_gateway(413, "Request Too Long", "BadRequestException");

    // Just under the limit the function runs and answers for itself
    // (the item is over DynamoDB's 400 KB).
    let under = format!(r#"{{"text":"{}"}}"#, "x".repeat(6_200_000));
    let r = post(under).await;
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    server.stop().await;

    let lines = std::fs::read_to_string(state.log_path("small")).unwrap();
    let starts = lines
        .lines()
        .filter(|l| l.contains("START RequestId"))
        .count();
    assert_eq!(
        starts, 1,
        "only the last request invoked the function: {lines}"
    );
}

#[test]
fn only_large_events_are_measured() {
    let mut ev = ApiGatewayProxyRequest::default();
    ev.body = Some("x".repeat(900_000));
    assert!(!event_too_large(&ev));
    ev.body = Some("\u{1}".repeat(1_048_576));
    assert!(event_too_large(&ev), "six bytes each once escaped");
    ev.body = Some("x".repeat(MAX_INVOCATION_PAYLOAD - 10_000));
    assert!(!event_too_large(&ev));
    ev.body = Some("x".repeat(MAX_INVOCATION_PAYLOAD));
    assert!(event_too_large(&ev));
}

#[tokio::test]
async fn events_carry_what_api_gateway_sends() {
    let dir = tempfile::tempdir().unwrap();
    let state = LocalState::open(dir.path()).await.unwrap();
    deploy(&state, &[repo_tenant("acme")]).await;
    let snapshot = state.snapshot().await.unwrap();
    let deployed = &snapshot.tenants["acme"];
    let api = Arc::new(Api::new(
        Arc::new(deployed.tenant.clone()),
        state.database().table(&deployed.tenant).await.unwrap(),
    ));
    let t = Arc::new(TenantRt::new(
        deployed,
        None,
        String::new(),
        api,
        crate::local::gateway::logs::Logs::start()
            .unwrap()
            .file(&state.log_path("acme")),
    ));
    let parts = http::Request::builder()
        .method("GET")
        .uri("/prod/accounts/a%20b?x=1&x=2&y=a+b%21")
        .header("host", "acme.localhost:9000")
        .header("x-api-key", "the-key-value")
        .header("accept", "a")
        .header("accept", "b")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let routed = Routed {
        tenant: Arc::clone(&t),
        rest: "/accounts/a%20b",
        id: Some("a%20b"),
        op: Operation::Get,
    };
    let ev = event(EventParts {
        parts: &parts,
        headers: parts.headers.clone(),
        routed: &routed,
        host: "acme.localhost:9000".into(),
        full_path: "/prod/accounts/a%20b",
        body: Bytes::from_static(b"\xff\x00"),
        request_id: "rid",
        now: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        peer: Some("10.0.0.1".parse().unwrap()),
        api_key: "the-key-value".into(),
        api_key_id: "abc",
    });
    assert_eq!(ev.resource.as_deref(), Some("/accounts/{id}"));
    assert_eq!(ev.path.as_deref(), Some("/accounts/a%20b"));
    assert_eq!(ev.http_method, http::Method::GET);
    assert_eq!(
        ev.path_parameters.get("id").map(String::as_str),
        Some("a b")
    );
    assert!(ev.stage_variables.is_empty());
    assert_eq!(ev.query_string_parameters.first("x"), Some("2"));
    assert_eq!(
        ev.multi_value_query_string_parameters.all("x"),
        Some(vec!["1", "2"])
    );
    assert_eq!(ev.query_string_parameters.first("y"), Some("a+b!"));
    assert_eq!(ev.multi_value_headers.get_all("accept").iter().count(), 2);
    assert_eq!(ev.headers.get("host").unwrap(), "acme.localhost:9000");
    assert!(ev.is_base64_encoded);
    assert_eq!(ev.body.as_deref(), Some("/wA="));
    let c = &ev.request_context;
    assert_eq!(c.stage.as_deref(), Some("prod"));
    assert_eq!(c.request_id.as_deref(), Some("rid"));
    assert_eq!(c.request_time_epoch, 1_700_000_000_123);
    assert_eq!(c.resource_path.as_deref(), Some("/accounts/{id}"));
    assert_eq!(c.path.as_deref(), Some("/prod/accounts/a%20b"));
    assert_eq!(c.domain_name.as_deref(), Some("acme.localhost:9000"));
    assert_eq!(c.account_id.as_deref(), Some("000000000000"));
    assert_eq!(c.apiid.as_deref(), Some("acme"));
    assert_eq!(c.http_method, http::Method::GET);
    assert_eq!(c.identity.source_ip.as_deref(), Some("10.0.0.1"));
    assert_eq!(c.identity.api_key.as_deref(), Some("the-key-value"));
    assert_eq!(c.identity.api_key_id.as_deref(), Some("abc"));
    // The runtime takes it as API Gateway's.
    let response = t.api.answer(&ev).await;
    assert_eq!(
        response.status_code, 400,
        "`a b` is not an id: {response:?}"
    );
}

#[tokio::test]
async fn bodies_are_read_up_to_the_limit() {
    let small = read_body(Body::from("hello"), 10).await;
    assert_eq!(small.ok().as_deref(), Some(&b"hello"[..]));
    let big = read_body(Body::from(vec![0u8; MAX_PAYLOAD + 1]), MAX_PAYLOAD).await;
    assert!(matches!(big, Err(BodyError::TooLong)));
    let exact = read_body(Body::from(vec![0u8; 1024]), 1024).await;
    assert_eq!(exact.ok().map(|b| b.len()), Some(1024));
}
