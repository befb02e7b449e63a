//! Fuzzing of the tenant-file parser and validator with proptest.
//!
//! `cargo fuzz` needs a nightly toolchain and this workspace builds on
//! stable only, so the fuzzing runs as bounded property tests in the normal
//! test run: first every committed seed (`tests/data/fuzz-seeds/tenant/`,
//! the five real tenant files and the broken fixtures), then a few hundred
//! generated cases of each kind: TOML-ish text from a small grammar, and
//! mutations (bytes, lines, keys, values) of the five real tenant files.
//! Set `PROPTEST_CASES` for a longer run.
//!
//! The property: `Tenant::parse` (and `parse_package`) never panic or hang,
//! and either succeed or return errors that each point inside the file
//! (line and column within its text) and say what was expected and found.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};

use super::*;
use crate::tenant_error::TenantError;

/// Generated cases per property unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 500;
/// Far above what any case takes; a case past it counts as a hang.
const SLOW: Duration = Duration::from_secs(5);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn config(persistence: &'static str) -> Config {
    Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(CASES),
        // Failing cases are kept beside the seed corpus, and replayed first
        // by every later run.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(persistence))),
        ..Config::default()
    }
}

/// The files of a directory with an extension, sorted.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    out
}

fn real_tenants() -> Vec<String> {
    files(&repo().join("tenants"), "toml")
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// Parses `text` both ways and checks every error; panics (a failed
/// property) with the text when one is wrong.
fn check(text: &str) -> Result<bool, TestCaseError> {
    let path = Path::new("tenants/fuzz.toml");
    let started = Instant::now();
    let whole = Tenant::parse(path, text);
    let package = Tenant::parse_package(path, text);
    let took = started.elapsed();
    prop_assert!(took < SLOW, "parsing took {took:?}");
    for result in [&whole, &package] {
        match result {
            Ok(t) => {
                prop_assert_eq!(&t.id, "fuzz");
                prop_assert!(!t.collection.fields.is_empty());
            }
            Err(errors) => {
                prop_assert!(!errors.0.is_empty(), "an error result with no error");
                for e in &errors.0 {
                    check_error(text, e)?;
                }
            }
        }
    }
    // Deterministic: the same text gives the same answer.
    let again = Tenant::parse(path, text);
    prop_assert_eq!(format!("{whole:?}"), format!("{again:?}"));
    Ok(whole.is_ok())
}

fn check_error(text: &str, e: &TenantError) -> Result<(), TestCaseError> {
    let lines: Vec<&str> = text.split('\n').collect();
    prop_assert!(
        e.line >= 1 && e.line <= lines.len(),
        "line {} outside the file's {} lines: {e}",
        e.line,
        lines.len()
    );
    let width = lines[e.line - 1].chars().count();
    prop_assert!(
        e.column >= 1 && e.column <= width + 1,
        "column {} outside line {} ({} characters): {e}",
        e.column,
        e.line,
        width
    );
    prop_assert!(!e.expected.trim().is_empty(), "no `expected`: {e}");
    prop_assert!(!e.found.trim().is_empty(), "no `found`: {e}");
    prop_assert_eq!(e.path.as_path(), Path::new("tenants/fuzz.toml"));
    let shown = e.to_string();
    prop_assert!(shown.starts_with("tenants/fuzz.toml:"), "{}", shown);
    Ok(())
}

/// Every committed seed, the real files and the broken fixtures, first.
#[test]
fn seeds_parse_or_fail_cleanly() {
    let mut texts: Vec<(String, String)> = Vec::new();
    for dir in [
        "tests/data/fuzz-seeds/tenant",
        "tests/data/broken-tenants",
        "tenants",
    ] {
        for p in files(&repo().join(dir), "toml") {
            let bytes = std::fs::read(&p).unwrap();
            texts.push((
                p.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    }
    assert!(
        texts.len() > 30,
        "the seed corpus is there: {}",
        texts.len()
    );
    let mut ok = 0;
    for (name, text) in &texts {
        match check(text) {
            Ok(parsed) => ok += usize::from(parsed),
            Err(e) => panic!("seed {name}: {e}"),
        }
    }
    assert!(ok >= 5, "the five real tenant files parse");
}

/// A piece of TOML-ish text: the file's real vocabulary, with wrong types,
/// odd values and stray characters mixed in.
fn toml_line() -> impl Strategy<Value = String> {
    let section = prop::sample::select(vec![
        "[tenant]",
        "[collection]",
        "[collection.fields]",
        "[functions]",
        "[usage_plan]",
        "[usage_plan.quota]",
        "[domain]",
        "[logs]",
        "[[clients]]",
        "[[collection.fields.x]]",
        "[tenant.tenant]",
        "[",
        "[[",
        "[]",
        "[a.b.c.d.e]",
    ])
    .prop_map(str::to_owned);
    let key = prop::sample::select(vec![
        "display_name",
        "description",
        "stage",
        "name",
        "key",
        "fields",
        "operations",
        "memory_mb",
        "timeout_s",
        "rate",
        "burst",
        "quota",
        "limit",
        "period",
        "certificate_arn",
        "hosted_zone_id",
        "base_path",
        "retention_days",
        "type",
        "required",
        "index",
        "default",
        "auto",
        "min_length",
        "max_length",
        "pattern",
        "enum",
        "format",
        "min",
        "max",
        "max_items",
        "next",
        "tenant.display_name",
        "collection.fields.a",
        "\"quoted key\"",
        "'literal'",
        "é",
        "a.b",
    ])
    .prop_map(str::to_owned);
    let value = prop_oneof![
        prop::sample::select(vec![
            "\"x\"",
            "\"\"",
            "\"prod\"",
            "\"accounts\"",
            "\"string\"",
            "\"integer\"",
            "\"number\"",
            "\"boolean\"",
            "\"timestamp\"",
            "\"string_list\"",
            "\"email\"",
            "\"uri\"",
            "\"date-time\"",
            "\"create\"",
            "\"update\"",
            "\"DAY\"",
            "\"WEEK\"",
            "\"MONTH\"",
            "\"[a-z\"",
            "\"(\"",
            "0",
            "-1",
            "1",
            "29",
            "30",
            "5000",
            "5001",
            "1e400",
            "nan",
            "inf",
            "-0.0",
            "9223372036854775807",
            "18446744073709551616",
            "true",
            "false",
            "[]",
            "[1, \"a\"]",
            "[\"search\", \"get\", \"add\"]",
            "{}",
            "{ type = \"string\" }",
            "{ type = \"string\", required = true, index = true }",
            "{ type = \"integer\", min = 5, max = 1 }",
            "{ type = \"boolean\", index = true }",
            "{ type = \"string_list\", max_items = 0 }",
            "{ limit = 10, period = \"DAY\" }",
            "{ limit = 0, period = \"YEAR\" }",
            "1979-05-27T07:32:00Z",
            "\"\"\"multi\nline\"\"\"",
            "'''raw'''",
            "\"\\u0000\"",
            "\"\\uD800\"",
        ])
        .prop_map(str::to_owned),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|x| format!("{x:?}")),
        "\"[^\"\\\\\n]{0,20}\"",
        "[ -~]{0,12}",
        ".{0,8}",
    ];
    prop_oneof![
        2 => section,
        6 => (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
        1 => "#[^\n]{0,30}",
        1 => Just(String::new()),
        1 => ".{0,30}",
    ]
}

fn toml_text() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(toml_line(), 0..40),
        prop::sample::select(vec!["\n", "\r\n", "\n\n"]),
    )
        .prop_map(|(lines, sep)| lines.join(sep))
}

#[test]
fn generated_toml_parses_or_fails_cleanly() {
    let mut runner = TestRunner::new(config(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/fuzz-seeds/tenant-generated.regressions"
    )));
    let executed = Cell::new(0u32);
    runner
        .run(&toml_text(), |text| {
            executed.set(executed.get() + 1);
            check(&text).map(|_| ())
        })
        .unwrap();
    eprintln!("tenant fuzz: {} generated TOML-ish files", executed.get());
}

/// One edit of a file.
#[derive(Debug, Clone)]
enum Mutation {
    InsertByte(usize, u8),
    ReplaceByte(usize, u8),
    DeleteBytes(usize, usize),
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    InsertLine(usize, String),
    /// Replaces what follows the first `=` of a line.
    ReplaceValue(usize, String),
    /// Replaces what precedes the first `=` of a line.
    RenameKey(usize, String),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let pos = any::<prop::sample::Index>();
    prop_oneof![
        (pos.clone(), any::<u8>()).prop_map(|(i, b)| Mutation::InsertByte(i.index(usize::MAX), b)),
        (pos.clone(), any::<u8>()).prop_map(|(i, b)| Mutation::ReplaceByte(i.index(usize::MAX), b)),
        (pos.clone(), 1usize..40).prop_map(|(i, n)| Mutation::DeleteBytes(i.index(usize::MAX), n)),
        pos.clone()
            .prop_map(|i| Mutation::DeleteLine(i.index(usize::MAX))),
        pos.clone()
            .prop_map(|i| Mutation::DuplicateLine(i.index(usize::MAX))),
        (pos.clone(), pos.clone())
            .prop_map(|(a, b)| Mutation::SwapLines(a.index(usize::MAX), b.index(usize::MAX))),
        (pos.clone(), toml_line()).prop_map(|(i, l)| Mutation::InsertLine(i.index(usize::MAX), l)),
        (pos.clone(), toml_line()).prop_map(|(i, l)| {
            let value = l
                .split_once('=')
                .map_or(l.clone(), |(_, v)| v.trim().to_owned());
            Mutation::ReplaceValue(i.index(usize::MAX), value)
        }),
        (pos.clone(), toml_line()).prop_map(|(i, l)| {
            let key = l
                .split_once('=')
                .map_or(l.clone(), |(k, _)| k.trim().to_owned());
            Mutation::RenameKey(i.index(usize::MAX), key)
        }),
        pos.prop_map(|i| Mutation::Truncate(i.index(usize::MAX))),
    ]
}

/// Applies the edits; positions wrap around the current length, so every
/// edit applies to whatever the previous ones left.
fn mutate(text: &str, edits: &[Mutation]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for m in edits {
        let n = bytes.len().max(1);
        match m {
            Mutation::InsertByte(i, b) => bytes.insert(i % (bytes.len() + 1), *b),
            Mutation::ReplaceByte(i, b) => {
                if !bytes.is_empty() {
                    bytes[i % n] = *b;
                }
            }
            Mutation::DeleteBytes(i, len) => {
                let start = i % n;
                let end = (start + len).min(bytes.len());
                if start < end {
                    bytes.drain(start..end);
                }
            }
            Mutation::Truncate(i) => bytes.truncate(i % n),
            line_edit => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
                let l = lines.len();
                match line_edit {
                    Mutation::DeleteLine(i) => {
                        lines.remove(i % l);
                    }
                    Mutation::DuplicateLine(i) => {
                        let line = lines[i % l].clone();
                        lines.insert(i % l, line);
                    }
                    Mutation::SwapLines(a, b) => lines.swap(a % l, b % l),
                    Mutation::InsertLine(i, new) => lines.insert(i % (l + 1), new.clone()),
                    Mutation::ReplaceValue(i, value) => {
                        let line = &mut lines[i % l];
                        if let Some((k, _)) = line.split_once('=') {
                            *line = format!("{k}= {value}");
                        }
                    }
                    Mutation::RenameKey(i, key) => {
                        let line = &mut lines[i % l];
                        if let Some((_, v)) = line.split_once('=') {
                            *line = format!("{key} ={v}");
                        }
                    }
                    _ => unreachable!("byte edits are handled above"),
                }
                bytes = lines.join("\n").into_bytes();
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn mutated_tenant_files_parse_or_fail_cleanly() {
    let originals = real_tenants();
    assert_eq!(originals.len(), 5);
    let strategy = (0..originals.len(), prop::collection::vec(mutation(), 1..6));
    let mut runner = TestRunner::new(config(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/fuzz-seeds/tenant-mutated.regressions"
    )));
    let (executed, still_valid) = (Cell::new(0u32), Cell::new(0u32));
    runner
        .run(&strategy, |(which, edits)| {
            executed.set(executed.get() + 1);
            let text = mutate(&originals[which], &edits);
            if check(&text)? {
                still_valid.set(still_valid.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    eprintln!(
        "tenant fuzz: {} mutated tenant files, {} of them still valid",
        executed.get(),
        still_valid.get()
    );
}

#[test]
fn mutations_apply_where_they_say() {
    let text = "a = 1\nb = 2\n";
    assert_eq!(mutate(text, &[Mutation::DeleteLine(0)]), "b = 2\n");
    assert_eq!(mutate(text, &[Mutation::SwapLines(0, 1)]), "b = 2\na = 1\n");
    assert_eq!(
        mutate(text, &[Mutation::ReplaceValue(1, "\"x\"".into())]),
        "a = 1\nb = \"x\"\n"
    );
    assert_eq!(
        mutate(text, &[Mutation::RenameKey(0, "c".into())]),
        "c = 1\nb = 2\n"
    );
    assert_eq!(
        mutate(text, &[Mutation::InsertByte(0, b'#')]),
        "#a = 1\nb = 2\n"
    );
    assert_eq!(mutate(text, &[Mutation::Truncate(3)]), "a =");
    assert_eq!(mutate("", &[Mutation::ReplaceByte(5, b'x')]), "");
}
