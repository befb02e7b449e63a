use std::path::{Path, PathBuf};

use runtime::Tenant;
use serde_json::Value;

use super::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tenants() -> Vec<Tenant> {
    runtime::tenant::load_dir(&repo().join("tenants")).expect("tenants/ is valid")
}

fn parse(text: &str) -> Tenant {
    Tenant::parse(Path::new("tenants/t.toml"), text).expect("a valid tenant")
}

/// The text a browser shows for an HTML fragment: entities decoded (the
/// ones handlebars writes), tags kept.
fn unescape(html: &str) -> String {
    html.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x60;", "`")
        .replace("&#x3D;", "=")
        .replace("&#35;", "#")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[test]
fn every_field_rule_index_endpoint_and_error_is_on_the_page() {
    for t in tenants() {
        let html = render(&t).unwrap();
        let text = unescape(&html);
        let c = &t.collection;
        assert!(text.contains(&t.display_name), "{}", t.id);
        assert!(html.contains(&format!("data-collection=\"{}\"", c.name)));
        assert!(
            html.contains(&format!("id=\"field-{}\"", c.key)),
            "{}: the key",
            t.id
        );
        for f in &c.fields {
            assert!(
                html.contains(&format!("id=\"field-{}\"", f.name)),
                "{}.{}",
                t.id,
                f.name
            );
            for rule in rules(f) {
                assert!(
                    text.contains(&format!("<li>{rule}</li>")),
                    "{}.{}: {rule}",
                    t.id,
                    f.name
                );
            }
            if let Some(d) = &f.description {
                assert!(
                    text.contains(d.as_str()),
                    "{}.{}: its description",
                    t.id,
                    f.name
                );
            }
            // Every field is a search parameter.
            if t.functions.enabled(Operation::Search) {
                assert!(text.contains(&format!(
                    "<th scope=\"row\"><code>{}</code></th><td>query</td>",
                    f.name
                )));
            }
        }
        for f in c.indexed() {
            assert!(text.contains(&format!(
                "<code>{}</code> on <code>{}</code>",
                names::index(&f.name),
                f.name
            )));
        }
        // Exactly the deployed operations, as endpoints and as try-it
        // options.
        for (op, anchor, value) in [
            (Operation::Search, "search", "search"),
            (Operation::Get, "get", "get"),
            (Operation::Add, "add", "add"),
            (Operation::Update, "update-put", "update"),
            (Operation::Delete, "delete", "delete"),
        ] {
            let on = t.functions.enabled(op);
            assert_eq!(
                html.contains(&format!("id=\"op-{anchor}\"")),
                on,
                "{} {anchor}",
                t.id
            );
            assert_eq!(
                html.contains(&format!("<option value=\"{value}\"")),
                on,
                "{} {value}",
                t.id
            );
        }
        for e in catalogue::GATEWAY {
            assert!(
                text.contains(&format!(
                    "<th scope=\"row\">{}</th><td><code>{}</code></td>",
                    e.status, e.body
                )),
                "{}: {}",
                t.id,
                e.body
            );
        }
        for p in catalogue::FUNCTION {
            assert!(
                text.contains(&format!("\"status\": {}", p.status)),
                "{}: {}",
                t.id,
                p.status
            );
        }
        for id in [
            "tryit-key",
            "tryit-base",
            "tryit-op",
            "tryit-id",
            "tryit-body",
            "tryit-send",
            "tryit-status",
            "tryit-response",
        ] {
            assert_eq!(
                html.matches(&format!("id=\"{id}\"")).count(),
                1,
                "{}: #{id}",
                t.id
            );
        }
        assert!(html.contains("<input id=\"tryit-key\" name=\"key\" type=\"password\""));
    }
}

/// Every input, select and textarea has a label naming it.
#[test]
fn every_control_has_a_label() {
    let html = render(&tenants()[0]).unwrap();
    let mut controls = 0;
    for tag in ["<input ", "<select ", "<textarea "] {
        for part in html.split(tag).skip(1) {
            let id = part
                .split("id=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .expect("an id");
            assert!(
                html.contains(&format!("<label for=\"{id}\">")),
                "#{id} has no label"
            );
            controls += 1;
        }
    }
    assert!(controls >= 6, "{controls} controls");
    // Natural tab order: no positive tabindex.
    assert!(!html.contains("tabindex=\"1"), "a positive tabindex");
}

#[test]
fn examples_pass_the_fields_own_checks() {
    for t in tenants() {
        let c = &t.collection;
        let new = example::new_item(c);
        for f in c.fields.iter().filter(|f| f.auto.is_none()) {
            match new.get(&f.name) {
                Some(v) => assert!(f.check(v).is_ok(), "{}.{}: {v}", t.id, f.name),
                None => assert!(
                    !f.required,
                    "{}.{}: a required field has no example",
                    t.id, f.name
                ),
            }
        }
        // A required field with a pattern gets a value from it.
        for f in c.fields.iter().filter(|f| f.required) {
            assert!(new.contains_key(&f.name), "{}.{}", t.id, f.name);
        }
        assert!(example::item(c).contains_key(&c.key));
    }
    assert_eq!(example::from_pattern("P-[0-9]{6}"), "P-000000");
    assert_eq!(example::from_pattern("[A-Z0-9 -]{2,12}"), "AA");
    assert_eq!(example::from_pattern("(ab|cd)+x?\\d"), "ab0");
    // Whatever the pattern, no panic.
    for p in [
        "(",
        ")",
        "[",
        "\\",
        "{",
        "a{",
        "a{9999999999}",
        "[^]",
        "(?",
        "|",
        "[]]",
    ] {
        let _ = example::from_pattern(p);
    }
}

#[test]
fn the_page_loads_nothing_from_anywhere() {
    for t in tenants() {
        let html = render_static(&t).unwrap();
        for bad in [
            "src=", "url(", "@import", "<iframe", "<object", "<embed", "srcset", "<base",
        ] {
            assert!(!html.contains(bad), "{}: {bad}", t.id);
        }
        // Links go within the page, but for the empty data: icon that keeps
        // browsers from asking the API for /favicon.ico.
        for part in html.split("href=\"").skip(1) {
            let href = part.split('"').next().unwrap_or_default();
            assert!(
                href.starts_with('#') || href == "data:,",
                "{}: href {href}",
                t.id
            );
        }
        assert_eq!(html.matches("<link ").count(), 1, "{}", t.id);
        assert!(html.contains("default-src 'none'"));
        // The only absolute URLs are the API's own (its domain), as text.
        for part in html.split("https://").skip(1) {
            let host: String = part
                .chars()
                .take_while(|c| *c != '/' && *c != '"' && *c != '<')
                .collect();
            let own = t.domain.as_ref().is_some_and(|d| host == d.name)
                || host == "{restApiId}.execute-api.{region}.amazonaws.com"
                || host == "example.com";
            assert!(own, "{}: https://{host}", t.id);
        }
        assert!(!html.contains("http://"), "{}", t.id);
    }
}

#[test]
fn the_page_is_deterministic_and_fits_api_gateway() {
    for t in tenants() {
        let a = render(&t).unwrap();
        assert_eq!(a, render(&t).unwrap(), "{}", t.id);
        assert!(a.len() < MAX_PAGE_BYTES / 3, "{}: {} bytes", t.id, a.len());
        assert!(!a.contains(UNPARSED_END), "{}", t.id);
    }
    // The page's own parts never close a Velocity unparsed block.
    for part in [PAGE, STYLE, SCRIPT] {
        assert!(!part.contains(UNPARSED_END));
    }
}

#[test]
fn a_page_over_the_quota_is_an_error_naming_the_tenant() {
    let long = "x".repeat(MAX_PAGE_BYTES);
    let t = parse(&format!(
        "[tenant]\ndisplay_name = \"Big\"\ndescription = \"{long}\"\n[collection]\nname = \"things\"\n[collection.fields]\nname = {{ type = \"string\" }}\n[usage_plan]\nrate = 1\nburst = 1\n"
    ));
    let e = render(&t).expect_err("too large").to_string();
    assert!(
        e.contains("tenant t") && e.contains("mapping template quota"),
        "{e}"
    );
}

/// Tenant text is data, never markup: a description or a pattern with
/// `<`, `"`, `&`, `</script>` or the end of a Velocity block shows as
/// itself.
#[test]
fn tenant_text_cannot_break_out_of_the_page() {
    let nasty =
        r#"</script><script>alert(1)</script> & "quoted" <b>bold</b> ]]# ${x} #set($a = 1)"#;
    let t = parse(&format!(
        "[tenant]\ndisplay_name = {nasty:?}\ndescription = {nasty:?}\n[collection]\nname = \"things\"\n[collection.fields]\nnote = {{ type = \"string\", description = {nasty:?}, enum = [{nasty:?}] }}\ncode = {{ type = \"string\", pattern = \"<[a-z]+>\" }}\n[usage_plan]\nrate = 1\nburst = 1\n"
    ));
    let html = render(&t).unwrap();
    assert_eq!(
        html.matches("<script>").count(),
        1,
        "one script, the page's own"
    );
    assert_eq!(html.matches("</script>").count(), 1);
    assert!(!html.contains("<b>bold"), "markup from the tenant file");
    assert!(!html.contains(UNPARSED_END));
    // Shown as written, once unescaped.
    let text = unescape(&html);
    assert!(text.contains(nasty), "the description as written");
    assert!(text.contains("matches the pattern ^(?:<[a-z]+>)$"));
    // The example body (in an attribute and the textarea) is the value.
    let body = html
        .split("<textarea id=\"tryit-body\" name=\"body\" rows=\"10\" spellcheck=\"false\">")
        .nth(1)
        .and_then(|s| s.split("</textarea>").next())
        .unwrap();
    let v: Value = serde_json::from_str(&unescape(body)).unwrap();
    assert_eq!(v["note"], nasty);
    assert_eq!(v["code"], "<a>");
}

#[test]
fn the_base_url_is_the_domain_when_there_is_one() {
    let ts = tenants();
    let bookshop = ts.iter().find(|t| t.id == "bookshop").unwrap();
    let html = render_static(bookshop).unwrap();
    assert!(html.contains("id=\"tryit-base\" name=\"base\" type=\"url\" spellcheck=\"false\" value=\"https://catalogue.pageturner.example/books-api\""));
    // Served, the page finds its URL itself: the domain is not in it, so a
    // new domain is no change to the API's definition.
    let served = render(bookshop).unwrap();
    assert!(!served.contains("pageturner.example"));
    let mut moved = bookshop.clone();
    if let Some(d) = moved.domain.as_mut() {
        d.name = "books.example.org".into();
    }
    moved.usage_plan.rate = 1.0;
    moved.clients.clear();
    assert_eq!(render(&moved).unwrap(), served);
    assert_ne!(render_static(&moved).unwrap(), html);
    let clinic = ts.iter().find(|t| t.id == "clinic").unwrap();
    assert!(clinic.domain.is_none());
    let html = render(clinic).unwrap();
    assert!(html.contains("type=\"url\" spellcheck=\"false\" value=\"\""));
    assert!(html.contains("https://{restApiId}.execute-api.{region}.amazonaws.com/"));
}

/// The local gateway renders from the functions' package (fields in name
/// order), the AWS target from the file: the same page.
#[test]
fn the_page_is_the_same_from_the_file_and_from_the_functions_package() {
    for t in tenants() {
        let text = std::fs::read_to_string(&t.path).unwrap();
        let source = crate::tenants::package_source(&text).unwrap();
        let package = Tenant::parse_package(&t.path, &source).unwrap();
        assert_eq!(render(&t).unwrap(), render(&package).unwrap(), "{}", t.id);
    }
}
