//! The figures of a usage report, read from either target: `apifactory
//! usage` and the console both read them here, so the console's numbers
//! are the command's numbers.

use std::collections::BTreeSet;

use super::Gathered;
use crate::aws::AwsTarget;
use crate::local::state::{Grain, LocalState};

/// Where the figures are read.
#[derive(Clone, Copy)]
pub enum Source<'a> {
    Local(&'a LocalState),
    Aws(&'a AwsTarget),
}

/// The length of each row of figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// Only the local target keeps minutes; AWS reports hours at its finest.
    Minute,
    Hour,
    Day,
}

impl Span {
    pub fn seconds(self) -> i64 {
        match self {
            Span::Minute => 60,
            Span::Hour => 3_600,
            Span::Day => 86_400,
        }
    }
}

/// The figures of these tenants (all when empty) over `[start, end)`
/// (Unix seconds, UTC), in rows of `span`; on AWS with every alarm's
/// state too (the local target's alarms come with its figures).
pub async fn gather(
    source: Source<'_>,
    tenants: &[String],
    start: i64,
    end: i64,
    span: Span,
) -> anyhow::Result<Gathered> {
    match source {
        Source::Local(state) => {
            let grain = match span {
                Span::Minute => Grain::Minute,
                Span::Hour => Grain::Hour,
                Span::Day => Grain::Day,
            };
            let tenants: BTreeSet<String> = tenants.iter().cloned().collect();
            crate::local::usage::gather(state, &tenants, start, end, grain).await
        }
        Source::Aws(t) => {
            let seconds = match span {
                Span::Minute => anyhow::bail!("AWS reports usage by the hour at its finest"),
                Span::Hour | Span::Day => span.seconds(),
            };
            let mut gathered = crate::aws::usage::gather(t, tenants, start, end, seconds).await?;
            let scope = crate::aws::Scope(tenants.iter().cloned().collect());
            gathered.alarms = crate::aws::alarm::states(t, &scope).await?;
            Ok(gathered)
        }
    }
}
