//! Logs like CloudWatch: one JSON-lines file per tenant, appended by one
//! background thread that keeps a buffered writer per file. Requests only
//! queue their lines (never wait on disk, never wake the thread); the
//! thread takes them every 20 ms and flushes at least every 200 ms and
//! whenever asked.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write as _};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

/// Most often a line waits in a buffer before it is written out.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// How often the writer takes what was queued.
const TICK: Duration = Duration::from_millis(20);
/// Lines queued at most; beyond, lines are dropped (and counted) rather
/// than letting a stalled disk hold requests or memory.
const QUEUE: usize = 65_536;
/// How long a file that could not be opened is left alone.
const RETRY_OPEN: Duration = Duration::from_secs(5);

enum Msg {
    /// Text (one or more complete lines) to append to a file.
    Lines(Arc<Path>, String),
    /// Flush everything, then answer.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The sending side; the thread ends (after flushing) when it is dropped.
pub(super) struct Logs {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
}

impl Logs {
    pub(super) fn start() -> std::io::Result<Logs> {
        let (tx, rx) = sync_channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&dropped);
        std::thread::Builder::new()
            .name("apifactory-logs".into())
            .spawn(move || run(rx, counter))?;
        Ok(Logs { tx, dropped })
    }

    /// Queues lines for a file; never blocks.
    pub(super) fn send(&self, path: &Arc<Path>, lines: String) {
        match self.tx.try_send(Msg::Lines(Arc::clone(path), lines)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Writes out everything queued so far.
    pub(super) async fn flush(&self) {
        let (ack, done) = tokio::sync::oneshot::channel();
        let msg = Msg::Flush(ack);
        // The queue may be full: wait for room off the async threads.
        let tx = self.tx.clone();
        let sent = match tx.try_send(msg) {
            Ok(()) => true,
            Err(TrySendError::Full(msg)) => {
                tokio::task::spawn_blocking(move || tx.send(msg).is_ok())
                    .await
                    .unwrap_or(false)
            }
            Err(TrySendError::Disconnected(_)) => false,
        };
        if sent {
            let _ = done.await;
        }
    }
}

enum Sink {
    Open(BufWriter<File>),
    /// Not open: never tried, or failed at that instant.
    Failed(Option<Instant>),
}

fn open(path: &Path) -> std::io::Result<BufWriter<File>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    Ok(BufWriter::with_capacity(64 * 1024, file))
}

fn run(rx: Receiver<Msg>, dropped: Arc<AtomicU64>) {
    let mut files: HashMap<Arc<Path>, Sink> = HashMap::new();
    let mut dirty: Option<Instant> = None;
    loop {
        // Sleep rather than wait on the queue: a sender then never has to
        // wake this thread, which would cost every request a context
        // switch.
        std::thread::sleep(TICK);
        loop {
            match rx.try_recv() {
                Ok(Msg::Lines(path, text)) => {
                    if write(&mut files, path, &text) {
                        dirty.get_or_insert_with(Instant::now);
                    }
                }
                Ok(Msg::Flush(ack)) => {
                    flush_all(&mut files);
                    dirty = None;
                    let _ = ack.send(());
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    flush_all(&mut files);
                    return;
                }
            }
        }
        if dirty.is_some_and(|since| since.elapsed() >= FLUSH_EVERY) {
            flush_all(&mut files);
            dirty = None;
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            tracing::warn!(lost, "log queue full: request log lines dropped");
        }
    }
}

/// Appends text to a file's buffer, opening it first if needed; false
/// when the file cannot be opened.
fn write(files: &mut HashMap<Arc<Path>, Sink>, path: Arc<Path>, text: &str) -> bool {
    let sink = files.entry(Arc::clone(&path)).or_insert(Sink::Failed(None));
    if let Sink::Failed(at) = sink
        && at.is_none_or(|at| at.elapsed() >= RETRY_OPEN)
    {
        *sink = match open(&path) {
            Ok(w) => Sink::Open(w),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot open the log file");
                Sink::Failed(Some(Instant::now()))
            }
        };
    }
    match sink {
        Sink::Open(w) => {
            if let Err(e) = w.write_all(text.as_bytes()) {
                tracing::warn!(path = %path.display(), error = %e, "cannot write a log file");
            }
            true
        }
        Sink::Failed(_) => false,
    }
}

fn flush_all(files: &mut HashMap<Arc<Path>, Sink>) {
    for (path, sink) in files.iter_mut() {
        if let Sink::Open(w) = sink
            && let Err(e) = w.flush()
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot write a log file");
        }
    }
}

/// Appends `s` as a JSON string.
pub(super) fn json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..0x20 => "",
            _ => continue,
        };
        // `b` is ASCII, so `i` is on a character boundary.
        out.push_str(&s[plain..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        plain = i + 1;
    }
    out.push_str(&s[plain..]);
    out.push('"');
}

/// `2026-11-25T13:45:00.123Z`
pub(super) fn timestamp(out: &mut String, t: OffsetDateTime) {
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    );
}

/// One access-log line (with its newline). Never holds a key value.
pub(super) struct Access<'a> {
    pub time: OffsetDateTime,
    pub request_id: &'a str,
    pub tenant: &'a str,
    pub api_key_id: Option<&'a str>,
    pub ip: Option<IpAddr>,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub latency: Duration,
    pub bytes: usize,
}

impl Access<'_> {
    pub(super) fn write(&self, out: &mut String) {
        out.push_str("{\"time\":\"");
        timestamp(out, self.time);
        out.push_str("\",\"type\":\"access\",\"requestId\":");
        json_str(out, self.request_id);
        out.push_str(",\"tenant\":");
        json_str(out, self.tenant);
        out.push_str(",\"apiKeyId\":");
        match self.api_key_id {
            Some(id) => json_str(out, id),
            None => out.push_str("null"),
        }
        out.push_str(",\"ip\":");
        match self.ip {
            Some(ip) => {
                let _ = write!(out, "\"{ip}\"");
            }
            None => out.push_str("null"),
        }
        out.push_str(",\"method\":");
        json_str(out, self.method);
        out.push_str(",\"path\":");
        json_str(out, self.path);
        let _ = writeln!(
            out,
            ",\"status\":{},\"latencyMs\":{:.3},\"bytes\":{}}}",
            self.status,
            self.latency.as_secs_f64() * 1000.0,
            self.bytes
        );
    }
}

/// One function-log line (with its newline).
pub(super) fn function_line(out: &mut String, time: OffsetDateTime, function: &str, message: &str) {
    out.push_str("{\"time\":\"");
    timestamp(out, time);
    out.push_str("\",\"type\":\"function\",\"function\":");
    json_str(out, function);
    out.push_str(",\"message\":");
    json_str(out, message);
    out.push_str("}\n");
}

/// What Lambda logs around one invocation: START, (a timeout notice), END,
/// REPORT.
pub(super) struct Invocation<'a> {
    pub function: &'a str,
    pub request_id: &'a str,
    pub started: OffsetDateTime,
    pub ended: OffsetDateTime,
    pub duration: Duration,
    pub memory_mb: u32,
    /// The timeout in seconds, when the invocation ran out of time.
    pub timed_out: Option<f64>,
}

impl Invocation<'_> {
    pub(super) fn write(&self, out: &mut String) {
        let mut message = String::with_capacity(160);
        let _ = write!(
            message,
            "START RequestId: {} Version: $LATEST",
            self.request_id
        );
        function_line(out, self.started, self.function, &message);
        if let Some(limit) = self.timed_out {
            message.clear();
            let _ = write!(
                message,
                "{} Task timed out after {limit:.2} seconds",
                self.request_id
            );
            function_line(out, self.ended, self.function, &message);
        }
        message.clear();
        let _ = write!(message, "END RequestId: {}", self.request_id);
        function_line(out, self.ended, self.function, &message);
        let ms = self.duration.as_secs_f64() * 1000.0;
        let billed = (ms.ceil() as u64).max(1);
        message.clear();
        let _ = write!(
            message,
            "REPORT RequestId: {}\tDuration: {ms:.2} ms\tBilled Duration: {billed} ms\tMemory Size: {} MB\tMax Memory Used: 0 MB",
            self.request_id, self.memory_mb
        );
        if self.timed_out.is_some() {
            message.push_str("\tStatus: timeout");
        }
        function_line(out, self.ended, self.function, &message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use time::macros::datetime;

    #[test]
    fn lines_are_json() {
        let mut out = String::new();
        Access {
            time: datetime!(2026-11-25 13:45:00.123 UTC),
            request_id: "r-1",
            tenant: "acme",
            api_key_id: None,
            ip: Some("127.0.0.1".parse().unwrap()),
            method: "GET",
            path: "/prod/a\"b\\c\u{1}é",
            status: 200,
            latency: Duration::from_micros(1234),
            bytes: 10,
        }
        .write(&mut out);
        Invocation {
            function: "apifactory-acme-get",
            request_id: "r-1",
            started: datetime!(2026-11-25 13:45:00 UTC),
            ended: datetime!(2026-11-25 13:45:01 UTC),
            duration: Duration::from_micros(1230),
            memory_mb: 256,
            timed_out: Some(10.0),
        }
        .write(&mut out);
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0]["time"], "2026-11-25T13:45:00.123Z");
        assert_eq!(lines[0]["apiKeyId"], Value::Null);
        assert_eq!(lines[0]["path"], "/prod/a\"b\\c\u{1}é");
        assert_eq!(lines[0]["latencyMs"], 1.234);
        assert_eq!(lines[1]["message"], "START RequestId: r-1 Version: $LATEST");
        assert_eq!(
            lines[2]["message"],
            "r-1 Task timed out after 10.00 seconds"
        );
        assert_eq!(lines[3]["message"], "END RequestId: r-1");
        assert_eq!(
            lines[4]["message"],
            "REPORT RequestId: r-1\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 256 MB\tMax Memory Used: 0 MB\tStatus: timeout"
        );
    }

    #[tokio::test]
    async fn the_writer_appends_and_flushes_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let path: Arc<Path> = dir.path().join("logs").join("t.log").into();
        let logs = Logs::start().unwrap();
        logs.send(&path, "one\n".into());
        logs.send(&path, "two\n".into());
        logs.flush().await;
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
        logs.send(&path, "three\n".into());
        // Flushed by the timer without being asked.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\nthree\n");
    }
}
