//! `tests/aws-live`, the smoke test a user runs against a real AWS account,
//! run here against this run's moto (behind the realism proxy when it is
//! built), so the script is never untested code: every step runs but the
//! HTTP calls, which moto cannot serve; those run through the local target
//! instead.

use std::process::Command;

use apifactory_tests::{bin_path, moto_url, repo_root};

/// The script's closing line: "N passed, N failed, N skipped".
fn tally(stdout: &str) -> Option<(u32, u32, u32)> {
    let last = stdout.lines().last()?;
    let mut n = last
        .split(", ")
        .zip(["passed", "failed", "skipped"])
        .map(|(part, word)| part.strip_suffix(word)?.trim().parse().ok());
    Some((n.next()??, n.next()??, n.next()??))
}

#[test]
fn the_aws_live_smoke_test_passes_against_moto() {
    let cli = bin_path("apifactory");
    let out = Command::new("bash")
        .arg(repo_root().join("tests/aws-live"))
        .arg("--moto")
        .arg(moto_url())
        .env("APIFACTORY_BIN", &cli)
        .env("APIFACTORY_ARTIFACT", apifactory_tests::fleet::artifact())
        .env_remove("APIFACTORY_PACE")
        .current_dir(repo_root())
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let all = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(out.status.success(), "{}\n{all}", out.status);
    let (passed, failed, skipped) =
        tally(&stdout).unwrap_or_else(|| panic!("no closing tally line\n{all}"));
    assert_eq!(failed, 0, "{all}");
    // 32 checks: validate, apply, the keys, per tenant its URL, per-key
    // throttle, keys on the plan and stage throttle, 9 HTTP calls, the
    // same 9 through the local target, 2 destroys, nothing left.
    assert_eq!(passed + skipped, 32, "{all}");
    // The HTTP calls, and only they, are skipped, and say why.
    let no_http = stdout
        .lines()
        .filter(|l| l.ends_with("skipped (moto cannot serve execute-api requests)"))
        .count();
    assert_eq!(no_http, 9, "{all}");
    // The code of those calls runs all the same, through `apifactory up`.
    let local = stdout
        .lines()
        .filter(|l| l.starts_with("ok      local "))
        .count();
    assert_eq!(local, 9, "{all}");
    let stage_todo = u32::from(stdout.contains("this apifactory has no API total"));
    assert_eq!(skipped, 9 + 2 * stage_todo, "{all}");
    // Whenever the realism proxy is built, the script runs through it.
    if cli.with_file_name("fault-proxy").is_file() {
        assert!(stdout.contains("realism layer: on"), "{all}");
    }
}

#[test]
fn the_tally_is_read_from_the_last_line() {
    assert_eq!(
        tally("ok x\n12 passed, 0 failed, 9 skipped"),
        Some((12, 0, 9))
    );
    assert_eq!(
        tally("12 passed, 10 failed, 0 skipped\n"),
        Some((12, 10, 0))
    );
    assert_eq!(tally("12 passed, 0 failed\nmore"), None);
}
