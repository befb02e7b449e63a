//! The browser checks themselves: what `assert_clean` looks at must catch
//! an error a page logs and a request that leaves the machine, or the
//! console and portal tests would pass whatever the pages did.

use apifactory_tests::browser::Browser;

#[tokio::test]
async fn the_browser_reports_a_page_error_and_a_request_leaving_the_machine() {
    let b = Browser::start().await;
    b.goto(
        "data:text/html,<title>t</title><label for=a>A</label><input id=a>\
         <p id=p>ready</p><script>console.error('deliberate failure')</script>",
    )
    .await;
    b.type_into("#a", "typed").await;
    let typed = b.eval("return document.getElementById('a').value;").await;
    assert_eq!(typed, "typed");
    assert_eq!(b.text("#p").await, "ready");
    let logged = b.logged().await;
    assert!(
        logged
            .errors
            .iter()
            .any(|e| e.contains("deliberate failure")),
        "{logged:?}"
    );

    // A request to another host is attempted (and refused by this
    // machine's closed network): it must show among the requests.
    b.goto("data:text/html,<img src='http://example.invalid/pixel.png'>")
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let logged = b.logged().await;
    assert!(
        logged
            .urls
            .iter()
            .any(|u| u.starts_with("http://example.invalid/")),
        "{logged:?}"
    );
    let shot = b.screenshot("harness").await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 100);
    b.quit().await;
}
