//! The benchmark's fleet redeploys: N tenants made from the tenant files of
//! a directory, deployed to moto by the real `apifactory` binary through a
//! counting proxy that enforces AWS's published control-plane limits.
//!
//!   bench-fleet --moto URL --apifactory PATH --artifact PATH --templates DIR \
//!       --work DIR [--tenants 100] [--pace K | --pace plan=K,apply=K,noop=K,code=K,definition=K] \
//!       [--project 600] [--moto-pid PID] [--concurrency C]
//!       [--phases plan,apply,noop,code,definition]
//!
//! Writes N copies of the templates into DIR/tenants (ids `<stem>-<i>`,
//! domains under `<stem>-<i>.` so they never clash, each with its own ACM
//! certificate in moto, one Route 53 zone made in moto for the files that
//! name one), then runs, against the same moto
//! server, each phase as a user would with `APIFACTORY_PACE=K`:
//!
//! - `plan` on a fresh server;
//! - the first `apply`;
//! - a second `apply` with no change (it must make no mutating call);
//! - an `apply` with a changed artifact (the bootstrap with bytes appended,
//!   so every function's zip and its `CodeSha256` differ): a code redeploy;
//! - an `apply` after a field is added to every tenant's collection: a
//!   definition redeploy (every REST API's document, its deployment, and
//!   the functions, which ship with the collection).
//!
//! K may differ per phase (default 1): each phase's bound divided by its K
//! should be long beside what moto itself takes, or the ratio measures moto.
//!
//! Each phase goes through a fresh `FaultProxy` (tests/support, shared with
//! the e2e tests) with no injected faults, enforcing every family of
//! `apifactory::aws::pacer::LIMITS` scaled by K (the same factor the pacer
//! uses), and counting every request by its AWS operation. A refused call is
//! a throttling error the factory met: the target is none.
//!
//! The lower bound of a phase: from its accepted calls, scaled per tenant to
//! the fleet size, the slowest family of the pacer's table (every API
//! Gateway call also counts in the ApiGateway family): `burst` calls at
//! once, then one every `every`, so `max(0, calls - burst) * every`. Its
//! paced wall time at K is compared with `bound / K`.
//!
//! Prints one JSON document on stdout; the CLI's output goes to DIR, and
//! each phase's calls as they reached the proxy to DIR/fleet-PHASE.calls.csv.

// The proxy is the e2e tests' own (tests/support/fault_proxy.rs), compiled
// in here rather than depended on as a crate: the support crate's other
// dependencies would change Cargo.lock, which other work shares. The bench
// uses part of it.
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

use apifactory::aws::pacer::LIMITS;
use fault_proxy::{FaultConfig, FaultProxy, is_mutating};
use fleet_common::{
    Counted, FAMILIES, Slot, add_a_field, arg, changed_artifact, fail, generate, memory,
    parse_pace, rate_limit, run_cli, split,
};
use serde_json::{Value, json};

struct Setup {
    moto: String,
    apifactory: PathBuf,
    tenants_dir: PathBuf,
    work: PathBuf,
    /// K by phase.
    pace: BTreeMap<String, f64>,
    concurrency: Option<String>,
}

async fn run_phase(
    s: &Setup,
    name: &str,
    verb: &str,
    artifact: &Path,
    tenants: usize,
    project: &[usize],
    moto_pid: Option<u32>,
) -> Value {
    let pace = s.pace.get(name).copied().unwrap_or(1.0);
    let limits = FAMILIES
        .iter()
        .map(|(f, _, _)| rate_limit(*f, pace))
        .collect();
    let proxy = FaultProxy::start(
        &s.moto,
        FaultConfig {
            limits,
            ..FaultConfig::with_rate(0.0)
        },
    )
    .await;
    let mut cmd = Command::new(&s.apifactory);
    cmd.arg(verb)
        .args(["--target", "aws", "--tenants"])
        .arg(&s.tenants_dir)
        .arg("--artifact")
        .arg(artifact);
    if verb == "plan" {
        cmd.arg("--json");
    }
    if verb == "apply"
        && let Some(c) = &s.concurrency
    {
        cmd.args(["--concurrency", c]);
    }
    cmd.env("AWS_ENDPOINT_URL", proxy.url())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("APIFACTORY_PACE", pace.to_string())
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL_LAMBDA");
    eprintln!("bench-fleet: {name}: {verb} at pace {pace}");
    let phase_start = Instant::now();
    let (wall, output) = run_cli(cmd, &s.work, "fleet", name).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The factory's own count ("apply made W mutating call(s) and R read(s)").
    let own = stderr
        .lines()
        .find(|l| l.starts_with("apply made "))
        .map(str::to_owned);
    let actions = (verb == "plan")
        .then(|| serde_json::from_str::<Value>(&stdout).ok())
        .flatten()
        .and_then(|p| p["actions"].as_array().map(Vec::len));

    // Every call as it reached the proxy, for a look at where a phase's time
    // went: milliseconds since the CLI started, operation, refused or not.
    let timeline: String = proxy
        .stats()
        .timeline()
        .iter()
        .map(|(at, op, refused)| {
            format!(
                "{:.1},{op},{}\n",
                at.saturating_duration_since(phase_start).as_secs_f64() * 1e3,
                u8::from(*refused)
            )
        })
        .collect();
    std::fs::write(s.work.join(format!("fleet-{name}.calls.csv")), timeline).unwrap();
    let counted = Counted {
        ops: proxy.stats().operations(),
    };
    drop(proxy);
    let total: u64 = counted.ops.values().map(|c| c.calls).sum();
    let refused: u64 = counted.ops.values().map(|c| c.refused).sum();
    let mutating: u64 = counted
        .ops
        .iter()
        .filter(|(k, _)| is_mutating(split(k).1))
        .map(|(_, c)| c.calls)
        .sum();
    let by_op: BTreeMap<&String, Value> = counted
        .ops
        .iter()
        .map(|(k, c)| {
            let (svc, op) = split(k);
            let families: Vec<String> = FAMILIES
                .iter()
                .filter(|(f, _, _)| rate_limit(*f, 1.0).covers(svc, op))
                .map(|(f, _, _)| format!("{f:?}"))
                .collect();
            (
                k,
                json!({"calls": c.calls, "refused": c.refused, "mutating": is_mutating(op),
                       "per_tenant": c.calls as f64 / tenants as f64, "families": families}),
            )
        })
        .collect();
    let mut bounds = serde_json::Map::new();
    for &n in std::iter::once(&tenants).chain(project) {
        let (secs, family, rows) = counted.bound(tenants, n);
        bounds.insert(
            n.to_string(),
            json!({"seconds": secs, "family": format!("{family:?}"), "families": rows}),
        );
    }
    let (bound_here, _, _) = counted.bound(tenants, tenants);
    let paced_bound = bound_here / pace;
    let wall_s = wall.as_secs_f64();
    eprintln!(
        "bench-fleet: {name}: {wall_s:.1} s, exit {:?}, {total} calls ({mutating} mutating), \
         {refused} refused; bound at K {paced_bound:.1} s",
        output.status.code()
    );
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
        "per_tenant": total as f64 / tenants as f64,
        "own_count": own,
        "plan_actions": actions,
        "operations": by_op,
        "bounds": bounds,
        "paced_bound_s": paced_bound,
        "ratio": if paced_bound > 0.0 { Value::from(wall_s / paced_bound) } else { Value::Null },
        "moto_memory": memory(moto_pid),
    })
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let need =
        |name: &str| arg(&args, name).unwrap_or_else(|| fail(&format!("{name} is required")));
    let moto = need("--moto").trim_end_matches('/').to_owned();
    let apifactory = PathBuf::from(need("--apifactory"));
    let artifact = PathBuf::from(need("--artifact"));
    let templates = PathBuf::from(need("--templates"));
    let work = PathBuf::from(need("--work"));
    let tenants: usize = arg(&args, "--tenants")
        .map(|v| {
            v.parse()
                .unwrap_or_else(|e| fail(&format!("--tenants: {e}")))
        })
        .unwrap_or(100);
    let project: Vec<usize> = arg(&args, "--project")
        .unwrap_or_else(|| "600".into())
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|v| {
            v.parse()
                .unwrap_or_else(|e| fail(&format!("--project: {e}")))
        })
        .collect();
    let moto_pid: Option<u32> = arg(&args, "--moto-pid").and_then(|p| p.parse().ok());
    let phases: Vec<String> = arg(&args, "--phases")
        .unwrap_or_else(|| "plan,apply,noop,code,definition".into())
        .split(',')
        .map(str::to_owned)
        .collect();
    let pace = parse_pace(&arg(&args, "--pace").unwrap_or_else(|| "1".into()), &phases);

    // Every family of the pacer's table must be classified here.
    for (family, _, _) in LIMITS {
        if !FAMILIES.iter().any(|(f, _, _)| *f == family) {
            fail(&format!("the pacer's family {family:?} is not in FAMILIES"));
        }
    }

    let tenants_dir = work.join("fleet-tenants");
    let _ = std::fs::remove_dir_all(&tenants_dir);
    let started = Instant::now();
    let slots: Vec<Slot> = (0..tenants)
        .map(|_| Slot {
            moto: moto.clone(),
            region: "us-east-1".into(),
            deploy: None,
        })
        .collect();
    let ids = generate(&templates, &tenants_dir, &slots).await;
    eprintln!(
        "bench-fleet: {} tenant files in {} ({:.1} s)",
        ids.len(),
        tenants_dir.display(),
        started.elapsed().as_secs_f64()
    );

    // The code change: the same executable with bytes appended, so every
    // function's zip (and CodeSha256) differs while it still runs.
    let changed = work.join("bootstrap-changed");
    let artifact_bytes = changed_artifact(&artifact, &changed);

    let setup = Setup {
        moto,
        apifactory,
        tenants_dir,
        work,
        pace,
        concurrency: arg(&args, "--concurrency"),
    };
    let mut results = Vec::new();
    for phase in &phases {
        let (verb, art) = match phase.as_str() {
            "plan" => ("plan", &artifact),
            "apply" | "noop" => ("apply", &artifact),
            "code" => ("apply", &changed),
            "definition" => {
                add_a_field(&setup.tenants_dir);
                ("apply", &changed)
            }
            other => fail(&format!("unknown phase {other}")),
        };
        let r = run_phase(&setup, phase, verb, art, tenants, &project, moto_pid).await;
        results.push(r);
    }

    let families: Vec<Value> = LIMITS
        .iter()
        .map(|(f, l, source)| {
            let (_, ops, except) = FAMILIES.iter().find(|(g, _, _)| g == f).unwrap();
            json!({"family": format!("{f:?}"), "limit": source, "every_s": l.every.as_secs_f64(),
                   "burst": l.burst, "operations": ops, "except": except})
        })
        .collect();
    let out = json!({
        "tenants": tenants,
        "templates": std::fs::read_dir(&templates).map(|d| d.count()).unwrap_or(0),
        "pace": setup.pace,
        "project": project,
        "concurrency": setup.concurrency,
        "artifact": artifact.file_name().map(|f| f.to_string_lossy().into_owned()),
        "artifact_bytes": artifact_bytes,
        "families": families,
        "phases": results,
        "total_s": started.elapsed().as_secs_f64(),
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}
