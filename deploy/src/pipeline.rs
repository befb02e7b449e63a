//! An apply that nobody confirms (a script, CI, `--yes`), as a pipeline:
//! the reads made once for every tenant (AWS's account-wide lists) run
//! first, then each tenant flows through its own reads, its plan and its
//! apply while other tenants are still being read, so its updates start
//! before the whole fleet has been read.
//!
//! Why: a redeploy is held by AWS's rate limits, and the reads and the
//! writes mostly count against different ones (API Gateway's and
//! DynamoDB's reads, Lambda's updates). Read everything, then write
//! everything, and the run takes the sum of the two; pipelined, it takes
//! about the larger (BENCHMARKS.md, part 3).
//!
//! What stays as in the two-step apply:
//! - The plan is the same: each tenant's part is planned from the same
//!   reads, and the parts, in tenant order, are the fleet's plan, printed
//!   before the report.
//! - Quotas are counted before the first write, from the lists (they
//!   show every resource a quota counts) with the details not read yet
//!   taken as desired: a plan over a hard quota is refused whole.
//!
//! What differs, as in any pipeline: one tenant's problem stops that
//! tenant only. Its references (certificate, hosted zone) are checked
//! just before its first write, not all tenants' before anyone's, and
//! only when its plan creates or changes its custom domain: a tenant
//! whose domain stays has them in use already. (`plan`, and an apply that
//! asks first, check every file's before showing anything.)

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use runtime::Tenant;
use tokio::sync::Semaphore;

use crate::apply::{Progress, Report, TenantReport, apply_tenant, gather, settle};
use crate::desired::Desired;
use crate::plan::{Change, Observed, Options, Plan, plan};
use crate::resource::{Address, Attrs, Kind};
use crate::target::{Target, in_place};

/// Tenants read and not yet applying, at most (the pacer holds the rate;
/// this keeps reads ahead of the applies without reading the whole fleet
/// before the first write).
const READ_AHEAD: usize = 16;

/// Reads, plans and applies every tenant in scope of `opts`, `concurrency`
/// tenants applying at once. `survey` is the target's survey for these
/// tenants; `check` names the tenants whose references are checked before
/// their first write. Returns the fleet's plan (the tenants' parts in
/// order) and the report, or the plan the lists alone give when it would
/// cross a hard quota (nothing is applied then).
pub async fn run<T: Target>(
    target: &Arc<T>,
    desired: Arc<Desired>,
    survey: Observed,
    check: BTreeMap<String, Tenant>,
    opts: &Options,
    concurrency: usize,
    progress: Arc<dyn Progress>,
) -> Outcome {
    let listed = plan(&desired, &from_lists(&desired, &survey), opts);
    if listed.refused().is_some() {
        return Outcome::Refused(listed);
    }
    let quotas = listed.quotas;
    let in_scope = |tenant: &str| opts.tenants.is_empty() || opts.tenants.contains(tenant);
    // A tenant of another cell of this account shows here by its role
    // alone (IAM is global): that cell reads and plans it, not this one.
    let only_account_wide = |tenant: &str| {
        opts.elsewhere.contains(tenant)
            && survey
                .resources
                .keys()
                .chain(survey.pending.get(tenant).into_iter().flatten())
                .filter(|a| a.tenant == tenant)
                .all(|a| a.kind.account_wide())
    };
    let tenants: BTreeSet<String> = desired
        .tenants
        .keys()
        .chain(survey.resources.keys().map(|a| &a.tenant))
        .chain(survey.pending.keys())
        .filter(|t| in_scope(t) && !only_account_wide(t))
        .cloned()
        .collect();
    let survey = Arc::new(survey);
    let check = Arc::new(check);
    let reads = Arc::new(Semaphore::new(READ_AHEAD));
    let applies = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let (parts_tx, mut parts_rx) = tokio::sync::mpsc::unbounded_channel::<Plan>();
    for (place, tenant) in (1..).zip(tenants) {
        let (target, desired, survey, check, progress) = (
            target.clone(),
            desired.clone(),
            survey.clone(),
            check.clone(),
            progress.clone(),
        );
        let (reads, applies, parts) = (reads.clone(), applies.clone(), parts_tx.clone());
        let opts = Options {
            tenants: [tenant.clone()].into(),
            ..opts.clone()
        };
        tasks.spawn(in_place(place, async move {
            // Read ahead, but at most READ_AHEAD tenants read and not yet
            // applying: reads stay fresh and few.
            let ahead = reads.acquire_owned().await;
            let read = target.read_tenant(&tenant).await;
            let _permit = applies.acquire_owned().await;
            drop(ahead);
            let details = match read {
                Ok(details) => details,
                Err(e) => return failed(tenant, format!("reading its resources: {e:#}")),
            };
            let part = plan(&desired, &of_tenant(&survey, &tenant, details), &opts);
            let _ = parts.send(part.clone());
            if part.actions.is_empty() {
                return TenantReport::none(tenant);
            }
            // What the file points to matters to the domain's create or
            // update only: a tenant whose domain stays as it is (a code
            // redeploy) has its certificate and zone in use already. So
            // does a table it adopts, to its adoption (before any write).
            let points_out = part.actions.iter().any(|a| {
                (a.address.kind == Kind::Domain && a.change != Change::Delete)
                    || (a.address.kind == Kind::Table
                        && a.change == Change::Create
                        && a.attrs.get(crate::spec::ADOPTED)
                            == Some(&serde_json::Value::Bool(true)))
            });
            if let Some(file) = check.get(&tenant).filter(|_| points_out)
                && let Err(e) = target.check(std::slice::from_ref(file)).await
            {
                return TenantReport {
                    planned: part.actions.len(),
                    ..failed(tenant, format!("not applied: {e:#}"))
                };
            }
            progress.planned(&tenant, part.actions.len());
            apply_tenant(target.as_ref(), tenant, &part.actions, progress.as_ref()).await
        }));
    }
    drop(parts_tx);
    let mut report = gather(tasks).await;
    report
        .tenants
        .retain(|t| t.planned > 0 || t.error.is_some());
    settle(target.as_ref()).await;
    let mut parts = Vec::new();
    while let Some(part) = parts_rx.recv().await {
        parts.push(part);
    }
    Outcome::Done(joined(parts, quotas), report)
}

/// How a pipelined apply ended.
pub enum Outcome {
    /// Applied: the fleet's plan and the report.
    Done(Plan, Report),
    /// Refused before any write: the plan from the lists (their creates
    /// and deletes; the details were not read), whose quotas refuse it.
    Refused(Plan),
}

/// The resources the survey read for `tenant`, with its own details.
fn of_tenant(survey: &Observed, tenant: &str, details: Vec<(Address, Attrs)>) -> Observed {
    let mut resources: BTreeMap<Address, Attrs> = survey
        .resources
        .iter()
        .filter(|(a, _)| a.tenant == tenant)
        .map(|(a, v)| (a.clone(), v.clone()))
        .collect();
    crate::target::merge(&mut resources, details);
    Observed {
        resources,
        vouched: survey.vouched.clone(),
        account: None,
        pending: BTreeMap::new(),
    }
}

/// What the lists alone say exists, for counting quotas: each resource
/// whose details are still to be read is taken as it is desired (or, not
/// desired, as there), so that the plan over it creates and deletes just
/// what the full plan will. Updates do not count against a quota.
fn from_lists(desired: &Desired, survey: &Observed) -> Observed {
    let mut observed = survey.clone();
    for address in survey.pending.values().flatten() {
        let attrs = desired.resources.get(address).cloned().unwrap_or_default();
        observed.resources.insert(address.clone(), attrs);
    }
    observed.pending.clear();
    observed
}

/// The tenants' parts as one plan, in tenant order.
fn joined(mut parts: Vec<Plan>, quotas: Option<crate::quotas::Report>) -> Plan {
    parts.sort_by(|a, b| first_tenant(a).cmp(&first_tenant(b)));
    let mut all = Plan {
        quotas,
        ..Plan::default()
    };
    for p in parts {
        all.actions.extend(p.actions);
        all.orphans.extend(p.orphans);
        all.kept.extend(p.kept);
        all.kept_adopted.extend(p.kept_adopted);
        all.waiting.extend(p.waiting);
        all.data.extend(p.data);
    }
    all
}

fn first_tenant(p: &Plan) -> Option<&str> {
    p.actions
        .iter()
        .map(|a| a.address.tenant.as_str())
        .chain(p.orphans.iter().map(|a| a.tenant.as_str()))
        .chain(p.kept.iter().map(|a| a.tenant.as_str()))
        .chain(p.waiting.iter().map(|w| w.tenant.as_str()))
        .chain(p.data.iter().map(|d| d.tenant.as_str()))
        .next()
}

/// A tenant stopped before its first action, said on stderr too (where
/// the actions' progress goes).
fn failed(tenant: String, error: String) -> TenantReport {
    eprintln!("{tenant}: {error}");
    TenantReport {
        error: Some(error),
        ..TenantReport::none(tenant)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::apply::Quiet;
    use crate::target::{MemoryTarget, desired_from, file};

    /// The AWS target's split: what no list call carries is read per tenant.
    fn two_step() -> MemoryTarget {
        MemoryTarget {
            detailed: vec![Kind::Table, Kind::Role, Kind::Stage, Kind::Domain],
            ..MemoryTarget::default()
        }
    }

    /// `n` tenants of the same file text.
    fn fleet(n: usize, text: &str) -> Desired {
        let texts: Vec<(String, String)> = (0..n)
            .map(|i| (format!("t{i:02}"), text.to_owned()))
            .collect();
        let borrowed: Vec<(&str, String)> = texts
            .iter()
            .map(|(id, t)| (id.as_str(), t.clone()))
            .collect();
        desired_from(&borrowed)
    }

    async fn pipelined(
        d: &Desired,
        target: &Arc<MemoryTarget>,
        opts: &Options,
        concurrency: usize,
    ) -> Result<(Plan, Report), Plan> {
        let survey = target.survey(&opts.tenants, None).await.unwrap();
        let outcome = run(
            target,
            Arc::new(d.clone()),
            survey,
            BTreeMap::new(),
            opts,
            concurrency,
            Arc::new(Quiet),
        )
        .await;
        match outcome {
            Outcome::Done(p, report) => Ok((p, report)),
            Outcome::Refused(p) => Err(p),
        }
    }

    /// The plan the two-step apply shows: one full observe, one plan.
    async fn whole(d: &Desired, target: &MemoryTarget, opts: &Options) -> Plan {
        let mut observed = target.survey(&opts.tenants, None).await.unwrap();
        for tenant in std::mem::take(&mut observed.pending).into_keys() {
            observed
                .resources
                .extend(target.read_tenant(&tenant).await.unwrap());
        }
        plan(d, &observed, opts)
    }

    #[tokio::test]
    async fn the_tenants_parts_are_the_plan_of_the_whole_fleet() {
        let d = desired_from(&[("acme", file("acme")), ("clinic", file("clinic"))]);
        let target = Arc::new(two_step());
        // A state with something of every change: acme made, clinic not.
        let acme = Options {
            tenants: ["acme".to_owned()].into(),
            ..Options::default()
        };
        let (_, report) = pipelined(&d, &target, &acme, 4).await.unwrap();
        assert!(report.ok(), "{report}");
        {
            let mut held = target.resources.lock().unwrap();
            let table = Address::new("acme", Kind::Table, "apifactory-acme");
            let attrs = held.resources.get_mut(&table).unwrap();
            attrs.insert(crate::spec::POINT_IN_TIME_RECOVERY.into(), json!(false));
            held.resources.insert(
                Address::new("gone", Kind::Role, "apifactory-gone"),
                Attrs::new(),
            );
        }
        let opts = Options::default();
        let expected = whole(&d, &target, &opts).await;
        assert!(
            expected
                .actions
                .iter()
                .any(|a| matches!(a.change, Change::Update { .. }))
        );
        assert!(!expected.orphans.is_empty());
        let (got, report) = pipelined(&d, &target, &opts, 4).await.unwrap();
        assert!(report.ok(), "{report}");
        assert_eq!(got.to_string(), expected.to_string());
        assert_eq!(got.actions, expected.actions);
        assert_eq!(got.orphans, expected.orphans);
        // And the fleet is converged.
        assert!(whole(&d, &target, &opts).await.is_empty());
    }

    #[tokio::test]
    async fn a_tenant_is_applied_before_the_last_tenant_is_read() {
        let d = fleet(READ_AHEAD + 8, &file("clinic"));
        let target = Arc::new(two_step());
        let opts = Options::default();
        let (_, report) = pipelined(&d, &target, &opts, 1).await.unwrap();
        assert!(report.ok(), "{report}");
        // Once every tenant exists, each has details to read.
        let (_, report) = pipelined(&d, &target, &opts, 1).await.unwrap();
        assert!(report.tenants.is_empty(), "{report}");
        let text = file("clinic").replace("memory_mb = 128", "memory_mb = 256");
        assert_ne!(text, file("clinic"));
        let changed = fleet(READ_AHEAD + 8, &text);
        target.log.lock().unwrap().clear();
        let (p, report) = pipelined(&changed, &target, &opts, 1).await.unwrap();
        assert!(report.ok(), "{report}");
        assert_eq!(report.tenants.len(), READ_AHEAD + 8, "{p}");
        let log = target.log();
        let first_apply = log.iter().position(|l| l.starts_with("apply ")).unwrap();
        let last_read = log.iter().rposition(|l| l.starts_with("read ")).unwrap();
        // Two steps would read all 24 tenants before the first write.
        assert!(first_apply < last_read, "{log:#?}");
        let reads_before = log[..first_apply]
            .iter()
            .filter(|l| l.starts_with("read "))
            .count();
        assert!(reads_before <= READ_AHEAD + 1, "{log:#?}");
    }

    #[tokio::test]
    async fn one_tenants_failure_stops_that_tenant_only() {
        let d = desired_from(&[("acme", file("acme")), ("clinic", file("clinic"))]);
        let target = Arc::new(MemoryTarget {
            fail_on: Some(Address::new("acme", Kind::Table, "apifactory-acme")),
            ..two_step()
        });
        let (p, report) = pipelined(&d, &target, &Options::default(), 4)
            .await
            .unwrap();
        assert!(!report.ok());
        let acme = report.tenants.iter().find(|t| t.tenant == "acme").unwrap();
        assert!(acme.error.as_deref().unwrap().contains("injected failure"));
        assert!(acme.applied < acme.planned);
        let clinic = report
            .tenants
            .iter()
            .find(|t| t.tenant == "clinic")
            .unwrap();
        assert_eq!(
            (clinic.error.as_ref(), clinic.applied),
            (None, clinic.planned)
        );
        assert_eq!(p.actions.len(), acme.planned + clinic.planned);
    }

    #[tokio::test]
    async fn a_plan_over_a_hard_quota_is_refused_before_any_write() {
        use crate::quotas::{Account, Limits, Quota};
        let d = desired_from(&[("acme", file("acme")), ("clinic", file("clinic"))]);
        let mut limits = Limits::aws();
        limits.override_with("rest_apis=1").unwrap();
        let target = Arc::new(two_step());
        target.resources.lock().unwrap().account = Some(Account {
            limits,
            counts: [(Quota::RestApis, 0)].into(),
            not_counted: BTreeMap::new(),
        });
        let Err(refused) = pipelined(&d, &target, &Options::default(), 4).await else {
            panic!("applied over a hard quota");
        };
        let why = refused.refused().unwrap();
        assert!(why.contains("nothing was applied"), "{why}");
        // What the lists say is to be made: both tenants' REST APIs.
        let apis = refused
            .actions
            .iter()
            .filter(|a| a.address.kind == Kind::Api);
        assert_eq!(apis.count(), 2, "{refused}");
        assert!(target.log().is_empty(), "{:?}", target.log());
        assert!(target.resources.lock().unwrap().resources.is_empty());
    }
}
