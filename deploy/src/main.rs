//! `apifactory`: one tenant file per client in, a running API per client out.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use apifactory::aws::cli::AwsArgs;
use apifactory::openapi;
use apifactory::plan::Options;

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

#[derive(Subcommand)]
enum Command {
    /// Check every tenant file and the set of them; exit non-zero on any error.
    Validate,
    /// Validate every tenant, then run a short scripted session against one
    /// tenant's API through the real runtime on an embedded store.
    Demo {
        /// The tenant id (the file stem).
        #[arg(default_value = "acme")]
        tenant: String,
    },
    /// Print the OpenAPI 3 document of one tenant's API.
    Openapi {
        /// The tenant id (the file stem).
        tenant: String,
        /// The AWS region the integration URIs name.
        #[arg(long, default_value = "us-east-1")]
        region: String,
        /// The AWS account the integration URIs name.
        #[arg(long, default_value = "123456789012")]
        account: String,
    },
    /// Show what apply would do on a target: + create, ~ change (with the
    /// fields), - delete, and orphans. Reads only.
    Plan {
        #[command(flatten)]
        scope: Scope,
        #[command(flatten)]
        aws: AwsArgs,
    },
    /// Make the target match the tenant files: every tenant (or those
    /// named) in parallel, a summary at the end; exits non-zero if any
    /// tenant failed.
    Apply {
        #[command(flatten)]
        scope: Scope,
        /// Tenants applied at the same time.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[command(flatten)]
        aws: AwsArgs,
    },
    /// Remove one tenant's stack in reverse order; its table (and data)
    /// stays unless --delete-data.
    Destroy {
        /// Where: `local` (the default) or `aws`.
        #[arg(long, value_enum, default_value = "local")]
        target: TargetName,
        /// The tenant id.
        #[arg(long)]
        tenant: String,
        /// Delete the table and every item in it too.
        #[arg(long)]
        delete_data: bool,
        /// The result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        aws: AwsArgs,
    },
}

/// Where plan, apply and destroy act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TargetName {
    /// This machine's data directory (nothing touches AWS by accident).
    Local,
    /// The AWS account and region of the default credential chain.
    Aws,
}

#[derive(clap::Args, Debug, Clone)]
struct Scope {
    /// Where: `local` (the default) or `aws`.
    #[arg(long, value_enum, default_value = "local")]
    target: TargetName,
    /// Only these tenants (comma-separated ids; default: every tenant).
    #[arg(long = "tenant", value_delimiter = ',')]
    only: Vec<String>,
    /// Also delete what is no longer declared: removed clients' keys and
    /// the stacks of tenants whose file is gone (tables need --delete-data).
    #[arg(long)]
    prune: bool,
    /// With --prune: delete orphaned tenants' tables and data too.
    #[arg(long, requires = "prune")]
    delete_data: bool,
    /// Output as JSON.
    #[arg(long)]
    json: bool,
}

impl Scope {
    fn options(&self) -> Options {
        Options {
            tenants: self.only.iter().cloned().collect(),
            prune: self.prune,
            delete_data: self.delete_data,
        }
    }
}

fn local_unavailable(command: &str) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "`apifactory {command} --target local` is not available in this build; use --target aws"
    )
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes to stdout; a closed pipe (`apifactory openapi x | head`) ends the
/// output quietly instead of panicking.
fn print(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate => match runtime::tenant::load_dir(&cli.tenants) {
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
            let result = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(apifactory::demo::run(t, &dir));
            let _ = std::fs::remove_dir_all(&dir);
            print(&result?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Openapi {
            tenant,
            region,
            account,
        } => {
            let path = cli.tenants.join(format!("{tenant}.toml"));
            let t = runtime::Tenant::load(&path)?;
            let doc = openapi::render(&t, &openapi::Integration::aws(&region, &account))?;
            print(&format!("{doc}\n"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan { scope, aws } => match scope.target {
            TargetName::Aws => {
                apifactory::aws::cli::plan(&cli.tenants, &scope.options(), scope.json, &aws)
            }
            TargetName::Local => local_unavailable("plan"),
        },
        Command::Apply {
            scope,
            concurrency,
            aws,
        } => match scope.target {
            TargetName::Aws => apifactory::aws::cli::apply(
                &cli.tenants,
                &scope.options(),
                scope.json,
                concurrency,
                &aws,
            ),
            TargetName::Local => local_unavailable("apply"),
        },
        Command::Destroy {
            target,
            tenant,
            delete_data,
            json,
            aws,
        } => match target {
            TargetName::Aws => {
                apifactory::aws::cli::destroy(&cli.tenants, &tenant, delete_data, json, &aws)
            }
            TargetName::Local => local_unavailable("destroy"),
        },
    }
}
