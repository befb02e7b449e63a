//! `apifactory`: one tenant file per client in, a running API per client out.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use apifactory::apply::secrets_table;
use apifactory::aws::cli::AwsArgs;
use apifactory::engine::{self, Job, Looking, Show, print, with_data};
use apifactory::local::up::{Up, up};
use apifactory::local::{LocalCode, LocalState, LocalTarget};
use apifactory::openapi;
use apifactory::tenants::TenantSet;
use apifactory::usage::prices::Prices;
use apifactory::usage::report::{Report, invoice as invoice_text, month_range};

/// `up` allocates and frees a few dozen small blocks per request, often on
/// another worker thread than the one that allocated them: mimalloc does
/// that in a fraction of glibc malloc's instructions.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Run many clients' CRUD APIs from one tenant file each.
#[derive(Parser)]
#[command(name = "apifactory", version, about)]
struct Cli {
    /// The directory of tenant files (`<id>.toml`).
    #[arg(
        long,
        global = true,
        default_value = "tenants",
        env = "APIFACTORY_TENANTS"
    )]
    tenants: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TargetName {
    /// Every tenant on this machine (`apifactory up` serves them).
    Local,
    /// Amazon Web Services.
    Aws,
}

#[derive(Args)]
struct TargetArgs {
    /// Where to deploy. `local` is the default, so nothing touches AWS by accident.
    #[arg(long, value_enum, default_value = "local")]
    target: TargetName,
    /// The local target's data directory.
    #[arg(long, default_value = ".apifactory", env = "APIFACTORY_DATA_DIR")]
    data_dir: PathBuf,
    #[command(flatten)]
    aws: AwsArgs,
}

#[derive(Args)]
struct Scope {
    /// Only these tenants (comma-separated ids); all when left out.
    #[arg(long, value_delimiter = ',')]
    tenant: Vec<String>,
    /// Delete what is no longer declared: removed clients' keys (otherwise
    /// only disabled) and the resources of tenants whose file is gone.
    #[arg(long)]
    prune: bool,
    /// Allow deleting tables, and so data.
    #[arg(long)]
    delete_data: bool,
    /// Read every resource and what the files point to, trusting no
    /// tenant's stamp: finds what was changed by hand (drift).
    #[arg(long)]
    refresh: bool,
}

/// How plan and apply look at the items already stored when a tenant's
/// fields change (`apifactory::schema_change`). The local target's items
/// are always read.
#[derive(Args, Clone, Copy)]
struct DataArgs {
    /// On AWS, read every stored item of the tenants in scope (a paced,
    /// parallel Scan, which costs read capacity) and count those the new
    /// fields make invalid; without it the plan says they were not
    /// checked, and apply goes on without checking them.
    #[arg(long)]
    check_data: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Check every tenant file and the set of them; exit non-zero on any error.
    Validate,
    /// Write a new tenant file, `<tenants>/<tenant>.toml`, from flags (on a
    /// terminal without --collection, by asking); never overwrites.
    New {
        /// The tenant id: 1 to 32 characters of a-z, 0-9 and -, starting
        /// with a letter.
        tenant: String,
        /// The resource name (`/orders`).
        #[arg(long)]
        collection: Option<String>,
        /// The item key's name.
        #[arg(long, default_value = "id")]
        key: String,
        /// A field: NAME:TYPE[:index][:required], repeated. TYPE is string,
        /// integer, number, boolean, timestamp or string_list.
        #[arg(long = "field", value_name = "NAME:TYPE[:index][:required]", value_parser = apifactory::scaffold::parse_field)]
        fields: Vec<apifactory::scaffold::FieldFlag>,
        /// A client, who gets its own key; repeated.
        #[arg(long = "client", value_name = "NAME")]
        clients: Vec<String>,
        /// Requests a second per key.
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        /// Requests at once per key.
        #[arg(long, default_value_t = 20)]
        burst: u32,
        /// LIMIT/DAY, LIMIT/WEEK or LIMIT/MONTH per key.
        #[arg(long, value_parser = apifactory::scaffold::parse_quota)]
        quota: Option<(u64, String)>,
        /// The API's custom domain (needs --certificate-arn).
        #[arg(long, requires = "certificate_arn")]
        domain: Option<String>,
        /// The ACM certificate covering --domain, in the deploy region.
        #[arg(long, requires = "domain")]
        certificate_arn: Option<String>,
        /// The name shown in the console and the portal.
        #[arg(long)]
        display_name: Option<String>,
        /// The API Gateway stage.
        #[arg(long, default_value = "prod")]
        stage: String,
    },
    /// Print the OpenAPI 3 document of one tenant's API; with --all, write
    /// or check every tenant's (definitions kept in git).
    Openapi {
        /// The tenant id (the file stem).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        tenant: Option<String>,
        /// Every tenant: with --out, write `DIR/<tenant>.json`; with
        /// --check, compare those files with what the tenant files produce
        /// (exit status 1, naming each difference, when they differ).
        #[arg(long, requires = "dir")]
        all: bool,
        /// Write every tenant's document into this directory.
        #[arg(long, group = "dir", value_name = "DIR")]
        out: Option<PathBuf>,
        /// Check the documents committed in this directory.
        #[arg(long, group = "dir", value_name = "DIR")]
        check: Option<PathBuf>,
        /// The AWS region the integration URIs name.
        #[arg(long, default_value = "us-east-1")]
        region: String,
        /// The AWS account the integration URIs name.
        #[arg(long, default_value = "123456789012")]
        account: String,
    },
    /// Write each tenant's developer portal as static files:
    /// `<out>/<tenant>/index.html` and its OpenAPI document beside it.
    Docs {
        /// Only these tenants (comma-separated ids); all when left out.
        #[arg(long, value_delimiter = ',')]
        tenant: Vec<String>,
        /// The directory to write into (made when missing).
        #[arg(long)]
        out: PathBuf,
        /// The AWS region the OpenAPI documents name.
        #[arg(long, default_value = "us-east-1")]
        region: String,
        /// The AWS account the OpenAPI documents name.
        #[arg(long, default_value = "123456789012")]
        account: String,
    },
    /// Show what apply would create (+), change (~) and delete (-). Reads only.
    Plan {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        scope: Scope,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Read everything and report every attribute apifactory sets that
    /// differs from the tenant files. Reads only. Exit status 0: no drift,
    /// 2: drift, 1: an error.
    Drift {
        #[command(flatten)]
        target: TargetArgs,
        /// Only these tenants (comma-separated ids); all when left out.
        #[arg(long, value_delimiter = ',')]
        tenant: Vec<String>,
        /// Print the differences as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make the target match the tenant files. No --tenant: every tenant.
    Apply {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        scope: Scope,
        /// How many tenants to apply at once. The pacer holds every call to
        /// AWS's rate limits whatever this is; more tenants at once keep
        /// those limits busier while a tenant's calls wait on each other.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Wait for new indexes to finish backfilling (AWS: hours on a large
        /// table), then move the functions to them in this same apply;
        /// without it, the next apply does. The local target's indexes are
        /// ready at once.
        #[arg(long)]
        wait: bool,
        /// Apply without asking first (a terminal is asked; scripts never).
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        data: DataArgs,
        /// Apply a change that leaves stored items invalid: they keep
        /// reading as stored, and a write of one is refused until it is
        /// fixed. Without it, such a change is refused and nothing is
        /// changed.
        #[arg(long)]
        allow_invalid_data: bool,
    },
    /// Remove a tenant's resources in reverse order; its table (and data)
    /// stays unless --delete-data.
    Destroy {
        #[command(flatten)]
        target: TargetArgs,
        /// The tenant to remove.
        #[arg(long, required = true)]
        tenant: String,
        /// Delete the table and its data too.
        #[arg(long)]
        delete_data: bool,
        /// With --delete-data, delete an adopted table too (one the tenant
        /// file named with `[collection] table`: apifactory did not make it).
        #[arg(long, requires = "delete_data")]
        delete_adopted_data: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Destroy without asking first (a terminal is asked; scripts never).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Apply every tenant to the local target and serve them all the way
    /// API Gateway would (keys, throttling, quotas, stages, domains).
    Up {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:4570")]
        listen: SocketAddr,
        /// The local target's data directory.
        #[arg(long, default_value = ".apifactory", env = "APIFACTORY_DATA_DIR")]
        data_dir: PathBuf,
        /// Re-plan and apply when a tenant file is added, edited or removed.
        #[arg(long)]
        watch: bool,
        /// Do not record usage (for measuring what recording costs).
        #[arg(long)]
        no_usage: bool,
    },
    /// Serve the provider's console for a fleet from this machine
    /// (`apifactory up` serves the local one at /_console/ too). The admin
    /// token is printed once, in the console's address.
    Console {
        #[command(flatten)]
        target: TargetArgs,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:4580")]
        listen: SocketAddr,
    },
    /// Print a tenant's access and function logs: the local target's
    /// file, or on AWS the last ten minutes of its log groups, in the
    /// tenant's cell (`[deploy]`).
    Logs {
        #[command(flatten)]
        target: TargetArgs,
        /// The tenant id.
        tenant: String,
        /// Keep printing new lines as they come.
        #[arg(long, short)]
        follow: bool,
    },
    /// Requests, errors, refusals, quota, latency and estimated cost per
    /// tenant and per client key; `--invoice` prints a month's statement per
    /// client.
    Usage {
        #[command(flatten)]
        target: TargetArgs,
        /// Only these tenants (comma-separated ids); all when left out.
        #[arg(long, value_delimiter = ',')]
        tenant: Vec<String>,
        /// Only this client's keys.
        #[arg(long)]
        client: Option<String>,
        /// The first day (YYYY-MM-DD, UTC); the month's first day by default.
        #[arg(long)]
        from: Option<String>,
        /// The last day, included (YYYY-MM-DD, UTC); today by default.
        #[arg(long)]
        to: Option<String>,
        /// The length of each line's period.
        #[arg(long, value_enum, default_value = "day")]
        by: apifactory::usage::report::By,
        /// Print JSON (for a billing pipeline).
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print CSV, one row per tenant, key and period.
        #[arg(long)]
        csv: bool,
        /// Print the per-client statements of this tenant for `--month`.
        #[arg(long, requires = "month", conflicts_with_all = ["from", "to", "csv"])]
        invoice: Option<String>,
        /// The statement's month (YYYY-MM).
        #[arg(long, requires = "invoice")]
        month: Option<String>,
        /// Another price table than the built-in one (`deploy/prices.toml`).
        #[arg(long)]
        prices: Option<PathBuf>,
    },
    /// Per-client API keys: list, create, rotate, disable, enable, revoke.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// A tenant's items as JSON Lines: export them, import them (either
    /// target, in either direction).
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Validate every tenant, then run a short scripted session against one
    /// tenant's API through the real runtime on an embedded store.
    Demo {
        /// The tenant id (the file stem).
        #[arg(default_value = "acme")]
        tenant: String,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// Every item, one JSON object a line (key, `_rev`, fields in name
    /// order), in id order.
    Export {
        #[command(flatten)]
        target: TargetArgs,
        tenant: String,
        /// Write here (whole or not at all) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Checks every line against the tenant's fields, then writes the items
    /// in batches; safe to run again after an interruption.
    Import {
        #[command(flatten)]
        target: TargetArgs,
        tenant: String,
        /// A JSON Lines file, as `data export` writes it.
        file: PathBuf,
        /// A line whose id is stored with other content: keep the stored
        /// item (skip), store the file's (replace), or write nothing (fail).
        /// A line equal to the stored item is unchanged in every mode.
        #[arg(long, value_enum, default_value = "fail")]
        on_conflict: apifactory::data::OnConflict,
        /// Print the counts as JSON.
        #[arg(long)]
        json: bool,
        /// Lines per batch (one local transaction).
        #[arg(long, default_value_t = 1000, hide = true)]
        batch: usize,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Every key with its client, id, state and dates; never a value.
    List {
        #[command(flatten)]
        target: TargetArgs,
        /// Only this tenant's keys.
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// An ad-hoc key for a client, on the tenant's usage plan. The value is
    /// printed once, here.
    Create {
        #[command(flatten)]
        target: TargetArgs,
        tenant: String,
        client: String,
        #[arg(long)]
        json: bool,
    },
    /// A new key for the client; the old one keeps working for the grace
    /// period, then stops.
    Rotate {
        #[command(flatten)]
        target: TargetArgs,
        tenant: String,
        client: String,
        /// How long the old key keeps working: 90s, 30m, 24h, 7d.
        #[arg(long, default_value = "24h", value_parser = apifactory::keys::parse_duration)]
        grace: Duration,
        #[arg(long)]
        json: bool,
    },
    /// Makes a key value the client already uses its key here, on the
    /// tenant's usage plan (a key the account has with that value is taken
    /// over). The value is read from standard input, never an argument:
    /// `apifactory keys import acme web < key.txt`. Never printed.
    Import {
        #[command(flatten)]
        target: TargetArgs,
        tenant: String,
        client: String,
        #[arg(long)]
        json: bool,
    },
    /// The key stops working until enabled again.
    Disable {
        #[command(flatten)]
        target: TargetArgs,
        tenant: String,
        key_id: String,
    },
    /// A disabled key works again.
    Enable {
        #[command(flatten)]
        target: TargetArgs,
        tenant: String,
        key_id: String,
    },
    /// Deletes the key.
    Revoke {
        #[command(flatten)]
        target: TargetArgs,
        tenant: String,
        key_id: String,
    },
    /// Disables keys whose rotation grace period has ended.
    Expire {
        #[command(flatten)]
        target: TargetArgs,
    },
}

/// `openapi --all --out DIR` or `--check DIR`.
fn definitions(
    tenants: &std::path::Path,
    integration: &openapi::Integration,
    out: Option<PathBuf>,
    check: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let set = runtime::tenant::load_dir(tenants)?;
    let docs = apifactory::definitions::documents(&set, integration)?;
    if let Some(dir) = out {
        let (written, stale) = apifactory::definitions::write(&dir, &docs)?;
        let mut text = String::new();
        for p in &written {
            text += &format!("wrote {}\n", p.display());
        }
        for p in &stale {
            text += &format!(
                "stale {} (no tenant file produces it; not deleted)\n",
                p.display()
            );
        }
        text += &format!(
            "{} document(s) in {}, {} written\n",
            docs.len(),
            dir.display(),
            written.len()
        );
        print(&text)?;
        return Ok(ExitCode::SUCCESS);
    }
    let dir = check.expect("clap requires --out or --check with --all");
    let diffs = apifactory::definitions::check(&dir, &docs)?;
    if diffs.0.is_empty() {
        print(&format!(
            "{} document(s) in {} match the tenant files\n",
            docs.len(),
            dir.display()
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    for d in &diffs.0 {
        eprintln!("error: {d}");
    }
    eprintln!(
        "{} difference(s); regenerate with `apifactory openapi --all --out {}`",
        diffs.0.len(),
        dir.display()
    );
    Ok(ExitCode::FAILURE)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("APIFACTORY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes to stdout; a closed pipe (`apifactory openapi x | head`) ends the
/// output quietly instead of panicking.
async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate => match runtime::tenant::load_dir(&cli.tenants).and_then(|t| {
            let unknown = apifactory::cells::unknown_profiles(&t);
            if unknown.is_empty() {
                Ok(t)
            } else {
                Err(runtime::TenantErrors(unknown))
            }
        }) {
            Ok(tenants) => {
                let mut out = String::new();
                for t in &tenants {
                    out += &format!(
                        "ok  {:<12} /{:<14} {} field(s), {} client(s){}\n",
                        t.id,
                        t.collection.name,
                        t.collection.fields.len(),
                        t.clients.len(),
                        t.domain
                            .as_ref()
                            .map(|d| format!(", https://{}", d.name))
                            .unwrap_or_default()
                    );
                }
                out += &format!("{} tenant file(s) valid\n", tenants.len());
                print(&out)?;
                Ok(ExitCode::SUCCESS)
            }
            Err(errors) => {
                for e in &errors.0 {
                    eprintln!("error: {e}");
                }
                eprintln!("{} error(s)", errors.0.len());
                Ok(ExitCode::FAILURE)
            }
        },
        Command::New {
            tenant,
            collection,
            key,
            fields,
            clients,
            rate,
            burst,
            quota,
            domain,
            certificate_arn,
            display_name,
            stage,
        } => {
            let mut spec = apifactory::scaffold::Spec {
                tenant,
                display_name,
                stage,
                collection: collection.clone().unwrap_or_default(),
                key,
                fields,
                clients,
                rate,
                burst,
                quota,
                domain: domain.zip(certificate_arn),
            };
            if collection.is_none() {
                use std::io::IsTerminal;
                if !std::io::stdin().is_terminal() {
                    anyhow::bail!(
                        "--collection is required (or run `apifactory new` on a terminal to be asked)"
                    );
                }
                apifactory::scaffold::ask(&mut spec)?;
            }
            if spec.clients.is_empty() {
                spec.clients.push(format!("{}-client", spec.tenant));
            }
            let path = apifactory::scaffold::write(&cli.tenants, &spec)?;
            print(&format!(
                "wrote {} (/{}, {} field(s), {} client(s))\nnext:\n  apifactory plan --tenant {t}\n  apifactory apply --tenant {t}\n",
                path.display(),
                spec.collection,
                spec.fields.len(),
                spec.clients.len(),
                t = spec.tenant,
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Openapi {
            tenant,
            all,
            out,
            check,
            region,
            account,
        } => {
            let env = apifactory::aws::Env::new(&region, &account);
            let integration = openapi::Integration::new(&env.partition, &region, &account);
            let Some(tenant) = tenant.filter(|_| !all) else {
                return definitions(&cli.tenants, &integration, out, check);
            };
            let path = cli.tenants.join(format!("{tenant}.toml"));
            let t = runtime::Tenant::load(&path)?;
            let doc = openapi::render(&t, &integration, openapi::Document::Client)?;
            print(&format!("{doc}\n"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Docs {
            tenant,
            out,
            region,
            account,
        } => {
            let set = TenantSet::load(&cli.tenants)?;
            if let Some(id) = tenant.iter().find(|id| set.get(id).is_none()) {
                anyhow::bail!("no tenant {id:?} among the tenant files");
            }
            let env = apifactory::aws::Env::new(&region, &account);
            let integration = openapi::Integration::new(&env.partition, &region, &account);
            let mut written = String::new();
            for t in set
                .tenants
                .iter()
                .filter(|t| tenant.is_empty() || tenant.contains(&t.id))
            {
                let page = apifactory::portal::write(t, &integration, &out)?;
                written += &format!("{}\n", page.display());
            }
            print(&written)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan {
            target,
            scope,
            json,
            data,
        } => {
            let set = TenantSet::load(&cli.tenants)?;
            let opts = scope.options(&set)?;
            let show = Show { json, yes: false };
            let job = Job::Plan {
                set: &set,
                opts: &opts,
                refresh: scope.refresh,
                show,
            };
            deploy_looking(&target, job, Some(data.looking(false))).await
        }
        Command::Drift {
            target,
            tenant,
            json,
        } => {
            let set = TenantSet::load(&cli.tenants)?;
            let opts = engine::options(&set, &tenant, false, false)?;
            let show = Show { json, yes: false };
            deploy(
                &target,
                Job::Drift {
                    set: &set,
                    opts: &opts,
                    show,
                },
            )
            .await
        }
        Command::Apply {
            target,
            scope,
            concurrency,
            json,
            wait,
            yes,
            data,
            allow_invalid_data,
        } => {
            let set = TenantSet::load(&cli.tenants)?;
            let opts = scope.options(&set)?;
            let show = Show { json, yes };
            let job = Job::Apply {
                set: &set,
                opts: &opts,
                refresh: scope.refresh,
                concurrency,
                wait,
                show,
            };
            deploy_looking(&target, job, Some(data.looking(allow_invalid_data))).await
        }
        Command::Destroy {
            target,
            tenant,
            delete_data,
            delete_adopted_data,
            json,
            yes,
        } => {
            let job = Job::Destroy {
                tenant: &tenant,
                delete_data,
                delete_adopted_data,
                show: Show { json, yes },
            };
            deploy(&placed_for(&target, &cli.tenants, Some(&tenant)), job).await
        }
        Command::Up {
            listen,
            data_dir,
            watch,
            no_usage,
        } => {
            let state = LocalState::open(&data_dir).await?;
            up(
                state,
                Up {
                    listen,
                    tenants: cli.tenants,
                    watch,
                    record_usage: !no_usage,
                },
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Usage {
            target,
            tenant,
            client,
            from,
            to,
            by,
            json,
            csv,
            invoice,
            month,
            prices,
        } => {
            let prices = match prices {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
                    Prices::parse(&path, &text)?
                }
                None => Prices::built_in(),
            };
            let (from, to, tenants) = match (&invoice, &month) {
                (Some(t), Some(m)) => {
                    let (first, last) = month_range(m)?;
                    (first, last, vec![t.clone()])
                }
                _ => {
                    let today = time::OffsetDateTime::now_utc().date();
                    let from = match from {
                        Some(d) => parse_date("--from", &d)?,
                        None => today.replace_day(1)?,
                    };
                    let to = match to {
                        Some(d) => parse_date("--to", &d)?,
                        None => today,
                    };
                    (from, to, tenant)
                }
            };
            if to < from {
                anyhow::bail!("--to {to} is before --from {from}");
            }
            let mut gathered = usage_gather(&target, &cli.tenants, &tenants, from, to, by).await?;
            if matches!(target.target, TargetName::Aws)
                && let Ok(set) = TenantSet::load(&cli.tenants)
            {
                let wanted: Vec<runtime::Tenant> = set
                    .tenants
                    .into_iter()
                    .filter(|t| tenants.is_empty() || tenants.contains(&t.id))
                    .collect();
                gathered
                    .alarms
                    .extend(apifactory::usage::quota_alarms(&wanted, &gathered));
            }
            let report = Report::build(&gathered, from, to, by, client.as_deref(), &prices);
            if let Some(t) = &invoice {
                let display = TenantSet::load(&cli.tenants).ok().and_then(|set| {
                    set.tenants
                        .iter()
                        .find(|x| &x.id == t)
                        .map(|x| x.display_name.clone())
                });
                if json {
                    let found = report.tenants.iter().find(|x| &x.tenant == t);
                    let v = found.map_or(serde_json::Value::Null, |_| report.json());
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    print!("{}", invoice_text(&report, t, display.as_deref()));
                }
            } else if json {
                println!("{}", serde_json::to_string_pretty(&report.json())?);
            } else if csv {
                print!("{}", report.csv());
            } else {
                print!("{}", report.table());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Logs {
            target,
            tenant,
            follow,
        } => {
            if target.target == TargetName::Aws {
                let t = apifactory::cells::follow::target_of(&target.aws, &cli.tenants, &tenant)
                    .await?;
                apifactory::console::print_aws_logs(t, tenant, follow).await?;
                return Ok(ExitCode::SUCCESS);
            }
            let data_dir = target.data_dir;
            let path = data_dir.join("logs").join(format!("{tenant}.log"));
            let mut offset = 0u64;
            loop {
                match std::fs::read(&path) {
                    Ok(bytes) if (bytes.len() as u64) > offset => {
                        print(&String::from_utf8_lossy(&bytes[offset as usize..]))?;
                        offset = bytes.len() as u64;
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && follow => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        anyhow::bail!("no logs for tenant {tenant} in {} yet", data_dir.display())
                    }
                    Err(e) => return Err(e.into()),
                }
                if !follow {
                    return Ok(ExitCode::SUCCESS);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Command::Keys { command } => keys(&cli.tenants, command).await,
        Command::Data { command } => data(&cli.tenants, command).await,
        Command::Console { target, listen } => {
            use apifactory::console::{Fleet, serve};
            let fleet = match target.target {
                TargetName::Local => Fleet::Local(LocalState::open(&target.data_dir).await?),
                TargetName::Aws => {
                    let (home, t) = console_home(&target.aws, &cli.tenants).await?;
                    Fleet::Aws {
                        target: t,
                        args: target.aws.clone(),
                        home,
                    }
                }
            };
            serve(fleet, cli.tenants, listen).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { tenant } => {
            let tenants = runtime::tenant::load_dir(&cli.tenants)?;
            print(&format!("{} tenant file(s) valid\n\n", tenants.len()))?;
            let t = tenants
                .into_iter()
                .find(|t| t.id == tenant)
                .ok_or_else(|| {
                    anyhow::anyhow!("no tenant {tenant:?} in {}", cli.tenants.display())
                })?;
            let dir = std::env::temp_dir().join(format!("apifactory-demo-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let result = apifactory::demo::run(t, &dir).await;
            let _ = std::fs::remove_dir_all(&dir);
            print(&result?)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs a deploy command on the target the command line names.
async fn deploy(target: &TargetArgs, job: Job<'_>) -> anyhow::Result<ExitCode> {
    deploy_looking(target, job, None).await
}

/// [`deploy`], and for a plan or an apply given `looking`, what the
/// tenants' field changes mean for their stored items, read first: the
/// plan shows it, and an apply that would leave items invalid is refused
/// before any change.
async fn deploy_looking(
    target: &TargetArgs,
    job: Job<'_>,
    looking: Option<Looking>,
) -> anyhow::Result<ExitCode> {
    match target.target {
        TargetName::Local => {
            let state = LocalState::open(&target.data_dir).await?;
            let stored = match (&job, looking) {
                (Job::Plan { set, opts, .. } | Job::Apply { set, opts, .. }, Some(_)) => Some(
                    apifactory::schema_change::local(&state, &engine::in_scope(set, opts)).await?,
                ),
                _ => None,
            };
            let opts = with_data(&job, stored, looking)?;
            let job = job.with(opts.as_ref());
            engine::run(Arc::new(LocalTarget::new(state)), &LocalCode, job).await
        }
        TargetName::Aws => apifactory::cells::run::aws(&target.aws, job, looking).await,
    }
}

/// The command line's target, moved to the tenant's cell when its file
/// places it (`apifactory::cells::run::placed_args`).
fn placed_for(target: &TargetArgs, tenants: &std::path::Path, tenant: Option<&str>) -> TargetArgs {
    TargetArgs {
        target: target.target,
        data_dir: target.data_dir.clone(),
        aws: apifactory::cells::run::placed_args(&target.aws, tenants, tenant),
    }
}

/// The console's own AWS target: the command line's; when that cannot be
/// reached and the tenant files place tenants (`[deploy]`), the first of
/// their cells that can (a fleet placed wholly by its files may have no
/// command-line account at all). The connection it was made with, too.
async fn console_home(
    args: &AwsArgs,
    tenants: &std::path::Path,
) -> anyhow::Result<(AwsArgs, apifactory::aws::AwsTarget)> {
    let first = match apifactory::aws::cli::key_store(args).await {
        Ok(t) => return Ok((args.clone(), t)),
        Err(e) => e,
    };
    for (a, ids) in apifactory::cells::follow::by_connection(args, tenants, &[]) {
        if ids.is_empty() {
            continue;
        }
        if let Ok(t) = apifactory::aws::cli::key_store(&a).await {
            return Ok((a, t));
        }
    }
    Err(first)
}

/// A date given on the command line.
fn parse_date(flag: &str, text: &str) -> anyhow::Result<time::Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &format).map_err(|_| {
        anyhow::anyhow!("{flag} {text:?}: expected a date YYYY-MM-DD, for example 2026-11-01")
    })
}

/// The figures of a usage report from its target: the tenants' rows from
/// `from` to `to` (both included), in hours, or in days for days and
/// months.
async fn usage_gather(
    target: &TargetArgs,
    dir: &std::path::Path,
    tenants: &[String],
    from: time::Date,
    to: time::Date,
    by: apifactory::usage::report::By,
) -> anyhow::Result<apifactory::usage::Gathered> {
    use apifactory::usage::{Source, Span, gather};
    let start = from.midnight().assume_utc().unix_timestamp();
    let end = to.midnight().assume_utc().unix_timestamp() + 86_400;
    let span = if by == apifactory::usage::report::By::Hour {
        Span::Hour
    } else {
        Span::Day
    };
    match target.target {
        TargetName::Local => {
            let state = LocalState::open(&target.data_dir).await?;
            gather(Source::Local(&state), tenants, start, end, span).await
        }
        TargetName::Aws => {
            apifactory::cells::follow::usage(&target.aws, dir, tenants, start, end, span).await
        }
    }
}

/// `apifactory data`: the tenant's table on the named target, then the
/// export or import (`apifactory::data`).
async fn data(tenants: &std::path::Path, command: DataCommand) -> anyhow::Result<ExitCode> {
    use apifactory::data::{self, Table};
    let (DataCommand::Export { target, tenant, .. } | DataCommand::Import { target, tenant, .. }) =
        &command;
    let set = TenantSet::load(tenants)?;
    let t = set
        .get(tenant)
        .ok_or_else(|| anyhow::anyhow!("no tenant {tenant:?} among the tenant files"))?
        .clone();
    // An import's file is checked before anything is opened: a bad file
    // never waits for a target.
    let lines = match &command {
        DataCommand::Import { file, .. } => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            match data::parse(&t.collection, &text) {
                Ok(lines) => Some(lines),
                Err(problems) => {
                    for p in &problems {
                        eprintln!("error: {}: {p}", file.display());
                    }
                    eprintln!(
                        "{} problem(s) in {}; nothing written",
                        problems.len(),
                        file.display()
                    );
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        DataCommand::Export { .. } => None,
    };
    let target = &placed_for(target, tenants, Some(&t.id));
    let table = match target.target {
        TargetName::Local => {
            let state = LocalState::open(&target.data_dir).await?;
            Table::Local(data::local::table(&state, &t).await?)
        }
        TargetName::Aws => {
            let aws = apifactory::aws::cli::key_store(&target.aws).await?;
            // The tenant's own table, or the one its file adopts.
            let name = t.collection.table_name(&t.id);
            Table::Aws(data::AwsTable::new(aws, name, t.collection.clone()))
        }
    };
    match command {
        DataCommand::Export { out: None, .. } => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            match data::export(&table, &t.collection, &mut w).await {
                // `data export acme | head`: the reader has all it wants.
                Err(e)
                    if e.downcast_ref::<std::io::Error>()
                        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => {}
                done => {
                    done?;
                }
            }
        }
        DataCommand::Export {
            out: Some(path), ..
        } => {
            // Written beside and renamed: an interrupted export leaves no
            // file that looks whole.
            let mut partial = path.clone().into_os_string();
            partial.push(".partial");
            let partial = PathBuf::from(partial);
            let file = std::fs::File::create(&partial)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", partial.display()))?;
            let mut w = std::io::BufWriter::new(file);
            let n = data::export(&table, &t.collection, &mut w).await?;
            w.into_inner()
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", partial.display()))?
                .sync_all()?;
            std::fs::rename(&partial, &path)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            eprintln!("{n} item(s) written to {}", path.display());
        }
        DataCommand::Import {
            on_conflict,
            json,
            batch,
            ..
        } => {
            let lines = lines.unwrap_or_default();
            let counts = data::import(&table, lines, on_conflict, batch).await?;
            if json {
                print(&format!("{}\n", serde_json::to_string(&counts)?))?;
            } else {
                print(&format!("{counts}\n"))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn keys(tenants: &std::path::Path, command: KeysCommand) -> anyhow::Result<ExitCode> {
    let (target, tenant) = match &command {
        KeysCommand::List { target, tenant, .. } => (target, tenant.as_deref()),
        KeysCommand::Create { target, tenant, .. }
        | KeysCommand::Rotate { target, tenant, .. }
        | KeysCommand::Import { target, tenant, .. }
        | KeysCommand::Disable { target, tenant, .. }
        | KeysCommand::Enable { target, tenant, .. }
        | KeysCommand::Revoke { target, tenant, .. } => (target, Some(tenant.as_str())),
        KeysCommand::Expire { target } => (target, None),
    };
    let target = &placed_for(target, tenants, tenant);
    match target.target {
        TargetName::Local => {
            let store = LocalState::open(&target.data_dir).await?;
            keys_on(&store, command, "").await
        }
        TargetName::Aws => {
            let store = apifactory::aws::cli::key_store(&target.aws).await?;
            // API Gateway has no key expiry of its own.
            let note = " It is disabled by the first `apifactory apply --target aws` or \
                        `apifactory keys expire --target aws` after that.";
            keys_on(&store, command, note).await
        }
    }
}

/// The key commands on either target: the same output from both (`expiry`
/// adds how a rotated key stops working where the target needs a run).
async fn keys_on(
    store: &impl apifactory::keys::KeyStore,
    command: KeysCommand,
    expiry: &str,
) -> anyhow::Result<ExitCode> {
    use apifactory::keys::KeyTable;
    match command {
        KeysCommand::List { tenant, json, .. } => {
            let keys = store.list(tenant.as_deref()).await?;
            if json {
                print(&format!("{}\n", serde_json::to_string_pretty(&keys)?))?;
            } else {
                print(&format!("{}\n", KeyTable(&keys)))?;
            }
        }
        KeysCommand::Create {
            tenant,
            client,
            json,
            ..
        } => {
            let s = store.create(&tenant, &client).await?;
            if json {
                print(&format!("{}\n", serde_json::to_string(&s)?))?;
            } else {
                print(&secrets_table(&[&s]))?;
            }
        }
        KeysCommand::Rotate {
            tenant,
            client,
            grace,
            json,
            ..
        } => {
            let r = store.rotate(&tenant, &client, grace).await?;
            if json {
                print(&format!("{}\n", serde_json::to_string(&r)?))?;
            } else {
                print(&format!(
                    "{}The old key {} keeps working until {}.{expiry}\n",
                    secrets_table(&[&r.new]),
                    r.old_id,
                    r.old_expires
                ))?;
            }
        }
        KeysCommand::Import {
            tenant,
            client,
            json,
            ..
        } => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                // Otherwise the command would seem to hang.
                eprintln!("Key value for client {client} of {tenant} (then Enter and Ctrl-D):");
            }
            let mut input = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut input)
                .map_err(|e| anyhow::anyhow!("reading the key value from standard input: {e}"))?;
            let value = apifactory::keys::imported_value(&input)?;
            let i = store.import(&tenant, &client, &value).await?;
            if json {
                print(&format!("{}\n", serde_json::to_string(&i)?))?;
            } else {
                print(&format!(
                    "Key {} is client {client}'s key of {tenant}, on its usage plan ({}).\n",
                    i.id,
                    if i.adopted {
                        "the existing key with this value, taken over"
                    } else {
                        "made with this value"
                    }
                ))?;
            }
        }
        KeysCommand::Disable { tenant, key_id, .. } => {
            store.set_enabled(&tenant, &key_id, false).await?;
            print(&format!("Key {key_id} of {tenant} disabled.\n"))?;
        }
        KeysCommand::Enable { tenant, key_id, .. } => {
            store.set_enabled(&tenant, &key_id, true).await?;
            print(&format!("Key {key_id} of {tenant} enabled.\n"))?;
        }
        KeysCommand::Revoke { tenant, key_id, .. } => {
            store.revoke(&tenant, &key_id).await?;
            print(&format!("Key {key_id} of {tenant} revoked (deleted).\n"))?;
        }
        KeysCommand::Expire { .. } => {
            let ids = store.expire().await?;
            print(&format!(
                "{} expired key(s) disabled{}\n",
                ids.len(),
                if ids.is_empty() {
                    String::new()
                } else {
                    format!(": {}", ids.join(", "))
                }
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl DataArgs {
    fn looking(self, allow_invalid: bool) -> Looking {
        Looking {
            check_data: self.check_data,
            allow_invalid,
        }
    }
}

impl Scope {
    /// Plan options from the command line; unknown tenant ids are an error.
    fn options(&self, set: &TenantSet) -> anyhow::Result<apifactory::plan::Options> {
        engine::options(set, &self.tenant, self.prune, self.delete_data)
    }
}
