//! HTML pieces every page shares: escaping, the frame with its one inline
//! style sheet, and form bodies. Nothing is loaded from another host: the
//! pages are whole as sent, and the Content-Security-Policy header
//! (`console.rs`) forbids the browser to fetch anything elsewhere.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Text or an attribute value, safe inside HTML.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A path segment (a tenant id, a key id) safe in a URL.
pub fn url(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

const STYLE: &str = r#"
:root { color-scheme: light; --fg: #1d2329; --muted: #5b6570; --line: #d5dbe1; --accent: #0b57d0; --bad: #b3261e; --ok: #146c2e; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: #f7f8fa; }
header { background: #1d2329; color: #fff; padding: .6rem 1.2rem; display: flex; gap: 1.2rem; align-items: baseline; }
header a { color: #fff; }
header .target { color: #c4ccd4; font-size: .9rem; }
main { padding: 1rem 1.2rem 3rem; max-width: 1400px; }
h1 { font-size: 1.35rem; margin: .4rem 0 1rem; }
h2 { font-size: 1.1rem; margin: 1.6rem 0 .6rem; }
table { border-collapse: collapse; background: #fff; width: 100%; }
th, td { border: 1px solid var(--line); padding: .35rem .55rem; text-align: left; vertical-align: top; }
th { background: #eef1f4; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
a { color: var(--accent); }
a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible, summary:focus-visible {
  outline: 3px solid #f29900; outline-offset: 2px; }
button, .button { font: inherit; padding: .3rem .8rem; border: 1px solid var(--accent); border-radius: 4px;
  background: #fff; color: var(--accent); cursor: pointer; text-decoration: none; display: inline-block; }
button.danger { border-color: var(--bad); color: var(--bad); }
button.primary { background: var(--accent); color: #fff; }
form.inline { display: inline; margin: 0 .2rem 0 0; }
label { font-weight: 600; margin-right: .4rem; }
input, select { font: inherit; padding: .25rem .4rem; }
ul.plain { list-style: none; margin: 0; padding: 0; }
.muted { color: var(--muted); }
.ok { color: var(--ok); }
.bad { color: var(--bad); }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 1rem; }
figure { margin: 0; background: #fff; border: 1px solid var(--line); padding: .5rem; }
figcaption { font-weight: 600; margin-bottom: .3rem; }
nav.periods a { margin-right: .6rem; }
nav.periods a[aria-current="page"] { font-weight: 700; text-decoration: none; color: var(--fg); }
#log-tail { background: #10151a; color: #d8dee4; padding: .6rem; height: 18rem; overflow: auto; font: 12px/1.4 ui-monospace, monospace; white-space: pre-wrap; margin: 0; }
code#new-key-value { display: inline-block; font-size: 1.1rem; padding: .4rem .6rem; background: #fff8e1; border: 1px solid #f2c94c; user-select: all; }
.notice { background: #e8f0fe; border: 1px solid #aecbfa; padding: .5rem .8rem; margin: .8rem 0; }
.error { background: #fce8e6; border: 1px solid #f4b4ae; padding: .5rem .8rem; margin: .8rem 0; }
meter { width: 8rem; }
.scroll { overflow-x: auto; }
.scroll:focus-visible { outline: 3px solid #f29900; outline-offset: 2px; }
"#;

/// A whole page: `title` is text, `body` is HTML; `target` names the fleet
/// (`local`, `aws us-east-1`). `script` is inline JavaScript, allowed by
/// its hash in the Content-Security-Policy.
pub fn page(title: &str, target: &str, body: &str, script: Option<&str>) -> String {
    let script = script
        .map(|s| format!("<script>{s}</script>"))
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · apifactory console</title><link rel=\"icon\" href=\"data:,\"><style>{STYLE}</style></head>\
         <body><header><a href=\"/_console/\"><strong>apifactory console</strong></a>\
         <span class=\"target\">target: {}</span></header><main>{body}</main>{script}</body></html>\n",
        esc(title),
        esc(target)
    )
}

/// The hidden CSRF field of a form that changes something.
pub fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(csrf)
    )
}

/// The fields of an `application/x-www-form-urlencoded` body or query
/// string; the last of repeated names wins. Bytes that are not UTF-8 after
/// decoding are replaced, never a panic.
pub fn form(body: &str) -> BTreeMap<String, String> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_open_markup() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(esc("acme-web"), "acme-web");
    }

    #[test]
    fn a_page_escapes_its_title_and_target() {
        let p = page("<b>", "aws \"x\"", "<p>body</p>", None);
        assert!(p.contains("<title>&lt;b&gt; ·"));
        assert!(p.contains("target: aws &quot;x&quot;"));
        assert!(p.contains("<main><p>body</p></main>"));
        assert!(!p.contains("<script>"));
        assert!(
            !p.contains("http://") && !p.contains("https://"),
            "nothing from another host"
        );
    }

    #[test]
    fn url_segments_are_percent_encoded() {
        assert_eq!(url("acme"), "acme");
        assert_eq!(url("a b/c?"), "a%20b%2Fc%3F");
    }

    #[test]
    fn forms_decode_percent_and_plus() {
        let f = form("csrf=a%2Bb%3D&client=acme+web&grace=24h&empty=&flag");
        assert_eq!(f["csrf"], "a+b=");
        assert_eq!(f["client"], "acme web");
        assert_eq!(f["grace"], "24h");
        assert_eq!(f["empty"], "");
        assert_eq!(f["flag"], "");
        // Broken escapes stay as they are; nothing panics.
        assert_eq!(form("a=%&b=%zz&c=%4")["a"], "%");
        assert_eq!(form("b=%zz")["b"], "%zz");
        assert_eq!(form("c=%4")["c"], "%4");
        assert_eq!(form("d=%ff%fe")["d"], "\u{fffd}\u{fffd}");
        assert!(form("").is_empty());
    }
}
