//! Alarms on the local target: `apifactory up` evaluates each tenant's
//! `[[alarms]]` on the usage the gateway recorded, every
//! [`EVALUATE_EVERY`], as CloudWatch evaluates the alarm `apply --target
//! aws` makes (one period as long as the window: the window's 5xx share,
//! its p99 latency; no requests is not a breach). `quota_share` is the
//! largest share of its quota any key has used in the current period.
//! Each change of state is kept in the database (`apifactory usage` shows
//! the current one) and reported: a line on stdout and a JSON line in the
//! tenant's log.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::Duration;

use runtime::tenant::{Alarm, AlarmMetric};
use rusqlite::params;
use time::OffsetDateTime;

use crate::local::state::{Grain, LocalState, period_start};
use crate::usage::{AlarmState, Counts};

/// How often `up` evaluates the alarms.
pub const EVALUATE_EVERY: Duration = Duration::from_secs(10);

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alarm_state (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    metric TEXT NOT NULL,
    threshold REAL NOT NULL,
    minutes INTEGER NOT NULL,
    state TEXT NOT NULL,
    since TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (tenant, name)
) WITHOUT ROWID;
";

/// What an evaluation found for one alarm: its value, and whether it
/// breaches.
fn evaluate_one(alarm: &Alarm, window: &Counts, quota_share: Option<f64>) -> (Option<f64>, bool) {
    let value = match alarm.metric {
        AlarmMetric::ServerErrorRate => {
            (window.requests > 0).then(|| window.status_5xx as f64 / window.requests as f64)
        }
        AlarmMetric::P99LatencyMs => window.latency_ms(0.99),
        AlarmMetric::QuotaShare => quota_share,
    };
    (value, value.is_some_and(|v| v > alarm.threshold))
}

fn backend(e: rusqlite::Error) -> runtime::StoreError {
    runtime::StoreError::Backend(e.to_string())
}

impl LocalState {
    /// Every alarm's state as last evaluated (alarms `up` never evaluated
    /// are not listed).
    pub async fn alarm_states(&self) -> anyhow::Result<Vec<AlarmState>> {
        Ok(self
            .database()
            .read(|c| {
                let mut stmt = c
                    .prepare(
                        "SELECT tenant, name, metric, threshold, minutes, state, since, value
                         FROM alarm_state ORDER BY tenant, name",
                    )
                    .map_err(backend)?;
                stmt.query_map([], |r| {
                    Ok(AlarmState {
                        tenant: r.get(0)?,
                        name: r.get(1)?,
                        metric: r.get(2)?,
                        threshold: r.get(3)?,
                        minutes: r.get(4)?,
                        state: r.get(5)?,
                        since: r.get(6)?,
                        value: r.get(7)?,
                    })
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(backend)
            })
            .await?)
    }
}

/// Evaluates every deployed tenant's alarms at `now`; returns the alarms
/// whose state changed (with their new state), after writing them down.
/// An alarm evaluated for the first time starts in its state without a
/// change, unless it is ALARM.
pub async fn evaluate(state: &LocalState, now: OffsetDateTime) -> anyhow::Result<Vec<AlarmState>> {
    let snapshot = state.snapshot().await?;
    let keys = state.keys().await?;
    let now_s = now.unix_timestamp();
    let longest = snapshot
        .tenants
        .values()
        .flat_map(|t| t.tenant.alarms.iter().map(|a| a.minutes))
        .max();
    let Some(longest) = longest else {
        return Ok(Vec::new());
    };
    let rows = state
        .usage(Grain::Minute, now_s - i64::from(longest) * 60, now_s + 60)
        .await?;
    let previous: BTreeMap<(String, String), (String, String)> = state
        .alarm_states()
        .await?
        .into_iter()
        .map(|a| ((a.tenant, a.name), (a.state, a.since)))
        .collect();
    let mut changed = Vec::new();
    let mut writes = Vec::new();
    for (id, deployed) in &snapshot.tenants {
        // The largest share of its quota a key of the tenant has used.
        let mut quota_share = None;
        if let Some(q) = deployed.quota {
            let start = period_start(q.period, now);
            for k in keys.iter().filter(|k| &k.tenant == id && k.enabled) {
                let used = state.quota_report(&k.id, start).await?;
                let share = used as f64 / q.limit.max(1) as f64;
                quota_share = Some(quota_share.map_or(share, |s: f64| s.max(share)));
            }
        }
        for alarm in &deployed.tenant.alarms {
            let from = now_s - i64::from(alarm.minutes) * 60;
            let mut window = Counts::default();
            for r in rows
                .iter()
                .filter(|r| &r.tenant == id && r.start >= Grain::Minute.start(from))
            {
                window.merge(&r.counts);
            }
            let (value, breach) = evaluate_one(alarm, &window, quota_share);
            let new = if breach { "ALARM" } else { "OK" };
            let before = previous.get(&(id.clone(), alarm.name.clone()));
            let moved = match before {
                Some((old, _)) => old != new,
                None => breach,
            };
            let since = match before {
                Some((old, since)) if old == new => since.clone(),
                _ => runtime::field::now_rfc3339(),
            };
            let s = AlarmState {
                tenant: id.clone(),
                name: alarm.name.clone(),
                metric: alarm.metric.as_str().to_owned(),
                threshold: alarm.threshold,
                minutes: alarm.minutes,
                state: new.to_owned(),
                since,
                value,
            };
            if moved {
                changed.push(s.clone());
            }
            writes.push(s);
        }
    }
    state
        .database()
        .write(move |c| {
            // Alarms no longer declared are forgotten.
            c.execute("DELETE FROM alarm_state", []).map_err(backend)?;
            let mut stmt = c
                .prepare_cached(
                    "INSERT INTO alarm_state (tenant, name, metric, threshold, minutes, state, since, value)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(backend)?;
            for s in &writes {
                stmt.execute(params![
                    s.tenant,
                    s.name,
                    s.metric,
                    s.threshold,
                    s.minutes,
                    s.state,
                    s.since,
                    s.value
                ])
                .map_err(backend)?;
            }
            Ok(())
        })
        .await?;
    Ok(changed)
}

/// Evaluates the alarms every [`EVALUATE_EVERY`] while `up` runs,
/// reporting each change.
pub async fn watch(state: LocalState) {
    let mut tick = tokio::time::interval(EVALUATE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match evaluate(&state, OffsetDateTime::now_utc()).await {
            Ok(changed) => {
                for s in changed {
                    report(&state, &s);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot evaluate the alarms"),
        }
    }
}

/// A change of state: a line on stdout and a JSON line in the tenant's log.
fn report(state: &LocalState, s: &AlarmState) {
    let value = s
        .value
        .map_or_else(|| "no data".to_owned(), |v| format!("{v:.4}"));
    println!(
        "apifactory up: alarm {}/{} is {} ({} {value}, threshold {} over {} min)",
        s.tenant, s.name, s.state, s.metric, s.threshold, s.minutes
    );
    let _ = std::io::stdout().flush();
    let line = serde_json::json!({
        "time": s.since,
        "alarm": s.name,
        "tenant": s.tenant,
        "state": s.state,
        "metric": s.metric,
        "value": s.value,
        "threshold": s.threshold,
        "minutes": s.minutes,
    });
    let path = state.log_path(&s.tenant);
    let written = std::fs::create_dir_all(path.parent().unwrap_or(state.dir())).and_then(|()| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        writeln!(f, "{line}")
    });
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), error = %e, "cannot log an alarm");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(metric: AlarmMetric, threshold: f64) -> Alarm {
        Alarm {
            name: "a".into(),
            metric,
            threshold,
            minutes: 5,
            notify: Vec::new(),
        }
    }

    #[test]
    fn rules_breach_only_above_their_threshold_and_never_without_data() {
        let mut w = Counts {
            requests: 20,
            status_5xx: 2,
            ..Counts::default()
        };
        for _ in 0..20 {
            w.latency_us.record(300_000);
        }
        let rate = alarm(AlarmMetric::ServerErrorRate, 0.05);
        assert_eq!(evaluate_one(&rate, &w, None), (Some(0.1), true));
        let rate = alarm(AlarmMetric::ServerErrorRate, 0.1);
        assert!(
            !evaluate_one(&rate, &w, None).1,
            "at the threshold is not above it"
        );
        let p99 = alarm(AlarmMetric::P99LatencyMs, 250.0);
        assert!(evaluate_one(&p99, &w, None).1);
        assert_eq!(evaluate_one(&p99, &Counts::default(), None), (None, false));
        let quota = alarm(AlarmMetric::QuotaShare, 0.8);
        assert_eq!(evaluate_one(&quota, &w, Some(0.9)), (Some(0.9), true));
        assert_eq!(evaluate_one(&quota, &w, None), (None, false));
    }
}
