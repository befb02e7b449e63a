//! The live state: each tenant's runtime is prepared with the data
//! directory's cursor secret, shared by every gateway on the directory.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_cursors_are_signed_with_the_data_directorys_secret() {
    let dir = tempfile::tempdir().unwrap();
    let state = LocalState::open(dir.path()).await.unwrap();
    let secrets = deploy(&state, &[repo_tenant("acme")]).await;
    let acme = key(&secrets, "acme", "acme-web").value.as_str();
    let secret = state.cursor_secret().await.unwrap();
    assert_eq!(secret.len(), 32);
    assert_eq!(state.cursor_secret().await.unwrap(), secret, "made once");

    let gateway = Gateway::new(state.clone()).await.unwrap();
    let server = start(&gateway).await;
    for n in 0..3 {
        let body = format!(r#"{{"name": "N{n}", "email": "n{n}@example.com"}}"#);
        let r = send(
            server.addr,
            "POST",
            "acme.localhost",
            "/prod/accounts",
            Some(acme),
            Some(&body),
        )
        .await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    let first = send(
        server.addr,
        "GET",
        "acme.localhost",
        "/prod/accounts?limit=1",
        Some(acme),
        None,
    )
    .await;
    assert_eq!(first.status, 200, "{first:?}");
    let cursor = first.json()["next"].as_str().unwrap().to_owned();
    server.stop().await;

    // Another process on the same directory takes the cursor.
    let gateway = Gateway::new(LocalState::open(dir.path()).await.unwrap())
        .await
        .unwrap();
    let server = start(&gateway).await;
    let next = format!("/prod/accounts?limit=1&next={cursor}");
    let r = send(
        server.addr,
        "GET",
        "acme.localhost",
        &next,
        Some(acme),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["items"].as_array().map(Vec::len), Some(1), "{r:?}");
    assert_ne!(r.json()["items"][0], first.json()["items"][0]);

    // A cursor made with the tenant file alone (the derivation is public)
    // is refused.
    let table = state
        .database()
        .table(&Tenant::load(&repo_tenant("acme")).unwrap())
        .await
        .unwrap();
    let bare = runtime::Api::new(Arc::new(Tenant::load(&repo_tenant("acme")).unwrap()), table);
    let mut event = aws_lambda_events::apigw::ApiGatewayProxyRequest::default();
    event.http_method = http::Method::GET;
    event.resource = Some("/accounts".into());
    event.path = Some("/accounts".into());
    let query: std::collections::HashMap<String, Vec<String>> =
        [("limit".to_owned(), vec!["1".to_owned()])].into();
    event.multi_value_query_string_parameters = query.into();
    let forged = bare.handle(event).await;
    let forged: Value = match forged.body {
        Some(aws_lambda_events::encodings::Body::Text(t)) => serde_json::from_str(&t).unwrap(),
        other => panic!("{other:?}"),
    };
    let forged = forged["next"].as_str().unwrap().to_owned();
    let r = send(
        server.addr,
        "GET",
        "acme.localhost",
        &format!("/prod/accounts?limit=1&next={forged}"),
        Some(acme),
        None,
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    server.stop().await;
}
