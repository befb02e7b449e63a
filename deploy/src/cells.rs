//! Cells: a fleet placed over regions and accounts. A tenant file's
//! `[deploy]` names a region and an AWS profile (the account); tenants
//! that resolve to the same connection are one cell, with its own target
//! (clients, pacer, list calls, quota counts), since AWS's limits are per
//! account and region. [`run`] runs the cells of a command in parallel.

pub mod follow;
pub mod run;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use runtime::Tenant;
use runtime::tenant::Placement;

use crate::aws::Connect;
use crate::tenants::TenantSet;

/// How to reach the tenant's cell: its placement over the command line's.
/// The endpoint is never the placement's: `--endpoint-url`, when given,
/// applies to every cell, as the AWS CLI's beats a profile's
/// `endpoint_url` (an emulator such as moto tells accounts apart by the
/// profiles' credentials); without it each profile's own `endpoint_url`
/// applies, or `AWS_ENDPOINT_URL`, which the SDKs put before a profile's
/// (AWS SDKs and Tools Reference Guide, "Service-specific endpoints":
/// environment variables take precedence over the shared config file).
pub fn connect_for(cli: &Connect, p: &Placement) -> Connect {
    Connect {
        profile: p.profile.clone().or_else(|| cli.profile.clone()),
        region: p.region.clone().or_else(|| cli.region.clone()),
        endpoint_url: cli.endpoint_url.clone(),
    }
}

/// Whether any of these tenants is placed by its file: otherwise a run
/// goes to the command line's one account and region, as it always has.
pub fn placed(tenants: &[Tenant]) -> bool {
    tenants.iter().any(|t| !t.placement.is_default())
}

/// The tenants sharing a connection. Two groups may still be one cell
/// (two profiles of one account): [`run`] merges them once it knows
/// each one's account.
#[derive(Debug, Clone)]
pub struct Group {
    pub connect: Connect,
    pub tenants: Vec<String>,
}

/// The tenants grouped by their connection, in a stable order.
pub fn groups(tenants: &[Tenant], cli: &Connect) -> Vec<Group> {
    type Key = (Option<String>, Option<String>, Option<String>);
    let mut by: BTreeMap<Key, Vec<String>> = BTreeMap::new();
    for t in tenants {
        let c = connect_for(cli, &t.placement);
        by.entry((c.profile, c.region, c.endpoint_url))
            .or_default()
            .push(t.id.clone());
    }
    by.into_iter()
        .map(|((profile, region, endpoint_url), tenants)| Group {
            connect: Connect {
                profile,
                region,
                endpoint_url,
            },
            tenants,
        })
        .collect()
}

/// The cells a run visits: those of the tenants in scope, and every other
/// pairing of a profile and a region the tenant files name (and the
/// command line's), with no tenant of its own. A tenant moved to another
/// cell is still found where it was, and shown there as orphaned (deleted
/// with `--prune`), even when no tenant is left in that cell. One of
/// those that cannot be reached is a warning, not a failed run (see
/// [`run`]). A cell that no file names any more is not visited: what was
/// moved out of it is left there (AWS's tags say whose it is).
pub fn visits(all: &[Tenant], in_scope: &[Tenant], cli: &Connect) -> Vec<Group> {
    let mut out = groups(in_scope, cli);
    let profiles: BTreeSet<Option<String>> =
        all.iter().map(|t| t.placement.profile.clone()).collect();
    let regions: BTreeSet<Option<String>> =
        all.iter().map(|t| t.placement.region.clone()).collect();
    for profile in &profiles {
        for region in &regions {
            let c = connect_for(
                cli,
                &Placement {
                    region: region.clone(),
                    profile: profile.clone(),
                },
            );
            let known = out.iter().any(|g| {
                g.connect.profile == c.profile
                    && g.connect.region == c.region
                    && g.connect.endpoint_url == c.endpoint_url
            });
            if !known {
                out.push(Group {
                    connect: c,
                    tenants: Vec::new(),
                });
            }
        }
    }
    out
}

/// The part of a tenant set in one cell.
pub fn subset(set: &TenantSet, ids: &[String]) -> TenantSet {
    TenantSet {
        tenants: set
            .tenants
            .iter()
            .filter(|t| ids.contains(&t.id))
            .cloned()
            .collect(),
        sources: set
            .sources
            .iter()
            .filter(|(id, _)| ids.contains(id))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// The AWS config files, as the SDKs find them.
fn config_files() -> Vec<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let config = std::env::var_os("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".aws/config")));
    let credentials = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".aws/credentials")));
    config.into_iter().chain(credentials).collect()
}

/// The profile names a config file's text declares: `[profile NAME]` and
/// `[default]` in the config file, `[NAME]` in the credentials file.
fn profiles_in(text: &str, credentials: bool) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| {
            let inner = l.trim().strip_prefix('[')?.strip_suffix(']')?.trim();
            if credentials || inner == "default" {
                return Some(inner.to_owned());
            }
            inner
                .strip_prefix("profile")
                .filter(|rest| rest.starts_with([' ', '\t']))
                .map(|rest| rest.trim().to_owned())
        })
        .collect()
}

/// The profiles of the AWS config files (missing files have none).
pub fn known_profiles() -> (BTreeSet<String>, Vec<PathBuf>) {
    let files = config_files();
    let mut names = BTreeSet::new();
    for (i, f) in files.iter().enumerate() {
        if let Ok(text) = std::fs::read_to_string(f) {
            names.extend(profiles_in(&text, i == 1));
        }
    }
    (names, files)
}

/// Each tenant naming a profile the AWS config files do not declare,
/// as an error pinned to its `deploy.profile` line.
pub fn unknown_profiles(tenants: &[Tenant]) -> Vec<runtime::TenantError> {
    let (known, files) = known_profiles();
    let places = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(" or ");
    tenants
        .iter()
        .filter_map(|t| {
            let p = t.placement.profile.as_ref()?;
            (!known.contains(p)).then(|| {
                t.key_error(
                    "deploy.profile",
                    format!("a profile declared in {places}"),
                    format!("{p:?}, which none declares"),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_read_the_way_the_sdks_name_them() {
        let config = "[default]\nregion = us-east-1\n[profile cell-a]\nendpoint_url = http://x\n[sso-session s]\n[services local]\n[profilex]\n";
        assert_eq!(
            profiles_in(config, false).into_iter().collect::<Vec<_>>(),
            ["cell-a", "default"]
        );
        assert_eq!(
            profiles_in("[cell-b]\naws_access_key_id = x\n", true)
                .into_iter()
                .collect::<Vec<_>>(),
            ["cell-b"]
        );
    }

    #[test]
    fn a_placement_overrides_the_command_line_but_not_its_endpoint() {
        let cli = Connect {
            profile: Some("main".into()),
            region: Some("us-east-1".into()),
            endpoint_url: Some("http://main".into()),
        };
        let region_only = Placement {
            region: Some("eu-west-1".into()),
            profile: None,
        };
        let c = connect_for(&cli, &region_only);
        assert_eq!(c.profile.as_deref(), Some("main"));
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.endpoint_url.as_deref(), Some("http://main"));
        let other = Placement {
            region: None,
            profile: Some("b".into()),
        };
        let c = connect_for(&cli, &other);
        assert_eq!(c.profile.as_deref(), Some("b"));
        assert_eq!(c.region.as_deref(), Some("us-east-1"));
        assert_eq!(c.endpoint_url.as_deref(), Some("http://main"));
        let no_endpoint = Connect {
            endpoint_url: None,
            ..cli.clone()
        };
        assert_eq!(connect_for(&no_endpoint, &other).endpoint_url, None);
        assert_eq!(
            connect_for(&cli, &Placement::default()).endpoint_url,
            cli.endpoint_url
        );
    }
}
