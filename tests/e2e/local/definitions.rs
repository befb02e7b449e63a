//! API definitions kept in git: `openapi --all --out DIR` writes every
//! tenant's document and `openapi --all --check DIR` fails when the
//! committed ones differ from what the tenant files produce.

use apifactory_tests::server::copy_tenants;

use super::cli::{apifactory, text};

/// The repository's own habit: the documents of `tenants/` are committed
/// in `openapi/` (or the directory `APIFACTORY_DEFINITIONS_DIR` names),
/// and this fails until they are regenerated after a tenant file changes.
#[test]
fn the_committed_definitions_match_the_tenant_files() {
    let dir = std::env::var("APIFACTORY_DEFINITIONS_DIR").unwrap_or_else(|_| "openapi".into());
    let out = apifactory(&["openapi", "--all", "--check", &dir]);
    assert!(
        out.status.success(),
        "the documents in {dir} differ from the tenant files (regenerate them with \
         `apifactory openapi --all --out {dir}`):\n{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("5 document(s)"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_changed_tenant_file_fails_the_check_naming_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let tenants = copy_tenants(tmp.path());
    let defs = tmp.path().join("defs");
    let (t, d) = (tenants.to_str().unwrap(), defs.to_str().unwrap());
    let out = apifactory(&["--tenants", t, "openapi", "--all", "--out", d]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("5 document(s)"),
        "{}",
        text(&out.stdout)
    );
    let out = apifactory(&["--tenants", t, "openapi", "--all", "--check", d]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A rule tightened in one tenant file, and a tenant removed.
    let acme = tenants.join("acme.toml");
    let before = std::fs::read_to_string(&acme).unwrap();
    let after = before.replacen("max_length = ", "max_length = 1", 1);
    assert_ne!(before, after, "acme.toml has a max_length to change");
    std::fs::write(&acme, after).unwrap();
    std::fs::remove_file(tenants.join("fleet.toml")).unwrap();

    let out = apifactory(&["--tenants", t, "openapi", "--all", "--check", d]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let acme_line = stderr
        .lines()
        .find(|l| l.contains("acme.json:"))
        .unwrap_or_else(|| panic!("acme.json named: {stderr}"));
    assert!(
        acme_line.contains("differs from what the tenant files produce")
            && acme_line.contains("maxLength"),
        "{acme_line}"
    );
    assert!(
        stderr.contains("fleet.json: no tenant file produces it"),
        "{stderr}"
    );
    assert!(stderr.contains("2 difference(s)"), "{stderr}");

    // Regenerating writes only the changed document and mends the check.
    let out = apifactory(&["--tenants", t, "openapi", "--all", "--out", d]);
    let stdout = text(&out.stdout);
    assert_eq!(stdout.matches("wrote ").count(), 1, "{stdout}");
    assert!(stdout.contains("acme.json"), "{stdout}");
    std::fs::remove_file(defs.join("fleet.json")).unwrap();
    let out = apifactory(&["--tenants", t, "openapi", "--all", "--check", d]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
