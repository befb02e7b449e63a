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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use apifactory::aws::pacer::{Family, LIMITS, limit};
use fault_proxy::{FaultConfig, FaultProxy, OperationCount, RateLimit, is_mutating};
use runtime::Tenant;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Which operations each family of the pacer's table covers, as AWS
/// publishes them (FACTS.md), told from the request by the proxy: the
/// benchmark's own reading of the limits, independent of where the factory
/// calls its pacer. The limits themselves come from `LIMITS`.
const FAMILIES: [(Family, &str, &[&str]); 22] = [
    (Family::ApiGateway, "apigateway:*", &[]),
    (
        Family::CreateRestApi,
        "apigateway:CreateRestApi|apigateway:ImportRestApi",
        &[],
    ),
    (Family::PutRestApi, "apigateway:PutRestApi", &[]),
    (Family::CreateDeployment, "apigateway:CreateDeployment", &[]),
    (Family::DeleteRestApi, "apigateway:DeleteRestApi", &[]),
    (
        Family::DomainName,
        "apigateway:CreateDomainName|apigateway:UpdateDomainName|apigateway:DeleteDomainName",
        &[],
    ),
    (Family::UpdateUsagePlan, "apigateway:UpdateUsagePlan", &[]),
    (
        Family::ApiKeyWrite,
        "apigateway:CreateApiKey|apigateway:DeleteApiKey",
        &[],
    ),
    (Family::UpdateAccount, "apigateway:UpdateAccount", &[]),
    (Family::GetResources, "apigateway:GetResources", &[]),
    (Family::Lambda, "lambda:*", &["GetFunction", "GetPolicy"]),
    (Family::LambdaGetFunction, "lambda:GetFunction", &[]),
    (Family::LambdaGetPolicy, "lambda:GetPolicy", &[]),
    (Family::Iam, "iam:*", &[]),
    (Family::Logs, "logs:*", &[]),
    (Family::DynamoDbControl, "dynamodb:*", &[]),
    (
        Family::DynamoDbTableWrite,
        "dynamodb:CreateTable|dynamodb:UpdateTable|dynamodb:DeleteTable|dynamodb:UpdateContinuousBackups|dynamodb:TagResource|dynamodb:UntagResource",
        &[],
    ),
    (Family::DynamoDbListTags, "dynamodb:ListTagsOfResource", &[]),
    (Family::Route53, "route53:*", &[]),
    (Family::Sts, "sts:*", &[]),
    (
        Family::AcmDescribeCertificate,
        "acm:DescribeCertificate",
        &[],
    ),
    (Family::Route53GetHostedZone, "route53:GetHostedZone", &[]),
];

fn fail(msg: &str) -> ! {
    eprintln!("bench-fleet: {msg}");
    std::process::exit(2)
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// The proxy's limit for a family: the pacer's, `factor` times faster.
fn rate_limit(family: Family, factor: f64) -> RateLimit {
    let (_, operation, except) = FAMILIES
        .iter()
        .find(|(f, _, _)| *f == family)
        .unwrap_or_else(|| fail(&format!("{family:?} has no operations in FAMILIES")));
    let l = limit(family);
    RateLimit {
        operation,
        every: l.every.div_f64(factor),
        burst: l.burst,
        except,
    }
}

/// `service:Operation` split.
fn split(key: &str) -> (Option<&str>, &str) {
    match key.split_once(':') {
        Some((s, op)) => (Some(s), op),
        None => (None, key),
    }
}

/// One HTTP/1.1 request straight to moto (not through the proxy, so not
/// counted), signed with a dummy signature moto does not check.
async fn moto_call(moto: &str, method: &str, path: &str, service: &str, body: &str) -> String {
    let host = moto.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .unwrap_or_else(|e| fail(&format!("moto at {moto}: {e}")));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: AWS4-HMAC-SHA256 \
         Credential=testing/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, \
         Signature=00\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    String::from_utf8_lossy(&raw).into_owned()
}

/// A public hosted zone in moto whose id starts with `Z` as AWS's do (the
/// tenant file requires it); moto draws ids from A-Z0-9, so draw until one
/// does.
async fn hosted_zone(moto: &str, name: &str) -> String {
    for attempt in 0..500 {
        let body = format!(
            "<CreateHostedZoneRequest xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">\
             <Name>{name}.</Name><CallerReference>bench-{name}-{attempt}</CallerReference>\
             </CreateHostedZoneRequest>"
        );
        let answer = moto_call(moto, "POST", "/2013-04-01/hostedzone", "route53", &body).await;
        let id = answer
            .split("<Id>")
            .nth(1)
            .and_then(|s| s.split("</Id>").next())
            .map(|s| s.trim_start_matches("/hostedzone/").to_owned())
            .unwrap_or_else(|| fail(&format!("CreateHostedZone answered: {answer}")));
        if id.starts_with('Z') {
            return id;
        }
        moto_call(
            moto,
            "DELETE",
            &format!("/2013-04-01/hostedzone/{id}"),
            "route53",
            "",
        )
        .await;
    }
    fail("no hosted zone id starting with Z in 500 tries")
}

/// An ACM certificate for `domain` in moto's us-east-1 (ISSUED as soon as
/// it is read: the benchmark starts moto with MOTO_ACM_VALIDATION_WAIT=0),
/// since plan checks that a domain's certificate exists and covers it.
async fn certificate(moto: &str, domain: &str) -> String {
    let host = moto.trim_start_matches("http://").trim_end_matches('/');
    let body = format!(r#"{{"DomainName":"{domain}"}}"#);
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .unwrap_or_else(|e| fail(&format!("moto at {moto}: {e}")));
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nAuthorization: AWS4-HMAC-SHA256 \
         Credential=testing/20260101/us-east-1/acm/aws4_request, SignedHeaders=host, \
         Signature=00\r\nX-Amz-Target: CertificateManager.RequestCertificate\r\n\
         Content-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let answer = String::from_utf8_lossy(&raw).into_owned();
    answer
        .split(r#""CertificateArn": ""#)
        .nth(1)
        .or_else(|| answer.split(r#""CertificateArn":""#).nth(1))
        .and_then(|s| s.split('"').next())
        .map(str::to_owned)
        .unwrap_or_else(|| fail(&format!("RequestCertificate answered: {answer}")))
}

/// Writes `n` copies of the templates into `dir`: template `i mod t`, id
/// `<stem>-<i>`, its domain moved under `<stem>-<i>.`. Returns the ids.
async fn generate(moto: &str, templates: &Path, dir: &Path, n: usize) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(templates)
        .unwrap_or_else(|e| fail(&format!("{}: {e}", templates.display())))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        fail(&format!("no tenant files in {}", templates.display()));
    }
    std::fs::create_dir_all(dir).unwrap();
    let mut zones: BTreeMap<String, String> = BTreeMap::new();
    let mut ids = Vec::new();
    let width = n.saturating_sub(1).to_string().len().max(3);
    for i in 0..n {
        let path = &files[i % files.len()];
        let stem = path.file_stem().unwrap().to_string_lossy();
        let id = format!("{stem}-{i:0width$}");
        let mut text = std::fs::read_to_string(path).unwrap();
        let t = Tenant::load(path).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
        if let Some(d) = &t.domain {
            let (first, rest) = d.name.split_once('.').unwrap_or((&d.name, ""));
            let domain = format!("{first}.{id}.{rest}");
            text = text.replace(&format!("\"{}\"", d.name), &format!("\"{domain}\""));
            let made = certificate(moto, &domain).await;
            text = text.replace(&d.certificate_arn, &made);
            if let Some(zone) = &d.hosted_zone_id {
                let made = match zones.get(rest) {
                    Some(z) => z.clone(),
                    None => {
                        let z = hosted_zone(moto, rest).await;
                        zones.insert(rest.to_owned(), z.clone());
                        z
                    }
                };
                text = text.replace(zone, &made);
            }
        }
        std::fs::write(dir.join(format!("{id}.toml")), text).unwrap();
        ids.push(id);
    }
    ids
}

/// Peak and current resident memory of a process, in MiB.
fn memory(pid: Option<u32>) -> Value {
    let Some(pid) = pid else { return Value::Null };
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return Value::Null;
    };
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|k| k / 1024)
    };
    json!({"rss_mib": kib("VmRSS:"), "peak_mib": kib("VmHWM:")})
}

struct Setup {
    moto: String,
    apifactory: PathBuf,
    tenants_dir: PathBuf,
    work: PathBuf,
    /// K by phase.
    pace: BTreeMap<String, f64>,
    concurrency: Option<String>,
}

/// `K` for every phase, or `phase=K,...` (1 where not named).
fn parse_pace(text: &str, phases: &[String]) -> BTreeMap<String, f64> {
    let check = |v: &str| match v.parse::<f64>() {
        Ok(k) if k.is_finite() && k > 0.0 => k,
        _ => fail(&format!("--pace: {v:?} is not a positive factor")),
    };
    let mut out: BTreeMap<String, f64> = phases.iter().map(|p| (p.clone(), 1.0)).collect();
    if !text.contains('=') {
        let k = check(text);
        out.values_mut().for_each(|v| *v = k);
        return out;
    }
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (phase, k) = part
            .split_once('=')
            .unwrap_or_else(|| fail(&format!("--pace: {part:?} is not phase=K")));
        out.insert(phase.to_owned(), check(k));
    }
    out
}

/// A phase's calls by operation, and the family sums.
struct Counted {
    ops: BTreeMap<String, OperationCount>,
}

impl Counted {
    fn accepted(c: &OperationCount) -> u64 {
        c.calls - c.refused
    }

    fn family_calls(&self, family: Family) -> u64 {
        let rl = rate_limit(family, 1.0);
        self.ops
            .iter()
            .filter(|(k, _)| {
                let (svc, op) = split(k);
                rl.covers(svc, op)
            })
            .map(|(_, c)| Self::accepted(c))
            .sum()
    }

    /// The lower bound at `tenants`, scaled per tenant from `measured`
    /// tenants: seconds, and the family that sets it.
    fn bound(&self, measured: usize, tenants: usize) -> (f64, Family, Value) {
        let mut best = (0.0, Family::ApiGateway);
        let mut rows = Vec::new();
        for (family, l, source) in LIMITS {
            let calls = self.family_calls(family) as f64 * tenants as f64 / measured as f64;
            let secs = (calls - l.burst as f64).max(0.0) * l.every.as_secs_f64();
            if calls > 0.0 {
                rows.push(json!({
                    "family": format!("{family:?}"), "limit": source, "calls": calls,
                    "every_s": l.every.as_secs_f64(), "burst": l.burst, "bound_s": secs,
                }));
            }
            if secs > best.0 {
                best = (secs, family);
            }
        }
        (best.0, best.1, Value::Array(rows))
    }
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
    let (wall, output) = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let out = cmd.output();
        (start.elapsed(), out)
    })
    .await
    .unwrap();
    let output = output.unwrap_or_else(|e| fail(&format!("running apifactory: {e}")));
    std::fs::write(s.work.join(format!("fleet-{name}.out")), &output.stdout).unwrap();
    std::fs::write(s.work.join(format!("fleet-{name}.err")), &output.stderr).unwrap();
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
    let ids = generate(&moto, &templates, &tenants_dir, tenants).await;
    eprintln!(
        "bench-fleet: {} tenant files in {} ({:.1} s)",
        ids.len(),
        tenants_dir.display(),
        started.elapsed().as_secs_f64()
    );

    // The code change: the same executable with bytes appended, so every
    // function's zip (and CodeSha256) differs while it still runs.
    let changed = work.join("bootstrap-changed");
    let mut bytes =
        std::fs::read(&artifact).unwrap_or_else(|e| fail(&format!("{}: {e}", artifact.display())));
    let artifact_bytes = bytes.len();
    bytes.extend_from_slice(b"\napifactory bench: a code change\n");
    std::fs::write(&changed, &bytes).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&changed, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

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

/// The definition change: one more optional field in every tenant's
/// collection (`[collection.fields]`), so every REST API's document and
/// every function's package differ.
fn add_a_field(dir: &Path) {
    const HEADER: &str = "[collection.fields]\n";
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| fail(&format!("{}: {e}", dir.display())));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let Some(at) = text.find(HEADER) else {
            fail(&format!("{}: no [collection.fields]", path.display()));
        };
        let at = at + HEADER.len();
        let field = "bench_note = { type = \"string\", max_length = 40 }\n";
        std::fs::write(&path, format!("{}{field}{}", &text[..at], &text[at..])).unwrap();
    }
}
