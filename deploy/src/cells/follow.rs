//! The commands about tenants other than plan and apply (`usage`, `logs`,
//! the console) find each tenant in its cell, from its file, as `keys`,
//! `data` and `destroy` do ([`super::run::placed_args`]).

use std::path::Path;

use crate::aws::AwsTarget;
use crate::aws::cli::AwsArgs;
use crate::tenants::TenantSet;
use crate::usage::{Gathered, Source, Span, gather};

/// The connection of each group of these tenants (all the files' when
/// none is named), the tenants each reaches. Without any placement, or
/// without valid tenant files, one group: the command line's, with the
/// ids as given (none: every tenant of its account and region, as
/// before). A named tenant without a file is looked for where the command
/// line says.
pub fn by_connection(
    args: &AwsArgs,
    tenants: &Path,
    ids: &[String],
) -> Vec<(AwsArgs, Vec<String>)> {
    let whole = || vec![(args.clone(), ids.to_vec())];
    let Ok(set) = TenantSet::load(tenants) else {
        return whole();
    };
    let wanted: Vec<runtime::Tenant> = set
        .tenants
        .iter()
        .filter(|t| ids.is_empty() || ids.contains(&t.id))
        .cloned()
        .collect();
    if !super::placed(&wanted) {
        return whole();
    }
    let mut out: Vec<(AwsArgs, Vec<String>)> = super::groups(&wanted, &args.connect())
        .into_iter()
        .map(|g| {
            let a = AwsArgs {
                profile: g.connect.profile,
                region: g.connect.region,
                endpoint_url: g.connect.endpoint_url,
                artifact: args.artifact.clone(),
            };
            (a, g.tenants)
        })
        .collect();
    let unfiled: Vec<String> = ids
        .iter()
        .filter(|id| set.get(id).is_none())
        .cloned()
        .collect();
    if !unfiled.is_empty() {
        out.push((args.clone(), unfiled));
    }
    out
}

/// A usage report's figures on AWS, each tenant's from its own cell.
pub async fn usage(
    args: &AwsArgs,
    tenants: &Path,
    ids: &[String],
    start: i64,
    end: i64,
    span: Span,
) -> anyhow::Result<Gathered> {
    let mut all = Gathered::default();
    for (a, ids) in by_connection(args, tenants, ids) {
        let t = crate::aws::cli::key_store(&a).await?;
        all.merge(gather(Source::Aws(&t), &ids, start, end, span).await?);
    }
    Ok(all)
}

/// The target of a tenant's cell (a key store: no code to deploy).
pub async fn target_of(args: &AwsArgs, tenants: &Path, tenant: &str) -> anyhow::Result<AwsTarget> {
    crate::aws::cli::key_store(&super::run::placed_args(args, tenants, Some(tenant))).await
}
