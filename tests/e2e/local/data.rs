//! `apifactory data export` and `import` on the local target, through the
//! real CLI: bad lines refused by number with nothing written, each
//! `--on-conflict` mode, an import killed half-way and run again, and an
//! import while `apifactory up` serves the same data directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use apifactory_tests::bin_path;
use apifactory_tests::server::{Server, copy_tenants};
use serde_json::Value;

struct Cli {
    tenants: PathBuf,
    data: PathBuf,
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Cli {
    fn new(root: &Path) -> Cli {
        Cli {
            tenants: copy_tenants(root),
            data: root.join("data"),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin_path("apifactory"));
        c.arg("--tenants")
            .arg(&self.tenants)
            .args(args)
            .arg("--data-dir")
            .arg(&self.data)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Out {
        let out = self.command(args).output().unwrap();
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.ok, "apifactory {args:?} failed: {}", out.stderr);
        out.stdout
    }

    fn import(&self, file: &Path, extra: &[&str]) -> Out {
        let mut args = vec!["data", "import", "acme", file.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    fn counts(&self, file: &Path, extra: &[&str]) -> Value {
        let out = self.import(file, extra);
        assert!(out.ok, "import failed: {}", out.stderr);
        serde_json::from_str(&out.stdout).unwrap()
    }

    fn export(&self) -> String {
        self.ok(&["data", "export", "acme"])
    }
}

/// Lines as `data export` writes them: key, `_rev`, fields in name order.
fn canonical(range: std::ops::Range<usize>) -> String {
    range
        .map(|i| {
            format!(
                "{{\"id\":\"a{i:06}\",\"_rev\":\"rev{i}\",\"created\":\"2026-01-02T03:04:05Z\",\
                 \"email\":\"u{i}@example.com\",\"name\":\"Name {i}\",\"plan\":\"pro\"}}\n"
            )
        })
        .collect()
}

fn applied(root: &Path) -> Cli {
    let cli = Cli::new(root);
    cli.ok(&["apply", "--tenant", "acme", "-y"]);
    cli
}

#[test]
fn bad_lines_are_reported_by_number_and_field_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let cli = applied(tmp.path());
    let file = tmp.path().join("in.jsonl");
    let good = canonical(0..3);
    let text = format!(
        "{good}{}\n{}\n{}\n{}\n{}\n",
        r#"{"id":"b1","name":7,"email":"x@example.com"}"#,
        r#"{"id":"b2","email":"y@example.com"}"#,
        r#"{"id":"b3","name":"Z","email":"z@example.com","colour":"red"}"#,
        r#"{"id":"a000001","name":"Dup","email":"d@example.com"}"#,
        r#"{"id":"b5","name":"#,
    );
    std::fs::write(&file, text).unwrap();
    let out = cli.import(&file, &[]);
    assert!(!out.ok);
    for expected in [
        "line 4: name: must be a string",
        "line 5: name: is required",
        "line 6: colour: is not a field of accounts",
        "line 7: id: \"a000001\" is also the id on line 2",
        "line 8: is not JSON",
        "5 problem(s)",
        "nothing written",
    ] {
        assert!(
            out.stderr.contains(expected),
            "{expected:?} in {}",
            out.stderr
        );
    }
    assert_eq!(
        cli.export(),
        "",
        "the three good lines were not written either"
    );

    // A mode that does not exist, a tenant that does not exist.
    let out = cli.import(&file, &["--on-conflict", "merge"]);
    assert!(
        !out.ok && out.stderr.contains("possible values: skip, replace, fail"),
        "{}",
        out.stderr
    );
    let out = cli.run(&["data", "export", "nobody"]);
    assert!(
        !out.ok && out.stderr.contains("no tenant \"nobody\""),
        "{}",
        out.stderr
    );

    // A target that was never applied is named, not created.
    let fresh = Cli::new(&tmp.path().join("other"));
    std::fs::write(&file, canonical(0..1)).unwrap();
    let out = fresh.import(&file, &[]);
    assert!(!out.ok);
    assert!(out.stderr.contains("has no table"), "{}", out.stderr);
}

#[test]
fn each_conflict_mode_and_an_unchanged_line() {
    let tmp = tempfile::tempdir().unwrap();
    let cli = applied(tmp.path());
    let file = tmp.path().join("in.jsonl");
    let first = canonical(0..4);
    std::fs::write(&file, &first).unwrap();
    let c = cli.counts(&file, &[]);
    assert_eq!(
        (c["read"].as_u64(), c["written"].as_u64()),
        (Some(4), Some(4))
    );
    assert_eq!(cli.export(), first, "the export is the file, byte for byte");

    // The same file again: unchanged in every mode.
    for mode in ["fail", "skip", "replace"] {
        let c = cli.counts(&file, &["--on-conflict", mode]);
        assert_eq!(c["unchanged"], 4, "{mode}: {c}");
        assert_eq!(
            c["written"].as_u64().unwrap() + c["replaced"].as_u64().unwrap(),
            0
        );
    }

    // Line 2 changed, one new line.
    let changed = first.replace("Name 1\"", "Renamed\"") + &canonical(4..5);
    std::fs::write(&file, &changed).unwrap();
    let out = cli.import(&file, &[]);
    assert!(!out.ok);
    assert!(out.stderr.contains("a000001") && out.stderr.contains("nothing written"));
    assert_eq!(
        cli.export(),
        first,
        "fail wrote nothing, not even the new line"
    );

    let c = cli.counts(&file, &["--on-conflict", "skip"]);
    assert_eq!(
        (
            c["written"].as_u64(),
            c["skipped"].as_u64(),
            c["unchanged"].as_u64()
        ),
        (Some(1), Some(1), Some(3))
    );
    let kept = cli.export();
    assert!(kept.contains("\"Name 1\"") && !kept.contains("Renamed"));

    let c = cli.counts(&file, &["--on-conflict", "replace"]);
    assert_eq!(
        (c["replaced"].as_u64(), c["unchanged"].as_u64()),
        (Some(1), Some(4))
    );
    let replaced = cli.export();
    let line: Value = serde_json::from_str(replaced.lines().nth(1).unwrap()).unwrap();
    assert_eq!(line["name"], "Renamed");
    assert_ne!(line["_rev"], "rev1", "new content under a new revision");
}

fn stored(db: &Path) -> i64 {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row("SELECT count(*) FROM items_acme", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn an_import_killed_half_way_and_run_again_has_every_item_once() {
    let tmp = tempfile::tempdir().unwrap();
    let cli = applied(tmp.path());
    let file = tmp.path().join("in.jsonl");
    const N: usize = 20_000;
    let text = canonical(0..N);
    std::fs::write(&file, &text).unwrap();
    let db = cli.data.join("apifactory.sqlite");

    // Small batches: many transactions, so the kill lands between two.
    let mut child = cli
        .command(&[
            "data",
            "import",
            "acme",
            file.to_str().unwrap(),
            "--batch",
            "10",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored(&db) == 0 {
        assert!(
            Instant::now() < deadline,
            "the import wrote nothing in 60 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = stored(&db);
    assert!(
        before > 0 && (before as usize) < N,
        "killed half-way: {before} of {N} stored"
    );
    assert_eq!(before % 10, 0, "whole batches only: {before}");

    let c = cli.counts(&file, &[]);
    assert_eq!(c["unchanged"].as_i64(), Some(before), "{c}");
    assert_eq!(c["written"].as_i64(), Some(N as i64 - before), "{c}");
    assert_eq!(stored(&db), N as i64);
    assert_eq!(cli.export(), text, "every item once, as in the file");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_while_up_serves_is_served_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let cli = Cli::new(tmp.path());
    let server = Server::start(&cli.tenants, &cli.data, &[]).await;
    let key = server.keys()[&("acme".to_owned(), "acme-web".to_owned())].clone();
    let file = tmp.path().join("in.jsonl");
    std::fs::write(&file, canonical(0..500)).unwrap();
    let c = cli.counts(&file, &[]);
    assert_eq!(c["written"], 500);

    let client = server.client();
    let r = client
        .send(
            "GET",
            "/prod/accounts/a000321",
            &[("Host", "acme.localhost"), ("x-api-key", &key)],
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["name"], "Name 321");
    assert!(
        r.header("etag").is_some_and(|e| e.contains("rev321")),
        "the revision is the ETag: {:?}",
        r.header("etag")
    );
    server.kill().await;
}
