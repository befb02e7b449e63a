//! A deploy command on AWS, by cells when the tenant files place tenants
//! (`[deploy]`): a target per cell (its own clients and pacer), the cells
//! in parallel, each one's output whole under its header. Without any
//! placement a run goes to the command line's one account and region, as
//! it always has.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use crate::aws::AwsTarget;
use crate::aws::cli::AwsArgs;
use crate::desired::Code;
use crate::engine::{self, Job, Looking, print, with_data};
use crate::plan::Options;
use crate::tenants::TenantSet;

/// Runs a plan, apply, drift or destroy on AWS: by cells when a tenant in
/// scope is placed by its file, else on the command line's target. Given
/// `looking` (a plan or an apply), what the tenants' field changes mean
/// for their stored items is read first.
pub async fn aws(
    args: &AwsArgs,
    job: Job<'_>,
    looking: Option<Looking>,
) -> anyhow::Result<ExitCode> {
    if super::placed(&job.tenants()) {
        return by_cells(args, job, looking).await;
    }
    let (t, package) = crate::aws::cli::connect(args, job.deploys()).await?;
    let code: &(dyn Code + Sync) = match &package {
        Some(p) => p,
        None => &engine::NoCode,
    };
    one_cell(t, code, job, looking).await
}

/// The command line's connection, moved to the tenant's cell when its
/// file places it (`[deploy]`): the commands about one tenant find it
/// where plan and apply put it. A missing or broken file places nothing
/// (destroy still finds a tenant whose file is gone where the command
/// line says).
pub fn placed_args(args: &AwsArgs, tenants: &Path, tenant: Option<&str>) -> AwsArgs {
    let placement = tenant
        .filter(|id| runtime::names::is_tenant_id(id))
        .and_then(|id| runtime::Tenant::load(&tenants.join(format!("{id}.toml"))).ok())
        .map(|t| t.placement)
        .unwrap_or_default();
    let c = super::connect_for(&args.connect(), &placement);
    AwsArgs {
        profile: c.profile,
        region: c.region,
        endpoint_url: c.endpoint_url,
        artifact: args.artifact.clone(),
    }
}

/// One cell of a run: an (account, region) and its tenants, or the
/// connection that could not be made.
struct Cell {
    target: Result<AwsTarget, String>,
    /// The profiles its tenants name (`None`: the command line's).
    profiles: Vec<Option<String>>,
    region: Option<String>,
    set: TenantSet,
    /// Why its apply must not start (IAM's role quota of its account,
    /// counted over the account's cells).
    refused: Option<String>,
    /// The run's options for this cell, when the account has other cells
    /// (`Options::elsewhere`).
    opts: Option<Options>,
}

impl Cell {
    fn name(&self) -> String {
        let profiles: Vec<&str> = self
            .profiles
            .iter()
            .map(|p| p.as_deref().unwrap_or("(command line)"))
            .collect();
        match &self.target {
            Ok(t) => format!(
                "{}/{} (profile {})",
                t.env.account,
                t.env.region,
                profiles.join(", ")
            ),
            Err(_) => format!(
                "profile {}, region {}",
                profiles.join(", "),
                self.region.as_deref().unwrap_or("(default)")
            ),
        }
    }
}

/// A plan, apply or drift whose tenants are placed by their files; with
/// `--json`, one document `{"cells": [{"cell", "account", "region",
/// "tenants", "output", "error"}]}`. A cell that cannot be reached, or
/// fails, fails its own tenants only; the exit status then says so.
async fn by_cells(
    args: &AwsArgs,
    job: Job<'_>,
    looking: Option<Looking>,
) -> anyhow::Result<ExitCode> {
    let (Job::Plan {
        set, opts, show, ..
    }
    | Job::Apply {
        set, opts, show, ..
    }
    | Job::Drift { set, opts, show }) = &job
    else {
        anyhow::bail!("destroy runs in its tenant's cell only");
    };
    if matches!(job, Job::Apply { .. })
        && !show.yes
        && std::io::IsTerminal::is_terminal(&std::io::stdin())
        && std::io::IsTerminal::is_terminal(&std::io::stderr())
    {
        // The cells apply in parallel, each as it is planned: there is no
        // one plan to confirm first.
        anyhow::bail!(
            "these tenants are placed in several cells, which apply without asking: run `apifactory plan` first, then `apply --yes`"
        );
    }
    let package = crate::aws::cli::package(args, job.deploys())?;
    let code: &(dyn Code + Sync) = match &package {
        Some(p) => p,
        None => &engine::NoCode,
    };
    let groups = super::visits(&set.tenants, &engine::in_scope(set, opts), &args.connect());
    let targets = futures_util::future::join_all(
        groups
            .iter()
            .map(|g| crate::aws::cli::cell(&g.connect, package.clone())),
    )
    .await;
    // Two profiles of one account, in one region, are one cell: one
    // pacer holds the account's limits there.
    let mut cells: Vec<Cell> = Vec::new();
    for (g, t) in groups.into_iter().zip(targets) {
        let same = t.as_ref().ok().and_then(|t| {
            cells.iter().position(|c| {
                c.target
                    .as_ref()
                    .is_ok_and(|o| o.env.account == t.env.account && o.env.region == t.env.region)
            })
        });
        let ids: Vec<String> = g.tenants;
        match same {
            Some(i) => {
                let c = &mut cells[i];
                let mut all: Vec<String> = c.set.tenants.iter().map(|t| t.id.clone()).collect();
                all.extend(ids);
                c.set = super::subset(set, &all);
                if !c.profiles.contains(&g.connect.profile) {
                    c.profiles.push(g.connect.profile);
                }
            }
            None => cells.push(Cell {
                target: t.map_err(|e| format!("{e:#}")),
                profiles: vec![g.connect.profile],
                region: g.connect.region,
                set: super::subset(set, &ids),
                refused: None,
                opts: None,
            }),
        }
    }
    if matches!(job, Job::Plan { .. } | Job::Apply { .. }) {
        for (account, why) in account_roles(&cells).await {
            if matches!(job, Job::Apply { .. }) {
                for c in cells.iter_mut().filter(|c| {
                    c.target.as_ref().is_ok_and(|t| t.env.account == account)
                        && !c.set.tenants.is_empty()
                }) {
                    c.refused = Some(why.clone());
                }
            }
        }
    }
    // An IAM role is global: each cell of an account lists the roles of
    // the account's other cells too, and must leave them to those cells.
    for i in 0..cells.len() {
        let Ok(account) = cells[i].target.as_ref().map(|t| t.env.account.clone()) else {
            continue;
        };
        let elsewhere: BTreeSet<String> = cells
            .iter()
            .enumerate()
            .filter(|(j, c)| *j != i && c.target.as_ref().is_ok_and(|t| t.env.account == account))
            .flat_map(|(_, c)| c.set.tenants.iter().map(|t| t.id.clone()))
            .collect();
        if !elsewhere.is_empty() {
            cells[i].opts = Some(Options {
                elsewhere,
                ..(*opts).clone()
            });
        }
    }
    let runs = cells.iter().map(|c| {
        let job = job.on(&c.set).with(c.opts.as_ref());
        engine::buffered(async move {
            let t = match &c.target {
                Ok(t) => t.clone(),
                Err(e) => anyhow::bail!("{e}"),
            };
            if let Some(why) = &c.refused {
                anyhow::bail!("{why}");
            }
            one_cell(t, code, job, looking).await
        })
    });
    let done = futures_util::future::join_all(runs).await;
    let mut status = ExitCode::SUCCESS;
    let mut text = String::new();
    let mut members = Vec::new();
    for (c, (result, out)) in cells.iter().zip(done) {
        let tenants: Vec<&str> = c.set.tenants.iter().map(|t| t.id.as_str()).collect();
        let error = match &result {
            Ok(code) => {
                if *code != ExitCode::SUCCESS && status == ExitCode::SUCCESS {
                    status = *code;
                }
                None
            }
            // Visited only for the tenants moved out of it: its orphans
            // stay unchecked, which does not fail the tenants of the run.
            Err(e) if tenants.is_empty() && c.target.is_err() => {
                eprintln!(
                    "warning: cell {} cannot be reached ({e:#}); no tenant of this run is in it, but tenants moved out of it were not looked for there{}",
                    c.name(),
                    if matches!(job, Job::Apply { .. }) {
                        ", and --prune deletes nothing there"
                    } else {
                        ""
                    }
                );
                Some(format!("not reached: {e:#}"))
            }
            Err(e) => {
                status = ExitCode::FAILURE;
                if tenants.is_empty() {
                    eprintln!("error: cell {}: {e:#}", c.name());
                } else {
                    eprintln!(
                        "error: cell {}: {e:#}; its tenant(s) {} not done",
                        c.name(),
                        tenants.join(", ")
                    );
                }
                Some(format!("{e:#}"))
            }
        };
        if show.json {
            members.push(serde_json::json!({
                "cell": c.name(),
                "account": c.target.as_ref().ok().map(|t| t.env.account.clone()),
                "region": c.target.as_ref().ok().map(|t| t.env.region.clone()).or(c.region.clone()),
                "profiles": c.profiles,
                "tenants": tenants,
                "output": serde_json::from_str::<serde_json::Value>(&out).ok(),
                "error": error,
            }));
        } else {
            text += &format!(
                "=== cell {}: {} tenant(s){}\n{out}",
                c.name(),
                tenants.len(),
                match (&error, &c.target) {
                    (None, _) => "",
                    (Some(_), Err(_)) if tenants.is_empty() => ", not reached",
                    (Some(_), _) => ", failed",
                }
            );
        }
    }
    if show.json {
        print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&serde_json::json!({ "cells": members }))?
        ))?;
    } else {
        print(&text)?;
    }
    Ok(status)
}

/// IAM's role quota of each account with tenants in more than one cell of
/// the run: each cell's plan counts the account's roles (IAM is global)
/// but only its own new ones, so two cells that each fit may not fit
/// together. The roles every cell of the account adds are counted against
/// the quota once; a warning is printed, and an account over a hard quota
/// is returned with why (its cells then apply nothing). An account whose
/// roles cannot be counted is left to each cell's own check, which says
/// so.
async fn account_roles(cells: &[Cell]) -> Vec<(String, String)> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut by_account: BTreeMap<&str, Vec<&Cell>> = BTreeMap::new();
    for c in cells.iter().filter(|c| !c.set.tenants.is_empty()) {
        if let Ok(t) = &c.target {
            by_account
                .entry(t.env.account.as_str())
                .or_default()
                .push(c);
        }
    }
    let mut refused = Vec::new();
    for (account, cells) in by_account.into_iter().filter(|(_, c)| c.len() > 1) {
        let Some(Ok(t)) = cells.first().map(|c| &c.target) else {
            continue;
        };
        let ids: BTreeSet<String> = cells
            .iter()
            .flat_map(|c| c.set.tenants.iter().map(|t| t.id.clone()))
            .collect();
        let counted = crate::aws::survey::role_quota(t).await;
        let listed = crate::aws::role::list(t, &crate::aws::Scope(ids.clone())).await;
        let (Ok(Ok((existing, quota))), Ok(listed), Ok(mut limits)) =
            (counted, listed, crate::quotas::Limits::from_env())
        else {
            continue;
        };
        limits.from_account(crate::quotas::Quota::Roles, quota);
        let have: BTreeSet<String> = listed.into_iter().map(|(_, role)| role).collect();
        let creates = ids
            .iter()
            .filter(|id| !have.contains(&runtime::names::role(id)))
            .count() as u64;
        let report = crate::quotas::account_roles(&limits, existing, creates);
        if report.has_warnings() {
            eprint!(
                "account {account}, over its {} cells in this run: {report}",
                cells.len()
            );
        }
        if let Some(why) = report.refused() {
            refused.push((
                account.to_owned(),
                format!(
                    "{why} (the new roles of account {account}'s {} cells in this run, counted together: IAM is global)",
                    cells.len()
                ),
            ));
        }
    }
    refused
}

/// One cell's part of a run, on its own target: the stored items looked
/// at first when asked, then the job.
async fn one_cell(
    t: AwsTarget,
    code: &(dyn Code + Sync),
    job: Job<'_>,
    looking: Option<Looking>,
) -> anyhow::Result<ExitCode> {
    let stored = match (&job, looking) {
        (Job::Plan { set, opts, .. } | Job::Apply { set, opts, .. }, Some(l)) => {
            Some(crate::aws::scan::stored(&t, &engine::in_scope(set, opts), l.check_data).await?)
        }
        _ => None,
    };
    let opts = with_data(&job, stored, looking)?;
    let job = job.with(opts.as_ref());
    engine::run(Arc::new(t), code, job).await
}
