//! The benchmark's fleet over cells: tenants placed by their files over
//! two accounts and two regions, planned and applied by ONE run of the
//! real `apifactory` binary, each (account, region) cell behind its own
//! counting proxy that enforces that cell's limits.
//!
//!   bench-cells --moto URL1,URL2 --apifactory PATH --artifact PATH \
//!       --templates DIR --work DIR [--per-cell 10] \
//!       [--regions us-east-1,eu-west-1] [--pace plan=K,apply=K,noop=K] \
//!       [--project 1200] [--moto-pid PID1,PID2] [--phases plan,apply,noop]
//!
//! Each moto server stands for one account (the second started with its
//! own `MOTO_ACCOUNT_ID`); every account has a cell in every region. The
//! AWS config file (DIR/cells-aws-config) has one profile per cell, each
//! with its own `endpoint_url`: that cell's proxy in front of its account's
//! moto. Both profiles of an account resolve to the same account id, so
//! the CLI's cells are the (account, region) pairs; one profile per cell
//! only lets the benchmark see each cell's calls apart. Each tenant file
//! names its cell's profile and region in `[deploy]`.
//!
//! Phases as bench-fleet runs them (plan on a fresh server, the first
//! apply, an apply with no change, an apply with a changed artifact), with
//! `APIFACTORY_PACE=K`; every cell's proxy enforces the pacer's families
//! scaled by K. Per cell: its calls, its lower bound (as bench-fleet
//! computes it, from that cell's calls alone) at the measured size and at
//! `--project` tenants spread evenly over the cells, and when its last
//! call reached its proxy. The run's wall time is compared with the
//! slowest cell's bound / K (cells paced in parallel) and with the sum of
//! the cells' bounds / K (cells one after another).
//!
//! IAM and Route 53 are global services: their limits hold per account,
//! not per region, while the pacer and the proxies hold them per cell. The
//! account-wide bound of those families (the account's cells' calls
//! together) is reported beside the cells' bounds.
//!
//! Prints one JSON document on stdout; the CLI's output goes to DIR.

// The e2e tests' proxy and bench-fleet's helpers, compiled in (see
// fleet.rs).
#[allow(dead_code)]
#[path = "../../../../support/fault_proxy.rs"]
mod fault_proxy;
#[allow(dead_code)]
#[path = "../fleet_common.rs"]
mod fleet_common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use apifactory::aws::pacer::{Family, LIMITS, limit};
use fault_proxy::{FaultConfig, FaultProxy, is_mutating};
use fleet_common::{
    Counted, FAMILIES, Slot, arg, changed_artifact, fail, generate, memory, parse_pace, rate_limit,
    run_cli, split,
};
use serde_json::{Value, json};

/// The families whose limits AWS holds per account, whatever the region:
/// IAM and Route 53 have one global endpoint.
const ACCOUNT_WIDE: [Family; 3] = [Family::Iam, Family::Route53, Family::Route53GetHostedZone];

struct Cell {
    account: usize,
    moto: String,
    region: String,
    profile: String,
}

struct Setup {
    apifactory: PathBuf,
    tenants_dir: PathBuf,
    work: PathBuf,
    cells: Vec<Cell>,
    per_cell: usize,
    project: usize,
    pace: BTreeMap<String, f64>,
}

fn list(args: &[String], name: &str, default: &str) -> Vec<String> {
    arg(args, name)
        .unwrap_or_else(|| default.into())
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn number(args: &[String], name: &str, default: usize) -> usize {
    arg(args, name).map_or(default, |v| {
        v.parse().unwrap_or_else(|e| fail(&format!("{name}: {e}")))
    })
}

/// One profile per cell, its `endpoint_url` that cell's proxy.
fn config_file(s: &Setup, proxies: &[FaultProxy]) -> PathBuf {
    let mut text = String::new();
    for (cell, proxy) in s.cells.iter().zip(proxies) {
        text += &format!(
            "[profile {}]\nendpoint_url = {}\naws_access_key_id = testing\naws_secret_access_key = testing\n\n",
            cell.profile,
            proxy.url()
        );
    }
    let path = s.work.join("cells-aws-config");
    std::fs::write(&path, text).unwrap();
    path
}

/// The bound of the account-wide families over an account's cells:
/// their calls added up, scaled from `measured` to `tenants`.
fn account_bound(cells: &[&Counted], measured: usize, tenants: usize) -> Value {
    let mut rows = Vec::new();
    for family in ACCOUNT_WIDE {
        let l = limit(family);
        let calls: u64 = cells.iter().map(|c| c.family_calls(family)).sum();
        if calls == 0 {
            continue;
        }
        let scaled = calls as f64 * tenants as f64 / measured as f64;
        rows.push(json!({
            "family": format!("{family:?}"), "calls": calls, "calls_projected": scaled,
            "bound_s": (calls as f64 - l.burst as f64).max(0.0) * l.every.as_secs_f64(),
            "bound_projected_s": (scaled - l.burst as f64).max(0.0) * l.every.as_secs_f64(),
        }));
    }
    Value::Array(rows)
}

async fn run_phase(s: &Setup, name: &str, verb: &str, artifact: &Path, pids: &[u32]) -> Value {
    let pace = s.pace.get(name).copied().unwrap_or(1.0);
    let mut proxies = Vec::new();
    for cell in &s.cells {
        let limits = FAMILIES
            .iter()
            .map(|(f, _, _)| rate_limit(*f, pace))
            .collect();
        proxies.push(
            FaultProxy::start(
                &cell.moto,
                FaultConfig {
                    limits,
                    ..FaultConfig::with_rate(0.0)
                },
            )
            .await,
        );
    }
    let config = config_file(s, &proxies);
    let mut cmd = Command::new(&s.apifactory);
    cmd.arg(verb)
        .args(["--target", "aws", "--tenants"])
        .arg(&s.tenants_dir)
        .arg("--artifact")
        .arg(artifact);
    if verb == "plan" {
        cmd.arg("--json");
    } else {
        cmd.arg("--yes");
    }
    // Only the profiles say where and who, as in the e2e test of cells.
    cmd.env("AWS_CONFIG_FILE", &config)
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            s.work.join("cells-aws-credentials-none"),
        )
        .env("AWS_REGION", "us-east-1")
        .env("APIFACTORY_PACE", pace.to_string())
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL_LAMBDA");
    eprintln!(
        "bench-cells: {name}: {verb} over {} cells at pace {pace}",
        s.cells.len()
    );
    let phase_start = Instant::now();
    let (wall, output) = run_cli(cmd, &s.work, "cells", name).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Each cell's own count ("apply made W mutating call(s) and R read(s)").
    let own: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("apply made "))
        .collect();
    // The cells as the CLI saw them (plan --json groups by cell).
    let seen: Option<Vec<Value>> = (verb == "plan")
        .then(|| serde_json::from_str::<Value>(&stdout).ok())
        .flatten()
        .and_then(|doc| doc["cells"].as_array().cloned())
        .map(|cells| {
            cells
                .iter()
                .map(|c| {
                    json!({
                        "cell": c["cell"], "account": c["account"], "region": c["region"],
                        "profiles": c["profiles"],
                        "tenants": c["tenants"].as_array().map_or(0, Vec::len),
                        "actions": c["output"]["actions"].as_array().map(Vec::len),
                        "error": c["error"],
                    })
                })
                .collect()
        });

    let wall_s = wall.as_secs_f64();
    let mut rows = Vec::new();
    let mut counted = Vec::new();
    for (cell, proxy) in s.cells.iter().zip(&proxies) {
        let timeline = proxy.stats().timeline();
        let at = |t: &Instant| t.saturating_duration_since(phase_start).as_secs_f64();
        let csv: String = timeline
            .iter()
            .map(|(t, op, refused)| format!("{:.1},{op},{}\n", at(t) * 1e3, u8::from(*refused)))
            .collect();
        std::fs::write(
            s.work
                .join(format!("cells-{name}-{}.calls.csv", cell.profile)),
            csv,
        )
        .unwrap();
        let c = Counted {
            ops: proxy.stats().operations(),
        };
        let total: u64 = c.ops.values().map(|o| o.calls).sum();
        let refused: u64 = c.ops.values().map(|o| o.refused).sum();
        let mutating: u64 = c
            .ops
            .iter()
            .filter(|(k, _)| is_mutating(split(k).1))
            .map(|(_, o)| o.calls)
            .sum();
        let per_cell_projected = s.project / s.cells.len();
        let (bound, family, families) = c.bound(s.per_cell, s.per_cell);
        let (projected, projected_family, _) = c.bound(s.per_cell, per_cell_projected);
        let ops: serde_json::Map<String, Value> = c
            .ops
            .iter()
            .map(|(k, o)| {
                (
                    k.clone(),
                    json!({"calls": o.calls, "refused": o.refused, "mutating": is_mutating(split(k).1)}),
                )
            })
            .collect();
        rows.push(json!({
            "profile": cell.profile,
            "account_index": cell.account,
            "region": cell.region,
            "tenants": s.per_cell,
            "calls": total,
            "mutating": mutating,
            "reads": total - mutating,
            "refused": refused,
            "per_tenant": total as f64 / s.per_cell as f64,
            "operations": ops,
            "bound_s": bound,
            "family": format!("{family:?}"),
            "families": families,
            "paced_bound_s": bound / pace,
            "projected_tenants": per_cell_projected,
            "projected_bound_s": projected,
            "projected_family": format!("{projected_family:?}"),
            "first_call_s": timeline.first().map(|(t, _, _)| at(t)),
            "last_call_s": timeline.last().map(|(t, _, _)| at(t)),
        }));
        counted.push(c);
    }
    drop(proxies);

    let accounts: usize = s.cells.iter().map(|c| c.account + 1).max().unwrap_or(0);
    let account_wide: Vec<Value> = (0..accounts)
        .map(|a| {
            let of: Vec<&Counted> = s
                .cells
                .iter()
                .zip(&counted)
                .filter(|(cell, _)| cell.account == a)
                .map(|(_, c)| c)
                .collect();
            let measured = s.per_cell * of.len();
            json!({
                "account_index": a,
                "tenants": measured,
                "projected_tenants": s.project / accounts.max(1),
                "families": account_bound(&of, measured, s.project / accounts.max(1)),
            })
        })
        .collect();

    let num = |r: &Value, k: &str| r[k].as_f64().unwrap_or(0.0);
    let slowest = rows
        .iter()
        .max_by(|a, b| num(a, "paced_bound_s").total_cmp(&num(b, "paced_bound_s")));
    let slowest_paced = slowest.map_or(0.0, |r| num(r, "paced_bound_s"));
    let sum_paced: f64 = rows.iter().map(|r| num(r, "paced_bound_s")).sum();
    let projected_slowest = rows
        .iter()
        .max_by(|a, b| num(a, "projected_bound_s").total_cmp(&num(b, "projected_bound_s")));
    let total: u64 = rows.iter().map(|r| r["calls"].as_u64().unwrap_or(0)).sum();
    let refused: u64 = rows
        .iter()
        .map(|r| r["refused"].as_u64().unwrap_or(0))
        .sum();
    let mutating: u64 = rows
        .iter()
        .map(|r| r["mutating"].as_u64().unwrap_or(0))
        .sum();
    eprintln!(
        "bench-cells: {name}: {wall_s:.1} s, exit {:?}, {total} calls ({mutating} mutating), \
         {refused} refused; slowest cell's bound at K {slowest_paced:.1} s, the cells' sum {sum_paced:.1} s",
        output.status.code()
    );
    let ratio = |d: f64| {
        if d > 0.0 {
            Value::from(wall_s / d)
        } else {
            Value::Null
        }
    };
    json!({
        "phase": name,
        "verb": verb,
        "pace": pace,
        "exit": output.status.code(),
        "wall_s": wall_s,
        "calls": total,
        "mutating": mutating,
        "reads": total - mutating,
        "refused": refused,
        "own_count": own,
        "cells_seen": seen,
        "cells": rows,
        "slowest_paced_bound_s": slowest_paced,
        "slowest_profile": slowest.map(|r| r["profile"].clone()),
        "sum_paced_bound_s": sum_paced,
        "ratio_slowest": ratio(slowest_paced),
        "ratio_sum": ratio(sum_paced),
        "projected": {
            "tenants": s.project,
            "per_cell": s.project / s.cells.len(),
            "slowest_bound_s": projected_slowest.map(|r| num(r, "projected_bound_s")),
            "slowest_family": projected_slowest.map(|r| r["projected_family"].clone()),
            "slowest_profile": projected_slowest.map(|r| r["profile"].clone()),
            "sum_bound_s": rows.iter().map(|r| num(r, "projected_bound_s")).sum::<f64>(),
        },
        "account_wide": account_wide,
        "moto_memory": pids.iter().map(|p| memory(Some(*p))).collect::<Vec<_>>(),
    })
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let need =
        |name: &str| arg(&args, name).unwrap_or_else(|| fail(&format!("{name} is required")));
    let motos: Vec<String> = list(&args, "--moto", "")
        .into_iter()
        .map(|m| m.trim_end_matches('/').to_owned())
        .collect();
    if motos.is_empty() {
        fail("--moto URL1,URL2 is required: one moto server per account");
    }
    let pids: Vec<u32> = list(&args, "--moto-pid", "")
        .iter()
        .filter_map(|p| p.parse().ok())
        .collect();
    let apifactory = PathBuf::from(need("--apifactory"));
    let artifact = PathBuf::from(need("--artifact"));
    let templates = PathBuf::from(need("--templates"));
    let work = PathBuf::from(need("--work"));
    let regions = list(&args, "--regions", "us-east-1,eu-west-1");
    let per_cell = number(&args, "--per-cell", 10);
    let project = number(&args, "--project", 1200);
    let phases = list(&args, "--phases", "plan,apply,noop");
    let pace = parse_pace(&arg(&args, "--pace").unwrap_or_else(|| "1".into()), &phases);
    if per_cell == 0 {
        fail("--per-cell must be at least 1");
    }

    for (family, _, _) in LIMITS {
        if !FAMILIES.iter().any(|(f, _, _)| *f == family) {
            fail(&format!("the pacer's family {family:?} is not in FAMILIES"));
        }
    }

    let cells: Vec<Cell> = motos
        .iter()
        .enumerate()
        .flat_map(|(a, moto)| {
            regions.iter().map(move |r| Cell {
                account: a,
                moto: moto.clone(),
                region: r.clone(),
                profile: format!("cell-{}-{r}", a + 1),
            })
        })
        .collect();
    let slots: Vec<Slot> = cells
        .iter()
        .flat_map(|c| {
            (0..per_cell).map(move |_| Slot {
                moto: c.moto.clone(),
                region: c.region.clone(),
                deploy: Some((c.profile.clone(), c.region.clone())),
            })
        })
        .collect();

    let tenants_dir = work.join("cells-tenants");
    let _ = std::fs::remove_dir_all(&tenants_dir);
    let started = Instant::now();
    let ids = generate(&templates, &tenants_dir, &slots).await;
    eprintln!(
        "bench-cells: {} tenant files over {} cells in {} ({:.1} s)",
        ids.len(),
        cells.len(),
        tenants_dir.display(),
        started.elapsed().as_secs_f64()
    );

    let changed = work.join("cells-bootstrap-changed");
    let artifact_bytes = changed_artifact(&artifact, &changed);

    let setup = Setup {
        apifactory,
        tenants_dir,
        work,
        cells,
        per_cell,
        project,
        pace,
    };
    let mut results = Vec::new();
    for phase in &phases {
        let (verb, art) = match phase.as_str() {
            "plan" => ("plan", &artifact),
            "apply" | "noop" => ("apply", &artifact),
            "code" => ("apply", &changed),
            other => fail(&format!("unknown phase {other}")),
        };
        results.push(run_phase(&setup, phase, verb, art, &pids).await);
    }

    let out = json!({
        "accounts": motos.len(),
        "regions": regions,
        "cells": setup.cells.iter().map(|c| json!({
            "profile": c.profile, "account_index": c.account, "region": c.region,
        })).collect::<Vec<_>>(),
        "per_cell": per_cell,
        "tenants": ids.len(),
        "templates": std::fs::read_dir(&templates).map(|d| d.count()).unwrap_or(0),
        "pace": setup.pace,
        "project": project,
        "artifact": artifact.file_name().map(|f| f.to_string_lossy().into_owned()),
        "artifact_bytes": artifact_bytes,
        "phases": results,
        "total_s": started.elapsed().as_secs_f64(),
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}
