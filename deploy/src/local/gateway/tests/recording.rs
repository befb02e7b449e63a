//! Usage recording: each request lands in its key's figures (or its
//! tenant's, without a usable key), with the refusals, bytes, latency,
//! function time and request units, once the recorder is flushed.

use super::*;
use crate::local::state::{Grain, UsageRow};
use crate::usage::Counts;

/// Every recorded row of a key, added up (a run can cross a minute).
fn total(rows: &[UsageRow], tenant: &str, key_id: &str) -> Counts {
    let mut c = Counts::default();
    for r in rows
        .iter()
        .filter(|r| r.tenant == tenant && r.key_id == key_id)
    {
        c.merge(&r.counts);
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_recorded_on_its_key_with_what_happened_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let state = LocalState::open(dir.path()).await.unwrap();
    // A bucket of 10 that refills one token every 100 s, and a quota of 6.
    let small = write_tenant(
        files.path(),
        "small",
        &small_tenant("test", 0.01, 10, Some(6)),
    );
    let secrets = deploy(&state, &[small]).await;
    let one = key(&secrets, "small", "one");
    let two = key(&secrets, "small", "two");
    let gateway = Gateway::new(state.clone()).await.unwrap();
    let server = start(&gateway).await;
    let a = server.addr;
    let host = "small.localhost";
    let k = Some(one.value.as_str());

    let created = send(
        a,
        "POST",
        host,
        "/test/notes",
        k,
        Some(r#"{"text":"hello"}"#),
    )
    .await;
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let item = format!("/test/notes/{id}");
    let statuses = [
        send(a, "GET", host, &item, k, None).await.status,
        send(a, "GET", host, "/test/notes/missing", k, None)
            .await
            .status,
        send(a, "POST", host, "/test/notes", k, Some(r#"{"text":7}"#))
            .await
            .status,
        send(a, "GET", host, "/test/notes", k, None).await.status,
        send(a, "DELETE", host, &item, k, None).await.status,
    ];
    assert_eq!(statuses, [200, 404, 400, 200, 204]);
    // The quota (6) is used up: four refusals, which still take tokens,
    // then the bucket (10) is empty.
    for _ in 0..4 {
        send(a, "GET", host, "/test/notes", k, None)
            .await
            .assert_gateway(429, "Limit Exceeded", "LimitExceededException");
    }
    send(a, "GET", host, "/test/notes", k, None)
        .await
        .assert_gateway(429, "Too Many Requests", "TooManyRequestsException");
    assert_eq!(
        send(a, "GET", host, "/test/notes", Some(&two.value), None)
            .await
            .status,
        200
    );
    for bad in [None, Some("not-a-key-of-this-tenant-at-all")] {
        send(a, "GET", host, "/test/notes", bad, None)
            .await
            .assert_gateway(403, "Forbidden", "ForbiddenException");
    }

    // Nothing is written until a flush (every 400 ms in the background, or
    // on shutdown).
    server.stop().await;
    gateway.flush().await;
    let rows = state.usage(Grain::Minute, 0, i64::MAX).await.unwrap();

    let c = total(&rows, "small", &one.id);
    assert_eq!(c.requests, 11);
    assert_eq!((c.status_2xx, c.status_4xx, c.status_5xx), (4, 7, 0));
    assert_eq!((c.quota_refused, c.throttled, c.forbidden), (4, 1, 0));
    assert_eq!(c.invocations, 6, "every request the quota let through");
    assert_eq!(c.function_errors, 0);
    assert_eq!(c.latency_us.count(), 11);
    assert_eq!(
        c.bytes_in,
        (r#"{"text":"hello"}"#.len() + r#"{"text":7}"#.len()) as u64
    );
    assert!(c.bytes_out > 0 && c.log_bytes > c.bytes_out);
    assert!(c.billed_ms >= c.invocations && c.billed_ms * 1000 >= c.duration_us);
    assert_eq!(c.billed_mb_ms, c.billed_ms * 256, "the default memory size");
    // Reads: GET found (1), GET missing (1), the search (0.5, eventually
    // consistent). Writes: the create (1) and the delete (1); the refused
    // POST never reached the table.
    assert_eq!((c.read_units, c.write_units), (2.5, 2.0), "{c:?}");

    let c = total(&rows, "small", &two.id);
    assert_eq!((c.requests, c.status_2xx, c.invocations), (1, 1, 1));

    let c = total(&rows, "small", "");
    assert_eq!(
        (c.requests, c.forbidden, c.status_4xx, c.invocations),
        (2, 2, 2, 0)
    );

    // The quota each key served, for reports.
    let period =
        crate::local::state::period_start(runtime::tenant::Period::Day, OffsetDateTime::now_utc());
    assert_eq!(state.quota_report(&one.id, period).await.unwrap(), 6);
    assert_eq!(state.quota_report(&two.id, period).await.unwrap(), 1);

    // The same figures in the hour and the day.
    for grain in [Grain::Hour, Grain::Day] {
        let rolled = state.usage(grain, 0, i64::MAX).await.unwrap();
        assert_eq!(
            total(&rolled, "small", &one.id),
            total(&rows, "small", &one.id)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_recorded_when_recording_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let state = LocalState::open(dir.path()).await.unwrap();
    let secrets = deploy(&state, &[repo_tenant("acme")]).await;
    let config = Config {
        record_usage: false,
        ..Config::default()
    };
    let gateway = Gateway::with_config(state.clone(), config).await.unwrap();
    let server = start(&gateway).await;
    let web = key(&secrets, "acme", "acme-web");
    let r = send(
        server.addr,
        "GET",
        "acme.localhost",
        "/prod/accounts",
        Some(&web.value),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    server.stop().await;
    gateway.flush().await;
    assert!(
        state
            .usage(Grain::Minute, 0, i64::MAX)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_fire_on_the_recorded_figures_and_clear_when_the_window_passes() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let state = LocalState::open(dir.path()).await.unwrap();
    let text = small_tenant("test", 100.0, 100, Some(1000))
        + "\n[[alarms]]\nname = \"errors\"\nmetric = \"5xx_rate\"\nthreshold = 0.2\nminutes = 5\n\
           \n[[alarms]]\nname = \"quota\"\nmetric = \"quota_share\"\nthreshold = 0.5\n";
    let small = write_tenant(files.path(), "small", &text);
    let secrets = deploy(&state, &[small]).await;
    let one = key(&secrets, "small", "one");
    // An item its table cannot read: the function answers 500 for it.
    state
        .database()
        .write(|c| {
            c.execute(
                "INSERT INTO items_small (id, rev, doc) VALUES ('broken', 'r', 'not json')",
                [],
            )
            .map_err(|e| runtime::StoreError::Backend(e.to_string()))
        })
        .await
        .unwrap();
    let gateway = Gateway::new(state.clone()).await.unwrap();
    let server = start(&gateway).await;
    let k = Some(one.value.as_str());
    for (path, status) in [
        ("/test/notes/broken", 500),
        ("/test/notes/broken", 500),
        ("/test/notes/a", 404),
        ("/test/notes/b", 404),
        ("/test/notes/c", 404),
    ] {
        assert_eq!(
            send(server.addr, "GET", "small.localhost", path, k, None)
                .await
                .status,
            status
        );
    }
    server.stop().await;
    gateway.flush().await;

    let now = OffsetDateTime::now_utc();
    let changed = crate::local::alarms::evaluate(&state, now).await.unwrap();
    let moves: Vec<(&str, &str)> = changed
        .iter()
        .map(|a| (a.name.as_str(), a.state.as_str()))
        .collect();
    assert_eq!(
        moves,
        [("errors", "ALARM")],
        "2 of 5 answered 5xx: 0.4 > 0.2"
    );
    assert!(
        crate::local::alarms::evaluate(&state, now)
            .await
            .unwrap()
            .is_empty(),
        "no change, no report"
    );
    let states = state.alarm_states().await.unwrap();
    let got: Vec<(&str, &str, Option<f64>)> = states
        .iter()
        .map(|a| (a.name.as_str(), a.state.as_str(), a.value))
        .collect();
    assert_eq!(
        got,
        [("errors", "ALARM", Some(0.4)), ("quota", "OK", Some(0.005))]
    );

    // Ten minutes on, the window holds no requests: back to OK.
    let later = now + time::Duration::minutes(10);
    let changed = crate::local::alarms::evaluate(&state, later).await.unwrap();
    let moves: Vec<(&str, &str)> = changed
        .iter()
        .map(|a| (a.name.as_str(), a.state.as_str()))
        .collect();
    assert_eq!(moves, [("errors", "OK")]);
}
