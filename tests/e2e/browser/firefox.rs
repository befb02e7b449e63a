//! The same pages in Firefox (Debian's firefox-esr, over Marionette): the
//! console signs in with its token and lists the fleet, and the portal's
//! try-it form creates an item with a client's key and shows the 201.

use apifactory_tests::firefox::Firefox;
use apifactory_tests::server::{Server, copy_tenants};

#[tokio::test(flavor = "multi_thread")]
async fn the_console_and_the_portal_work_in_firefox() {
    let tmp = tempfile::tempdir().unwrap();
    let tenants = copy_tenants(tmp.path());
    let server = Server::start(&tenants, &tmp.path().join("data"), &[]).await;
    let key = server.keys()[&("acme".to_owned(), "acme-web".to_owned())].clone();
    let mut ff = Firefox::start().await;

    // The console: the token trades for the cookie, the fleet shows.
    ff.goto(&server.console_url()).await;
    ff.find("tr[data-tenant=\"acme\"]").await;
    let rows = ff
        .eval("return document.querySelectorAll('tr[data-tenant]').length;")
        .await;
    assert_eq!(rows, 5);
    let url = ff.eval("return location.href;").await;
    assert_eq!(url, format!("http://{}/_console/", server.addr));
    ff.screenshot("firefox-console-fleet").await;

    // The portal, on the path form (no name resolution needed).
    let docs = format!(
        "http://{}/restapis/acme/prod/_user_request_/docs",
        server.addr
    );
    ff.goto(&docs).await;
    ff.type_into("#tryit-key", &key).await;
    ff.eval(
        "const s = document.querySelector('#tryit-op'); s.value = 'add'; \
         s.dispatchEvent(new Event('change', {bubbles: true})); return null;",
    )
    .await;
    ff.type_into(
        "#tryit-body",
        r#"{"name":"Katherine Johnson","email":"kj@example.com"}"#,
    )
    .await;
    ff.click("#tryit-send").await;
    ff.wait_text("#tryit-status", 10, |s| s.contains("201"))
        .await;
    ff.wait_text("#tryit-response", 10, |s| s.contains("Katherine Johnson"))
        .await;
    ff.screenshot("firefox-portal-try-it-201").await;
    ff.quit().await;

    // The item is really there.
    let listed = server
        .client()
        .send(
            "GET",
            "/prod/accounts?email=kj%40example.com",
            &[("Host", "acme.localhost"), ("x-api-key", &key)],
            None,
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert!(listed.body.contains("Katherine Johnson"), "{}", listed.body);
    server.kill().await;
}
