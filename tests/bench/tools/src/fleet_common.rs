//! What the fleet benchmarks share (bench-fleet, one cell; bench-cells,
//! four): the benchmark's reading of which operations each pacer family
//! covers, the tenant files made from templates with their certificates
//! and zones in moto, and the lower bound a phase's calls set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use apifactory::aws::pacer::{Family, LIMITS, limit};
use runtime::Tenant;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fault_proxy::{OperationCount, RateLimit};

/// Which operations each family of the pacer's table covers, as AWS
/// publishes them (FACTS.md), told from the request by the proxy: the
/// benchmark's own reading of the limits, independent of where the factory
/// calls its pacer. The limits themselves come from `LIMITS`.
pub(crate) const FAMILIES: [(Family, &str, &[&str]); 28] = [
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
    // CloudWatch signs as `monitoring`.
    (
        Family::CloudWatchGetMetricData,
        "monitoring:GetMetricData",
        &[],
    ),
    (Family::LogsFilterLogEvents, "logs:FilterLogEvents", &[]),
    (
        Family::CloudWatchDescribeAlarms,
        "monitoring:DescribeAlarms",
        &[],
    ),
    (
        Family::CloudWatchAlarmWrite,
        "monitoring:PutMetricAlarm|monitoring:DeleteAlarms",
        &[],
    ),
    (
        Family::DynamoDbData,
        "dynamodb:Scan|dynamodb:BatchGetItem|dynamodb:BatchWriteItem",
        &[],
    ),
    (Family::DynamoDbScan, "dynamodb:Scan", &[]),
];

/// The code change: the same executable with bytes appended, at `to`, so
/// every function's zip (and CodeSha256) differs while it still runs.
/// Returns the original's size.
pub(crate) fn changed_artifact(artifact: &Path, to: &Path) -> usize {
    let mut bytes =
        std::fs::read(artifact).unwrap_or_else(|e| fail(&format!("{}: {e}", artifact.display())));
    let size = bytes.len();
    bytes.extend_from_slice(b"\napifactory bench: a code change\n");
    std::fs::write(to, &bytes).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    size
}

/// Runs one phase's CLI command off the runtime's threads, keeps its
/// output in `work` as `{prefix}-{name}.out`/`.err`, and returns how long
/// it took with its output.
pub(crate) async fn run_cli(
    mut cmd: std::process::Command,
    work: &Path,
    prefix: &str,
    name: &str,
) -> (std::time::Duration, std::process::Output) {
    let (wall, output) = tokio::task::spawn_blocking(move || {
        let start = std::time::Instant::now();
        let out = cmd.output();
        (start.elapsed(), out)
    })
    .await
    .unwrap();
    let output = output.unwrap_or_else(|e| fail(&format!("running apifactory: {e}")));
    std::fs::write(work.join(format!("{prefix}-{name}.out")), &output.stdout).unwrap();
    std::fs::write(work.join(format!("{prefix}-{name}.err")), &output.stderr).unwrap();
    (wall, output)
}

pub(crate) fn fail(msg: &str) -> ! {
    eprintln!("bench-fleet: {msg}");
    std::process::exit(2)
}

pub(crate) fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// The proxy's limit for a family: the pacer's, `factor` times faster.
pub(crate) fn rate_limit(family: Family, factor: f64) -> RateLimit {
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
pub(crate) fn split(key: &str) -> (Option<&str>, &str) {
    match key.split_once(':') {
        Some((s, op)) => (Some(s), op),
        None => (None, key),
    }
}

/// One HTTP/1.1 request straight to moto (not through the proxy, so not
/// counted), signed with a dummy signature moto does not check.
pub(crate) async fn moto_call(
    moto: &str,
    method: &str,
    path: &str,
    service: &str,
    body: &str,
) -> String {
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
pub(crate) async fn hosted_zone(moto: &str, name: &str) -> String {
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

/// An ACM certificate for `domain` in moto's `region` (ISSUED as soon as
/// it is read: the benchmark starts moto with MOTO_ACM_VALIDATION_WAIT=0),
/// since plan checks that a domain's certificate exists, covers it and is
/// in the API's region and account.
pub(crate) async fn certificate(moto: &str, region: &str, domain: &str) -> String {
    let host = moto.trim_start_matches("http://").trim_end_matches('/');
    let body = format!(r#"{{"DomainName":"{domain}"}}"#);
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .unwrap_or_else(|e| fail(&format!("moto at {moto}: {e}")));
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nAuthorization: AWS4-HMAC-SHA256 \
         Credential=testing/20260101/{region}/acm/aws4_request, SignedHeaders=host, \
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

/// Where a generated tenant goes: the moto server standing for its
/// account, the region its certificate is made in, and the `[deploy]`
/// placement its file names (none: the command line's).
pub(crate) struct Slot {
    pub(crate) moto: String,
    pub(crate) region: String,
    pub(crate) deploy: Option<(String, String)>,
}

/// Writes a copy of the templates into `dir` per slot: template `i mod t`,
/// id `<stem>-<i>`, its domain moved under `<stem>-<i>.`, its certificate
/// made in its slot's account and region, its hosted zone made once per
/// account. Returns the ids.
pub(crate) async fn generate(templates: &Path, dir: &Path, slots: &[Slot]) -> Vec<String> {
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
    let mut zones: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut ids = Vec::new();
    let width = slots.len().saturating_sub(1).to_string().len().max(3);
    for (i, slot) in slots.iter().enumerate() {
        let path = &files[i % files.len()];
        let stem = path.file_stem().unwrap().to_string_lossy();
        let id = format!("{stem}-{i:0width$}");
        let mut text = std::fs::read_to_string(path).unwrap();
        let t = Tenant::load(path).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
        if let Some(d) = &t.domain {
            let (first, rest) = d.name.split_once('.').unwrap_or((&d.name, ""));
            let domain = format!("{first}.{id}.{rest}");
            text = text.replace(&format!("\"{}\"", d.name), &format!("\"{domain}\""));
            let made = certificate(&slot.moto, &slot.region, &domain).await;
            text = text.replace(&d.certificate_arn, &made);
            if let Some(zone) = &d.hosted_zone_id {
                let key = (slot.moto.clone(), rest.to_owned());
                let made = match zones.get(&key) {
                    Some(z) => z.clone(),
                    None => {
                        let z = hosted_zone(&slot.moto, rest).await;
                        zones.insert(key, z.clone());
                        z
                    }
                };
                text = text.replace(zone, &made);
            }
        }
        if let Some((profile, region)) = &slot.deploy {
            text += &format!("\n[deploy]\nprofile = \"{profile}\"\nregion = \"{region}\"\n");
        }
        std::fs::write(dir.join(format!("{id}.toml")), text).unwrap();
        ids.push(id);
    }
    ids
}

/// Peak and current resident memory of a process, in MiB.
pub(crate) fn memory(pid: Option<u32>) -> Value {
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

/// `K` for every phase, or `phase=K,...` (1 where not named).
pub(crate) fn parse_pace(text: &str, phases: &[String]) -> BTreeMap<String, f64> {
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
pub(crate) struct Counted {
    pub(crate) ops: BTreeMap<String, OperationCount>,
}

impl Counted {
    pub(crate) fn accepted(c: &OperationCount) -> u64 {
        c.calls - c.refused
    }

    pub(crate) fn family_calls(&self, family: Family) -> u64 {
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
    pub(crate) fn bound(&self, measured: usize, tenants: usize) -> (f64, Family, Value) {
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

/// The definition change: one more optional field in every tenant's
/// collection (`[collection.fields]`), so every REST API's document and
/// every function's package differ.
pub(crate) fn add_a_field(dir: &Path) {
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
