//! Carries out a plan: tenants in parallel, each tenant's actions in
//! dependency order, one attempt per action. One tenant's failure stops
//! that tenant only.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::plan::{Action, Change, Plan};
use crate::resource::Kind;
use crate::target::{Secret, Target, in_place};

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
    for (place, (tenant, actions)) in (1..).zip(by_tenant) {
        let (target, gate, progress) = (target.clone(), gate.clone(), progress.clone());
        tasks.spawn(in_place(place, async move {
            let _permit = gate.acquire_owned().await;
            apply_tenant(target.as_ref(), tenant, &actions, progress.as_ref()).await
        }));
    }
    let report = gather(tasks).await;
    // What was created must be visible to the next run's observe before
    // this run counts as done.
    settle(target.as_ref()).await;
    report
}

/// One tenant's actions, one attempt each; the first failure ends the
/// tenant's part (actions already running finish, none starts). On a
/// target with [`Target::concurrent_actions`], an action starts as soon as
/// every earlier action it must follow ([`follows`]) has finished: the
/// five functions of a tenant update at once, and its REST API goes out
/// when they are done, not after its table's and keys' turns. Elsewhere,
/// in plan order.
pub async fn apply_tenant<T: Target>(
    target: &T,
    tenant: String,
    actions: &[Action],
    progress: &dyn Progress,
) -> TenantReport {
    use futures_util::stream::{FuturesUnordered, StreamExt};

    let mut report = TenantReport {
        planned: actions.len(),
        ..TenantReport::none(tenant)
    };
    let concurrent = target.concurrent_actions();
    let mut started = vec![false; actions.len()];
    let mut finished = vec![false; actions.len()];
    let mut running = FuturesUnordered::new();
    loop {
        if report.error.is_none() {
            for i in 0..actions.len() {
                let ready = !started[i]
                    && (0..i)
                        .all(|j| finished[j] || (concurrent && !follows(&actions[i], &actions[j])));
                if ready {
                    started[i] = true;
                    running.push(async move { (i, target.apply(&actions[i]).await) });
                }
            }
        }
        let Some((i, result)) = running.next().await else {
            break;
        };
        finished[i] = true;
        let action = &actions[i];
        let shown = result.as_ref().map(|_| ()).map_err(|e| format!("{e:#}"));
        progress.done(action, &shown);
        match result {
            Ok(applied) => {
                report.applied += 1;
                report.secrets.extend(applied.secret);
            }
            Err(e) if report.error.is_none() => {
                report.error = Some(format!("{}: {e:#}", action.address));
            }
            Err(_) => {}
        }
    }
    report
}

/// Whether `later` must wait for `earlier`, an action before it in the
/// tenant's plan order: a stamp (cleared first, written last) and a delete
/// wait for everything before them and hold back everything after; a
/// create or update waits for those of the kinds it is made from.
pub fn follows(later: &Action, earlier: &Action) -> bool {
    let barrier = |a: &Action| a.address.kind == Kind::Stamp || a.change == Change::Delete;
    barrier(later) || barrier(earlier) || later.address.kind.depends_on(earlier.address.kind)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Observed, Options, plan};
    use crate::target::{MemoryTarget, desired_from, file};

    #[test]
    fn kinds_follow_what_they_are_made_from() {
        assert!(Kind::Function.depends_on(Kind::Role));
        assert!(Kind::Api.depends_on(Kind::Table), "through the functions");
        assert!(Kind::ApiKey.depends_on(Kind::Api));
        assert!(Kind::Domain.depends_on(Kind::Stage));
        assert!(!Kind::Domain.depends_on(Kind::ApiKey));
        assert!(!Kind::Table.depends_on(Kind::Role));
        assert!(!Kind::Function.depends_on(Kind::Function));
        assert!(!Kind::Stage.depends_on(Kind::UsagePlan));
        for k in Kind::ALL {
            assert!(!k.depends_on(k), "{k} depends on itself");
            for other in Kind::ALL {
                assert!(
                    !(k.depends_on(other) && other.depends_on(k)),
                    "{k} and {other} depend on each other"
                );
            }
        }
    }

    /// Index of the first log line equal to `line`.
    fn at(log: &[String], line: &str) -> usize {
        log.iter()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("{line:?} not in {log:#?}"))
    }

    #[tokio::test]
    async fn a_tenant_runs_its_independent_actions_at_once_and_the_rest_in_order() {
        let desired = desired_from(&[("acme", file("acme"))]);
        let p = plan(&desired, &Observed::default(), &Options::default());
        let target = Arc::new(MemoryTarget {
            concurrent: true,
            ..MemoryTarget::default()
        });
        let report = apply(&p, target.clone(), 1, Arc::new(Quiet)).await;
        assert!(report.ok(), "{report}");
        assert_eq!(report.tenants[0].applied, p.actions.len());
        let log = target.log();
        let address = |kind: Kind| {
            p.actions
                .iter()
                .find(|a| a.address.kind == kind)
                .unwrap()
                .address
                .to_string()
        };
        let (table, role) = (address(Kind::Table), address(Kind::Role));
        // Table, role and log groups need nothing: all started before any
        // of them is done.
        let first_done = log.iter().position(|l| l.starts_with("done ")).unwrap();
        assert!(at(&log, &format!("apply {table}")) < first_done);
        assert!(at(&log, &format!("apply {role}")) < first_done);
        // Every function starts after its role, and the API after every
        // function; two functions run at once.
        let functions: Vec<&Action> = p
            .actions
            .iter()
            .filter(|a| a.address.kind == Kind::Function)
            .collect();
        assert!(functions.len() >= 4);
        let api = p
            .actions
            .iter()
            .find(|a| a.address.kind == Kind::Api)
            .unwrap();
        for f in &functions {
            assert!(at(&log, &format!("done {role}")) < at(&log, &format!("apply {}", f.address)));
            assert!(
                at(&log, &format!("done {}", f.address))
                    < at(&log, &format!("apply {}", api.address))
            );
        }
        assert!(
            at(&log, &format!("apply {}", functions[1].address))
                < at(&log, &format!("done {}", functions[0].address)),
            "the functions ran one after another: {log:#?}"
        );
        // The stamp is last, after everything is done.
        let stamp = p.actions.last().unwrap();
        assert_eq!(stamp.address.kind, Kind::Stamp);
        assert_eq!(log[log.len() - 2], format!("apply {}", stamp.address));
    }

    #[tokio::test]
    async fn a_failure_starts_nothing_more_of_that_tenant() {
        let desired = desired_from(&[("acme", file("acme"))]);
        let p = plan(&desired, &Observed::default(), &Options::default());
        let role = p
            .actions
            .iter()
            .find(|a| a.address.kind == Kind::Role)
            .unwrap()
            .address
            .clone();
        let target = Arc::new(MemoryTarget {
            concurrent: true,
            fail_on: Some(role.clone()),
            ..MemoryTarget::default()
        });
        let report = apply(&p, target.clone(), 1, Arc::new(Quiet)).await;
        let t = &report.tenants[0];
        assert!(t.error.as_deref().unwrap().starts_with(&role.to_string()));
        let log = target.log();
        // What ran beside the role finished; nothing made from it started.
        assert!(
            log.iter()
                .all(|l| !l.starts_with("apply function") && !l.starts_with("apply api ")),
            "{log:#?}"
        );
        let started = log.iter().filter(|l| l.starts_with("apply ")).count();
        assert_eq!(t.applied, started - 1, "{log:#?}");
    }
}
