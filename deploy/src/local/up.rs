//! `apifactory up`: apply every tenant to the local target, then serve them
//! all with API Gateway's behaviour, with the provider's console at
//! `/_console/`; with `--watch`, follow the tenant directory without a
//! restart.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::apply::secrets_table;
use crate::console::{Console, Fleet};
use crate::engine::deploy_quietly;
use crate::local::gateway::{Config, Gateway};
use crate::local::{LocalCode, LocalState, LocalTarget};
use crate::plan::Options;
use crate::tenants::{TenantSet, fingerprint};

pub struct Up {
    pub listen: SocketAddr,
    pub tenants: PathBuf,
    pub watch: bool,
    /// Record usage (`--no-usage` turns it off, to measure its cost).
    pub record_usage: bool,
}

fn urls_table(set: &TenantSet, addr: SocketAddr) -> String {
    let port = addr.port();
    let mut out = String::from("Serving:\n");
    for t in &set.tenants {
        let c = &t.collection.name;
        let _ = writeln!(
            out,
            "  {:<10} http://{}.localhost:{port}/{}/{c}",
            t.id, t.id, t.stage
        );
        let _ = writeln!(
            out,
            "  {:<10} http://{addr}/restapis/{}/{}/_user_request_/{c}",
            "", t.id, t.stage
        );
        if let Some(d) = &t.domain {
            let base = if d.base_path.is_empty() {
                String::new()
            } else {
                format!("/{}", d.base_path)
            };
            let _ = writeln!(
                out,
                "  {:<10} http://{addr}{base}/{c}  (Host: {})",
                "", d.name
            );
        }
    }
    out
}

/// Waits for SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

pub async fn up(state: LocalState, opts: Up) -> anyhow::Result<()> {
    let target = Arc::new(LocalTarget::new(state.clone()));
    let set = TenantSet::load(&opts.tenants)?;
    let deploy_opts = Options {
        prune_tenants: true,
        ..Options::default()
    };
    crate::schema_change::guard(&state, &set.tenants).await?;
    let (p, report) = deploy_quietly(&target, &LocalCode, &set, &deploy_opts).await?;
    if !report.ok() {
        anyhow::bail!("applying the tenants failed:\n{report}");
    }
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", opts.listen))?;
    let addr = listener.local_addr()?;
    let mut out = String::new();
    if !p.is_empty() {
        let _ = writeln!(out, "{}", p.to_string().lines().last().unwrap_or_default());
    }
    out += &secrets_table(&report.secrets().collect::<Vec<_>>());
    out += &urls_table(&set, addr);
    let (console, token) = Console::new(Fleet::Local(state.clone()), opts.tenants.clone())?;
    console.record_apply(&report);
    // Before the listening line, which tells scripts the server is up.
    let _ = writeln!(
        out,
        "apifactory up: console at http://{addr}/_console/?token={token}"
    );
    let _ = writeln!(
        out,
        "apifactory up: listening on http://{addr} (data in {})",
        state.dir().display()
    );
    print!("{out}");
    use std::io::Write;
    let _ = std::io::stdout().flush();

    // For benchmarks only (tests/bench/run): another account-wide bucket
    // than API Gateway's 10,000 rps (burst half the rate), so that a load
    // above it measures the gateway rather than the account throttle.
    let account_rps = std::env::var("APIFACTORY_ACCOUNT_RPS")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|&rps| rps > 0);
    let mut config = Config {
        record_usage: opts.record_usage,
        ..Config::default()
    };
    if let Some(rps) = account_rps {
        config.account_rate = f64::from(rps);
        config.account_burst = (rps / 2).max(1);
    }
    let gateway = Gateway::with_config(state.clone(), config).await?;
    // A key made, rotated or revoked in the console takes effect before
    // the console answers, not at the gateway's next poll.
    let reloading = gateway.clone();
    console.after_key_change(Box::new(move || {
        let gateway = reloading.clone();
        Box::pin(async move {
            if let Err(e) = gateway.reload().await {
                eprintln!(
                    "apifactory up: re-reading the keys after a console action failed: {e:#}"
                );
            }
        })
    }));
    tokio::spawn(crate::local::alarms::watch(state.clone()));
    if opts.watch {
        tokio::spawn(watch(
            opts.tenants.clone(),
            target,
            fingerprint(&opts.tenants),
            deploy_opts,
            console.clone(),
        ));
    }
    gateway
        .serve_beside(listener, console.router(), shutdown_signal())
        .await?;
    println!("apifactory up: stopped");
    Ok(())
}

/// Re-plans and applies whenever the tenant directory changes. A directory
/// with errors is reported and left undeployed until it is fixed: what is
/// running keeps running.
async fn watch(
    dir: PathBuf,
    target: Arc<LocalTarget>,
    mut seen: String,
    opts: Options,
    console: Arc<Console>,
) {
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = fingerprint(&dir);
        if now == seen {
            continue;
        }
        seen = now;
        let set = match TenantSet::load(&dir) {
            Ok(set) => set,
            Err(e) => {
                eprintln!(
                    "apifactory up: tenant files changed but are not valid; still serving the last good set:\n{e:#}"
                );
                continue;
            }
        };
        if let Err(e) = crate::schema_change::guard(target.state(), &set.tenants).await {
            eprintln!(
                "apifactory up: tenant files changed but not deployed; still serving the last good set:\n{e:#}"
            );
            continue;
        }
        match deploy_quietly(&target, &LocalCode, &set, &opts).await {
            Ok((p, report)) => {
                console.record_apply(&report);
                let mut out = format!("apifactory up: tenant files changed\n{p}\n");
                out += &secrets_table(&report.secrets().collect::<Vec<_>>());
                if !report.ok() {
                    out += &format!("{report}\n");
                }
                print!("{out}");
                use std::io::Write;
                let _ = std::io::stdout().flush();
            }
            Err(e) => eprintln!("apifactory up: re-deploying failed: {e:#}"),
        }
    }
}
