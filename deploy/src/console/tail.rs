//! The live log tail of a tenant page, as server-sent events: one event
//! per log line. Locally the lines come from the file `apifactory logs`
//! prints (`logs/<tenant>.log`, JSON lines); on AWS from the stage's
//! access log and the functions' log groups, through the paced client.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::io::SeekFrom;
use std::path::PathBuf;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use futures_util::stream::unfold;
use runtime::{Operation, names};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::aws::AwsTarget;
use crate::aws::pacer::LOGS_FILTER;

/// How often the local file is looked at for new lines.
const LOCAL_EVERY: Duration = Duration::from_millis(500);
/// How often AWS is asked (each ask is a few paced FilterLogEvents).
const AWS_EVERY: Duration = Duration::from_secs(3);
/// How much of the file's end the tail starts with.
const START_BYTES: u64 = 16 * 1024;
/// At most this much is read at once, so a burst of lines cannot make
/// one read hold a lot of memory.
const READ_AT_MOST: u64 = 1024 * 1024;

/// A stream of events as a response.
fn events(stream: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Where the local tail is in the file.
struct FileTail {
    path: PathBuf,
    /// `None` before the first read.
    offset: Option<u64>,
    /// The first line read may be cut: it is dropped.
    skip_partial: bool,
    partial: Vec<u8>,
    queue: VecDeque<String>,
}

impl FileTail {
    async fn read_more(&mut self) {
        let Ok(mut file) = tokio::fs::File::open(&self.path).await else {
            // No log yet: the first line written will be read from 0.
            self.offset = Some(0);
            return;
        };
        let len = file.metadata().await.map_or(0, |m| m.len());
        let offset = match self.offset {
            Some(o) if o <= len => o,
            // Shorter than what was read: a new file; start over.
            Some(_) => {
                self.partial.clear();
                0
            }
            None => {
                let start = len.saturating_sub(START_BYTES);
                self.skip_partial = start > 0;
                start
            }
        };
        let mut buf = Vec::new();
        if file.seek(SeekFrom::Start(offset)).await.is_err()
            || (&mut file)
                .take((len - offset).min(READ_AT_MOST))
                .read_to_end(&mut buf)
                .await
                .is_err()
        {
            self.offset = Some(offset);
            return;
        }
        self.offset = Some(offset + buf.len() as u64);
        self.partial.extend_from_slice(&buf);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            if std::mem::take(&mut self.skip_partial) {
                continue;
            }
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            if !text.is_empty() {
                self.queue.push_back(text);
            }
        }
    }
}

/// The tail of a local log file: its last lines, then every new one.
pub fn local(path: PathBuf) -> Response {
    let start = FileTail {
        path,
        offset: None,
        skip_partial: false,
        partial: Vec::new(),
        queue: VecDeque::new(),
    };
    let stream = unfold(start, |mut tail| async move {
        loop {
            if let Some(line) = tail.queue.pop_front() {
                return Some((Ok(Event::default().data(line)), tail));
            }
            if tail.offset.is_some() {
                tokio::time::sleep(LOCAL_EVERY).await;
            }
            tail.read_more().await;
        }
    });
    events(stream)
}

/// Where the AWS tail is.
struct GroupTail {
    target: AwsTarget,
    groups: Vec<String>,
    /// Milliseconds: events from here on are asked for.
    since: i64,
    /// Events at `since` already sent (the next ask returns them again).
    seen: HashSet<String>,
    first: bool,
    queue: VecDeque<String>,
}

impl GroupTail {
    async fn read_more(&mut self) {
        let mut events: Vec<(i64, String, String)> = Vec::new();
        for group in &self.groups {
            self.target.pacer.read(LOGS_FILTER).await;
            let answer = self
                .target
                .logs
                .filter_log_events()
                .log_group_name(group)
                .start_time(self.since)
                .limit(200)
                .send()
                .await;
            let answer = match answer {
                Ok(a) => a,
                // A group not made yet (nothing deployed, or never logged).
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception()) =>
                {
                    continue;
                }
                Err(e) => {
                    let e = crate::aws::fail(&format!("FilterLogEvents {group}"), e);
                    self.queue.push_back(format!("(cannot read: {e:#})"));
                    continue;
                }
            };
            let short = group.rsplit('/').next().unwrap_or(group);
            for e in answer.events() {
                let (Some(ts), Some(id)) = (e.timestamp(), e.event_id()) else {
                    continue;
                };
                let message = e.message().unwrap_or("").trim_end();
                events.push((ts, id.to_owned(), format!("{short} {message}")));
            }
        }
        events.sort();
        let newest = events.iter().map(|e| e.0).max();
        for (ts, id, line) in events {
            if ts == self.since && self.seen.contains(&id) {
                continue;
            }
            if Some(ts) == newest {
                if newest != Some(self.since) {
                    self.seen.clear();
                }
                self.seen.insert(id);
            }
            self.queue.push_back(line);
        }
        if let Some(n) = newest {
            self.since = n;
        }
    }
}

impl GroupTail {
    /// A tenant's log groups from ten minutes ago.
    fn of(target: AwsTarget, tenant: &str) -> GroupTail {
        let mut groups = vec![names::access_log_group(tenant)];
        groups.extend(
            Operation::ALL
                .iter()
                .map(|op| names::log_group(tenant, *op)),
        );
        GroupTail {
            target,
            groups,
            since: (crate::keys::now_unix() - 600) * 1000,
            seen: HashSet::new(),
            first: true,
            queue: VecDeque::new(),
        }
    }
}

/// `apifactory logs --target aws`: the last ten minutes of the tenant's
/// log groups on stdout, then, with `follow`, what comes.
pub async fn print_aws(target: AwsTarget, tenant: String, follow: bool) -> anyhow::Result<()> {
    let mut tail = GroupTail::of(target, &tenant);
    loop {
        tail.read_more().await;
        let lines: String = tail.queue.drain(..).map(|l| l + "\n").collect();
        crate::engine::print(&lines)?;
        if !follow {
            return Ok(());
        }
        tokio::time::sleep(AWS_EVERY).await;
    }
}

/// The tail of a tenant's log groups on AWS: the last ten minutes, then
/// what comes.
pub fn aws(target: AwsTarget, tenant: String) -> Response {
    let start = GroupTail::of(target, &tenant);
    let stream = unfold(start, |mut tail| async move {
        loop {
            if let Some(line) = tail.queue.pop_front() {
                return Some((Ok(Event::default().data(line)), tail));
            }
            if !std::mem::take(&mut tail.first) {
                tokio::time::sleep(AWS_EVERY).await;
            }
            tail.read_more().await;
        }
    });
    events(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_local_tail_starts_near_the_end_then_follows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let mut tail = FileTail {
            path: path.clone(),
            offset: None,
            skip_partial: false,
            partial: Vec::new(),
            queue: VecDeque::new(),
        };
        tail.read_more().await;
        assert_eq!(tail.offset, Some(0), "no file yet: from its start");
        assert!(tail.queue.is_empty());

        std::fs::write(&path, "one\ntwo\nthr").unwrap();
        tail.read_more().await;
        assert_eq!(Vec::from(tail.queue.clone()), ["one", "two"]);
        tail.queue.clear();
        std::fs::write(&path, "one\ntwo\nthree\nfour\n").unwrap();
        tail.read_more().await;
        assert_eq!(Vec::from(tail.queue.clone()), ["three", "four"]);
        tail.queue.clear();
        // A new, shorter file: read from its start.
        std::fs::write(&path, "new\n").unwrap();
        tail.read_more().await;
        assert_eq!(Vec::from(tail.queue.clone()), ["new"]);

        // A long file: only its end, without a cut first line.
        let long: String = (0..5000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, &long).unwrap();
        let mut fresh = FileTail {
            path,
            offset: None,
            skip_partial: false,
            partial: Vec::new(),
            queue: VecDeque::new(),
        };
        fresh.read_more().await;
        assert_eq!(fresh.queue.back().map(String::as_str), Some("line 4999"));
        assert!(fresh.queue.len() < 5000);
        assert!(fresh.queue.front().unwrap().starts_with("line "));
        let first: u32 = fresh.queue.front().unwrap()[5..].parse().unwrap();
        assert_eq!(fresh.queue.len() as u32, 5000 - first);
    }
}
