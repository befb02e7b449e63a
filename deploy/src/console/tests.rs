//! The console over HTTP on 127.0.0.1, on a temporary data directory with
//! the repository's tenants deployed: who gets in, and that a form without
//! the CSRF token changes nothing.

use std::path::{Path as FsPath, PathBuf};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::plan::Options;

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: &str,
) -> Reply {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(c) = cookie {
        req += &format!("Cookie: {c}\r\n");
    }
    if method == "POST" {
        req += &format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    req += "\r\n";
    req += body;
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

fn repo_tenants() -> PathBuf {
    FsPath::new(env!("CARGO_MANIFEST_DIR")).join("../tenants")
}

/// A console on the repository's tenants, deployed to a fresh data
/// directory; its address, token and cookie.
async fn started(dir: &FsPath) -> (Arc<Console>, SocketAddr, String) {
    let state = LocalState::open(dir).await.unwrap();
    let set = TenantSet::load(&repo_tenants()).unwrap();
    let target = Arc::new(LocalTarget::new(state.clone()));
    let (_, report) = crate::engine::deploy_quietly(&target, &LocalCode, &set, &Options::default())
        .await
        .unwrap();
    assert!(report.ok(), "{report}");
    let (console, token) = Console::new(Fleet::Local(state), repo_tenants()).unwrap();
    console.record_apply(&report);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = console.router();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (console, addr, token)
}

#[tokio::test]
async fn without_the_token_nothing_of_the_fleet_is_shown() {
    let dir = tempfile::tempdir().unwrap();
    let (_, addr, token) = started(dir.path()).await;
    for path in [
        "/_console/",
        "/_console/tenants/acme",
        "/_console/tenants/acme/keys",
    ] {
        let r = send(addr, "GET", path, None, "").await;
        assert_eq!(r.status, 401, "{path}");
        assert!(r.body.contains("name=\"token\""), "a form to paste it");
        assert!(!r.body.contains("data-tenant") && !r.body.contains("accounts"));
    }
    let wrong = send(addr, "GET", "/_console/?token=nope", None, "").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    let bad_cookie = send(
        addr,
        "GET",
        "/_console/",
        Some("apifactory_console=nope"),
        "",
    )
    .await;
    assert_eq!(bad_cookie.status, 401);
    // The admin token in a cookie of another name is not the cookie.
    let other = send(addr, "GET", "/_console/", Some(&format!("x={token}")), "").await;
    assert_eq!(other.status, 401);
}

#[tokio::test]
async fn the_token_becomes_a_strict_http_only_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let (_, addr, token) = started(dir.path()).await;
    let r = send(addr, "GET", &format!("/_console/?token={token}"), None, "").await;
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some("/_console/"),
        "the token leaves the URL"
    );
    let cookie = r.header("set-cookie").unwrap();
    assert!(cookie.starts_with(&format!("apifactory_console={token};")));
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));

    let deep = send(
        addr,
        "GET",
        &format!("/_console/tenants/acme?period=hour&token={token}"),
        None,
        "",
    )
    .await;
    assert_eq!(deep.status, 303);
    assert_eq!(
        deep.header("location"),
        Some("/_console/tenants/acme?period=hour")
    );

    let cookie = format!("apifactory_console={token}");
    let fleet = send(addr, "GET", "/_console/", Some(&cookie), "").await;
    assert_eq!(fleet.status, 200, "{}", fleet.body);
    assert!(fleet.body.contains("<tr data-tenant=\"acme\">"));
    assert!(fleet.body.contains("<code>GET /accounts</code>"));
    assert!(fleet.body.contains("data-quota-limit=\"100000\""));
    assert!(fleet.body.contains("change(s) applied"), "the last apply");
    assert!(
        fleet.body.contains("data-drift=\"none\""),
        "just applied: no drift"
    );
    let csp = fleet.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
    assert_eq!(fleet.header("cache-control"), Some("no-store"));

    let t = send(
        addr,
        "GET",
        "/_console/tenants/acme?period=hour",
        Some(&cookie),
        "",
    )
    .await;
    assert_eq!(t.status, 200);
    assert!(t.body.contains("svg data-chart=\"requests\""));
    assert!(t.body.contains("<tr data-key-id=\"total\">"));
    assert!(t.body.contains("id=\"log-tail\""));
    let missing = send(addr, "GET", "/_console/tenants/nobody", Some(&cookie), "").await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn a_form_without_the_csrf_token_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (console, addr, token) = started(dir.path()).await;
    let cookie = format!("apifactory_console={token}");
    let before = console.list_keys(Some("acme")).await.unwrap();
    let key = &before[0].id;
    for body in [
        format!("key_id={key}"),
        format!("key_id={key}&csrf=wrong"),
        format!("key_id={key}&csrf={token}"),
    ] {
        for action in ["revoke", "disable", "rotate"] {
            let path = format!("/_console/tenants/acme/keys/{action}");
            let r = send(addr, "POST", &path, Some(&cookie), &body).await;
            assert_eq!(r.status, 403, "{action} {body}");
        }
        let r = send(
            addr,
            "POST",
            "/_console/tenants/acme/keys/create",
            Some(&cookie),
            &format!("client=acme-web&{body}"),
        )
        .await;
        assert_eq!(r.status, 403);
    }
    assert_eq!(console.list_keys(Some("acme")).await.unwrap(), before);

    // Without the cookie, even the right csrf token gets nowhere.
    let csrf = console.auth.csrf().to_owned();
    let r = send(
        addr,
        "POST",
        "/_console/tenants/acme/keys/create",
        None,
        &format!("client=acme-web&csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(console.list_keys(Some("acme")).await.unwrap(), before);

    // With both, the key is made and its value shown once.
    let r = send(
        addr,
        "POST",
        "/_console/tenants/acme/keys/create",
        Some(&cookie),
        &format!("client=acme-web&csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("<code id=\"new-key-value\""));
    assert_eq!(
        console.list_keys(Some("acme")).await.unwrap().len(),
        before.len() + 1
    );
}

#[tokio::test]
async fn a_confirmation_page_comes_before_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let (console, addr, token) = started(dir.path()).await;
    let cookie = format!("apifactory_console={token}");
    let key = console.list_keys(Some("acme")).await.unwrap()[0].id.clone();
    let keys = send(
        addr,
        "GET",
        "/_console/tenants/acme/keys",
        Some(&cookie),
        "",
    )
    .await;
    assert!(
        keys.body
            .contains(&format!("data-action=\"revoke\" data-key-id=\"{key}\""))
    );
    let page = send(
        addr,
        "GET",
        &format!("/_console/tenants/acme/keys/confirm?action=revoke&key_id={key}"),
        Some(&cookie),
        "",
    )
    .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"confirm\""));
    assert!(
        page.body
            .contains(&format!("name=\"csrf\" value=\"{}\"", console.auth.csrf()))
    );
    // Looking at the confirmation changed nothing.
    assert!(
        console
            .list_keys(Some("acme"))
            .await
            .unwrap()
            .iter()
            .any(|k| k.id == key)
    );
    let unknown = send(
        addr,
        "GET",
        "/_console/tenants/acme/keys/confirm?action=revoke&key_id=nope",
        Some(&cookie),
        "",
    )
    .await;
    assert_eq!(unknown.status, 404);
}

#[test]
fn windows_end_with_the_current_bucket() {
    let now = 1_764_500_000; // 2025-11-30T10:53:20Z
    let (span, n, start) = window(Period::Hour, false, now);
    assert_eq!((span, n), (Span::Minute, 60));
    assert_eq!(start + 60 * 60, now - now % 60 + 60);
    let (span, n, start) = window(Period::Day, false, now);
    assert_eq!((span, n), (Span::Hour, 24));
    assert_eq!(start % 3600, 0);
    assert!(start + 23 * 3600 <= now && now < start + 24 * 3600);
    let (span, n, start) = window(Period::Month, true, now);
    assert_eq!((span, n), (Span::Day, 30));
    assert!(start + 29 * 86_400 <= now && now < start + 30 * 86_400);
    assert_eq!(window(Period::Hour, true, now).0, Span::Hour);
}

#[test]
fn figures_fall_into_their_buckets() {
    use crate::usage::Figures;
    let fig = |tenant: &str, start: i64, requests: u64| Figures {
        tenant: tenant.into(),
        key_id: "k".into(),
        start,
        counts: Counts {
            requests,
            ..Counts::default()
        },
    };
    let g = Gathered {
        figures: vec![
            fig("acme", 0, 1),
            fig("acme", 60, 2),
            fig("acme", 60, 3),
            fig("other", 60, 100),
            fig("acme", 180, 4),
            fig("acme", -60, 50),
        ],
        ..Gathered::default()
    };
    let b = buckets(&g, "acme", Span::Minute, 3, 0);
    let r: Vec<u64> = b.iter().map(|c| c.requests).collect();
    assert_eq!(
        r,
        [1, 5, 0],
        "other tenants and figures outside are left out"
    );
}
