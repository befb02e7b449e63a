//! The AWS side of the commands: how to reach AWS (the way AWS tools take
//! it), the artifact the functions ship, and the index wait of `apply
//! --wait`. The commands themselves run through `crate::engine`.

use std::path::{Path, PathBuf};

use super::{AwsTarget, Connect, Pace, Package};
use crate::plan::Waiting;

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
    /// LocalStack); AWS_ENDPOINT_URL works too. Given here, it applies to
    /// every cell, whatever profile a tenant file's `[deploy]` names (as
    /// the AWS CLI's beats a profile's `endpoint_url`); without it, each
    /// profile's own `endpoint_url` applies.
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// The built `bootstrap` executable (default: build it with
    /// `cargo build --profile lambda -p apifactory-runtime --bin bootstrap`).
    #[arg(long)]
    pub artifact: Option<PathBuf>,
}

impl AwsArgs {
    pub fn connect(&self) -> Connect {
        Connect {
            profile: self.profile.clone(),
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
        }
    }
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

/// The AWS target of a deploy command, and the code its functions ship:
/// the artifact is built or read only when the run deploys a tenant.
pub async fn connect(
    args: &AwsArgs,
    deploys: bool,
) -> anyhow::Result<(AwsTarget, Option<Package>)> {
    let package = if deploys { Some(artifact(args)?) } else { None };
    let target = target(args, package.clone()).await?;
    Ok((target, package))
}

/// The code a deploy command's functions ship, when it deploys a tenant.
pub fn package(args: &AwsArgs, deploys: bool) -> anyhow::Result<Option<Package>> {
    if deploys {
        artifact(args).map(Some)
    } else {
        Ok(None)
    }
}

/// The target of one cell (`crate::cells`): its own clients and pacer.
pub async fn cell(connect: &Connect, package: Option<Package>) -> anyhow::Result<AwsTarget> {
    let pace = Pace::from_env().map_err(|e| anyhow::anyhow!(e))?;
    AwsTarget::new(&connect.sdk_config().await, pace, package).await
}

/// Polls each waiting tenant's table until every index on it is ACTIVE,
/// with a line on stderr per poll saying what it waits for.
pub(super) async fn wait_for_indexes(
    target: &AwsTarget,
    waiting: &[Waiting],
) -> anyhow::Result<()> {
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
