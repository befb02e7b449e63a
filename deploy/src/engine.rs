//! The one deploy path, for every target: load the tenant files, compute
//! what is desired, observe what exists, plan, show the plan, confirm and
//! apply. `main.rs` parses the command line and picks the target; `up`
//! deploys through here too. What differs between targets lives behind
//! [`Target`]; nothing here knows which target it runs on.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use runtime::Tenant;

use crate::apply::{Progress, Quiet, Report, apply, progress, secrets_table};
use crate::desired::{Code, Desired, desired};
use crate::keys::now_unix;
use crate::pipeline::Outcome;
use crate::plan::{Observed, Options, Plan, Waiting, plan};
use crate::resource::{Address, Kind};
use crate::target::Target;
use crate::tenants::TenantSet;

/// How a command shows what it does.
#[derive(Debug, Clone, Copy, Default)]
pub struct Show {
    /// The plan and the report as JSON on stdout (progress stays on stderr).
    pub json: bool,
    /// Apply without asking, even on a terminal.
    pub yes: bool,
}

/// A deploy command, whatever the target.
pub enum Job<'a> {
    Plan {
        set: &'a TenantSet,
        opts: &'a Options,
        refresh: bool,
        show: Show,
    },
    Apply {
        set: &'a TenantSet,
        opts: &'a Options,
        refresh: bool,
        concurrency: usize,
        wait: bool,
        show: Show,
    },
    Destroy {
        tenant: &'a str,
        delete_data: bool,
        delete_adopted_data: bool,
        show: Show,
    },
    /// Reads everything and reports what differs from the files.
    Drift {
        set: &'a TenantSet,
        opts: &'a Options,
        show: Show,
    },
}

impl Job<'_> {
    /// Whether the run deploys a tenant, and so needs the code its
    /// functions ship (on AWS: a build of the bootstrap).
    pub fn deploys(&self) -> bool {
        match self {
            Job::Plan { set, opts, .. }
            | Job::Apply { set, opts, .. }
            | Job::Drift { set, opts, .. } => !in_scope(set, opts).is_empty(),
            Job::Destroy { .. } => false,
        }
    }
}

impl<'a> Job<'a> {
    /// The job on another tenant set (one cell's part).
    pub fn on(&self, on: &'a TenantSet) -> Job<'a> {
        match *self {
            Job::Plan {
                opts,
                refresh,
                show,
                ..
            } => Job::Plan {
                set: on,
                opts,
                refresh,
                show,
            },
            Job::Apply {
                opts,
                refresh,
                concurrency,
                wait,
                show,
                ..
            } => Job::Apply {
                set: on,
                opts,
                refresh,
                concurrency,
                wait,
                show,
            },
            Job::Drift { opts, show, .. } => Job::Drift {
                set: on,
                opts,
                show,
            },
            Job::Destroy {
                tenant,
                delete_data,
                delete_adopted_data,
                show,
            } => Job::Destroy {
                tenant,
                delete_data,
                delete_adopted_data,
                show,
            },
        }
    }

    /// The job with other options, when given.
    pub fn with(self, new: Option<&'a Options>) -> Job<'a> {
        let Some(new) = new else {
            return self;
        };
        match self {
            Job::Plan {
                set, refresh, show, ..
            } => Job::Plan {
                set,
                opts: new,
                refresh,
                show,
            },
            Job::Apply {
                set,
                refresh,
                concurrency,
                wait,
                show,
                ..
            } => Job::Apply {
                set,
                opts: new,
                refresh,
                concurrency,
                wait,
                show,
            },
            Job::Drift { set, show, .. } => Job::Drift {
                set,
                opts: new,
                show,
            },
            other => other,
        }
    }

    /// The tenants a plan, apply or drift covers (none for destroy, which
    /// reads no tenant file).
    pub fn tenants(&self) -> Vec<Tenant> {
        match self {
            Job::Plan { set, opts, .. }
            | Job::Apply { set, opts, .. }
            | Job::Drift { set, opts, .. } => in_scope(set, opts),
            Job::Destroy { .. } => Vec::new(),
        }
    }
}

/// How a plan or an apply looks at the items already stored when a
/// tenant's fields change (`crate::schema_change`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Looking {
    /// On AWS, read every stored item (a paced Scan); the local target's
    /// items are always read.
    pub check_data: bool,
    /// Apply even when the new fields leave stored items invalid.
    pub allow_invalid: bool,
}

/// The job's options with what was found in the stored items; an apply
/// that would leave some invalid, unless allowed, is an error naming each.
pub fn with_data(
    job: &Job<'_>,
    stored: Option<Vec<crate::schema_change::StoredData>>,
    looking: Option<Looking>,
) -> anyhow::Result<Option<Options>> {
    let (Some(stored), Job::Plan { opts, .. } | Job::Apply { opts, .. }) = (stored, job) else {
        return Ok(None);
    };
    let allow_invalid = looking.is_some_and(|l| l.allow_invalid);
    if matches!(job, Job::Apply { .. })
        && !allow_invalid
        && let Some(why) = crate::schema_change::refusal(&stored)
    {
        anyhow::bail!("{why}");
    }
    Ok(Some(Options {
        data: stored,
        ..(*opts).clone()
    }))
}

/// Runs a deploy command on a target.
pub async fn run<T: Target>(
    target: Arc<T>,
    code: &(dyn Code + Sync),
    job: Job<'_>,
) -> anyhow::Result<ExitCode> {
    match job {
        Job::Plan {
            set,
            opts,
            refresh,
            show,
        } => plan_command(target.as_ref(), code, set, opts, refresh, show).await,
        Job::Apply {
            set,
            opts,
            refresh,
            concurrency,
            wait,
            show,
        } => {
            let how = How {
                refresh,
                concurrency,
                wait,
            };
            apply_command(target, code, set, opts, how, show).await
        }
        Job::Destroy {
            tenant,
            delete_data,
            delete_adopted_data,
            show,
        } => destroy_command(target, tenant, delete_data, delete_adopted_data, show).await,
        Job::Drift { set, opts, show } => {
            drift_command(target.as_ref(), code, set, opts, show).await
        }
    }
}

/// Plan options from the command line: unknown tenant ids are an error.
pub fn options(
    set: &TenantSet,
    tenants: &[String],
    prune: bool,
    delete_data: bool,
) -> anyhow::Result<Options> {
    for id in tenants {
        if set.get(id).is_none() {
            anyhow::bail!("no tenant {id:?} among the tenant files");
        }
    }
    Ok(Options {
        tenants: tenants.iter().cloned().collect(),
        prune,
        prune_tenants: false,
        delete_data,
        delete_adopted_data: false,
        now: 0,
        data: Vec::new(),
        elsewhere: BTreeSet::new(),
    })
}

/// The tenants a run deploys: those in scope. Only their code is hashed
/// and only their references are checked.
pub fn in_scope(set: &TenantSet, opts: &Options) -> Vec<Tenant> {
    set.tenants
        .iter()
        .filter(|t| opts.tenants.is_empty() || opts.tenants.contains(&t.id))
        .cloned()
        .collect()
}

/// Computes what is desired, reads what exists and what the files point
/// to, and plans. Reads only. With `refresh`, every resource and reference
/// is read; without, a tenant whose stamp matches is taken as converged
/// (see [`Target::observe_known`]) and its references are not read again:
/// they were checked when the apply that stamped it ran.
pub async fn prepare<T: Target>(
    target: &T,
    code: &(dyn Code + Sync),
    set: &TenantSet,
    opts: &Options,
    refresh: bool,
    quiet: bool,
) -> anyhow::Result<Plan> {
    let tenants = in_scope(set, opts);
    let d = desired(&tenants, &set.sources, code);
    let observed = if refresh {
        let (checked, observed) =
            tokio::join!(target.check(&tenants), target.observe(&opts.tenants));
        checked?;
        observed?
    } else {
        let observed = target.observe_known(&opts.tenants, &d).await?;
        let unstamped: Vec<Tenant> = tenants
            .iter()
            .filter(|t| !stamped(&d, &observed, &t.id))
            .cloned()
            .collect();
        target.check(&unstamped).await?;
        observed
    };
    if !quiet {
        seen(target, &observed, "observed");
    }
    let opts = Options {
        now: now_unix(),
        ..opts.clone()
    };
    Ok(plan(&d, &observed, &opts))
}

/// Whether the tenant's observed stamp is its desired one.
fn stamped(d: &Desired, observed: &Observed, tenant: &str) -> bool {
    let address = Address::new(tenant, Kind::Stamp, tenant);
    d.resources
        .get(&address)
        .is_some_and(|want| observed.resources.get(&address) == Some(want))
}

tokio::task_local! {
    /// Where [`print`] writes instead of stdout, within [`buffered`]: the
    /// cells of one run go in parallel, and each one's output is shown
    /// whole under its own header.
    static OUT: std::cell::RefCell<String>;
}

/// Runs `f` with what it prints kept, not written: its result and its
/// output.
pub async fn buffered<F: std::future::Future>(f: F) -> (F::Output, String) {
    OUT.scope(std::cell::RefCell::new(String::new()), async {
        let out = f.await;
        (out, OUT.with(|b| b.take()))
    })
    .await
}

/// Writes to stdout; a closed pipe ends the output quietly.
pub fn print(text: &str) -> anyhow::Result<()> {
    if OUT.try_with(|b| b.borrow_mut().push_str(text)).is_ok() {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn show_plan(p: &Plan, show: Show) -> anyhow::Result<()> {
    if show.json {
        print(&format!("{}\n", serde_json::to_string_pretty(p)?))
    } else {
        print(&format!("{p}\n"))
    }
}

/// `apifactory plan`: reads only.
pub async fn plan_command<T: Target>(
    target: &T,
    code: &(dyn Code + Sync),
    set: &TenantSet,
    opts: &Options,
    refresh: bool,
    show: Show,
) -> anyhow::Result<ExitCode> {
    let plan = prepare(target, code, set, opts, refresh, false).await?;
    show_plan(&plan, show)?;
    Ok(ExitCode::SUCCESS)
}

/// Whether apply asks before it changes anything: on a terminal (stdin and
/// stderr both), unless `--yes`.
fn asks(show: Show) -> bool {
    !show.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// The exit status of `drift` when something differs (0: nothing does,
/// 1: an error kept it from telling).
pub const DRIFTED: u8 = 2;

/// `apifactory drift`: reads everything (as `plan --refresh` does, no
/// stamp trusted) and reports every attribute apifactory sets that differs
/// from the files: resource, attribute, expected, found (see
/// [`crate::drift`]). Exit status 0 for none, [`DRIFTED`] for some.
pub async fn drift_command<T: Target>(
    target: &T,
    code: &(dyn Code + Sync),
    set: &TenantSet,
    opts: &Options,
    show: Show,
) -> anyhow::Result<ExitCode> {
    let plan = prepare(target, code, set, opts, true, false).await?;
    let found = crate::drift::drift(&plan);
    if show.json {
        print(&format!("{}\n", serde_json::to_string_pretty(&found)?))?;
    } else {
        print(&found.to_string())?;
    }
    Ok(if found.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(DRIFTED)
    })
}

/// On a terminal, asks before a plan with changes is applied (as
/// `terraform apply` does); elsewhere (scripts, CI) applies at once.
fn confirmed(p: &Plan, show: Show) -> anyhow::Result<bool> {
    if p.is_empty() || !asks(show) {
        return Ok(true);
    }
    eprint!(
        "Apply these {} change(s)? Only 'yes' goes on: ",
        p.actions.len()
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

/// Shows the plan, confirms, applies it and shows the report; whether
/// every tenant's part went through.
async fn execute<T: Target>(
    target: &Arc<T>,
    plan: Plan,
    concurrency: usize,
    show: Show,
) -> anyhow::Result<Option<bool>> {
    if !show.json {
        print(&format!("{}\n", plan))?;
    }
    // A plan over a hard quota would fail part-way, some tenants made and
    // others not: it is refused before the first write.
    if let Some(why) = plan.refused() {
        anyhow::bail!("{why}");
    }
    if !confirmed(&plan, show)? {
        eprintln!("Apply cancelled: nothing was changed.");
        return Ok(None);
    }
    let before = target.calls();
    let report = apply(&plan, target.clone(), concurrency, progress(&plan)).await;
    made(target.as_ref(), before);
    show_report(&report, show)?;
    Ok(Some(report.ok()))
}

fn show_report(report: &Report, show: Show) -> anyhow::Result<()> {
    if show.json {
        print(&format!("{}\n", serde_json::to_string_pretty(report)?))
    } else if report.tenants.is_empty() {
        Ok(())
    } else {
        let secrets = secrets_table(&report.secrets().collect::<Vec<_>>());
        print(&format!("\n{report}\n{secrets}"))
    }
}

fn exit(ok: Option<bool>) -> ExitCode {
    match ok {
        Some(true) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

/// How `apply` goes about it.
#[derive(Debug, Clone, Copy)]
pub struct How {
    /// Read everything, trusting no stamp.
    pub refresh: bool,
    /// Tenants applied at once.
    pub concurrency: usize,
    /// Wait for new indexes and apply again until the functions moved.
    pub wait: bool,
}

/// `apifactory apply`: every tenant in scope in parallel, one tenant's
/// failure not stopping the others. With `wait`, a tenant waiting for a
/// new index is waited for, then planned and applied again, until its
/// functions have moved to the new indexes.
pub async fn apply_command<T: Target>(
    target: Arc<T>,
    code: &(dyn Code + Sync),
    set: &TenantSet,
    opts: &Options,
    how: How,
    show: Show,
) -> anyhow::Result<ExitCode> {
    let How {
        refresh,
        concurrency,
        wait,
    } = how;
    // Nobody to confirm the whole plan first: each tenant is read, planned
    // and applied as it comes (`pipeline`).
    let pipelined = !asks(show);
    // One round per index at most: DynamoDB creates them one at a time
    // (20 per table at most), and each round creates the next.
    for _ in 0..=21 {
        let (waiting, ok) = if pipelined {
            pipelined_round(&target, code, set, opts, how, show).await?
        } else {
            let plan = prepare(target.as_ref(), code, set, opts, refresh, false).await?;
            let waiting = plan.waiting.clone();
            (waiting, execute(&target, plan, concurrency, show).await?)
        };
        if !wait || ok != Some(true) || waiting.is_empty() {
            return Ok(exit(ok));
        }
        target.wait_for_indexes(&waiting).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One pipelined apply (see [`crate::pipeline`]): the survey, then each
/// tenant's reads, plan and apply; the fleet's plan is shown after, before
/// the report. The tenants waiting for an index, and whether every tenant
/// went through.
async fn pipelined_round<T: Target>(
    target: &Arc<T>,
    code: &(dyn Code + Sync),
    set: &TenantSet,
    opts: &Options,
    how: How,
    show: Show,
) -> anyhow::Result<(Vec<Waiting>, Option<bool>)> {
    let tenants = in_scope(set, opts);
    let d = desired(&tenants, &set.sources, code);
    let opts = Options {
        now: now_unix(),
        ..opts.clone()
    };
    let survey = target
        .survey(&opts.tenants, (!how.refresh).then_some(&d))
        .await?;
    // A tenant taken as converged had its references checked by the apply
    // that stamped it.
    let check: BTreeMap<String, Tenant> = tenants
        .into_iter()
        .filter(|t| how.refresh || !stamped(&d, &survey, &t.id))
        .map(|t| (t.id.clone(), t))
        .collect();
    let before = target.calls();
    seen(target.as_ref(), &survey, "listed");
    let outcome = crate::pipeline::run(
        target,
        Arc::new(d),
        survey,
        check,
        &opts,
        how.concurrency,
        progress(&Plan::default()),
    )
    .await;
    let (plan, report) = match outcome {
        Outcome::Done(plan, report) => (plan, report),
        // Shown as the two-step apply shows a refused plan, then refused.
        Outcome::Refused(plan) => {
            if !show.json {
                print(&format!("{plan}\n"))?;
            }
            anyhow::bail!("{}", plan.refused().unwrap_or_default());
        }
    };
    if !show.json {
        print(&format!("{plan}\n"))?;
    }
    made(target.as_ref(), before);
    show_report(&report, show)?;
    Ok((plan.waiting, Some(report.ok())))
}

/// The "observed N resource(s)" line on stderr.
fn seen<T: Target>(target: &T, observed: &Observed, verb: &str) {
    let owners: BTreeSet<&str> = observed
        .resources
        .keys()
        .map(|a| a.tenant.as_str())
        .chain(observed.pending.keys().map(String::as_str))
        .collect();
    eprintln!(
        "{verb} {} resource(s) of {} tenant(s) in {}{}",
        observed.resources.len(),
        owners.len(),
        target.place(),
        target
            .calls()
            .map(|c| format!(" with {} read(s)", c.reads))
            .unwrap_or_default()
    );
}

/// The "apply made W mutating call(s) and R read(s)" line on stderr, where
/// the target counts its calls.
fn made<T: Target>(target: &T, before: Option<crate::target::Calls>) {
    if let (Some(before), Some(after)) = (before, target.calls()) {
        eprintln!(
            "apply made {} mutating call(s) and {} read(s)",
            after.writes - before.writes,
            after.reads - before.reads
        );
    }
}

/// `apifactory destroy --tenant X`: the tenant's resources in reverse
/// order; its table (and data) stays unless `delete_data`. The tenant
/// files are not read: whether the tenant's file (or another) is still
/// there, broken or gone, destroy plans as if it were gone.
pub async fn destroy_command<T: Target>(
    target: Arc<T>,
    tenant: &str,
    delete_data: bool,
    delete_adopted_data: bool,
    show: Show,
) -> anyhow::Result<ExitCode> {
    let opts = Options {
        tenants: [tenant.to_owned()].into(),
        prune: true,
        delete_data,
        delete_adopted_data,
        ..Options::default()
    };
    let plan = prepare(
        target.as_ref(),
        &NoCode,
        &TenantSet::default(),
        &opts,
        true,
        false,
    )
    .await?;
    if plan.is_empty() && plan.kept.is_empty() && plan.kept_adopted.is_empty() && !show.json {
        print(&format!("Nothing of tenant {tenant} is deployed.\n"))?;
        return Ok(ExitCode::SUCCESS);
    }
    Ok(exit(execute(&target, plan, 1, show).await?))
}

/// Plans and applies a tenant set without showing either (`up`, and its
/// `--watch` on every change of the tenant files).
pub async fn deploy_quietly<T: Target>(
    target: &Arc<T>,
    code: &(dyn Code + Sync),
    set: &TenantSet,
    opts: &Options,
) -> anyhow::Result<(Plan, Report)> {
    let plan = prepare(target.as_ref(), code, set, opts, false, true).await?;
    let quiet: Arc<dyn Progress> = Arc::new(Quiet);
    let report = apply(&plan, target.clone(), 4, quiet).await;
    Ok((plan, report))
}

/// The code of a run that deploys no tenant (destroy): never asked for.
pub struct NoCode;

impl Code for NoCode {
    fn sha256(&self, _: &Tenant, _: &str) -> String {
        String::new()
    }
}
