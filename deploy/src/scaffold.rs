//! `apifactory new <tenant>`: a tenant file from a few flags, with comments
//! that say what each section does, so the first tenant does not start
//! from copying another client's file.
//!
//! The text is checked by the same parser `validate` uses before anything
//! is written, and an existing file is never overwritten.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// What the flags (or the answers on a terminal) say.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub tenant: String,
    pub display_name: Option<String>,
    pub stage: String,
    pub collection: String,
    pub key: String,
    pub fields: Vec<FieldFlag>,
    pub clients: Vec<String>,
    pub rate: f64,
    pub burst: u32,
    pub quota: Option<(u64, String)>,
    pub domain: Option<(String, String)>,
}

/// One `--field name:type[:index][:required]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldFlag {
    pub name: String,
    pub kind: String,
    pub index: bool,
    pub required: bool,
}

const TYPES: [&str; 6] = [
    "string",
    "integer",
    "number",
    "boolean",
    "timestamp",
    "string_list",
];

/// Parses `name:type[:index][:required]` (the flags in either order).
pub fn parse_field(text: &str) -> Result<FieldFlag, String> {
    let mut parts = text.split(':');
    let name = parts.next().unwrap_or_default().trim();
    if name.is_empty() {
        return Err(format!(
            "--field {text:?}: expected NAME:TYPE[:index][:required], found no name"
        ));
    }
    let Some(kind) = parts.next().map(str::trim) else {
        return Err(format!(
            "--field {text:?}: expected NAME:TYPE[:index][:required], found no type (one of {})",
            TYPES.join(", ")
        ));
    };
    if !TYPES.contains(&kind) {
        return Err(format!(
            "--field {text:?}: expected a type, one of {}, found {kind:?}",
            TYPES.join(", ")
        ));
    }
    let mut field = FieldFlag {
        name: name.to_owned(),
        kind: kind.to_owned(),
        index: false,
        required: false,
    };
    for flag in parts {
        match flag.trim() {
            "index" => field.index = true,
            "required" => field.required = true,
            other => {
                return Err(format!(
                    "--field {text:?}: expected `index` or `required` after the type, found {other:?}"
                ));
            }
        }
    }
    Ok(field)
}

/// Parses `N/DAY`, `N/WEEK` or `N/MONTH`.
pub fn parse_quota(text: &str) -> Result<(u64, String), String> {
    let bad = || {
        format!(
            "--quota {text:?}: expected LIMIT/PERIOD with PERIOD one of DAY, WEEK, MONTH (e.g. 10000/MONTH)"
        )
    };
    let (limit, period) = text.split_once('/').ok_or_else(bad)?;
    let limit: u64 = limit.trim().parse().map_err(|_| bad())?;
    let period = period.trim().to_ascii_uppercase();
    if limit == 0 || !matches!(period.as_str(), "DAY" | "WEEK" | "MONTH") {
        return Err(bad());
    }
    Ok((limit, period))
}

fn quoted(s: &str) -> String {
    // A TOML basic string is a JSON string for everything a flag holds.
    serde_json::to_string(s).unwrap_or_default()
}

/// The tenant file's text, commented.
pub fn render(s: &Spec) -> String {
    let mut t = String::new();
    let display = s.display_name.clone().unwrap_or_else(|| s.tenant.clone());
    let _ = writeln!(
        t,
        "# The tenant {:?}: one client's API, made by `apifactory new`.\n\
         # `apifactory validate` checks this file; `apifactory plan` shows what it\n\
         # deploys; the README's \"The tenant file\" section lists every key.\n",
        s.tenant
    );
    let _ = writeln!(
        t,
        "[tenant]\n\
         # Shown in the console and the developer portal.\n\
         display_name = {}\n\
         # The API Gateway stage: the first path segment of every URL.\n\
         stage = {}\n",
        quoted(&display),
        quoted(&s.stage)
    );
    let _ = writeln!(
        t,
        "[collection]\n\
         # The resource name: /{}/{{{}}}.\n\
         name = {}\n\
         # The item key: a string the server makes (a ULID) when an add leaves it out.\n\
         key = {}\n",
        s.collection,
        s.key,
        quoted(&s.collection),
        quoted(&s.key)
    );
    t.push_str(
        "# The fields every item may have. Each: a type (string, integer, number,\n\
         # boolean, timestamp, string_list), and rules: required, max_length,\n\
         # min/max, enum, pattern, format, default, index (a search on an indexed\n\
         # field reads only the matching items), description.\n\
         [collection.fields]\n",
    );
    let width = s.fields.iter().map(|f| f.name.len()).max().unwrap_or(0);
    for f in &s.fields {
        let mut rules = format!("type = {}", quoted(&f.kind));
        if f.required {
            rules += ", required = true";
        }
        if f.index {
            rules += ", index = true";
        }
        let _ = writeln!(t, "{:<width$} = {{ {rules} }}", f.name);
    }
    let _ = writeln!(
        t,
        "\n# Per client key: a token bucket of `rate` requests a second with\n\
         # `burst` at once (429 Too Many Requests past it){}.\n\
         [usage_plan]\n\
         rate = {}\n\
         burst = {}",
        if s.quota.is_some() {
            ",\n# and a quota per UTC period (429 Limit Exceeded past it)"
        } else {
            ";\n# add `quota = { limit = N, period = \"DAY\" | \"WEEK\" | \"MONTH\" }` for a quota"
        },
        s.rate,
        s.burst
    );
    if let Some((limit, period)) = &s.quota {
        let _ = writeln!(
            t,
            "quota = {{ limit = {limit}, period = {} }}",
            quoted(period)
        );
    }
    if let Some((name, arn)) = &s.domain {
        let _ = writeln!(
            t,
            "\n# The API's own host name; the ACM certificate must be in the deploy region\n\
             # and cover it.\n\
             [domain]\n\
             name = {}\n\
             certificate_arn = {}",
            quoted(name),
            quoted(arn)
        );
    }
    t.push_str(
        "\n# Who calls the API: each client gets its own key on the usage plan\n\
         # (printed once, when made; `apifactory keys` manages them).\n",
    );
    for c in &s.clients {
        let _ = writeln!(t, "[[clients]]\nname = {}\n", quoted(c));
    }
    t.trim_end().to_owned() + "\n"
}

/// Asks on the terminal for what the flags left out; an empty answer keeps
/// the default shown in brackets.
pub fn ask(s: &mut Spec) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    let line = |prompt: &str, default: &str| -> anyhow::Result<String> {
        let mut out = std::io::stderr();
        write!(out, "{prompt} [{default}]: ")?;
        out.flush()?;
        let mut answer = String::new();
        if stdin.read_line(&mut answer)? == 0 {
            bail!("no answer to {prompt:?} (end of input): nothing was written");
        }
        let answer = answer.trim();
        Ok(if answer.is_empty() { default } else { answer }.to_owned())
    };
    s.collection = line("Collection (the resource name, e.g. orders)", &s.tenant)?;
    s.key = line("Item key", &s.key)?;
    loop {
        let f = line(
            "A field as NAME:TYPE[:index][:required] (empty when done)",
            "",
        )?;
        if f.is_empty() {
            break;
        }
        match parse_field(&f) {
            Ok(f) => s.fields.push(f),
            Err(e) => eprintln!("{}", e.replacen("--field ", "", 1)),
        }
    }
    let clients = line("Clients (comma-separated)", &format!("{}-client", s.tenant))?;
    s.clients = clients
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    s.rate = line("Requests a second per key", &s.rate.to_string())?
        .parse()
        .context("the rate: expected a number")?;
    s.burst = line("Burst per key", &s.burst.to_string())?
        .parse()
        .context("the burst: expected a whole number")?;
    let quota = line("Quota per key, LIMIT/DAY|WEEK|MONTH (empty for none)", "")?;
    if !quota.is_empty() {
        s.quota = Some(parse_quota(&quota).map_err(|e| anyhow::anyhow!(e))?);
    }
    Ok(())
}

/// Checks the text with the tenant parser, then writes it to
/// `<dir>/<tenant>.toml`, refusing to replace a file that is there.
pub fn write(dir: &Path, s: &Spec) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("{}.toml", s.tenant));
    if path.exists() {
        bail!(
            "{} already exists: edit it, or choose another tenant id (nothing was written)",
            path.display()
        );
    }
    if s.fields.is_empty() {
        bail!(
            "a collection needs at least one field: give --field NAME:TYPE (nothing was written)"
        );
    }
    let text = render(s);
    if let Err(errors) = runtime::Tenant::parse(&path, &text) {
        bail!("the tenant file would not be valid, so nothing was written:\n{errors}");
    }
    if !dir.is_dir() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "{} already exists: edit it, or choose another tenant id (nothing was written)",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
    };
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            tenant: "shop".into(),
            display_name: Some("Shop \"Co\"".into()),
            stage: "prod".into(),
            collection: "orders".into(),
            key: "id".into(),
            fields: vec![
                parse_field("email:string:index:required").unwrap(),
                parse_field("total:number").unwrap(),
                parse_field("tags:string_list").unwrap(),
            ],
            clients: vec!["web".into(), "mobile".into()],
            rate: 5.0,
            burst: 10,
            quota: Some(parse_quota("1000/day").unwrap()),
            domain: Some((
                "api.shop.example.com".into(),
                "arn:aws:acm:us-east-1:111122223333:certificate/8f9a6a3e-3c1b-4f6e-9f57-2d1b0c4a7e11"
                    .into(),
            )),
        }
    }

    #[test]
    fn the_written_file_parses_to_what_the_flags_say() {
        let text = render(&spec());
        let t = runtime::Tenant::parse(Path::new("shop.toml"), &text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(t.id, "shop");
        assert_eq!(t.collection.name, "orders");
        let names: Vec<&str> = t
            .collection
            .fields
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert!(
            names.contains(&"email") && names.contains(&"tags"),
            "{names:?}"
        );
        assert_eq!(t.clients.len(), 2);
        assert_eq!(t.domain.as_ref().unwrap().name, "api.shop.example.com");
        assert!(text.contains("email = { type = \"string\", required = true, index = true }"));
        assert!(
            text.contains("quota = { limit = 1000, period = \"DAY\" }"),
            "{text}"
        );
        assert!(
            text.contains("display_name = \"Shop \\\"Co\\\"\""),
            "{text}"
        );
    }

    #[test]
    fn a_minimal_file_without_quota_or_domain_parses() {
        let mut s = spec();
        s.quota = None;
        s.domain = None;
        s.fields.truncate(1);
        s.clients = vec!["only".into()];
        let text = render(&s);
        runtime::Tenant::parse(Path::new("shop.toml"), &text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(!text.contains("[domain]"));
        let mut none = s.clone();
        none.fields.clear();
        let dir = tempfile::tempdir().unwrap();
        let e = write(dir.path(), &none).unwrap_err().to_string();
        assert!(e.contains("at least one field"), "{e}");
    }

    #[test]
    fn bad_flags_say_what_was_expected() {
        let e = parse_field("email:strin").unwrap_err();
        assert!(
            e.contains("expected a type, one of string,") && e.contains("\"strin\""),
            "{e}"
        );
        let e = parse_field("email").unwrap_err();
        assert!(e.contains("found no type"), "{e}");
        let e = parse_field(":string").unwrap_err();
        assert!(e.contains("found no name"), "{e}");
        let e = parse_field("email:string:unique").unwrap_err();
        assert!(
            e.contains("`index` or `required`") && e.contains("\"unique\""),
            "{e}"
        );
        for q in ["100", "100/YEAR", "x/DAY", "0/DAY", "-1/DAY"] {
            let e = parse_quota(q).unwrap_err();
            assert!(e.contains("LIMIT/PERIOD"), "{q}: {e}");
        }
        assert_eq!(parse_quota("5/week").unwrap(), (5, "WEEK".into()));
    }

    #[test]
    fn an_invalid_result_or_an_existing_file_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut bad = spec();
        bad.collection = "Not A Name".into();
        let e = write(dir.path(), &bad).unwrap_err().to_string();
        assert!(
            e.contains("nothing was written") && e.contains("collection.name"),
            "{e}"
        );
        assert!(!dir.path().join("shop.toml").exists());

        let path = write(dir.path(), &spec()).unwrap();
        let first = std::fs::read_to_string(&path).unwrap();
        let mut other = spec();
        other.collection = "Not A Name Either".into();
        let e = write(dir.path(), &other).unwrap_err().to_string();
        assert!(e.contains("already exists"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
    }
}
