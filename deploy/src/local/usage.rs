//! `apifactory usage` on the local target: what the gateway recorded
//! (`state::usage`), the keys, and each key's quota now.

use std::collections::BTreeSet;

use time::OffsetDateTime;

use crate::local::state::{Grain, LocalState, period_start};
use crate::usage::{Figures, Gathered, KeyInfo, QuotaNow};

/// The figures of these tenants (all when empty) over `[from, to)` (Unix
/// seconds), in hours or days.
pub async fn gather(
    state: &LocalState,
    tenants: &BTreeSet<String>,
    from: i64,
    to: i64,
    grain: Grain,
) -> anyhow::Result<Gathered> {
    let wanted = |t: &str| tenants.is_empty() || tenants.contains(t);
    let mut out = Gathered::default();
    for row in state.usage(grain, from, to).await? {
        if wanted(&row.tenant) {
            out.figures.push(Figures {
                tenant: row.tenant,
                key_id: row.key_id,
                start: row.start,
                counts: row.counts,
            });
        }
    }
    let snapshot = state.snapshot().await?;
    let now = OffsetDateTime::now_utc();
    for k in state.keys().await? {
        if !wanted(&k.tenant) {
            continue;
        }
        let quota = snapshot.tenants.get(&k.tenant).and_then(|t| t.quota);
        if let Some(q) = quota {
            let start = period_start(q.period, now);
            let used = state.quota_report(&k.id, start).await?;
            let day = OffsetDateTime::from_unix_timestamp(start)?.date();
            out.quotas.insert(
                k.id.clone(),
                QuotaNow {
                    limit: q.limit,
                    period: q.period.as_str().to_owned(),
                    period_start: day.to_string(),
                    used,
                    remaining: q.limit.saturating_sub(used),
                },
            );
        }
        out.keys.push(KeyInfo {
            tenant: k.tenant,
            key_id: k.id,
            name: k.name,
            client: k.client,
            enabled: k.enabled,
        });
    }
    // The local target runs no Lambda: price compute as the functions
    // `apply --target aws` would build on this machine would be.
    let arch = if std::env::consts::ARCH == "aarch64" {
        "arm64"
    } else {
        "x86_64"
    };
    for id in snapshot.tenants.keys().filter(|t| wanted(t)) {
        out.arch.insert(id.clone(), arch.to_owned());
    }
    out.alarms = state
        .alarm_states()
        .await?
        .into_iter()
        .filter(|a| wanted(&a.tenant))
        .collect();
    Ok(out)
}
