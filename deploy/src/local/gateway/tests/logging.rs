//! Logs: the access and function lines of each request, and never a key.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_hold_access_and_function_lines_but_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let state = LocalState::open(dir.path()).await.unwrap();
    let secrets = deploy(&state, &[repo_tenant("acme")]).await;
    let web = key(&secrets, "acme", "acme-web");
    let gateway = Gateway::new(state.clone()).await.unwrap();
    let server = start(&gateway).await;
    let a = server.addr;
    let r = send(
        a,
        "POST",
        "acme.localhost",
        "/prod/accounts",
        Some(&web.value),
        Some(r#"{"name":"Ada","email":"ada@example.com"}"#),
    )
    .await;
    assert_eq!(r.status, 201);
    let request_id = r.header("x-amzn-requestid").unwrap().to_owned();
    let forbidden = send(
        a,
        "GET",
        "acme.localhost",
        "/prod/accounts",
        Some("wrong-key-value-000000"),
        None,
    )
    .await;
    assert_eq!(forbidden.status, 403);
    // Oversized bodies are refused before they are read.
    let raw = b"POST /prod/accounts HTTP/1.1\r\nHost: acme.localhost\r\nContent-Type: application/json\r\nContent-Length: 20000000\r\nConnection: close\r\n\r\n";
    let mut with_key = raw[..raw.len() - 2].to_vec();
    with_key.extend_from_slice(format!("x-api-key: {}\r\n\r\n", web.value).as_bytes());
    send_raw(a, &with_key)
        .await
        .assert_gateway(413, "Request Too Long", "RequestTooLongException");
    server.stop().await;

    let text = std::fs::read_to_string(state.log_path("acme")).unwrap();
    assert!(!text.contains(&web.value), "no key value in the logs");
    assert!(
        !text.contains("wrong-key-value"),
        "no key value in the logs"
    );
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let access: Vec<&Value> = lines.iter().filter(|l| l["type"] == "access").collect();
    assert_eq!(access.len(), 3, "{text}");
    let created = access
        .iter()
        .find(|l| l["requestId"] == request_id.as_str())
        .unwrap();
    assert_eq!(created["status"], 201);
    assert_eq!(created["tenant"], "acme");
    assert_eq!(created["apiKeyId"], web.id.as_str());
    assert_eq!(created["ip"], "127.0.0.1");
    assert_eq!(created["method"], "POST");
    assert_eq!(created["path"], "/prod/accounts");
    assert!(created["latencyMs"].as_f64().is_some());
    assert!(created["bytes"].as_u64().unwrap() > 10);
    assert!(created["time"].as_str().unwrap().ends_with('Z'));
    let refused = access.iter().find(|l| l["status"] == 403).unwrap();
    assert_eq!(refused["apiKeyId"], Value::Null);
    assert!(access.iter().any(|l| l["status"] == 413));

    let function: Vec<&str> = lines
        .iter()
        .filter(|l| l["type"] == "function")
        .map(|l| {
            assert_eq!(l["function"], "apifactory-acme-add");
            l["message"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        function.len(),
        3,
        "only the request that reached the function: {text}"
    );
    assert_eq!(
        function[0],
        format!("START RequestId: {request_id} Version: $LATEST")
    );
    assert_eq!(function[1], format!("END RequestId: {request_id}"));
    assert!(function[2].starts_with(&format!("REPORT RequestId: {request_id}\tDuration: ")));
    assert!(function[2].ends_with("\tMemory Size: 256 MB\tMax Memory Used: 0 MB"));
}
