//! Schemathesis (PyPI) against a running `apifactory up`, driven by each
//! tenant's generated OpenAPI document: `tests/schemathesis/run` installs
//! it when missing (never skipped), starts `up` and runs it per tenant,
//! checking that no response is a 5xx and that every response conforms to
//! the document (status code, content type, schema).

use std::process::Command;

use apifactory_tests::{bin_path, repo_root};

#[test]
fn schemathesis_finds_no_server_error_and_no_response_off_the_document() {
    let started = std::time::Instant::now();
    let out = Command::new("bash")
        .arg(repo_root().join("tests/schemathesis/run"))
        .arg("--binary")
        .arg(bin_path("apifactory"))
        .current_dir(repo_root())
        .output()
        .expect("bash runs tests/schemathesis/run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("schemathesis: "))
        .unwrap_or_default();
    for line in stderr.lines().filter(|l| l.contains("test cases")) {
        eprintln!("{line}");
    }
    eprintln!("{summary} in {:.0} s", started.elapsed().as_secs_f64());
    assert!(
        out.status.success(),
        "tests/schemathesis/run failed ({}): {summary}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        out.status
    );
    let cases: u64 = summary
        .strip_prefix("schemathesis: ")
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no case count in {summary:?}\n{stdout}\n{stderr}"));
    assert!(
        cases >= 5 * 100,
        "schemathesis ran only {cases} cases over five tenants\n{stderr}"
    );
    assert!(summary.contains(", 0 failures"), "{summary}");
}
