//! Firefox for the pages' second browser: Debian's `firefox-esr`, headless,
//! driven over Marionette, its own remote protocol (length-prefixed JSON
//! over TCP, with WebDriver's commands), so no geckodriver is needed; Debian
//! does not package one.
//!
//! `tests/run` installs `firefox-esr` when it is missing and says where
//! through `APIFACTORY_TEST_FIREFOX`; a test fails, never skips, without it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::browser::save_screenshot;

pub const FIREFOX_ENV: &str = "APIFACTORY_TEST_FIREFOX";

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One headless Firefox with one Marionette session.
pub struct Firefox {
    process: Child,
    stream: TcpStream,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Firefox {
    /// Starts Firefox on a fresh profile with Marionette on a port of its
    /// choosing (it writes the port to `MarionetteActivePort`), and with
    /// its update, telemetry and other background calls off.
    pub async fn start() -> Firefox {
        let binary = std::env::var(FIREFOX_ENV).unwrap_or_else(|_| {
            panic!(
                "{FIREFOX_ENV} is not set: run the tests with `bash tests/run`, which installs \
                 Debian's firefox-esr and sets it"
            )
        });
        let profile = tempfile::tempdir().unwrap();
        let prefs = [
            ("marionette.port", "0"),
            ("app.update.enabled", "false"),
            ("browser.shell.checkDefaultBrowser", "false"),
            ("datareporting.policy.dataSubmissionEnabled", "false"),
            ("toolkit.telemetry.enabled", "false"),
            ("network.captive-portal-service.enabled", "false"),
            ("browser.safebrowsing.malware.enabled", "false"),
            ("browser.safebrowsing.phishing.enabled", "false"),
            ("extensions.update.enabled", "false"),
            ("browser.startup.homepage_override.mstone", "\"ignore\""),
        ];
        let user_js: String = prefs
            .iter()
            .map(|(k, v)| format!("user_pref(\"{k}\", {v});\n"))
            .collect();
        std::fs::write(profile.path().join("user.js"), user_js).unwrap();
        let process = Command::new(binary)
            .args(["--headless", "--marionette", "--no-remote", "--profile"])
            .arg(profile.path())
            .args(["--window-size", "1280,900"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("firefox starts");
        let port_file = profile.path().join("MarionetteActivePort");
        let mut port = None;
        for _ in 0..300 {
            if let Some(p) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|t| t.trim().parse::<u16>().ok())
            {
                port = Some(p);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let port = port.expect("firefox opens Marionette within 30 s");
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connecting to Marionette");
        let hello = read_message(&mut stream).await;
        assert_eq!(hello["marionetteProtocol"], 3, "{hello}");
        let mut ff = Firefox {
            process,
            stream,
            next_id: 0,
            _profile: profile,
        };
        ff.cmd("WebDriver:NewSession", json!({"capabilities": {}}))
            .await;
        ff
    }

    async fn cmd(&mut self, name: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let body = json!([0, id, name, params]).to_string();
        let framed = format!("{}:{body}", body.len());
        self.stream.write_all(framed.as_bytes()).await.unwrap();
        loop {
            let reply = read_message(&mut self.stream).await;
            if reply[1] != id {
                continue;
            }
            assert!(
                reply[2].is_null(),
                "Marionette {name} {params} failed: {}",
                reply[2]
            );
            return reply[3].clone();
        }
    }

    pub async fn goto(&mut self, url: &str) {
        self.cmd("WebDriver:Navigate", json!({ "url": url })).await;
    }

    /// The first element matching a CSS selector, waiting up to 10 s.
    pub async fn find(&mut self, css: &str) -> String {
        for _ in 0..100 {
            let found = self
                .cmd(
                    "WebDriver:FindElements",
                    json!({"using": "css selector", "value": css}),
                )
                .await;
            let list = found
                .as_array()
                .cloned()
                .unwrap_or_else(|| found["value"].as_array().cloned().unwrap_or_default());
            if let Some(id) = list.first().and_then(|e| e[ELEMENT].as_str()) {
                return id.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no element matches {css:?} within 10 s");
    }

    pub async fn click(&mut self, css: &str) {
        let id = self.find(css).await;
        self.cmd("WebDriver:ElementClick", json!({ "id": id }))
            .await;
    }

    pub async fn type_into(&mut self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.cmd("WebDriver:ElementClear", json!({ "id": id }))
            .await;
        self.cmd(
            "WebDriver:ElementSendKeys",
            json!({ "id": id, "text": text }),
        )
        .await;
    }

    /// Runs a script in the page; `return ...;` gives a value back.
    pub async fn eval(&mut self, script: &str) -> Value {
        let v = self
            .cmd(
                "WebDriver:ExecuteScript",
                json!({"script": script, "args": []}),
            )
            .await;
        v["value"].clone()
    }

    /// Waits up to `secs` for the text of an element to satisfy `ok`.
    pub async fn wait_text(&mut self, css: &str, secs: u64, ok: impl Fn(&str) -> bool) -> String {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.textContent : null;",
            serde_json::to_string(css).unwrap()
        );
        let mut last = String::new();
        for _ in 0..secs * 10 {
            if let Some(t) = self.eval(&script).await.as_str() {
                last = t.to_owned();
                if ok(&last) {
                    return last;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css:?} never showed the expected text within {secs} s; last: {last:?}");
    }

    /// Saves a PNG of the viewport as `target/screenshots/<name>.png`.
    pub async fn screenshot(&mut self, name: &str) -> PathBuf {
        let v = self
            .cmd("WebDriver:TakeScreenshot", json!({"full": false}))
            .await;
        save_screenshot(name, v["value"].as_str().unwrap_or_default())
    }

    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            self.cmd("Marionette:Quit", json!({"flags": ["eForceQuit"]})),
        )
        .await;
        let _ = self.process.kill().await;
    }
}

/// One `length:json` message.
async fn read_message(stream: &mut TcpStream) -> Value {
    let mut len = Vec::new();
    loop {
        let mut b = [0u8; 1];
        stream
            .read_exact(&mut b)
            .await
            .expect("a Marionette message");
        if b[0] == b':' {
            break;
        }
        len.push(b[0]);
    }
    let len: usize = String::from_utf8_lossy(&len)
        .parse()
        .expect("a Marionette length prefix");
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.unwrap();
    serde_json::from_slice(&body).expect("Marionette speaks JSON")
}
