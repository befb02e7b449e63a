//! The fault proxy on its own, in front of a moto server (or any AWS
//! endpoint), for scripts that run the real `apifactory` against moto with
//! the realism layer (`tests/aws-live` under `tests/run`):
//!
//! ```text
//! fault-proxy --upstream http://127.0.0.1:5000 --realistic [--rate 0.1] [--seed 7]
//! ```
//!
//! Prints the proxy's URL (`http://127.0.0.1:<port>`, for
//! `AWS_ENDPOINT_URL`) as the first line of its output, then serves until
//! it is stopped (SIGINT or SIGTERM), and prints what it did.

use apifactory_tests::fault_proxy::{FaultConfig, FaultProxy};

const USAGE: &str = "usage: fault-proxy --upstream URL [--realistic] [--rate 0..1] [--seed N]";

fn parse(args: &[String]) -> Result<(String, FaultConfig), String> {
    let mut upstream = None;
    let mut config = FaultConfig::with_rate(0.0);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--upstream" => upstream = Some(value("--upstream")?),
            "--realistic" => {
                config = FaultConfig {
                    rate: config.rate,
                    seed: config.seed,
                    ..FaultConfig::realistic()
                }
            }
            "--rate" => {
                let rate: f64 = value("--rate")?
                    .parse()
                    .map_err(|_| format!("--rate takes a number from 0 to 1\n{USAGE}"))?;
                if !(0.0..=1.0).contains(&rate) {
                    return Err(format!("--rate takes a number from 0 to 1\n{USAGE}"));
                }
                config.rate = rate;
            }
            "--seed" => {
                config.seed = value("--seed")?
                    .parse()
                    .map_err(|_| format!("--seed takes a whole number\n{USAGE}"))?
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let upstream = upstream.ok_or_else(|| format!("--upstream is required\n{USAGE}"))?;
    if !upstream.starts_with("http://") {
        return Err(format!(
            "--upstream must be a plain http:// URL, not {upstream:?}"
        ));
    }
    Ok((upstream, config))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (upstream, config) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            return std::process::ExitCode::from(2);
        }
    };
    let proxy = FaultProxy::start(&upstream, config).await;
    println!("{}", proxy.url());
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        eprintln!("fault-proxy: cannot listen for SIGTERM");
        return std::process::ExitCode::FAILURE;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("fault-proxy: {}", proxy.stats());
    std::process::ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_command_line_parses() {
        let (up, c) = parse(&args(&[
            "--upstream",
            "http://127.0.0.1:5000",
            "--realistic",
        ]))
        .unwrap();
        assert_eq!(up, "http://127.0.0.1:5000");
        assert!(c.realism.list_lag.is_some() && c.rate == 0.0);
        let (_, c) = parse(&args(&[
            "--rate",
            "0.5",
            "--upstream",
            "http://h:1",
            "--seed",
            "7",
        ]))
        .unwrap();
        assert_eq!((c.rate, c.seed), (0.5, 7));
        assert!(c.realism.list_lag.is_none());
        assert!(parse(&args(&["--realistic"])).is_err());
        assert!(parse(&args(&["--upstream", "https://x"])).is_err());
        assert!(parse(&args(&["--upstream", "http://x", "--rate", "2"])).is_err());
        assert!(parse(&args(&["--upstream"])).is_err());
    }
}
