//! `apifactory plan|apply|destroy --target aws`: the commands' AWS side,
//! kept here so `main.rs` only parses and dispatches.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::{AwsTarget, Connect, Pace, Package};
use crate::apply::{Lines, Progress, Report, apply as run_plan};
use crate::desired::{Desired, desired};
use crate::plan::{Action, Change, Options, Plan, Waiting, plan as make_plan};
use crate::target::Target;

/// How to reach AWS and what to deploy, the way AWS tools take it.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AwsArgs {
    /// The named profile (default: the default credential chain,
    /// AWS_PROFILE).
    #[arg(long)]
    pub profile: Option<String>,
    /// The region (default: AWS_REGION or the profile's).
    #[arg(long)]
    pub region: Option<String>,
    /// Another endpoint for every AWS service (an emulator such as moto or
    /// LocalStack); AWS_ENDPOINT_URL works too.
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// The built `bootstrap` executable (default: build it with
    /// `cargo build --profile lambda -p apifactory-runtime --bin bootstrap`).
    #[arg(long)]
    pub artifact: Option<PathBuf>,
}

impl AwsArgs {
    fn connect(&self) -> Connect {
        Connect {
            profile: self.profile.clone(),
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
        }
    }
}

/// The tenant files of a directory, and the package each one's functions
/// ship with.
fn load(dir: &Path) -> anyhow::Result<(Vec<runtime::Tenant>, BTreeMap<String, String>)> {
    let set = crate::tenants::TenantSet::load(dir)?;
    Ok((set.tenants, set.sources))
}

/// The artifact to deploy: the given one, or a fresh release build.
fn artifact(args: &AwsArgs) -> anyhow::Result<Package> {
    let path = match &args.artifact {
        Some(p) => p.clone(),
        None => build_bootstrap()?,
    };
    Package::from_artifact(&path)
}

fn build_bootstrap() -> anyhow::Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .filter(|r| r.join("Cargo.toml").is_file())
        .ok_or_else(|| {
            anyhow::anyhow!("no source tree to build the bootstrap from: give --artifact PATH")
        })?;
    eprintln!(
        "building the bootstrap (cargo build --profile lambda -p apifactory-runtime --bin bootstrap)"
    );
    let status = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
        .args([
            "build",
            "--profile",
            "lambda",
            "-p",
            "apifactory-runtime",
            "--bin",
            "bootstrap",
        ])
        .current_dir(&root)
        .status()
        .map_err(|e| anyhow::anyhow!("running cargo: {e}; give --artifact PATH"))?;
    if !status.success() {
        anyhow::bail!("building the bootstrap failed ({status})");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("lambda").join("bootstrap"))
}

async fn target(args: &AwsArgs, package: Option<Package>) -> anyhow::Result<AwsTarget> {
    let pace = Pace::from_env().map_err(|e| anyhow::anyhow!(e))?;
    let config = args.connect().sdk_config().await;
    AwsTarget::new(&config, pace, package).await
}

/// The AWS target of `apifactory keys --target aws`: no code to deploy.
pub async fn key_store(args: &AwsArgs) -> anyhow::Result<AwsTarget> {
    target(args, None).await
}

/// Writes to stdout; a closed pipe ends the output quietly.
fn print(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Reads the tenants, the artifact and what exists; plans.
async fn prepare(
    dir: &Path,
    opts: &Options,
    args: &AwsArgs,
    keep: impl Fn(&runtime::Tenant) -> bool,
) -> anyhow::Result<(Desired, AwsTarget, Plan)> {
    let (tenants, sources) = load(dir)?;
    // Only the tenants in scope: the others' code need not be hashed.
    let tenants: Vec<runtime::Tenant> = tenants
        .into_iter()
        .filter(|t| keep(t) && (opts.tenants.is_empty() || opts.tenants.contains(&t.id)))
        .collect();
    // Nothing to deploy (destroy): no artifact needed.
    let package = if tenants.is_empty() {
        None
    } else {
        Some(artifact(args)?)
    };
    let d = match &package {
        Some(code) => desired(&tenants, &sources, code),
        None => Desired::default(),
    };
    let target = target(args, package).await?;
    // What the files point to (certificates, hosted zones) is read beside
    // what exists: both only read, and a problem ends the run before the
    // first write, with every file's problems at once.
    let (checked, observed) = tokio::join!(
        super::references::check(&target, &tenants),
        target.observe(&opts.tenants)
    );
    checked?;
    let observed = observed?;
    eprintln!(
        "observed {} resource(s) of {} tenant(s) in {} with {} read(s)",
        observed.resources.len(),
        observed
            .resources
            .keys()
            .map(|a| a.tenant.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        target.env.region,
        target.pacer.reads()
    );
    let p = make_plan(&d, &observed, opts);
    Ok((d, target, p))
}

/// `apifactory plan --target aws`: reads only.
pub async fn plan(
    dir: &Path,
    opts: &Options,
    json: bool,
    args: &AwsArgs,
) -> anyhow::Result<ExitCode> {
    let (_, _, p) = prepare(dir, opts, args, |_| true).await?;
    if json {
        print(&format!("{}\n", serde_json::to_string_pretty(&p)?))?;
    } else {
        print(&format!("{p}\n"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `apifactory apply --target aws`: every tenant (or those named) in
/// parallel; one tenant's failure does not stop the others. With `wait`,
/// a tenant waiting for a new index to backfill is waited for (a progress
/// line per poll), then planned and applied again, until its functions
/// have moved to the new indexes.
pub async fn apply(
    dir: &Path,
    opts: &Options,
    json: bool,
    concurrency: usize,
    wait: bool,
    args: &AwsArgs,
) -> anyhow::Result<ExitCode> {
    let (d, target, mut p) = prepare(dir, opts, args, |_| true).await?;
    // One round per index at most: DynamoDB creates them one at a time
    // (20 per table at most), and each round creates the next.
    let mut rounds = 0;
    let ok = loop {
        let waiting = p.waiting.clone();
        let ok = execute(d.clone(), target.clone(), p, json, concurrency).await?;
        rounds += 1;
        if !wait || !ok || waiting.is_empty() || rounds > 21 {
            break ok;
        }
        wait_for_indexes(&target, &waiting).await?;
        let observed = target.observe(&opts.tenants).await?;
        p = make_plan(&d, &observed, opts);
    };
    let code = if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    // API Gateway has no key expiry: rotated keys whose grace period has
    // ended stop working here (no mutating call when none has).
    let expired = super::keys::expire_in(&target, &opts.tenants).await?;
    if !expired.is_empty() {
        let line = format!(
            "{} rotated key(s) past their grace period disabled: {}\n",
            expired.len(),
            expired.join(", ")
        );
        if json {
            eprint!("{line}");
        } else {
            print(&line)?;
        }
    }
    Ok(code)
}

/// `apifactory destroy --target aws --tenant X`: the tenant's stack in
/// reverse order; its table (and data) stays unless `delete_data`.
pub async fn destroy(
    dir: &Path,
    tenant: &str,
    delete_data: bool,
    json: bool,
    args: &AwsArgs,
) -> anyhow::Result<ExitCode> {
    let opts = Options {
        tenants: [tenant.to_owned()].into(),
        prune: true,
        delete_data,
        ..Options::default()
    };
    // The tenant's file may still be there: plan as if it were gone.
    let (d, target, p) = prepare(dir, &opts, args, |t| t.id != tenant).await?;
    Ok(if execute(d, target, p, json, 1).await? {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Polls each waiting tenant's table until every index on it is ACTIVE,
/// with a line on stderr per poll saying what it waits for.
async fn wait_for_indexes(target: &AwsTarget, waiting: &[Waiting]) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    for w in waiting {
        let mut pause = std::time::Duration::from_secs(1);
        loop {
            let building = super::table::indexes_not_active(target, &w.table).await?;
            if building.is_empty() {
                eprintln!(
                    "{}: every index of table {} is ACTIVE ({} s)",
                    w.tenant,
                    w.table,
                    start.elapsed().as_secs()
                );
                break;
            }
            eprintln!(
                "{}: waiting for index {} of table {} to backfill ({} s so far)",
                w.tenant,
                building.join(", "),
                w.table,
                start.elapsed().as_secs()
            );
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(15));
        }
    }
    Ok(())
}

/// Prints the plan, applies it and prints the report; whether every
/// tenant's part went through.
async fn execute(
    d: Desired,
    target: AwsTarget,
    p: Plan,
    json: bool,
    concurrency: usize,
) -> anyhow::Result<bool> {
    if !json {
        print(&format!("{p}\n"))?;
    }
    // A plan over a hard quota would fail part-way, some tenants made
    // and others not: it is refused before the first write.
    if let Some(why) = p.refused() {
        anyhow::bail!("{why}");
    }
    let reads_before = target.pacer.reads();
    let progress: Arc<dyn Progress> = if std::io::stderr().is_terminal() {
        Arc::new(Bars::new(&p))
    } else {
        Arc::new(Lines)
    };
    let target = Arc::new(target);
    let report = run_plan(&p, Arc::new(d), target.clone(), concurrency, progress).await;
    eprintln!(
        "apply made {} mutating call(s) and {} read(s)",
        target.pacer.writes(),
        target.pacer.reads() - reads_before
    );
    if json {
        print(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else if !report.tenants.is_empty() {
        print(&format!("\n{report}\n"))?;
        print_secrets(&report)?;
    }
    Ok(report.ok())
}

fn print_secrets(report: &Report) -> anyhow::Result<()> {
    let secrets: Vec<_> = report.secrets().collect();
    print(&crate::local::up::secrets_table(&secrets))
}

/// One progress bar per tenant, on a terminal.
struct Bars {
    bars: HashMap<String, ProgressBar>,
}

impl Bars {
    fn new(p: &Plan) -> Bars {
        let multi = MultiProgress::new();
        let style = ProgressStyle::with_template("{prefix:<16} [{bar:30}] {pos:>3}/{len:<3} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for a in &p.actions {
            *counts.entry(a.address.tenant.as_str()).or_default() += 1;
        }
        let bars = counts
            .into_iter()
            .map(|(tenant, n)| {
                let bar = multi.add(ProgressBar::new(n));
                bar.set_style(style.clone());
                bar.set_prefix(tenant.to_owned());
                (tenant.to_owned(), bar)
            })
            .collect();
        Bars { bars }
    }
}

impl Progress for Bars {
    fn done(&self, a: &Action, result: &Result<(), String>) {
        let Some(bar) = self.bars.get(&a.address.tenant) else {
            return;
        };
        let sign = match a.change {
            Change::Create => "+",
            Change::Update { .. } => "~",
            Change::Delete => "-",
        };
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
