//! A real browser for the tests of web pages: headless Chromium (Debian's
//! `chromium`), driven through ChromeDriver's W3C WebDriver protocol, which
//! is plain HTTP and JSON, so the tiny client in this crate is enough.
//!
//! `tests/run` installs Debian's `chromium` and `chromium-driver` when they
//! are missing and says where through `APIFACTORY_TEST_CHROMEDRIVER` and
//! `APIFACTORY_TEST_CHROMIUM`; a test fails, never skips, without them.
//!
//! Every session records what the browser logged and every request it
//! sent (ChromeDriver's `browser` and `performance` logs), so a test can
//! assert that the pages logged no error and that nothing left loopback.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{HttpResponse, http};

pub const CHROMEDRIVER_ENV: &str = "APIFACTORY_TEST_CHROMEDRIVER";
pub const CHROMIUM_ENV: &str = "APIFACTORY_TEST_CHROMIUM";

/// The W3C name of an element reference in a WebDriver answer.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One ChromeDriver with one headless Chromium session.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

/// What the browser logged at level SEVERE, and every URL it requested.
#[derive(Debug, Default)]
pub struct Logged {
    pub errors: Vec<String>,
    pub urls: Vec<String>,
}

fn env_path(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the tests with `bash tests/run`, which installs Debian's \
             chromium and chromium-driver and sets it"
        )
    })
}

impl Browser {
    /// Starts ChromeDriver on a free loopback port and opens a session with
    /// a fresh profile, a 1280x900 window, and Chromium's background
    /// networking off (its update, sync and safe-browsing calls would
    /// otherwise leave the machine, and are refused here anyway).
    pub async fn start() -> Browser {
        let (driver, port) = start_driver().await;
        let base = format!("http://127.0.0.1:{port}");
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-default-apps".to_owned(),
            "--disable-features=Translate,OptimizationHints,MediaRouter".to_owned(),
            "--window-size=1280,900".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": env_path(CHROMIUM_ENV), "args": args},
            "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"},
        }}});
        let answer = call(&base, "POST", "/session", Some(caps)).await;
        let session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {answer}"))
            .to_owned();
        Browser {
            driver,
            base,
            session,
            _profile: profile,
        }
    }

    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        call(&self.base, method, &path, body).await
    }

    /// Loads a page and waits for it (WebDriver's default page load strategy).
    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url }))).await;
    }

    /// The address of the page shown now.
    pub async fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The first element matching a CSS selector, waiting up to 10 s for it.
    pub async fn find(&self, css: &str) -> String {
        for _ in 0..100 {
            if let Some(e) = self.try_find(css).await {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let url = self.url().await;
        panic!("no element matches {css:?} on {url} within 10 s");
    }

    /// The first element matching a CSS selector now, if any.
    pub async fn try_find(&self, css: &str) -> Option<String> {
        let found = self
            .cmd(
                "POST",
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found.as_array()?.first()?[ELEMENT]
            .as_str()
            .map(str::to_owned)
    }

    /// How many elements match a CSS selector now.
    pub async fn count(&self, css: &str) -> usize {
        let found = self
            .cmd(
                "POST",
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found.as_array().map_or(0, Vec::len)
    }

    /// Clicks the element, as a user would (it must be visible).
    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.cmd("POST", &format!("/element/{e}/click"), Some(json!({})))
            .await;
    }

    /// Empties a field, then types into it key by key.
    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd("POST", &format!("/element/{e}/clear"), Some(json!({})))
            .await;
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Presses keys in whatever has the focus (`\u{E004}` is Tab,
    /// `\u{E007}` Enter: the WebDriver key codes).
    pub async fn keys(&self, keys: &str) {
        let actions = json!({"actions": [{
            "type": "key", "id": "keyboard",
            "actions": keys.chars().flat_map(|c| [
                json!({"type": "keyDown", "value": c.to_string()}),
                json!({"type": "keyUp", "value": c.to_string()}),
            ]).collect::<Vec<_>>(),
        }]});
        self.cmd("POST", "/actions", Some(actions)).await;
    }

    /// The rendered text of the first element matching a CSS selector.
    pub async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        let v = self.cmd("GET", &format!("/element/{e}/text"), None).await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Waits up to `secs` for the text of an element to satisfy `ok`, and
    /// returns it; panics with the last text seen otherwise.
    pub async fn wait_text(&self, css: &str, secs: u64, ok: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        for _ in 0..secs * 10 {
            if self.try_find(css).await.is_some() {
                last = self.text(css).await;
                if ok(&last) {
                    return last;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css:?} never showed the expected text within {secs} s; last: {last:?}");
    }

    /// An attribute of the first element matching a CSS selector.
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let e = self.find(css).await;
        let v = self
            .cmd("GET", &format!("/element/{e}/attribute/{name}"), None)
            .await;
        v.as_str().map(str::to_owned)
    }

    /// Runs a script in the page (`return ...;` gives a value back).
    pub async fn eval(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Saves a PNG of the viewport as `target/screenshots/<name>.png`, for
    /// a person to look at, and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let v = self.cmd("GET", "/screenshot", None).await;
        save_screenshot(name, v.as_str().unwrap_or_default())
    }

    /// Like [`Browser::screenshot`], of the whole page: the window grows
    /// to the page's height (up to 3,000 pixels) for the picture, then
    /// goes back to 1280x900.
    pub async fn screenshot_page(&self, name: &str) -> PathBuf {
        let height = self
            .eval("return document.documentElement.scrollHeight;")
            .await
            .as_u64()
            .unwrap_or(900)
            .clamp(900, 3000);
        // The window's outer height is the viewport's plus the (headless)
        // browser's chrome, which is nothing or a few pixels.
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({"width": 1280, "height": height})),
        )
        .await;
        let path = self.screenshot(name).await;
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({"width": 1280, "height": 900})),
        )
        .await;
        path
    }

    /// What the browser logged and requested since the last call (the
    /// driver hands each entry out once).
    pub async fn logged(&self) -> Logged {
        let mut out = Logged::default();
        let browser = self
            .cmd("POST", "/se/log", Some(json!({"type": "browser"})))
            .await;
        for e in browser.as_array().into_iter().flatten() {
            if e["level"] == "SEVERE" {
                out.errors
                    .push(e["message"].as_str().unwrap_or_default().to_owned());
            }
        }
        let perf = self
            .cmd("POST", "/se/log", Some(json!({"type": "performance"})))
            .await;
        for e in perf.as_array().into_iter().flatten() {
            let Some(msg) = e["message"]
                .as_str()
                .and_then(|m| serde_json::from_str::<Value>(m).ok())
            else {
                continue;
            };
            if msg["message"]["method"] == "Network.requestWillBeSent"
                && let Some(url) = msg["message"]["params"]["request"]["url"].as_str()
            {
                out.urls.push(url.to_owned());
            }
        }
        out
    }

    /// Asserts that since the last look the browser logged no error (but
    /// those `allowed` says are expected) and sent no request anywhere
    /// but this machine.
    pub async fn assert_clean(&self, allowed: impl Fn(&str) -> bool) {
        let logged = self.logged().await;
        let errors: Vec<&String> = logged.errors.iter().filter(|e| !allowed(e)).collect();
        assert!(errors.is_empty(), "the browser logged errors: {errors:#?}");
        let away: Vec<&String> = logged.urls.iter().filter(|u| !is_loopback(u)).collect();
        assert!(away.is_empty(), "requests left 127.0.0.1: {away:#?}");
    }

    /// Ends the session and the driver.
    pub async fn quit(mut self) {
        let _ = call_raw(
            &self.base,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        )
        .await;
        let _ = self.driver.kill().await;
    }
}

/// ChromeDriver on a port of its choosing, tried three times: with
/// `--port=0` it can fail when the port it picked for IPv4 is taken on
/// IPv6 (seen when several tests start one at once).
async fn start_driver() -> (Child, String) {
    let mut seen = Vec::new();
    for _ in 0..3 {
        let mut driver = Command::new(env_path(CHROMEDRIVER_ENV))
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let mut lines = BufReader::new(driver.stdout.take().unwrap()).lines();
        let mut errors = BufReader::new(driver.stderr.take().unwrap()).lines();
        let found = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    return Some(rest.trim_end_matches('.').trim().to_owned());
                }
                seen.push(line);
            }
            None
        })
        .await
        .expect("chromedriver listens within 30 s");
        // Keep draining its output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        match found {
            Some(port) => {
                tokio::spawn(async move { while let Ok(Some(_)) = errors.next_line().await {} });
                return (driver, port);
            }
            None => {
                while let Ok(Some(line)) = errors.next_line().await {
                    seen.push(line);
                }
            }
        }
    }
    panic!("chromedriver did not start in three tries: {seen:#?}");
}

/// Writes a screenshot a driver sent (a PNG in base64) as
/// `target/screenshots/<name>.png`, and returns its path.
pub fn save_screenshot(name: &str, base64_png: &str) -> PathBuf {
    let png = base64::engine::general_purpose::STANDARD
        .decode(base64_png)
        .expect("a screenshot in base64");
    assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
    let dir = screenshots_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    path
}

/// Where screenshots go: `target/screenshots`, beside the build folders.
pub fn screenshots_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the path of the test executable");
    exe.ancestors()
        .nth(3)
        .map(|target| target.join("screenshots"))
        .expect("the test executable sits in target/<profile>/deps")
}

/// Whether a URL the browser requested stays on this machine: loopback
/// addresses, `localhost` and its subdomains (which Chromium resolves to
/// loopback itself), and the browser's own pages and schemes, which make
/// no request.
pub fn is_loopback(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.starts_with("data:") || url.starts_with("about:") || url.starts_with("blob:");
    };
    // The browser's own pages (its new tab page among them) are built in.
    if matches!(scheme, "chrome" | "chrome-untrusted" | "devtools") {
        return true;
    }
    if !matches!(scheme, "http" | "https" | "ws" | "wss") {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split(']').next().unwrap_or("").trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or("")
    };
    host == "127.0.0.1" || host == "::1" || host == "localhost" || host.ends_with(".localhost")
}

async fn call(base: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let r = call_raw(base, method, path, body.clone()).await;
    let v: Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {}", r.text()));
    assert_eq!(
        r.status, 200,
        "WebDriver {method} {path} {body:?} failed: {}",
        v["value"]
    );
    v["value"].clone()
}

async fn call_raw(base: &str, method: &str, path: &str, body: Option<Value>) -> HttpResponse {
    let body = body.map(|b| b.to_string());
    http(
        method,
        &format!("{base}{path}"),
        body.as_deref().map(str::as_bytes),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn only_this_machine_counts_as_loopback() {
        for u in [
            "http://127.0.0.1:4570/_console/",
            "http://acme.localhost:4570/v1/docs",
            "http://localhost/x",
            "http://[::1]:80/",
            "data:image/png;base64,xx",
            "about:blank",
            "chrome://new-tab-page-third-party/",
        ] {
            assert!(is_loopback(u), "{u}");
        }
        for u in [
            "https://fonts.googleapis.com/css",
            "http://127.0.0.1.evil.com/",
            "http://user@example.com/",
            "http://localhost.example.com/",
            "chrome-extension://abc/x",
            "ftp://127.0.0.1/",
        ] {
            assert!(!is_loopback(u), "{u}");
        }
    }
}
