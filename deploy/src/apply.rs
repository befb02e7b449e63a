//! Carries out a plan: tenants in parallel, each tenant's actions in order,
//! one attempt per action. One tenant's failure stops that tenant only.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::plan::{Action, Change, Plan};
use crate::target::{Secret, Target};

/// How one tenant's part of the plan went.
#[derive(Debug, Clone, Serialize)]
pub struct TenantReport {
    pub tenant: String,
    pub planned: usize,
    pub applied: usize,
    /// The action that failed and why; the tenant's later actions did not run.
    pub error: Option<String>,
    /// Key values created by this apply, each shown once.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<Secret>,
}

impl TenantReport {
    /// A tenant with nothing to do.
    pub fn none(tenant: String) -> TenantReport {
        TenantReport {
            tenant,
            planned: 0,
            applied: 0,
            error: None,
            secrets: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub tenants: Vec<TenantReport>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.tenants.iter().all(|t| t.error.is_none())
    }

    pub fn secrets(&self) -> impl Iterator<Item = &Secret> {
        self.tenants.iter().flat_map(|t| t.secrets.iter())
    }
}

/// Told about each action as it finishes (progress bars, log lines).
pub trait Progress: Send + Sync + 'static {
    /// A tenant's part is known: `actions` to go (a pipelined apply plans
    /// each tenant as it goes, so its bar starts then).
    fn planned(&self, _tenant: &str, _actions: usize) {}
    fn done(&self, action: &Action, result: &Result<(), String>);
}

/// Prints nothing.
pub struct Quiet;
impl Progress for Quiet {
    fn done(&self, _: &Action, _: &Result<(), String>) {}
}

/// A bar per tenant on a terminal, a line per action elsewhere; both on
/// stderr, so that `--json` output on stdout stays whole.
pub fn progress(plan: &Plan) -> Arc<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Arc::new(Bars::new(plan))
    } else {
        Arc::new(Lines)
    }
}

fn sign(change: &Change) -> &'static str {
    match change {
        Change::Create => "+",
        Change::Update { .. } => "~",
        Change::Delete => "-",
    }
}

/// One line per action on stderr.
pub struct Lines;
impl Progress for Lines {
    fn done(&self, a: &Action, result: &Result<(), String>) {
        let sign = sign(&a.change);
        match result {
            Ok(()) => eprintln!("{}: {sign} {} done", a.address.tenant, a.address),
            Err(e) => eprintln!("{}: {sign} {} FAILED: {e}", a.address.tenant, a.address),
        }
    }
}

pub async fn apply<T: Target>(
    plan: &Plan,
    target: Arc<T>,
    concurrency: usize,
    progress: Arc<dyn Progress>,
) -> Report {
    let mut by_tenant: BTreeMap<String, Vec<Action>> = BTreeMap::new();
    for a in &plan.actions {
        by_tenant
            .entry(a.address.tenant.clone())
            .or_default()
            .push(a.clone());
    }
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (tenant, actions) in by_tenant {
        let (target, gate, progress) = (target.clone(), gate.clone(), progress.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            apply_tenant(target.as_ref(), tenant, &actions, progress.as_ref()).await
        });
    }
    let report = gather(tasks).await;
    // What was created must be visible to the next run's observe before
    // this run counts as done.
    settle(target.as_ref()).await;
    report
}

/// One tenant's actions, in order, one attempt each; the first failure
/// ends the tenant's part.
pub async fn apply_tenant<T: Target>(
    target: &T,
    tenant: String,
    actions: &[Action],
    progress: &dyn Progress,
) -> TenantReport {
    let mut report = TenantReport {
        planned: actions.len(),
        ..TenantReport::none(tenant)
    };
    for action in actions {
        let result = target.apply(action).await;
        let shown = result.as_ref().map(|_| ()).map_err(|e| format!("{e:#}"));
        progress.done(action, &shown);
        match result {
            Ok(applied) => {
                report.applied += 1;
                report.secrets.extend(applied.secret);
            }
            Err(e) => {
                report.error = Some(format!("{}: {e:#}", action.address));
                break;
            }
        }
    }
    report
}

/// The tenants' reports as their tasks end, in tenant order.
pub async fn gather(mut tasks: tokio::task::JoinSet<TenantReport>) -> Report {
    let mut report = Report::default();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(t) => report.tenants.push(t),
            Err(e) => report.tenants.push(TenantReport {
                tenant: "?".into(),
                planned: 0,
                applied: 0,
                error: Some(format!("apply task failed: {e}")),
                secrets: Vec::new(),
            }),
        }
    }
    report.tenants.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    report
}

/// Returns once what the run created is visible to the next run's reads;
/// a failure to wait is a warning, the run's work stands.
pub async fn settle<T: Target>(target: &T) {
    if let Err(e) = target.settle().await {
        eprintln!("warning: {e:#}; a run started now may not see all of it yet");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tenants.is_empty() {
            return write!(f, "Nothing to apply.");
        }
        writeln!(
            f,
            "{:<16} {:<8} {:>8}  error",
            "tenant", "result", "actions"
        )?;
        for t in &self.tenants {
            writeln!(
                f,
                "{:<16} {:<8} {:>3}/{:<4}  {}",
                t.tenant,
                if t.error.is_none() { "ok" } else { "FAILED" },
                t.applied,
                t.planned,
                t.error.as_deref().unwrap_or("")
            )?;
        }
        let failed = self.tenants.iter().filter(|t| t.error.is_some()).count();
        write!(
            f,
            "{} tenant(s) applied, {failed} failed.",
            self.tenants.len() - failed
        )
    }
}

/// One progress bar per tenant, on a terminal, added as each tenant's
/// part becomes known.
struct Bars {
    multi: MultiProgress,
    style: ProgressStyle,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    fn new(p: &Plan) -> Bars {
        let bars = Bars {
            multi: MultiProgress::new(),
            style: ProgressStyle::with_template("{prefix:<16} [{bar:30}] {pos:>3}/{len:<3} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            bars: Mutex::new(HashMap::new()),
        };
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for a in &p.actions {
            *counts.entry(a.address.tenant.as_str()).or_default() += 1;
        }
        for (tenant, n) in counts {
            bars.planned(tenant, n);
        }
        bars
    }
}

impl Progress for Bars {
    fn planned(&self, tenant: &str, actions: usize) {
        if actions == 0 {
            return;
        }
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        bars.entry(tenant.to_owned()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(actions as u64));
            bar.set_style(self.style.clone());
            bar.set_prefix(tenant.to_owned());
            bar
        });
    }

    fn done(&self, a: &Action, result: &Result<(), String>) {
        let Ok(bars) = self.bars.lock() else {
            return;
        };
        let Some(bar) = bars.get(&a.address.tenant) else {
            return;
        };
        let sign = sign(&a.change);
        match result {
            Ok(()) => {
                bar.inc(1);
                bar.set_message(format!("{sign} {}", a.address));
                if bar.position() >= bar.length().unwrap_or(0) {
                    bar.finish_with_message("done");
                }
            }
            Err(e) => bar.abandon_with_message(format!("FAILED {sign} {}: {e}", a.address)),
        }
    }
}

/// The table of new key values, shown once.
pub fn secrets_table(secrets: &[&Secret]) -> String {
    if secrets.is_empty() {
        return String::new();
    }
    let mut out = String::from("New API keys (shown once, not stored: keep them now):\n");
    for s in secrets {
        let _ = writeln!(
            out,
            "  {:<10} {:<16} id {:<10}  x-api-key: {}",
            s.tenant, s.client, s.id, s.value
        );
    }
    out
}
