//! Logs like CloudWatch: one JSON-lines file per tenant, appended by one
//! background thread that keeps a buffered writer per file. A request
//! writes its lines straight into its file's pending text under that
//! file's own short lock (no allocation of its own, no lookup by path, no
//! message, never a wait on disk, never a wake-up of the thread); the
//! thread takes the pending text every 20 ms, and flushes at least every
//! 200 ms and whenever asked.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write as _};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

/// Most often a line waits in a buffer before it is written out.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// How often the writer takes what was queued.
const TICK: Duration = Duration::from_millis(20);
/// Text pending at most, all files together; beyond, lines are dropped
/// (and counted) rather than letting a stalled disk hold requests or
/// memory.
const MAX_PENDING: usize = 64 << 20;
/// How long a file that could not be opened is left alone.
const RETRY_OPEN: Duration = Duration::from_secs(5);

/// One log file and the text waiting for the writer. A tenant holds its
/// file's handle, so a request appends without looking the file up.
pub(super) struct LogFile {
    path: Arc<Path>,
    pending: Mutex<String>,
}

impl LogFile {
    fn pending(&self) -> MutexGuard<'_, String> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct Shared {
    /// Every file handed out, in the order first asked for; never
    /// shrinks (a file is a path and an empty string once idle).
    files: Mutex<Vec<Arc<LogFile>>>,
    /// Text pending, all files together.
    bytes: AtomicUsize,
    dropped: AtomicU64,
}

impl Shared {
    fn files(&self) -> Vec<Arc<LogFile>> {
        self.files
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The writing side; the thread ends (after writing out and flushing
/// everything) when it is dropped.
pub(super) struct Logs {
    shared: Arc<Shared>,
    /// Flush requests, answered once everything appended before is
    /// written out.
    flushes: SyncSender<tokio::sync::oneshot::Sender<()>>,
}

impl Logs {
    pub(super) fn start() -> std::io::Result<Logs> {
        let (flushes, rx) = sync_channel(64);
        let shared = Arc::new(Shared {
            files: Mutex::default(),
            bytes: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
        });
        let writer = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("apifactory-logs".into())
            .spawn(move || run(rx, &writer))?;
        Ok(Logs { shared, flushes })
    }

    /// The handle of the file at `path`: the same one for the same path
    /// (a reload gets the handle it had, so lines stay in order).
    pub(super) fn file(&self, path: &Path) -> Arc<LogFile> {
        let mut files = self
            .shared
            .files
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = files.iter().find(|f| *f.path == *path) {
            return Arc::clone(f);
        }
        let f = Arc::new(LogFile {
            path: path.into(),
            pending: Mutex::default(),
        });
        files.push(Arc::clone(&f));
        f
    }

    /// Appends what `write` writes (complete lines) to a file; never
    /// blocks on disk.
    pub(super) fn append(&self, file: &LogFile, write: impl FnOnce(&mut String)) {
        let mut text = file.pending();
        let before = text.len();
        write(&mut text);
        let added = text.len() - before;
        let pending = self.shared.bytes.fetch_add(added, Ordering::Relaxed);
        if pending.saturating_add(added) > MAX_PENDING {
            text.truncate(before);
            self.shared.bytes.fetch_sub(added, Ordering::Relaxed);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes out everything appended so far.
    pub(super) async fn flush(&self) {
        let (ack, done) = tokio::sync::oneshot::channel();
        // The queue may be full: wait for room off the async threads.
        let tx = self.flushes.clone();
        let sent = match tx.try_send(ack) {
            Ok(()) => true,
            Err(TrySendError::Full(ack)) => {
                tokio::task::spawn_blocking(move || tx.send(ack).is_ok())
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

/// The writer's side of one file: where it writes, and the buffer it
/// swaps for the file's pending text (so neither side allocates anew
/// each time).
struct Out {
    sink: Sink,
    spare: String,
}

fn run(rx: Receiver<tokio::sync::oneshot::Sender<()>>, shared: &Shared) {
    // By the files' order in `shared.files`.
    let mut outs: Vec<Out> = Vec::new();
    let mut dirty: Option<Instant> = None;
    loop {
        // Sleep rather than wait: a request then never has to wake this
        // thread, which would cost every request a context switch.
        std::thread::sleep(TICK);
        if write_pending(shared, &mut outs) {
            dirty.get_or_insert_with(Instant::now);
        }
        loop {
            match rx.try_recv() {
                Ok(ack) => {
                    write_pending(shared, &mut outs);
                    flush_all(shared, &mut outs);
                    dirty = None;
                    let _ = ack.send(());
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    write_pending(shared, &mut outs);
                    flush_all(shared, &mut outs);
                    return;
                }
            }
        }
        if dirty.is_some_and(|since| since.elapsed() >= FLUSH_EVERY) {
            flush_all(shared, &mut outs);
            dirty = None;
        }
        let lost = shared.dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            tracing::warn!(lost, "log buffer full: request log lines dropped");
        }
    }
}

/// Writes the pending text into the files' buffers; whether any was.
fn write_pending(shared: &Shared, outs: &mut Vec<Out>) -> bool {
    let files = shared.files();
    while outs.len() < files.len() {
        outs.push(Out {
            sink: Sink::Failed(None),
            spare: String::new(),
        });
    }
    let mut wrote = false;
    for (file, out) in files.iter().zip(outs.iter_mut()) {
        {
            let mut pending = file.pending();
            if pending.is_empty() {
                continue;
            }
            std::mem::swap(&mut *pending, &mut out.spare);
        }
        shared.bytes.fetch_sub(out.spare.len(), Ordering::Relaxed);
        if write(&mut out.sink, &file.path, &out.spare) {
            wrote = true;
        }
        out.spare.clear();
    }
    wrote
}

/// Appends text to a file's buffer, opening it first if needed; false
/// when the file cannot be opened.
fn write(sink: &mut Sink, path: &Path, text: &str) -> bool {
    if let Sink::Failed(at) = sink
        && at.is_none_or(|at| at.elapsed() >= RETRY_OPEN)
    {
        *sink = match open(path) {
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

fn flush_all(shared: &Shared, outs: &mut [Out]) {
    let files = shared.files();
    for (file, out) in files.iter().zip(outs.iter_mut()) {
        if let Sink::Open(w) = &mut out.sink
            && let Err(e) = w.flush()
        {
            tracing::warn!(path = %file.path.display(), error = %e, "cannot write a log file");
        }
    }
}

/// Appends `s` as a JSON string.
pub(super) fn json_str(out: &mut String, s: &str) {
    out.push('"');
    json_escaped(out, s);
    out.push('"');
}

/// Appends `s` escaped for the inside of a JSON string.
fn json_escaped(out: &mut String, s: &str) {
    if !needs_escape(s.as_bytes()) {
        out.push_str(s);
        return;
    }
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
}

/// Whether any byte is a control character, `"` or `\`: eight bytes at
/// a time (a byte-by-byte scan of every string of every line was a tenth
/// of what logging cost a request).
fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // A high bit where a byte of `x` is below `n` (n <= 0x80): exact as to
    // whether there is any such byte.
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    let special = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    let mut words = s.chunks_exact(8);
    for w in &mut words {
        let x = u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        if below(x, 0x20)
            | below(x ^ (ONES * u64::from(b'"')), 1)
            | below(x ^ (ONES * u64::from(b'\\')), 1)
            != 0
        {
            return true;
        }
    }
    words.remainder().iter().any(|&b| special(b))
}

/// Appends `n` in decimal, with leading zeros up to `width` digits. (Every
/// request writes a dozen numbers into its log lines: `itoa` is a tenth of
/// the instructions of `write!`.)
fn decimal(out: &mut String, n: u64, width: usize) {
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(n);
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(digits);
}

/// Appends `units / 10^places` with exactly `places` decimals.
fn fixed(out: &mut String, units: u64, places: u32) {
    let scale = 10u64.pow(places);
    decimal(out, units / scale, 1);
    out.push('.');
    decimal(out, units % scale, places as usize);
}

/// A duration in whole units of `unit_nanos`, rounded to the nearest.
fn rounded(d: Duration, unit_nanos: u128) -> u64 {
    u64::try_from((d.as_nanos() + unit_nanos / 2) / unit_nanos).unwrap_or(u64::MAX)
}

thread_local! {
    /// The last second this thread wrote a timestamp in, and its text up
    /// to the milliseconds: a request writes four timestamps, nearly
    /// always in one second, and a calendar date costs more than the rest
    /// of a line.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// `2026-11-25T13:45:00.123Z` (a time before 1970 is written as 1970's
/// first instant).
pub(super) fn timestamp(out: &mut String, t: SystemTime) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != secs {
            cached.1.clear();
            second(&mut cached.1, secs);
            cached.0 = secs;
        }
        out.push_str(&cached.1);
    });
    decimal(out, u64::from(since.subsec_millis()), 3);
    out.push('Z');
}

/// `2026-11-25T13:45:00.` for a second since 1970.
fn second(out: &mut String, secs: u64) {
    let t = i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    decimal(out, u64::try_from(t.year()).unwrap_or(0), 4);
    out.push('-');
    decimal(out, u64::from(u8::from(t.month())), 2);
    out.push('-');
    decimal(out, u64::from(t.day()), 2);
    out.push('T');
    decimal(out, u64::from(t.hour()), 2);
    out.push(':');
    decimal(out, u64::from(t.minute()), 2);
    out.push(':');
    decimal(out, u64::from(t.second()), 2);
    out.push('.');
}

/// An IP address as `Display` writes it (IPv4 without `core::fmt`).
pub(super) fn ip_address(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                decimal(out, u64::from(octet), 1);
            }
        }
        IpAddr::V6(_) => {
            let _ = write!(out, "{ip}");
        }
    }
}

/// One access-log line (with its newline). Never holds a key value.
pub(super) struct Access<'a> {
    pub time: SystemTime,
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
                out.push('"');
                ip_address(out, ip);
                out.push('"');
            }
            None => out.push_str("null"),
        }
        out.push_str(",\"method\":");
        json_str(out, self.method);
        out.push_str(",\"path\":");
        json_str(out, self.path);
        out.push_str(",\"status\":");
        decimal(out, u64::from(self.status), 1);
        out.push_str(",\"latencyMs\":");
        fixed(out, rounded(self.latency, 1_000), 3);
        out.push_str(",\"bytes\":");
        decimal(out, self.bytes as u64, 1);
        out.push_str("}\n");
    }
}

/// The part of a function-log line that names its function, rendered once
/// per function (see [`function_start`]).
pub(super) fn function_part(function: &str) -> String {
    let mut out = String::from("\",\"type\":\"function\",\"function\":");
    json_str(&mut out, function);
    out.push_str(",\"message\":\"");
    out
}

/// The start of a function-log line, up to the inside of its message;
/// `part` is the function's [`function_part`].
fn function_start(out: &mut String, time: SystemTime, part: &str) {
    out.push_str("{\"time\":\"");
    timestamp(out, time);
    out.push_str(part);
}

const FUNCTION_END: &str = "\"}\n";

/// What Lambda logs around one invocation: START, (a timeout notice), END,
/// REPORT.
pub(super) struct Invocation<'a> {
    /// The function's [`function_part`].
    pub function: &'a str,
    pub request_id: &'a str,
    pub started: SystemTime,
    pub ended: SystemTime,
    pub duration: Duration,
    pub memory_mb: u32,
    /// The timeout in seconds, when the invocation ran out of time.
    pub timed_out: Option<f64>,
    /// The DynamoDB request units (read, write) it used, when metered.
    pub units: (f64, f64),
}

impl Invocation<'_> {
    /// The lines, written in place (the tabs of REPORT escaped as JSON
    /// has them).
    pub(super) fn write(&self, out: &mut String) {
        function_start(out, self.started, self.function);
        out.push_str("START RequestId: ");
        json_escaped(out, self.request_id);
        out.push_str(" Version: $LATEST");
        out.push_str(FUNCTION_END);
        if let Some(limit) = self.timed_out {
            function_start(out, self.ended, self.function);
            json_escaped(out, self.request_id);
            let _ = write!(out, " Task timed out after {limit:.2} seconds");
            out.push_str(FUNCTION_END);
        }
        function_start(out, self.ended, self.function);
        out.push_str("END RequestId: ");
        json_escaped(out, self.request_id);
        out.push_str(FUNCTION_END);
        function_start(out, self.ended, self.function);
        out.push_str("REPORT RequestId: ");
        json_escaped(out, self.request_id);
        out.push_str("\\tDuration: ");
        fixed(out, rounded(self.duration, 10_000), 2);
        out.push_str(" ms\\tBilled Duration: ");
        let billed = self.duration.as_nanos().div_ceil(1_000_000).max(1);
        decimal(out, u64::try_from(billed).unwrap_or(u64::MAX), 1);
        out.push_str(" ms\\tMemory Size: ");
        decimal(out, u64::from(self.memory_mb), 1);
        out.push_str(" MB\\tMax Memory Used: 0 MB");
        if self.timed_out.is_some() {
            out.push_str("\\tStatus: timeout");
        }
        out.push_str(FUNCTION_END);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use time::macros::datetime;

    /// The word-at-a-time scan finds every byte to escape, wherever it is
    /// in a word or the tail, among bytes either side of the ranges.
    #[test]
    fn needs_escape_finds_every_special_byte() {
        let plain: Vec<u8> = (0x20..=0xff)
            .filter(|b| *b != b'"' && *b != b'\\')
            .collect();
        for len in 0..20 {
            for at in 0..len {
                for bad in (0..0x20).chain([b'"', b'\\']) {
                    let mut s: Vec<u8> = (0..len)
                        .map(|i| plain[(i * 37 + bad as usize) % plain.len()])
                        .collect();
                    s[at] = bad;
                    assert!(needs_escape(&s), "{s:?}");
                }
            }
            let s: Vec<u8> = (0..len).map(|i| plain[(i * 53) % plain.len()]).collect();
            assert!(!needs_escape(&s), "{s:?}");
        }
        assert!(!needs_escape(&plain));
    }

    #[test]
    fn lines_are_json() {
        let mut out = String::new();
        Access {
            time: datetime!(2026-11-25 13:45:00.123 UTC).into(),
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
            function: &function_part("apifactory-acme-get"),
            request_id: "r-1",
            started: datetime!(2026-11-25 13:45:00 UTC).into(),
            ended: datetime!(2026-11-25 13:45:01 UTC).into(),
            duration: Duration::from_micros(1230),
            memory_mb: 256,
            timed_out: Some(10.0),
            units: (0.0, 0.0),
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
        assert_eq!(lines[0]["ip"], "127.0.0.1");
        assert_eq!(lines[1]["function"], "apifactory-acme-get");
        assert_eq!(lines[1]["time"], "2026-11-25T13:45:00.000Z");
        assert_eq!(lines[2]["time"], "2026-11-25T13:45:01.000Z");
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

    #[test]
    fn numbers_and_times_are_written_as_format_would() {
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for _ in 0..10_000 {
            let n = next() >> (next() % 64);
            let width = (next() % 6) as usize;
            let mut out = String::new();
            decimal(&mut out, n, width);
            assert_eq!(out, format!("{n:0width$}"));

            let micros = next() % 100_000_000;
            let d = Duration::from_nanos(micros * 1_000 + next() % 1_000);
            let mut out = String::new();
            fixed(&mut out, rounded(d, 1_000), 3);
            let whole = d.as_nanos().div_euclid(1_000) as f64 / 1000.0;
            // Rounded to microseconds, then printed: the same digits as
            // printing the milliseconds of the rounded duration.
            let expected_micros = (d.as_nanos() + 500) / 1_000;
            assert_eq!(
                out,
                format!("{}.{:03}", expected_micros / 1000, expected_micros % 1000),
                "{whole}"
            );

            let ip = IpAddr::from(std::net::Ipv4Addr::from((next() >> 32) as u32));
            let mut out = String::new();
            ip_address(&mut out, ip);
            assert_eq!(out, ip.to_string());

            let t = OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(next() % 4_000_000_000) * 1_000_000_000
                    + i128::from(next() % 1_000_000_000),
            )
            .unwrap();
            let mut out = String::new();
            timestamp(&mut out, t.into());
            assert_eq!(
                out,
                format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                    t.year(),
                    u8::from(t.month()),
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second(),
                    t.millisecond()
                )
            );
        }
    }

    #[tokio::test]
    async fn the_writer_appends_and_flushes_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let path: Arc<Path> = dir.path().join("logs").join("t.log").into();
        let logs = Logs::start().unwrap();
        let file = logs.file(&path);
        logs.append(&file, |o| o.push_str("one\n"));
        // A second handle of the same path is the same file.
        logs.append(&logs.file(&path), |o| o.push_str("two\n"));
        logs.flush().await;
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
        logs.append(&file, |o| o.push_str("three\n"));
        // Flushed by the timer without being asked.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\nthree\n");
    }
}
