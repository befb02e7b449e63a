//! A tenant's developer portal, served by `apifactory up` at
//! `/{stage}/docs` with no key, in headless Chromium: its try-it form
//! creates an item with a client's key (201, the body shown) and is
//! refused without one (403), and the item is really there.

use apifactory_tests::browser::Browser;
use apifactory_tests::server::{Server, copy_tenants};

#[tokio::test(flavor = "multi_thread")]
async fn the_portal_try_it_form_sends_real_requests_with_the_clients_key() {
    let tmp = tempfile::tempdir().unwrap();
    let tenants = copy_tenants(tmp.path());
    let server = Server::start(&tenants, &tmp.path().join("data"), &[]).await;
    let key = server.keys()[&("acme".to_owned(), "acme-web".to_owned())].clone();
    let port = server.addr.rsplit(':').next().unwrap().to_owned();
    let docs = format!("http://acme.localhost:{port}/prod/docs");

    let b = Browser::start().await;
    b.goto(&docs).await;
    // The page documents the collection's fields and the gateway's errors.
    let text = b.eval("return document.body.innerText;").await;
    let text = text.as_str().unwrap().to_owned();
    for needle in [
        "accounts",
        "email",
        "Forbidden",
        "Too Many Requests",
        "curl",
    ] {
        assert!(text.contains(needle), "the portal mentions {needle:?}");
    }
    b.screenshot_page("portal").await;
    b.assert_clean(|_| false).await;

    // Every control of the form has its label.
    let unlabelled = b
        .eval(
            "return ['tryit-key', 'tryit-base', 'tryit-op', 'tryit-id', 'tryit-body']\
             .filter(id => !document.getElementById(id) \
                 || !document.querySelector('label[for=\"' + id + '\"]'));",
        )
        .await;
    assert_eq!(
        unlabelled,
        serde_json::json!([]),
        "controls without a label"
    );

    // With the client's key: an item is created and the answer shown.
    b.type_into("#tryit-key", &key).await;
    b.eval("const s = document.querySelector('#tryit-op'); s.value = 'add'; s.dispatchEvent(new Event('change', {bubbles: true})); return null;")
        .await;
    b.type_into(
        "#tryit-body",
        r#"{"name":"Grace Hopper","email":"grace@example.com"}"#,
    )
    .await;
    b.click("#tryit-send").await;
    b.wait_text("#tryit-status", 10, |s| s.contains("201"))
        .await;
    let body = b
        .wait_text("#tryit-response", 10, |s| s.contains("Grace Hopper"))
        .await;
    let id = body
        .split("\"id\"")
        .nth(1)
        .and_then(|rest| rest.split('"').nth(1))
        .unwrap_or_else(|| panic!("an id in the shown body: {body}"))
        .to_owned();
    b.screenshot("portal-try-it-201").await;

    // The key stays in the page's memory only.
    let stored = b
        .eval(
            "return JSON.stringify(localStorage) + JSON.stringify(sessionStorage) \
             + document.cookie + location.href;",
        )
        .await;
    assert!(
        !stored.as_str().unwrap().contains(&key),
        "the key is not stored: {stored}"
    );

    // The item is really in the tenant's table.
    let got = server
        .client()
        .send(
            "GET",
            &format!("/prod/accounts/{id}"),
            &[("Host", "acme.localhost"), ("x-api-key", &key)],
            None,
        )
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert!(got.body.contains("grace@example.com"), "{}", got.body);

    // Without a key: refused by the gateway, and the refusal shown.
    // This time from the keyboard: Enter on the focused button.
    b.type_into("#tryit-key", "").await;
    b.eval("document.getElementById('tryit-send').focus(); return null;")
        .await;
    b.keys("\u{E007}").await;
    b.wait_text("#tryit-status", 10, |s| s.contains("403"))
        .await;
    b.wait_text("#tryit-response", 10, |s| s.contains("Forbidden"))
        .await;
    b.screenshot("portal-try-it-403").await;

    // The only error logged is the refused request itself.
    b.assert_clean(|e| e.contains("status of 403")).await;
    b.quit().await;
    server.kill().await;
}
