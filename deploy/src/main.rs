//! `apifactory`: one tenant file per client in, a running API per client out.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use apifactory::openapi;

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
    }
}
