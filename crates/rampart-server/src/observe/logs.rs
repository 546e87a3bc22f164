//! Access and audit logs: one JSON object per line, written by a thread of its own from a
//! bounded queue, so a slow disk never holds a request. A full queue drops the line and
//! counts it (`rampart_log_lines_dropped_total`). File logs reopen on SIGUSR1 (logrotate's
//! `postrotate`). Every line passes the PII [`Masker`] first.

use std::io::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use rampart_config::ops::{LogTarget, Logging};
use serde_json::Value;

use crate::observe::pii::Masker;

/// One log line, serialized as it is built (fields in order, strings masked as they are
/// added unless rampart wrote them itself), so the request path makes one buffer and the
/// writer thread only writes bytes.
#[derive(Debug)]
pub struct Line {
    buf: Vec<u8>,
    masker: Arc<Masker>,
}

impl Line {
    /// An empty object.
    pub fn new(masker: Arc<Masker>) -> Self {
        let mut buf = Vec::with_capacity(512);
        buf.push(b'{');
        Self { buf, masker }
    }

    fn key(&mut self, k: &'static str) {
        if self.buf.len() > 1 {
            self.buf.push(b',');
        }
        self.buf.push(b'"');
        self.buf.extend_from_slice(k.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }

    /// A string field that may carry personal data: masked.
    pub fn str(&mut self, k: &'static str, v: &str) {
        self.key(k);
        match self.masker.mask(v) {
            Some(m) => escape(&mut self.buf, &m),
            None => escape(&mut self.buf, v),
        }
    }

    /// A string field rampart wrote itself (time, id, method, route name): not scanned.
    pub fn own(&mut self, k: &'static str, v: &str) {
        self.key(k);
        escape(&mut self.buf, v);
    }

    /// A string field, or `null`.
    pub fn opt(&mut self, k: &'static str, v: Option<&str>) {
        match v {
            Some(v) => self.str(k, v),
            None => {
                self.key(k);
                self.buf.extend_from_slice(b"null");
            }
        }
    }

    /// Any JSON value (strings masked unless the field is one of rampart's own).
    pub fn insert(&mut self, k: &'static str, v: Value) {
        match v {
            Value::String(s) if OWN_FIELDS.contains(&k) => self.own(k, &s),
            Value::String(s) => self.str(k, &s),
            other => {
                self.key(k);
                let _ = serde_json::to_writer(&mut self.buf, &other);
            }
        }
    }

    /// The line as JSON text (as written, masked).
    pub fn json(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.buf).into_owned();
        s.push('}');
        s
    }

    /// An unsigned integer field.
    pub fn uint(&mut self, k: &'static str, v: u64) {
        self.key(k);
        crate::wire::decimal::push(&mut self.buf, v);
    }

    /// A duration in milliseconds with microsecond precision (`12.345`, `0.5`, `3`).
    pub fn millis(&mut self, k: &'static str, d: std::time::Duration) {
        self.key(k);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        crate::wire::decimal::push(&mut self.buf, micros / 1000);
        let frac = micros % 1000;
        if frac != 0 {
            let digits = [
                b'.',
                b'0' + (frac / 100) as u8,
                b'0' + (frac / 10 % 10) as u8,
                b'0' + (frac % 10) as u8,
            ];
            let keep = if frac % 100 == 0 {
                2
            } else if frac % 10 == 0 {
                3
            } else {
                4
            };
            self.buf.extend_from_slice(&digits[..keep]);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(b"}\n");
        self.buf
    }
}

/// Bytes a JSON string cannot carry as they are (controls, `"`, `\\`, DEL).
static NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = c < 0x20 || c == b'"' as usize || c == b'\\' as usize || c == 0x7f;
        c += 1;
    }
    t
};

/// A JSON string literal.
fn escape(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    if !bytes.iter().any(|&c| NEEDS_ESCAPE[usize::from(c)]) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(format!("\\u{c:04x}").as_bytes());
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// How long the writer lets lines gather after the first one of a batch. Without it the
/// writer thread was woken (and written) once per line under load: a futex wake and two
/// context switches per request on the worker's core, and the preemptions showed in the
/// p99 latency of the posture benchmark. At most ~200 wakeups a second now; a line reaches
/// the file within this delay.
const BATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(5);

/// One log's writer.
#[derive(Debug)]
pub struct LogSink {
    tx: SyncSender<Vec<u8>>,
    reopen: Arc<AtomicBool>,
    /// Flush requests the writer has completed.
    flushed: Arc<AtomicU64>,
}

impl LogSink {
    /// Starts the writer thread. A file that cannot be opened is an error naming it.
    ///
    /// # Errors
    /// The file cannot be created or opened for appending.
    pub fn start(
        name: &'static str,
        target: &LogTarget,
        queue: usize,
    ) -> std::io::Result<Option<Arc<Self>>> {
        let out = match target {
            LogTarget::Off => return Ok(None),
            LogTarget::Stdout => Out::Stdout,
            LogTarget::File(p) => Out::File(p.clone(), open(p)?),
        };
        let (tx, rx) = sync_channel(queue);
        let reopen = Arc::new(AtomicBool::new(false));
        let flushed = Arc::new(AtomicU64::new(0));
        let (flag, done) = (reopen.clone(), flushed.clone());
        std::thread::Builder::new()
            .name(format!("rampart-{name}-log"))
            .spawn(move || write_loop(&rx, out, &flag, &done))?;
        Ok(Some(Arc::new(Self {
            tx,
            reopen,
            flushed,
        })))
    }

    /// Waits (up to `limit`) until every line queued before this call is written.
    pub fn flush(&self, limit: std::time::Duration) {
        let before = self.flushed.load(Ordering::Acquire);
        // An empty line is the flush mark (a log line is never empty).
        if self.tx.send(Vec::new()).is_err() {
            return;
        }
        let end = std::time::Instant::now() + limit;
        while self.flushed.load(Ordering::Acquire) == before && std::time::Instant::now() < end {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Queues a line; `false` when the queue is full (the caller counts it in
    /// `rampart_log_lines_dropped_total`).
    pub fn send(&self, line: Line) -> bool {
        self.tx.try_send(line.finish()).is_ok()
    }

    /// Reopens a file log before its next line (after logrotate moved it).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Relaxed);
    }
}

enum Out {
    Stdout,
    File(std::path::PathBuf, std::fs::File),
}

fn open(p: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o640);
    }
    o.open(p)
}

fn write_loop(rx: &Receiver<Vec<u8>>, mut out: Out, reopen: &AtomicBool, flushed: &AtomicU64) {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    while let Ok(first) = rx.recv() {
        let mut marks = u64::from(first.is_empty());
        if marks == 0 {
            std::thread::sleep(BATCH_WAIT);
        }
        buf.clear();
        buf.extend_from_slice(&first);
        // Whatever else is queued goes out in the same write.
        while buf.len() < 60 * 1024 {
            match rx.try_recv() {
                Ok(l) => {
                    marks += u64::from(l.is_empty());
                    buf.extend_from_slice(&l);
                }
                Err(_) => break,
            }
        }
        if reopen.swap(false, Ordering::Relaxed) {
            if let Out::File(p, f) = &mut out {
                match open(p) {
                    Ok(nf) => *f = nf,
                    Err(e) => {
                        eprintln!("rampart: cannot reopen log {}: {e}", p.display());
                    }
                }
            }
        }
        let r = match &mut out {
            Out::Stdout => {
                let mut s = std::io::stdout().lock();
                s.write_all(&buf).and_then(|()| s.flush())
            }
            Out::File(_, f) => f.write_all(&buf),
        };
        if let Err(e) = r {
            eprintln!("rampart: log write failed: {e}");
        }
        if marks > 0 {
            flushed.fetch_add(marks, Ordering::Release);
        }
    }
}

/// Fields rampart writes itself (times, ids, names from the config): never personal data,
/// so not scanned.
const OWN_FIELDS: [&str; 12] = [
    "ts",
    "request_id",
    "trace_id",
    "method",
    "route",
    "protocol",
    "tls",
    "upstream",
    "event",
    "severity",
    "target",
    "code",
];

/// The logs of one edge (built with it; a reload starts new writers and the old ones end
/// when their queue is drained).
#[derive(Debug)]
pub struct Logs {
    /// Access log, when on.
    pub access: Option<Arc<LogSink>>,
    /// Audit log.
    pub audit: Option<Arc<LogSink>>,
    /// Zero IP tails.
    pub mask_ip: bool,
    /// Whether PII masking is on.
    pub mask_pii: bool,
    masker: Arc<Masker>,
    /// The last audit lines, for the status page (since this config was loaded).
    recent: std::sync::Mutex<std::collections::VecDeque<String>>,
}

/// Audit lines the status page shows.
const RECENT: usize = 50;

impl Logs {
    /// Starts the writers `logging` asks for.
    ///
    /// # Errors
    /// A log file that cannot be opened, naming its key.
    pub fn start(logging: &Logging) -> Result<Self, String> {
        let masker = Arc::new(Masker::new(logging.mask_pii, &logging.rules));
        let access = LogSink::start("access", &logging.access, logging.queue)
            .map_err(|e| format!("logging.access: {e}"))?;
        let audit = LogSink::start("audit", &logging.audit, logging.queue)
            .map_err(|e| format!("logging.audit: {e}"))?;
        Ok(Self {
            access,
            audit,
            mask_ip: logging.mask_ip,
            mask_pii: logging.mask_pii,
            masker,
            recent: std::sync::Mutex::default(),
        })
    }

    /// Writes out what is queued (at shutdown, after the connections drained).
    pub fn flush(&self) {
        for sink in [&self.access, &self.audit].into_iter().flatten() {
            sink.flush(std::time::Duration::from_secs(2));
        }
    }

    /// Logs that write nowhere (tests of the request path, `check`).
    pub fn off() -> Self {
        Self {
            access: None,
            audit: None,
            mask_ip: false,
            mask_pii: true,
            masker: Arc::new(Masker::new(true, &[])),
            recent: std::sync::Mutex::default(),
        }
    }

    /// Keeps an audit line for the status page (the last [`RECENT`]).
    pub fn remember(&self, line: &Line) {
        let mut r = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if r.len() == RECENT {
            r.pop_front();
        }
        r.push_back(line.json());
    }

    /// Takes on the status page's recent audit lines of `old` (the logs a reload
    /// replaces), before this config's own: a reload does not empty the list.
    pub fn carry_recent(&self, old: &Logs) {
        let before = old.recent();
        let mut r = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for line in before.into_iter().rev() {
            if r.len() == RECENT {
                break;
            }
            r.push_front(line);
        }
    }

    /// The last audit lines, newest last.
    pub fn recent(&self) -> Vec<String> {
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// A new line for these logs (masked by their rules).
    pub fn line(&self) -> Line {
        Line::new(self.masker.clone())
    }

    /// The PII masker the logs use (the OTLP exporter masks span paths with it).
    pub fn masker(&self) -> Arc<super::pii::Masker> {
        self.masker.clone()
    }

    /// Reopens file logs (SIGUSR1).
    pub fn reopen(&self) {
        for s in self.access.iter().chain(&self.audit) {
            s.reopen();
        }
    }

    /// A client address as logged (tail zeroed when `mask_ip`).
    pub fn ip(&self, ip: IpAddr) -> String {
        if !self.mask_ip {
            return ip.to_string();
        }
        match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                format!("{}.{}.{}.0", o[0], o[1], o[2])
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}::", s[0], s[1], s[2])
            }
        }
    }
}

/// RFC 3339 UTC time with milliseconds (the date and time formatted once per second).
pub fn timestamp() -> String {
    use std::cell::RefCell;
    thread_local! {
        static LAST: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    LAST.with(|l| {
        let mut l = l.borrow_mut();
        if l.0 != secs {
            let (days, rem) = (secs / 86_400, secs % 86_400);
            let (y, m, d) = rampart_config::civil::from_days(i64::try_from(days).unwrap_or(0));
            l.1 = format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.",
                rem / 3600,
                rem % 3600 / 60,
                rem % 60
            );
            l.0 = secs;
        }
        let ms = now.subsec_millis();
        let mut s = String::with_capacity(24);
        s.push_str(&l.1);
        s.push(char::from(b'0' + u8::try_from(ms / 100).unwrap_or(0)));
        s.push(char::from(b'0' + u8::try_from(ms / 10 % 10).unwrap_or(0)));
        s.push(char::from(b'0' + u8::try_from(ms % 10).unwrap_or(0)));
        s.push('Z');
        s
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_reload_keeps_the_recent_audit_lines() {
        let (old, new) = (Logs::off(), Logs::off());
        for i in 0..RECENT {
            let mut l = old.line();
            l.uint("n", i as u64);
            old.remember(&l);
        }
        let mut l = new.line();
        l.own("event", "config.reload");
        new.remember(&l);
        new.carry_recent(&old);
        let r = new.recent();
        assert_eq!(r.len(), RECENT);
        assert!(
            r[0].contains("\"n\":1") && r[RECENT - 2].contains(&format!("\"n\":{}", RECENT - 1)),
            "{r:?}"
        );
        assert!(
            r[RECENT - 1].contains("config.reload"),
            "the new config's own line stays last"
        );
    }

    use super::*;

    #[test]
    fn numbers_and_escapes_are_json() {
        use std::time::Duration;
        let mut l = Line::new(Arc::new(Masker::new(true, &[])));
        l.uint("a", 0);
        l.uint("b", u64::MAX);
        l.millis("c", Duration::from_micros(12_345));
        l.millis("d", Duration::from_micros(500));
        l.millis("e", Duration::from_micros(3_000));
        l.millis("f", Duration::from_micros(1_020));
        l.own("g", "a\"b\\c\n\u{1}\u{7f}é");
        let v: Value = serde_json::from_slice(&l.finish()).unwrap();
        assert_eq!(v["a"], 0);
        assert_eq!(v["b"], u64::MAX);
        assert_eq!(v["c"], 12.345);
        assert_eq!(v["d"], 0.5);
        assert_eq!(v["e"], 3);
        assert_eq!(v["f"], 1.02);
        assert_eq!(v["g"], "a\"b\\c\n\u{1}\u{7f}é");
    }
}
