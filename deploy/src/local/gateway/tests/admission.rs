//! Admission: keys, the token buckets and the quota, as they follow the
//! deployed state and survive restarts.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::local::gateway::admit::quota_block;
use crate::local::state::period_start;
use crate::resource::{Address, Kind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_checked_and_follow_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let state = LocalState::open(dir.path()).await.unwrap();
    let secrets = deploy(&state, &[repo_tenant("acme"), repo_tenant("clinic")]).await;
    let gateway = Gateway::new(state.clone()).await.unwrap();
    let server = start(&gateway).await;
    let a = server.addr;
    let web = key(&secrets, "acme", "acme-web");
    let billing = key(&secrets, "acme", "acme-billing");
    let clinic = key(&secrets, "clinic", "front-desk").value.as_str();
    let get = |k: Option<String>| async move {
        send(
            a,
            "GET",
            "acme.localhost",
            "/prod/accounts",
            k.as_deref(),
            None,
        )
        .await
    };

    assert_eq!(get(Some(web.value.clone())).await.status, 200);
    for k in [
        None,
        Some(String::new()),
        Some("not-a-key-at-all-but-long-enough".to_owned()),
        Some(clinic.to_owned()),
        Some(web.value.to_uppercase()),
    ] {
        get(k)
            .await
            .assert_gateway(403, "Forbidden", "ForbiddenException");
    }

    // Disabled here, then reloaded.
    assert!(state.set_key_enabled(&web.id, false).await.unwrap());
    gateway.reload().await.unwrap();
    get(Some(web.value.clone()))
        .await
        .assert_gateway(403, "Forbidden", "ForbiddenException");
    assert_eq!(
        get(Some(billing.value.clone())).await.status,
        200,
        "other keys work"
    );
    assert!(state.set_key_enabled(&web.id, true).await.unwrap());
    gateway.reload().await.unwrap();
    assert_eq!(get(Some(web.value.clone())).await.status, 200);

    // Expired keys stop working.
    assert!(state.set_key_expiry(&web.id, Some(1)).await.unwrap());
    gateway.reload().await.unwrap();
    get(Some(web.value.clone()))
        .await
        .assert_gateway(403, "Forbidden", "ForbiddenException");

    // Changed by another process: the poll notices without reload().
    let other = LocalState::open(dir.path()).await.unwrap();
    assert!(other.delete_key(&billing.id).await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let r = get(Some(billing.value.clone())).await;
        if r.status == 403 {
            r.assert_gateway(403, "Forbidden", "ForbiddenException");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a deleted key still works: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A tenant that disappears stops being served.
    let clinic_ok = send(
        a,
        "GET",
        "clinic.localhost",
        "/prod/appointments",
        Some(clinic),
        None,
    )
    .await;
    assert_eq!(clinic_ok.status, 200);
    state
        .remove(&Address::new("clinic", Kind::Stage, "prod"))
        .await
        .unwrap();
    gateway.reload().await.unwrap();
    send(
        a,
        "GET",
        "clinic.localhost",
        "/prod/appointments",
        Some(clinic),
        None,
    )
    .await
    .assert_gateway(
        403,
        "Missing Authentication Token",
        "MissingAuthenticationTokenException",
    );

    server.stop().await;
    let used = state.keys().await.unwrap();
    assert!(
        used.iter().any(|k| k.id == web.id && k.last_used.is_some()),
        "last use is recorded: {used:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_are_throttled_and_quotas_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let state = LocalState::open(dir.path()).await.unwrap();
    let small = write_tenant(
        files.path(),
        "small",
        &small_tenant("test", 1.0, 3, Some(4)),
    );
    let secrets = deploy(&state, &[small]).await;
    let one = key(&secrets, "small", "one");
    let two = key(&secrets, "small", "two");
    let gateway = Gateway::new(state.clone()).await.unwrap();
    let server = start(&gateway).await;
    let a = server.addr;
    let get = |k: &str| {
        let k = k.to_owned();
        async move { send(a, "GET", "small.localhost", "/test/notes", Some(&k), None).await }
    };

    for _ in 0..3 {
        assert_eq!(get(&one.value).await.status, 200);
    }
    get(&one.value)
        .await
        .assert_gateway(429, "Too Many Requests", "TooManyRequestsException");
    // One token a second: the fourth request of the quota.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        get(&one.value).await.status,
        200,
        "a throttled request is not counted"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    get(&one.value)
        .await
        .assert_gateway(429, "Limit Exceeded", "LimitExceededException");
    assert_eq!(
        get(&two.value).await.status,
        200,
        "each key has its own bucket and quota"
    );

    let period = period_start(runtime::tenant::Period::Day, OffsetDateTime::now_utc());
    assert_eq!(state.quota_used(&one.id, period).await.unwrap(), 4);

    // A new gateway on the same directory: fresh buckets, same count.
    server.stop().await;
    drop(gateway);
    let gateway = Gateway::new(state.clone()).await.unwrap();
    let server = start(&gateway).await;
    let r = send(
        server.addr,
        "GET",
        "small.localhost",
        "/test/notes",
        Some(&one.value),
        None,
    )
    .await;
    r.assert_gateway(429, "Limit Exceeded", "LimitExceededException");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_are_exact_under_concurrency_and_leased_in_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let state = LocalState::open(dir.path()).await.unwrap();
    let exact = write_tenant(
        files.path(),
        "exact",
        &small_tenant("prod", 1000.0, 1000, Some(50)),
    );
    let blocks = write_tenant(
        files.path(),
        "blocks",
        &small_tenant("prod", 1000.0, 1000, Some(1000)),
    );
    let secrets = deploy(&state, &[exact, blocks]).await;
    let gateway = Gateway::new(state.clone()).await.unwrap();
    let server = start(&gateway).await;
    let a = server.addr;

    // Limit 50 (block 1): 60 at once, exactly 50 get through.
    let k = key(&secrets, "exact", "one").value.clone();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..60 {
        let k = k.clone();
        tasks.spawn(async move {
            send(a, "GET", "exact.localhost", "/prod/notes", Some(&k), None)
                .await
                .status
        });
    }
    let mut statuses = BTreeMap::new();
    while let Some(s) = tasks.join_next().await {
        *statuses.entry(s.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(statuses, BTreeMap::from([(200, 50), (429, 10)]));

    // Limit 1,000: blocks of 10 reserved ahead.
    let b = key(&secrets, "blocks", "one");
    let period = period_start(runtime::tenant::Period::Day, OffsetDateTime::now_utc());
    for _ in 0..3 {
        let r = send(
            a,
            "GET",
            "blocks.localhost",
            "/prod/notes",
            Some(&b.value),
            None,
        )
        .await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(state.quota_used(&b.id, period).await.unwrap(), 10);
    server.stop().await;
    drop(gateway);

    // After a restart the count goes on from what was reserved (an
    // over-count of 7, less than one block).
    let gateway = Gateway::new(state.clone()).await.unwrap();
    let server = start(&gateway).await;
    let r = send(
        server.addr,
        "GET",
        "blocks.localhost",
        "/prod/notes",
        Some(&b.value),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(state.quota_used(&b.id, period).await.unwrap(), 20);
    server.stop().await;
}

#[test]
fn buckets_and_blocks() {
    let l = key_limiter(0.5, 2);
    assert!(l.check().is_ok() && l.check().is_ok());
    assert!(l.check().is_err());
    for (rate, burst) in [
        (f64::NAN, 0),
        (1e300, 1),
        (-1.0, 5),
        (0.0, 1),
        (f64::INFINITY, 3),
        (1e-300, 1),
    ] {
        let l = key_limiter(rate, burst);
        let _ = l.check();
    }
    assert_eq!(quota_block(4), 1);
    assert_eq!(quota_block(1_000), 10);
    assert_eq!(quota_block(100_000), 1_000);
    assert_eq!(quota_block(10_000_000), 1_000);
    assert_eq!(quota_block(0), 1);
    let id = request_id();
    assert_eq!(id.len(), 36);
    let groups: Vec<usize> = id.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12]);
    assert!(
        id.bytes()
            .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    // Time-ordered, as the ULID it comes from (its first 48 bits are the
    // time in milliseconds).
    assert!(request_id()[..13] >= id[..13]);
}

/// The three layers in API Gateway's order: each key's own bucket, the
/// tenant's API-wide bucket when it sets one (every key together), then the
/// account's. Refill is one token every 1,000 s, so only the bursts count
/// and nothing depends on timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_wide_total_throttles_all_keys_together_and_only_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let state = LocalState::open(dir.path()).await.unwrap();
    let per_key = small_tenant("test", 0.001, 5, None);
    let with_total = |display: &str, burst: u32| {
        per_key
            .replace(
                "burst = 5\n",
                &format!("burst = 5\napi_rate = 0.001\napi_burst = {burst}\n"),
            )
            .replace(
                "display_name = \"Small\"",
                &format!("display_name = \"{display}\""),
            )
    };
    let total = write_tenant(files.path(), "total", &with_total("Small", 6));
    let open = write_tenant(files.path(), "open", &per_key);
    let secrets = deploy(&state, &[total.clone(), open]).await;
    let gateway = Gateway::new(state.clone()).await.unwrap();
    let server = start(&gateway).await;
    let a = server.addr;
    let get = |tenant: &'static str, k: &Secret| {
        let k = k.value.clone();
        let host = format!("{tenant}.localhost");
        async move { send(a, "GET", &host, "/test/notes", Some(&k), None).await }
    };
    let statuses = async |tenant: &'static str, client: &str, n: usize| {
        let k = key(&secrets, tenant, client);
        let mut seen = Vec::new();
        for _ in 0..n {
            seen.push(get(tenant, k).await.status);
        }
        seen
    };

    // Without a total, each key has its own 5 and both are served in full:
    // 10 requests, more than any one bucket holds.
    assert_eq!(statuses("open", "one", 5).await, [200; 5]);
    assert_eq!(statuses("open", "two", 5).await, [200; 5]);
    // The per-key layer still holds each key to its own burst.
    get("open", key(&secrets, "open", "one"))
        .await
        .assert_gateway(429, "Too Many Requests", "TooManyRequestsException");

    // With a total of 6, the second key is refused once the API's bucket is
    // empty, though its own bucket still has 4. (The key's bucket is
    // checked first, so a key over its own limit never drains the API's.)
    assert_eq!(statuses("total", "one", 5).await, [200; 5]);
    assert_eq!(statuses("total", "two", 1).await, [200]);
    get("total", key(&secrets, "total", "two"))
        .await
        .assert_gateway(429, "Too Many Requests", "TooManyRequestsException");

    // A redeploy that changes something else keeps the API's bucket (it is
    // not refilled by a reload)...
    std::fs::write(&total, with_total("Small again", 6)).unwrap();
    deploy(&state, std::slice::from_ref(&total)).await;
    gateway.reload().await.unwrap();
    assert_eq!(
        statuses("total", "two", 1).await,
        [429],
        "a reload refilled the API's bucket"
    );
    // ...and one that removes the total removes the layer.
    std::fs::write(&total, &per_key).unwrap();
    deploy(&state, std::slice::from_ref(&total)).await;
    gateway.reload().await.unwrap();
    assert_eq!(statuses("total", "two", 2).await, [200, 200]);
    server.stop().await;
}
