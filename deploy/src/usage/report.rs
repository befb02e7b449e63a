//! A usage report: the gathered figures added up per tenant, key and
//! period, priced, and written as a table, JSON or CSV; and the per-client
//! statement of a month (`invoice`).
//!
//! Every total is the sum of the lines under it (counts merge, costs
//! add), so a billing pipeline reading the JSON or CSV gets the same
//! totals the table shows. API Gateway's tiers are per account and month:
//! a request costs the month's tiered cost spread over the month's
//! billed requests of everything in the report.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Value, json};
use time::{Date, Month, OffsetDateTime};

use super::prices::{Cost, Prices, billed_requests};
use super::{AlarmState, Counts, Gathered, KeyInfo, QuotaNow};

/// The length of a report's periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    Hour,
    Day,
    Month,
}

/// The period label of a span's start: `2026-11-29T13:00Z`, `2026-11-29`
/// or `2026-11`.
pub fn period_label(by: By, start: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(start).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    match by {
        By::Hour => format!("{}T{:02}:00Z", t.date(), t.hour()),
        By::Day => t.date().to_string(),
        By::Month => format!("{:04}-{:02}", t.year(), u8::from(t.month())),
    }
}

/// A key's counts by period label, with the price of a request in the
/// period's month.
type Periods = BTreeMap<String, (Counts, f64)>;

/// Counts and what they cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Line {
    pub counts: Counts,
    pub cost: Cost,
}

impl Line {
    fn add(&mut self, o: &Line) {
        self.counts.merge(&o.counts);
        self.cost.add(&o.cost);
    }

    /// The figures as JSON (the shape of `--json` lines).
    pub fn json(&self) -> Value {
        let c = &self.counts;
        let ms = |q| c.latency_ms(q);
        json!({
            "requests": c.requests,
            "billed_requests": billed_requests(c),
            "status_2xx": c.status_2xx,
            "status_4xx": c.status_4xx,
            "status_5xx": c.status_5xx,
            "errors": c.errors(),
            "throttled": c.throttled,
            "quota_refused": c.quota_refused,
            "forbidden": c.forbidden,
            "bytes_in": c.bytes_in,
            "bytes_out": c.bytes_out,
            "latency_ms": { "p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99) },
            "invocations": c.invocations,
            "function_errors": c.function_errors,
            "duration_ms": c.duration_us as f64 / 1000.0,
            "billed_ms": c.billed_ms,
            "gb_seconds": gb_seconds(c),
            "read_units": c.read_units,
            "write_units": c.write_units,
            "log_bytes": c.log_bytes,
            "cost": self.cost,
        })
    }
}

fn gb_seconds(c: &Counts) -> f64 {
    c.billed_mb_ms as f64 / 1024.0 / 1000.0
}

#[derive(Debug, Clone)]
pub struct KeyReport {
    /// Empty for the tenant's requests without a usable key.
    pub key_id: String,
    pub name: String,
    pub client: String,
    pub quota: Option<QuotaNow>,
    /// By period label, in order.
    pub periods: BTreeMap<String, Line>,
    pub total: Line,
}

#[derive(Debug, Clone)]
pub struct TenantReport {
    pub tenant: String,
    pub keys: Vec<KeyReport>,
    pub total: Line,
    /// The tenant's alarms, as last evaluated.
    pub alarms: Vec<AlarmState>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub from: Date,
    /// Inclusive.
    pub to: Date,
    pub by: By,
    pub tenants: Vec<TenantReport>,
    pub total: Line,
    pub prices: Prices,
}

impl Report {
    /// Adds up `gathered` (already limited to the range and tenants) per
    /// tenant, key and period; only the keys of `client` when given.
    pub fn build(
        gathered: &Gathered,
        from: Date,
        to: Date,
        by: By,
        client: Option<&str>,
        prices: &Prices,
    ) -> Report {
        let keys: BTreeMap<&str, &KeyInfo> = gathered
            .keys
            .iter()
            .map(|k| (k.key_id.as_str(), k))
            .collect();
        let keep = |key_id: &str| match client {
            None => true,
            Some(c) => keys.get(key_id).is_some_and(|k| k.client == c),
        };
        // API Gateway's rate per month, over everything gathered.
        let mut month_requests: BTreeMap<String, u64> = BTreeMap::new();
        for f in &gathered.figures {
            *month_requests
                .entry(period_label(By::Month, f.start))
                .or_default() += billed_requests(&f.counts);
        }
        let rates: BTreeMap<String, f64> = month_requests
            .into_iter()
            .map(|(m, n)| (m, prices.gateway_rate(n)))
            .collect();

        // tenant → key → period → counts.
        let mut tree: BTreeMap<&str, BTreeMap<&str, Periods>> = BTreeMap::new();
        for a in &gathered.alarms {
            tree.entry(&a.tenant).or_default();
        }
        for k in &gathered.keys {
            if keep(&k.key_id) {
                tree.entry(&k.tenant)
                    .or_default()
                    .entry(&k.key_id)
                    .or_default();
            }
        }
        for f in &gathered.figures {
            if !keep(&f.key_id) {
                continue;
            }
            let rate = rates[&period_label(By::Month, f.start)];
            let slot = tree
                .entry(&f.tenant)
                .or_default()
                .entry(&f.key_id)
                .or_default()
                .entry(period_label(by, f.start))
                .or_insert_with(|| (Counts::default(), rate));
            slot.0.merge(&f.counts);
        }

        let mut report = Report {
            from,
            to,
            by,
            tenants: Vec::new(),
            total: Line::default(),
            prices: prices.clone(),
        };
        for (tenant, key_map) in tree {
            let arch = gathered.arch.get(tenant).map_or("x86_64", String::as_str);
            let mut t = TenantReport {
                tenant: tenant.to_owned(),
                keys: Vec::new(),
                total: Line::default(),
                alarms: gathered
                    .alarms
                    .iter()
                    .filter(|a| a.tenant == tenant)
                    .cloned()
                    .collect(),
            };
            for (key_id, periods) in key_map {
                let info = keys.get(key_id);
                let mut k = KeyReport {
                    key_id: key_id.to_owned(),
                    name: info.map_or_else(
                        || {
                            if key_id.is_empty() {
                                "(no key)".into()
                            } else {
                                key_id.to_owned()
                            }
                        },
                        |i| i.name.clone(),
                    ),
                    client: info.map(|i| i.client.clone()).unwrap_or_default(),
                    quota: gathered.quotas.get(key_id).cloned(),
                    periods: BTreeMap::new(),
                    total: Line::default(),
                };
                for (label, (counts, rate)) in periods {
                    let line = Line {
                        cost: prices.cost(&counts, arch, rate),
                        counts,
                    };
                    k.total.add(&line);
                    k.periods.insert(label, line);
                }
                t.total.add(&k.total);
                t.keys.push(k);
            }
            // Keys by name, the keyless requests last.
            t.keys.sort_by(|a, b| {
                (a.key_id.is_empty(), &a.name).cmp(&(b.key_id.is_empty(), &b.name))
            });
            report.total.add(&t.total);
            report.tenants.push(t);
        }
        report
    }

    pub fn json(&self) -> Value {
        let tenants: Vec<Value> = self
            .tenants
            .iter()
            .map(|t| {
                let keys: Vec<Value> = t
                    .keys
                    .iter()
                    .map(|k| {
                        let periods: Vec<Value> = k
                            .periods
                            .iter()
                            .map(|(label, line)| {
                                let mut v = line.json();
                                v["period"] = json!(label);
                                v
                            })
                            .collect();
                        json!({
                            "key_id": (!k.key_id.is_empty()).then_some(&k.key_id),
                            "key": k.name,
                            "client": (!k.client.is_empty()).then_some(&k.client),
                            "quota": k.quota.as_ref().map(|q| {
                                let mut v = json!(q);
                                v["share"] = json!(q.share());
                                v
                            }),
                            "totals": k.total.json(),
                            "periods": periods,
                        })
                    })
                    .collect();
                json!({ "tenant": t.tenant, "totals": t.total.json(), "keys": keys, "alarms": t.alarms })
            })
            .collect();
        json!({
            "from": self.from.to_string(),
            "to": self.to.to_string(),
            "by": self.by,
            "prices": { "region": self.prices.region, "currency": self.prices.currency, "read": self.prices.read },
            "tenants": tenants,
            "totals": self.total.json(),
        })
    }

    /// One row per tenant, key and period.
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "tenant,key_id,key,client,period,requests,billed_requests,status_2xx,status_4xx,status_5xx,throttled,quota_refused,forbidden,bytes_in,bytes_out,p50_ms,p90_ms,p99_ms,invocations,function_errors,billed_ms,gb_seconds,read_units,write_units,log_bytes,cost_api_gateway,cost_lambda_requests,cost_lambda_compute,cost_dynamodb,cost_logs,cost_total\n",
        );
        for t in &self.tenants {
            for k in &t.keys {
                for (label, line) in &k.periods {
                    let c = &line.counts;
                    let ms = |q| {
                        c.latency_ms(q)
                            .map(|v| format!("{v:.3}"))
                            .unwrap_or_default()
                    };
                    let cost = &line.cost;
                    let _ = writeln!(
                        out,
                        "{},{},{},{},{label},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.6},{},{},{},{:.9},{:.9},{:.9},{:.9},{:.9},{:.9}",
                        csv_field(&t.tenant),
                        csv_field(&k.key_id),
                        csv_field(&k.name),
                        csv_field(&k.client),
                        c.requests,
                        billed_requests(c),
                        c.status_2xx,
                        c.status_4xx,
                        c.status_5xx,
                        c.throttled,
                        c.quota_refused,
                        c.forbidden,
                        c.bytes_in,
                        c.bytes_out,
                        ms(0.5),
                        ms(0.9),
                        ms(0.99),
                        c.invocations,
                        c.function_errors,
                        c.billed_ms,
                        gb_seconds(c),
                        c.read_units,
                        c.write_units,
                        c.log_bytes,
                        cost.api_gateway,
                        cost.lambda_requests,
                        cost.lambda_compute,
                        cost.dynamodb,
                        cost.logs,
                        cost.total,
                    );
                }
            }
        }
        out
    }

    /// The table a person reads: per tenant, a line per key and period,
    /// the key's quota now, and the tenant's total.
    pub fn table(&self) -> String {
        let mut out = format!(
            "Usage {} .. {} by {}; cost estimated at {} prices read {} ({})\n",
            self.from,
            self.to,
            match self.by {
                By::Hour => "hour",
                By::Day => "day",
                By::Month => "month",
            },
            self.prices.region,
            self.prices.read,
            self.prices.currency
        );
        if self.tenants.is_empty() {
            out.push_str("\nNo tenants.\n");
            return out;
        }
        for t in &self.tenants {
            let _ = writeln!(out, "\n{}", t.tenant);
            let _ = writeln!(
                out,
                "  {:<30} {:<17} {:>9} {:>7} {:>9} {:>8} {:>22} {:>8} {:>8} {:>11}",
                "KEY",
                "PERIOD",
                "REQUESTS",
                "ERRORS",
                "THROTTLED",
                "QUOTA429",
                "QUOTA USED/LIMIT",
                "P50 MS",
                "P99 MS",
                "COST"
            );
            for k in &t.keys {
                let quota = k.quota.as_ref().map_or_else(String::new, quota_cell);
                if k.periods.is_empty() {
                    let _ = writeln!(
                        out,
                        "  {:<30} {:<17} {:>9} {:>7} {:>9} {:>8} {:>22}",
                        k.name, "-", 0, 0, 0, 0, quota
                    );
                    continue;
                }
                let many = k.periods.len() > 1;
                for (i, (label, line)) in k.periods.iter().enumerate() {
                    let q = if !many && i == 0 { quota.as_str() } else { "" };
                    row(&mut out, &k.name, label, line, q);
                }
                if many {
                    row(&mut out, &k.name, "total", &k.total, &quota);
                }
            }
            row(&mut out, "TOTAL", "", &t.total, "");
            if !t.alarms.is_empty() {
                let states: Vec<String> = t
                    .alarms
                    .iter()
                    .map(|a| {
                        let value = a
                            .value
                            .map_or_else(String::new, |v| format!(", {} {v:.3}", a.metric));
                        format!("{} {} since {}{value}", a.name, a.state, a.since)
                    })
                    .collect();
                let _ = writeln!(out, "  alarms: {}", states.join("; "));
            }
        }
        if self.tenants.len() > 1 {
            out.push('\n');
            row(&mut out, "ALL TENANTS", "", &self.total, "");
        }
        out.push_str("\nQuota marks: * at 80 % or more of the limit, ** at 100 %.\n");
        out
    }
}

fn row(out: &mut String, name: &str, period: &str, line: &Line, quota: &str) {
    let c = &line.counts;
    let ms = |q| {
        c.latency_ms(q)
            .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
    };
    let _ = writeln!(
        out,
        "  {:<30} {:<17} {:>9} {:>7} {:>9} {:>8} {:>22} {:>8} {:>8} {:>11}",
        name,
        period,
        c.requests,
        c.errors(),
        c.throttled,
        c.quota_refused,
        quota,
        ms(0.5),
        ms(0.99),
        format!("${:.6}", line.cost.total),
    );
}

/// `used/limit (share %)`, marked at 80 % and 100 %.
fn quota_cell(q: &QuotaNow) -> String {
    let share = q.share();
    let mark = if share >= 1.0 {
        "**"
    } else if share >= 0.8 {
        "*"
    } else {
        ""
    };
    format!(
        "{}/{} {} {:.0}%{mark}",
        q.used,
        q.limit,
        q.period.to_lowercase(),
        share * 100.0
    )
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The first and last day of a month given as `YYYY-MM`.
pub fn month_range(month: &str) -> anyhow::Result<(Date, Date)> {
    let bad = || anyhow::anyhow!("--month {month:?}: expected YYYY-MM, for example 2026-11");
    let (y, m) = month.split_once('-').ok_or_else(bad)?;
    let year: i32 = y.parse().map_err(|_| bad())?;
    let month_n: u8 = m.parse().map_err(|_| bad())?;
    let m = Month::try_from(month_n).map_err(|_| bad())?;
    let first = Date::from_calendar_date(year, m, 1).map_err(|_| bad())?;
    let last = Date::from_calendar_date(year, m, m.length(year)).map_err(|_| bad())?;
    Ok((first, last))
}

/// The statement of each client of a tenant for the report's range: what
/// each of its keys used and what it cost, by service.
pub fn invoice(report: &Report, tenant: &str, display_name: Option<&str>) -> String {
    let mut out = String::new();
    let Some(t) = report.tenants.iter().find(|t| t.tenant == tenant) else {
        let _ = writeln!(
            out,
            "No usage or keys for tenant {tenant} from {} to {}.",
            report.from, report.to
        );
        return out;
    };
    let mut clients: BTreeMap<&str, Vec<&KeyReport>> = BTreeMap::new();
    for k in t.keys.iter().filter(|k| !k.key_id.is_empty()) {
        clients.entry(k.client.as_str()).or_default().push(k);
    }
    let p = &report.prices;
    for (client, keys) in clients {
        let mut line = Line::default();
        for k in &keys {
            line.add(&k.total);
        }
        let c = &line.counts;
        let _ = writeln!(out, "{}", "=".repeat(72));
        let _ = writeln!(
            out,
            "STATEMENT  {}  client {client}",
            display_name.map_or_else(|| tenant.to_owned(), |d| format!("{d} ({tenant})"))
        );
        let _ = writeln!(out, "Period     {} to {} (UTC)", report.from, report.to);
        let _ = writeln!(
            out,
            "Prices     AWS {} list prices read {}, in {}",
            p.region, p.read, p.currency
        );
        let _ = writeln!(out, "{}", "-".repeat(72));
        let _ = writeln!(
            out,
            "  {:<28} {:>10} {:>10} {:>10} {:>9}",
            "API KEY", "REQUESTS", "BILLABLE", "ERRORS", "REFUSED"
        );
        for k in &keys {
            let kc = &k.total.counts;
            let _ = writeln!(
                out,
                "  {:<28} {:>10} {:>10} {:>10} {:>9}",
                k.name,
                kc.requests,
                billed_requests(kc),
                kc.errors(),
                kc.throttled + kc.quota_refused + kc.forbidden
            );
        }
        let _ = writeln!(out, "{}", "-".repeat(72));
        let _ = writeln!(out, "  {:<28} {:>16} {:>24}", "ITEM", "QUANTITY", "AMOUNT");
        let items = [
            (
                "API requests",
                format!("{}", billed_requests(c)),
                line.cost.api_gateway,
            ),
            (
                "Function requests",
                format!("{}", c.invocations),
                line.cost.lambda_requests,
            ),
            (
                "Function compute (GB-s)",
                format!("{:.3}", gb_seconds(c)),
                line.cost.lambda_compute,
            ),
            (
                "Table requests (RRU/WRU)",
                format!("{}/{}", c.read_units, c.write_units),
                line.cost.dynamodb,
            ),
            (
                "Log ingestion (MB)",
                format!("{:.3}", c.log_bytes as f64 / 1_048_576.0),
                line.cost.logs,
            ),
        ];
        for (name, qty, amount) in items {
            let _ = writeln!(out, "  {name:<28} {qty:>16} {:>24}", format!("{amount:.6}"));
        }
        let _ = writeln!(out, "{}", "-".repeat(72));
        let _ = writeln!(
            out,
            "  {:<28} {:>16} {:>24}",
            "TOTAL",
            "",
            format!("{} {:.6}", p.currency, line.cost.total)
        );
        if let Some(q) = keys.iter().find_map(|k| k.quota.as_ref()) {
            let _ = writeln!(
                out,
                "  Quota this {} (from {}): {} of {} used",
                q.period.to_lowercase(),
                q.period_start,
                q.used,
                q.limit
            );
        }
        out.push('\n');
    }
    if out.is_empty() {
        let _ = writeln!(out, "Tenant {tenant} has no client keys.");
    }
    out
}
