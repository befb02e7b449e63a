//! API definitions kept in git: every tenant's OpenAPI document written to
//! a directory (`openapi --all --out DIR`), and a check that the documents
//! committed there are what the tenant files produce (`openapi --all
//! --check DIR`), so a review shows the API change beside the tenant file
//! change, and a CI step fails when someone forgot to regenerate.
//!
//! One file per tenant, `<tenant>.json`, the `Client` document (the one
//! `apifactory openapi <tenant>` prints), ending with a newline.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use runtime::Tenant;

use crate::openapi::{self, Document, Integration};

/// Every tenant's document, by file name.
pub fn documents(
    tenants: &[Tenant],
    integration: &Integration,
) -> anyhow::Result<BTreeMap<String, String>> {
    tenants
        .iter()
        .map(|t| {
            let doc = openapi::render(t, integration, Document::Client)
                .with_context(|| format!("tenant {}: rendering its OpenAPI document", t.id))?;
            Ok((format!("{}.json", t.id), format!("{doc}\n")))
        })
        .collect()
}

/// What differs between a directory and the documents it should hold.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Differences(pub Vec<Difference>);

#[derive(Debug, PartialEq, Eq)]
pub enum Difference {
    /// A tenant's document is not in the directory.
    Missing(PathBuf),
    /// A `.json` file no tenant produces (a removed or renamed tenant).
    Stale(PathBuf),
    /// The file differs, first at this line (1-based).
    Differs {
        path: PathBuf,
        line: usize,
        expected: String,
        found: String,
    },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::Missing(p) => write!(f, "{}: missing (no such file)", p.display()),
            Difference::Stale(p) => write!(f, "{}: no tenant file produces it", p.display()),
            Difference::Differs {
                path,
                line,
                expected,
                found,
            } => write!(
                f,
                "{}:{line}: differs from what the tenant files produce: expected {expected:?}, found {found:?}",
                path.display()
            ),
        }
    }
}

/// Writes every document into `dir` (made when missing), leaving files
/// that are already right untouched (their modification time too). Returns
/// the files written and the stale ones found, which it does not delete:
/// they may be someone's.
pub fn write(
    dir: &Path,
    docs: &BTreeMap<String, String>,
) -> anyhow::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for (name, text) in docs {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
            continue;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok((written, stale(dir, docs)?))
}

/// Compares `dir` with the documents: every difference, in file order.
pub fn check(dir: &Path, docs: &BTreeMap<String, String>) -> anyhow::Result<Differences> {
    if !dir.is_dir() {
        anyhow::bail!(
            "{}: no such directory (write it with `apifactory openapi --all --out {0}`)",
            dir.display()
        );
    }
    let mut out = Vec::new();
    for (name, text) in docs {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(found) if found == *text => {}
            Ok(found) => out.push(first_difference(path, text, &found)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                out.push(Difference::Missing(path))
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    out.extend(stale(dir, docs)?.into_iter().map(Difference::Stale));
    Ok(Differences(out))
}

fn stale(dir: &Path, docs: &BTreeMap<String, String>) -> anyhow::Result<Vec<PathBuf>> {
    let mut stale = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".json") && !docs.contains_key(name) {
            stale.push(path);
        }
    }
    stale.sort();
    Ok(stale)
}

fn first_difference(path: PathBuf, expected: &str, found: &str) -> Difference {
    let mut e = expected.lines();
    let mut f = found.lines();
    let mut line = 1;
    loop {
        match (e.next(), f.next()) {
            (Some(a), Some(b)) if a == b => line += 1,
            (a, b) => {
                return Difference::Differs {
                    path,
                    line,
                    expected: a.unwrap_or("(end of file)").to_owned(),
                    found: b.unwrap_or("(end of file)").to_owned(),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("a.json".to_owned(), "{\n  \"x\": 1\n}\n".to_owned()),
            ("b.json".to_owned(), "{}\n".to_owned()),
        ])
    }

    #[test]
    fn a_written_directory_checks_clean_and_a_rewrite_touches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (written, stale) = write(dir.path(), &docs()).unwrap();
        assert_eq!(written.len(), 2);
        assert!(stale.is_empty());
        assert_eq!(check(dir.path(), &docs()).unwrap(), Differences::default());
        let (written, _) = write(dir.path(), &docs()).unwrap();
        assert!(written.is_empty(), "{written:?}");
    }

    #[test]
    fn every_kind_of_difference_is_named_with_its_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &docs()).unwrap();
        std::fs::write(dir.path().join("a.json"), "{\n  \"x\": 2\n}\n").unwrap();
        std::fs::remove_file(dir.path().join("b.json")).unwrap();
        std::fs::write(dir.path().join("gone.json"), "{}").unwrap();
        std::fs::write(dir.path().join("README.md"), "not a document").unwrap();
        let diffs = check(dir.path(), &docs()).unwrap().0;
        let text: Vec<String> = diffs.iter().map(|d| d.to_string()).collect();
        assert_eq!(diffs.len(), 3, "{text:#?}");
        assert!(
            matches!(&diffs[0], Difference::Differs { line: 2, .. }),
            "{text:#?}"
        );
        assert!(
            text[0].contains("a.json:2:") && text[0].contains("\\\"x\\\": 2"),
            "{}",
            text[0]
        );
        assert!(matches!(&diffs[1], Difference::Missing(p) if p.ends_with("b.json")));
        assert!(matches!(&diffs[2], Difference::Stale(p) if p.ends_with("gone.json")));
    }

    #[test]
    fn a_truncated_file_differs_at_its_end() {
        let d = first_difference(PathBuf::from("a.json"), "x\ny\n", "x\n");
        assert_eq!(
            d,
            Difference::Differs {
                path: PathBuf::from("a.json"),
                line: 2,
                expected: "y".into(),
                found: "(end of file)".into()
            }
        );
    }

    #[test]
    fn a_missing_directory_is_an_error_saying_how_to_make_it() {
        let err = check(Path::new("/nonexistent/defs"), &docs()).unwrap_err();
        assert!(err.to_string().contains("openapi --all --out"), "{err}");
    }
}
