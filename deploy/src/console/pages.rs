//! The console's pages, rendered from plain data (pure, so tests render
//! them without a target). Element ids and `data-*` attributes are the
//! contract the browser tests read:
//!
//! - fleet: `tr[data-tenant=ID]`, `li[data-key-id][data-state]`,
//!   `meter[data-quota-used][data-quota-limit]`, `td[data-drift]`
//!   (`none`, `found`, `unchecked`, `error`), `#check-drift` (AWS);
//! - tenant: `a[data-period]`, `svg[data-chart]` with one
//!   `path[data-series][data-total][data-values]` per line,
//!   `tr[data-key-id] td[data-metric]` (the key id, `none` for requests
//!   without a key, `total`), `#cost[data-cost]`, `#log-tail`;
//! - keys: `tr[data-key-id][data-state]`, `button[data-action][data-key-id]`
//!   (`create` has none), then `#confirm` on the confirmation page and
//!   `code#new-key-value` on the result.

use std::fmt::Write as _;

use super::chart::{Series, chart};
use super::html::{csrf_field, esc, page, url};
use crate::keys::KeyInfo;
use crate::usage::report::{Line, TenantReport};
use crate::usage::{Counts, QuotaNow};

/// A tenant page's period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// The last 60 minutes, by minute.
    Hour,
    /// The last 24 hours, by hour.
    Day,
    /// The last 30 days, by day.
    Month,
}

impl Period {
    pub const ALL: [Period; 3] = [Period::Hour, Period::Day, Period::Month];

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Month => "month",
        }
    }

    pub fn parse(s: &str) -> Option<Period> {
        Period::ALL.into_iter().find(|p| p.as_str() == s)
    }

    fn title(self) -> &'static str {
        match self {
            Period::Hour => "last hour, by minute",
            Period::Day => "last 24 hours, by hour",
            Period::Month => "last 30 days, by day",
        }
    }
}

/// What drift shows for a tenant.
#[derive(Debug, Clone, PartialEq)]
pub enum DriftCell {
    /// Not checked yet (AWS: the "Check drift" button does).
    Unchecked,
    Clean,
    /// One line per differing attribute.
    Differs(Vec<String>),
    Failed(String),
}

/// A tenant's row on the fleet page.
#[derive(Debug, Clone)]
pub struct TenantRow {
    pub id: String,
    pub display_name: String,
    /// `GET /accounts`, `POST /accounts`, ...
    pub routes: Vec<String>,
    pub stage: String,
    pub domain: Option<String>,
    pub clients: Vec<String>,
    pub keys: Vec<KeyInfo>,
    /// By key: the key id, its client and its quota now.
    pub quotas: Vec<(String, String, QuotaNow)>,
    pub last_apply: Option<String>,
    pub drift: DriftCell,
}

pub struct FleetView<'a> {
    pub target: &'a str,
    pub csrf: &'a str,
    pub rows: &'a [TenantRow],
    /// Drift is a button (many calls on AWS) rather than computed on load.
    pub drift_button: bool,
    /// When drift was last checked, if by the button.
    pub drift_checked: Option<&'a str>,
    /// Something the fleet could not read, shown above the table.
    pub problems: &'a [String],
}

fn key_state(k: &KeyInfo) -> String {
    match (&k.expires, k.enabled) {
        (Some(e), true) => format!("rotated, works until {e}"),
        (Some(_), false) => "expired".into(),
        (None, true) => "enabled".into(),
        (None, false) => "disabled".into(),
    }
}

pub fn fleet(v: &FleetView) -> String {
    let mut b = String::from("<h1>Fleet</h1>");
    for p in v.problems {
        let _ = write!(b, "<p class=\"error\">{}</p>", esc(p));
    }
    if v.drift_button {
        let _ = write!(
            b,
            "<form method=\"post\" action=\"/_console/drift\" class=\"inline\">{}\
             <button type=\"submit\" id=\"check-drift\">Check drift</button></form> <span class=\"muted\">{}</span>",
            csrf_field(v.csrf),
            esc(&v.drift_checked.map_or_else(
                || "Drift reads every resource: it is checked on request.".to_owned(),
                |t| format!("Drift last checked {t}.")
            ))
        );
    }
    b.push_str(
        "<table id=\"fleet\"><caption class=\"muted\">Every tenant file, as deployed</caption><thead><tr>\
         <th scope=\"col\">Tenant</th><th scope=\"col\">Routes</th><th scope=\"col\">Stage</th>\
         <th scope=\"col\">Domain</th><th scope=\"col\">Clients</th><th scope=\"col\">Keys</th>\
         <th scope=\"col\">Quota use</th><th scope=\"col\">Last apply</th><th scope=\"col\">Drift</th>\
         </tr></thead><tbody>",
    );
    if v.rows.is_empty() {
        b.push_str("<tr><td colspan=\"9\">No tenant files.</td></tr>");
    }
    for r in v.rows {
        let id = esc(&r.id);
        let _ = write!(
            b,
            "<tr data-tenant=\"{id}\"><th scope=\"row\"><a href=\"/_console/tenants/{u}\">{id}</a>\
             <br><span class=\"muted\">{}</span><br><a href=\"/_console/tenants/{u}/keys\">keys</a></th>",
            esc(&r.display_name),
            u = url(&r.id)
        );
        b.push_str("<td><ul class=\"plain\">");
        for route in &r.routes {
            let _ = write!(b, "<li><code>{}</code></li>", esc(route));
        }
        let _ = write!(
            b,
            "</ul></td><td>{}</td><td>{}</td><td><ul class=\"plain\">",
            esc(&r.stage),
            r.domain
                .as_deref()
                .map_or_else(|| "<span class=\"muted\">none</span>".to_owned(), esc)
        );
        for c in &r.clients {
            let _ = write!(b, "<li>{}</li>", esc(c));
        }
        b.push_str("</ul></td><td><ul class=\"plain\">");
        for k in &r.keys {
            let _ = write!(
                b,
                "<li data-key-id=\"{}\" data-state=\"{}\">{} · <code>{}</code> · {}</li>",
                esc(&k.id),
                if k.enabled { "enabled" } else { "disabled" },
                esc(&k.client),
                esc(&k.id),
                esc(&key_state(k))
            );
        }
        if r.keys.is_empty() {
            b.push_str("<li class=\"muted\">no keys</li>");
        }
        b.push_str("</ul></td><td><ul class=\"plain\">");
        for (key_id, client, q) in &r.quotas {
            let _ = write!(
                b,
                "<li><label for=\"quota-{kid}\">{}</label><meter id=\"quota-{kid}\" min=\"0\" max=\"{lim}\" \
                 value=\"{used}\" high=\"{high}\" data-key-id=\"{kid}\" data-quota-used=\"{used}\" data-quota-limit=\"{lim}\">\
                 {used} of {lim}</meter> {used} / {lim} per {}</li>",
                esc(client),
                esc(&q.period.to_lowercase()),
                kid = esc(key_id),
                lim = q.limit,
                used = q.used,
                high = q.limit * 8 / 10,
            );
        }
        if r.quotas.is_empty() {
            b.push_str("<li class=\"muted\">no quota</li>");
        }
        let _ = write!(
            b,
            "</ul></td><td>{}</td><td data-drift=\"{}\">",
            r.last_apply.as_deref().map_or_else(
                || "<span class=\"muted\">not recorded</span>".to_owned(),
                esc
            ),
            match &r.drift {
                DriftCell::Unchecked => "unchecked",
                DriftCell::Clean => "none",
                DriftCell::Differs(_) => "found",
                DriftCell::Failed(_) => "error",
            }
        );
        match &r.drift {
            DriftCell::Unchecked => b.push_str("<span class=\"muted\">not checked</span>"),
            DriftCell::Clean => b.push_str("<span class=\"ok\">none</span>"),
            DriftCell::Failed(e) => {
                let _ = write!(b, "<span class=\"bad\">cannot tell: {}</span>", esc(e));
            }
            DriftCell::Differs(lines) => {
                let _ = write!(
                    b,
                    "<details><summary class=\"bad\">{} difference(s)</summary><ul>",
                    lines.len()
                );
                for l in lines {
                    let _ = write!(b, "<li>{}</li>", esc(l));
                }
                b.push_str("</ul></details>");
            }
        }
        b.push_str("</td></tr>");
    }
    b.push_str("</tbody></table>");
    page("Fleet", v.target, &b, None)
}

/// The `apifactory usage --json` fields a tenant page shows per key, by
/// their JSON names (nested ones with a dot).
pub const METRICS: [&str; 15] = [
    "requests",
    "status_2xx",
    "status_4xx",
    "status_5xx",
    "errors",
    "throttled",
    "quota_refused",
    "forbidden",
    "latency_ms.p50",
    "latency_ms.p99",
    "bytes_in",
    "bytes_out",
    "invocations",
    "function_errors",
    "cost.total",
];

fn metric_cell(json: &serde_json::Value, name: &str) -> String {
    let v = name.split('.').fold(json, |v, part| &v[part]);
    match v {
        serde_json::Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
        serde_json::Value::Number(n) => format!("{:.6}", n.as_f64().unwrap_or(0.0))
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn metrics_row(key_id: &str, name: &str, client: &str, line: &Line) -> String {
    let json = line.json();
    let mut row = format!(
        "<tr data-key-id=\"{}\"><th scope=\"row\">{}</th><td>{}</td>",
        esc(key_id),
        esc(name),
        esc(client)
    );
    for m in METRICS {
        let _ = write!(
            row,
            "<td class=\"num\" data-metric=\"{m}\">{}</td>",
            esc(&metric_cell(&json, m))
        );
    }
    row.push_str("</tr>");
    row
}

pub struct TenantView<'a> {
    pub target: &'a str,
    pub id: &'a str,
    pub display_name: &'a str,
    pub period: Period,
    /// One label per bucket, oldest first.
    pub labels: Vec<String>,
    /// The tenant's counts per bucket, every key together.
    pub buckets: Vec<Counts>,
    /// The usage report's figures for the tenant over the period.
    pub report: Option<&'a TenantReport>,
    pub currency: &'a str,
    /// From the first bucket to the end of the last, as text.
    pub range: String,
    pub note: Option<String>,
}

/// The tail's script: appends each server-sent line, keeping the last 500.
pub const LOG_TAIL_SCRIPT: &str = r#"(function () {
  var box = document.getElementById("log-tail");
  if (!box || !window.EventSource) { return; }
  var source = new EventSource(box.getAttribute("data-source"));
  source.onmessage = function (e) {
    var atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    box.appendChild(document.createTextNode(e.data + "\n"));
    while (box.childNodes.length > 500) { box.removeChild(box.firstChild); }
    if (atEnd) { box.scrollTop = box.scrollHeight; }
  };
  window.addEventListener("pagehide", function () { source.close(); });
})();"#;

pub fn tenant(v: &TenantView) -> String {
    let id = esc(v.id);
    let u = url(v.id);
    let mut b = format!(
        "<p><a href=\"/_console/\">Fleet</a> › {id}</p><h1>{} <span class=\"muted\">({id})</span></h1>\
         <p><a href=\"/_console/tenants/{u}/keys\">Manage keys</a></p>\
         <nav class=\"periods\" aria-label=\"Period\">",
        esc(v.display_name)
    );
    for p in Period::ALL {
        let current = if p == v.period {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(
            b,
            "<a href=\"/_console/tenants/{u}?period={p}\" data-period=\"{p}\"{current}>{}</a>",
            p.title(),
            p = p.as_str()
        );
    }
    let _ = write!(
        b,
        "</nav><p class=\"muted\">{} ({} UTC)</p>",
        esc(v.period.title()),
        esc(&v.range)
    );
    if let Some(n) = &v.note {
        let _ = write!(b, "<p class=\"notice\">{}</p>", esc(n));
    }
    let col = |f: &dyn Fn(&Counts) -> Option<f64>| -> Vec<Option<f64>> {
        v.buckets.iter().map(f).collect()
    };
    b.push_str("<div class=\"charts\">");
    b += &chart(
        "requests",
        "Requests",
        "requests",
        &v.labels,
        &[Series {
            name: "requests",
            color: "#0b57d0",
            values: col(&|c| Some(c.requests as f64)),
        }],
    );
    b += &chart(
        "errors",
        "Errors",
        "responses",
        &v.labels,
        &[
            Series {
                name: "4xx",
                color: "#e37400",
                values: col(&|c| Some(c.status_4xx as f64)),
            },
            Series {
                name: "5xx",
                color: "#b3261e",
                values: col(&|c| Some(c.status_5xx as f64)),
            },
        ],
    );
    b += &chart(
        "throttled",
        "Refused by throttling and quota",
        "responses",
        &v.labels,
        &[
            Series {
                name: "throttled",
                color: "#8430ce",
                values: col(&|c| Some(c.throttled as f64)),
            },
            Series {
                name: "quota_refused",
                color: "#5b6570",
                values: col(&|c| Some(c.quota_refused as f64)),
            },
        ],
    );
    b += &chart(
        "latency",
        "Latency (ms)",
        "milliseconds",
        &v.labels,
        &[
            Series {
                name: "p50",
                color: "#146c2e",
                values: col(&|c| c.latency_ms(0.5)),
            },
            Series {
                name: "p99",
                color: "#b3261e",
                values: col(&|c| c.latency_ms(0.99)),
            },
        ],
    );
    b.push_str("</div><h2 id=\"keys-heading\">By key</h2>");
    // Fifteen figures per key are wider than most windows: the table
    // scrolls on its own, and takes focus so the keyboard scrolls it too.
    b.push_str("<div class=\"scroll\" tabindex=\"0\" role=\"region\" aria-labelledby=\"keys-heading\">\
                <table id=\"usage-by-key\"><thead><tr><th scope=\"col\">Key</th><th scope=\"col\">Client</th>");
    for m in METRICS {
        let _ = write!(b, "<th scope=\"col\" class=\"num\">{}</th>", esc(m));
    }
    b.push_str("</tr></thead><tbody>");
    let empty = Line::default();
    match v.report {
        Some(t) => {
            for k in &t.keys {
                let key_id = if k.key_id.is_empty() {
                    "none"
                } else {
                    k.key_id.as_str()
                };
                b += &metrics_row(key_id, &k.name, &k.client, &k.total);
            }
            b += &metrics_row("total", "TOTAL", "", &t.total);
        }
        None => b += &metrics_row("total", "TOTAL", "", &empty),
    }
    b.push_str("</tbody></table></div>");
    let cost = v.report.map_or(0.0, |t| t.total.cost.total);
    let _ = write!(
        b,
        "<h2>Cost</h2><p>Estimated for the period: <strong id=\"cost\" data-cost=\"{cost:.9}\">{} {cost:.6}</strong> \
         <span class=\"muted\">(the same prices as <code>apifactory usage</code>)</span></p>",
        esc(v.currency)
    );
    let _ = write!(
        b,
        "<h2 id=\"logs-heading\">Live log</h2><pre id=\"log-tail\" tabindex=\"0\" aria-labelledby=\"logs-heading\" \
         aria-live=\"polite\" data-source=\"/_console/tenants/{u}/logs\"></pre>"
    );
    page(
        &format!("{} usage", v.id),
        v.target,
        &b,
        Some(LOG_TAIL_SCRIPT),
    )
}

/// A change to keys the console can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Rotate,
    Disable,
    Enable,
    Revoke,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::Create,
        Action::Rotate,
        Action::Disable,
        Action::Enable,
        Action::Revoke,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Rotate => "rotate",
            Action::Disable => "disable",
            Action::Enable => "enable",
            Action::Revoke => "revoke",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }

    fn label(self) -> &'static str {
        match self {
            Action::Create => "Create a key",
            Action::Rotate => "Rotate",
            Action::Disable => "Disable",
            Action::Enable => "Enable",
            Action::Revoke => "Revoke",
        }
    }
}

pub struct KeysView<'a> {
    pub target: &'a str,
    pub tenant: &'a str,
    pub keys: &'a [KeyInfo],
    /// The tenant file's clients, offered for a new key.
    pub clients: &'a [String],
}

fn action_button(tenant: &str, action: Action, key: &KeyInfo) -> String {
    let class = if matches!(action, Action::Revoke | Action::Disable) {
        " class=\"danger\""
    } else {
        ""
    };
    format!(
        "<form method=\"get\" action=\"/_console/tenants/{}/keys/confirm\" class=\"inline\">\
         <input type=\"hidden\" name=\"action\" value=\"{a}\"><input type=\"hidden\" name=\"key_id\" value=\"{id}\">\
         <button type=\"submit\"{class} data-action=\"{a}\" data-key-id=\"{id}\" \
         aria-label=\"{} key {id} of {}\">{}</button></form>",
        url(tenant),
        action.label(),
        esc(&key.client),
        action.label(),
        a = action.as_str(),
        id = esc(&key.id),
    )
}

pub fn keys(v: &KeysView) -> String {
    let t = esc(v.tenant);
    let u = url(v.tenant);
    let mut b = format!(
        "<p><a href=\"/_console/\">Fleet</a> › <a href=\"/_console/tenants/{u}\">{t}</a> › keys</p>\
         <h1>Keys of {t}</h1><p class=\"muted\">Values are never stored: a new key's value is shown once, when it is made.</p>\
         <table id=\"keys\"><thead><tr><th scope=\"col\">Client</th><th scope=\"col\">Key id</th><th scope=\"col\">Name</th>\
         <th scope=\"col\">State</th><th scope=\"col\">Origin</th><th scope=\"col\">Created</th><th scope=\"col\">Expires</th>\
         <th scope=\"col\">Last used</th><th scope=\"col\">Actions</th></tr></thead><tbody>"
    );
    for k in v.keys {
        let _ = write!(
            b,
            "<tr data-key-id=\"{}\" data-state=\"{}\"><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>",
            esc(&k.id),
            if k.enabled { "enabled" } else { "disabled" },
            esc(&k.client),
            esc(&k.id),
            esc(&k.name),
            esc(&key_state(k)),
            esc(&k.origin),
            esc(&k.created),
            esc(k.expires.as_deref().unwrap_or("-")),
            esc(k.last_used.as_deref().unwrap_or("-")),
        );
        let mut actions = vec![Action::Rotate];
        actions.push(if k.enabled {
            Action::Disable
        } else {
            Action::Enable
        });
        actions.push(Action::Revoke);
        for a in actions {
            b += &action_button(v.tenant, a, k);
        }
        b.push_str("</td></tr>");
    }
    if v.keys.is_empty() {
        b.push_str("<tr><td colspan=\"9\">No keys.</td></tr>");
    }
    let _ = write!(
        b,
        "</tbody></table><h2>New key</h2><form method=\"get\" action=\"/_console/tenants/{u}/keys/confirm\">\
         <input type=\"hidden\" name=\"action\" value=\"create\">\
         <label for=\"client\">Client</label><input id=\"client\" name=\"client\" required pattern=\"[a-z0-9-]{{1,63}}\" \
         list=\"clients\" value=\"{}\" autocomplete=\"off\"> <datalist id=\"clients\">",
        esc(v.clients.first().map_or("", String::as_str))
    );
    for c in v.clients {
        let _ = write!(b, "<option value=\"{}\">", esc(c));
    }
    b.push_str(
        "</datalist> <button type=\"submit\" data-action=\"create\">Create a key</button></form>",
    );
    page(&format!("{} keys", v.tenant), v.target, &b, None)
}

pub struct ConfirmView<'a> {
    pub target: &'a str,
    pub tenant: &'a str,
    pub csrf: &'a str,
    pub action: Action,
    /// The key acted on (none for create).
    pub key: Option<&'a KeyInfo>,
    /// The client of a new key.
    pub client: &'a str,
}

pub fn confirm(v: &ConfirmView) -> String {
    let t = esc(v.tenant);
    let u = url(v.tenant);
    let what = match (v.action, v.key) {
        (Action::Create, _) => format!(
            "Create a new key for client <strong>{}</strong> of {t}? Its value is shown once.",
            esc(v.client)
        ),
        (Action::Rotate, Some(k)) => format!(
            "Rotate the current key of client <strong>{}</strong> of {t} (key <code>{}</code>)? \
             A new key is made and shown once; the current one keeps working for the grace period, then stops.",
            esc(&k.client),
            esc(&k.id)
        ),
        (Action::Disable, Some(k)) => format!(
            "Disable key <code>{}</code> of client <strong>{}</strong>? It stops working until enabled again.",
            esc(&k.id),
            esc(&k.client)
        ),
        (Action::Enable, Some(k)) => format!(
            "Enable key <code>{}</code> of client <strong>{}</strong>? It works again.",
            esc(&k.id),
            esc(&k.client)
        ),
        (Action::Revoke, Some(k)) => format!(
            "Revoke key <code>{}</code> of client <strong>{}</strong>? It is deleted; this cannot be undone.",
            esc(&k.id),
            esc(&k.client)
        ),
        (_, None) => "No such key.".to_owned(),
    };
    let mut b = format!(
        "<p><a href=\"/_console/\">Fleet</a> › <a href=\"/_console/tenants/{u}/keys\">{t} keys</a> › confirm</p>\
         <h1>{}</h1><p>{what}</p><form method=\"post\" action=\"/_console/tenants/{u}/keys/{}\">{}",
        v.action.label(),
        v.action.as_str(),
        csrf_field(v.csrf)
    );
    if let Some(k) = v.key {
        let _ = write!(
            b,
            "<input type=\"hidden\" name=\"key_id\" value=\"{}\">",
            esc(&k.id)
        );
    }
    if v.action == Action::Create {
        let _ = write!(
            b,
            "<input type=\"hidden\" name=\"client\" value=\"{}\">",
            esc(v.client)
        );
    }
    if v.action == Action::Rotate {
        b.push_str(
            "<p><label for=\"grace\">Grace period of the current key</label>\
             <input id=\"grace\" name=\"grace\" value=\"24h\" required pattern=\"[0-9]+[smhd]?\" \
             aria-describedby=\"grace-help\"> <span id=\"grace-help\" class=\"muted\">90s, 30m, 24h or 7d</span></p>",
        );
    }
    let _ = write!(
        b,
        "<p><button type=\"submit\" id=\"confirm\" class=\"primary\">{}</button> \
         <a href=\"/_console/tenants/{u}/keys\">Cancel</a></p></form>",
        v.action.label()
    );
    page(
        &format!("{} {}", v.action.label(), v.tenant),
        v.target,
        &b,
        None,
    )
}

/// What a key action did; `new_key` is `(key id, value)` shown once.
pub fn done(target: &str, tenant: &str, message: &str, new_key: Option<(&str, &str)>) -> String {
    let u = url(tenant);
    let mut b = format!(
        "<p><a href=\"/_console/\">Fleet</a> › <a href=\"/_console/tenants/{u}/keys\">{} keys</a></p>\
         <h1>Done</h1><p class=\"notice\" role=\"status\">{}</p>",
        esc(tenant),
        esc(message)
    );
    if let Some((id, value)) = new_key {
        let _ = write!(
            b,
            "<p>The new key <code>{}</code>, shown this once (it is not stored; copy it now):</p>\
             <p><code id=\"new-key-value\" data-key-id=\"{}\">{}</code></p>",
            esc(id),
            esc(id),
            esc(value)
        );
    }
    let _ = write!(
        b,
        "<p><a href=\"/_console/tenants/{u}/keys\">Back to the keys</a></p>"
    );
    page(&format!("{tenant} keys"), target, &b, None)
}

/// A page that says what went wrong (never an internal detail to hide:
/// the console's only user is the admin).
pub fn problem(target: &str, title: &str, message: &str) -> String {
    let b = format!(
        "<h1>{}</h1><p class=\"error\" role=\"alert\">{}</p><p><a href=\"/_console/\">Back to the fleet</a></p>",
        esc(title),
        esc(message)
    );
    page(title, target, &b, None)
}

/// The page shown without the admin token: a form to paste it, nothing of
/// the fleet.
pub fn login(message: &str) -> String {
    let b = format!(
        "<h1>Sign in</h1><p>{}</p><form method=\"get\" action=\"/_console/\">\
         <label for=\"token\">Admin token</label><input id=\"token\" name=\"token\" type=\"password\" \
         autocomplete=\"off\" required size=\"50\"> <button type=\"submit\" class=\"primary\">Open the console</button></form>\
         <p class=\"muted\">The token is printed once when <code>apifactory up</code> or <code>apifactory console</code> starts.</p>",
        esc(message)
    );
    page("Sign in", "-", &b, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, client: &str) -> KeyInfo {
        KeyInfo {
            tenant: "acme".into(),
            client: client.into(),
            id: id.into(),
            name: format!("acme-{client}"),
            enabled: true,
            origin: "file".into(),
            created: "2026-11-30T00:00:00Z".into(),
            expires: None,
            last_used: None,
        }
    }

    #[test]
    fn names_from_tenant_files_are_escaped_everywhere() {
        let evil = "<img src=x onerror=alert(1)>";
        let row = TenantRow {
            id: "acme".into(),
            display_name: evil.into(),
            routes: vec!["GET /accounts".into()],
            stage: "prod".into(),
            domain: Some(evil.into()),
            clients: vec![evil.into()],
            keys: vec![key("k1", evil)],
            quotas: vec![(
                "k1".into(),
                evil.into(),
                QuotaNow {
                    limit: 100,
                    period: "MONTH".into(),
                    period_start: "2026-11-01".into(),
                    used: 42,
                    remaining: 58,
                },
            )],
            last_apply: None,
            drift: DriftCell::Differs(vec![evil.into()]),
        };
        let html = fleet(&FleetView {
            target: "local",
            csrf: "c",
            rows: &[row],
            drift_button: false,
            drift_checked: None,
            problems: &[evil.to_owned()],
        });
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(html.contains("tr data-tenant=\"acme\""));
        assert!(html.contains("data-quota-used=\"42\" data-quota-limit=\"100\""));

        let ks = [key("k1", evil)];
        let clients = [evil.to_owned()];
        let html = keys(&KeysView {
            target: "local",
            tenant: "acme",
            keys: &ks,
            clients: &clients,
        });
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("button type=\"submit\" data-action=\"rotate\" data-key-id=\"k1\""));
        let html = confirm(&ConfirmView {
            target: "local",
            tenant: "acme",
            csrf: "c\"><script>",
            action: Action::Create,
            key: None,
            client: evil,
        });
        assert!(
            !html.contains("<img") && !html.contains("<script>"),
            "{html}"
        );
        let html = done("local", "acme", evil, Some(("k1", "v<")));
        assert!(!html.contains("<img") && html.contains(">v&lt;</code>"));
    }

    #[test]
    fn the_key_table_shows_states_but_never_values() {
        let mut rotated = key("k2", "web");
        rotated.expires = Some("2026-12-01T00:00:00Z".into());
        let mut off = key("k3", "web");
        off.enabled = false;
        let ks = [key("k1", "web"), rotated, off];
        let html = keys(&KeysView {
            target: "local",
            tenant: "acme",
            keys: &ks,
            clients: &["web".to_owned()],
        });
        assert!(html.contains("rotated, works until 2026-12-01T00:00:00Z"));
        assert!(html.contains("data-action=\"enable\" data-key-id=\"k3\""));
        assert!(html.contains("data-action=\"disable\" data-key-id=\"k1\""));
        assert!(!html.contains("data-action=\"enable\" data-key-id=\"k1\""));
        assert!(html.contains("data-action=\"create\""));
    }

    #[test]
    fn a_confirmation_posts_with_the_csrf_token() {
        let k = key("k1", "web");
        let html = confirm(&ConfirmView {
            target: "local",
            tenant: "acme",
            csrf: "tok",
            action: Action::Rotate,
            key: Some(&k),
            client: "",
        });
        assert!(html.contains("method=\"post\" action=\"/_console/tenants/acme/keys/rotate\""));
        assert!(html.contains("name=\"csrf\" value=\"tok\""));
        assert!(html.contains("name=\"key_id\" value=\"k1\""));
        assert!(html.contains("id=\"grace\" name=\"grace\""));
        assert!(html.contains("id=\"confirm\""));
    }

    #[test]
    fn the_metric_cells_hold_the_usage_json_numbers() {
        let mut line = Line::default();
        line.counts.requests = 7;
        line.counts.status_2xx = 5;
        line.counts.status_4xx = 2;
        line.counts.latency_us.record(1500);
        let row = metrics_row("k1", "acme-web", "web", &line);
        assert!(row.contains("<td class=\"num\" data-metric=\"requests\">7</td>"));
        assert!(row.contains("data-metric=\"status_2xx\">5<"));
        assert!(row.contains("data-metric=\"errors\">2<"));
        assert!(row.contains("data-metric=\"status_5xx\">0<"));
        assert!(row.contains("data-metric=\"latency_ms.p50\">1."));
        let none = metrics_row("k1", "a", "b", &Line::default());
        assert!(none.contains("data-metric=\"latency_ms.p99\">-<"));
    }

    #[test]
    fn the_login_page_shows_nothing_of_the_fleet() {
        let html = login("A token is needed.");
        assert!(html.contains("name=\"token\""));
        assert!(html.contains("<label for=\"token\">"));
        assert!(!html.contains("data-tenant"));
    }
}
