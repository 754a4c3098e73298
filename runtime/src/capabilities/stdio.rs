//! The call's log: lines from the guest's `log` import, stdout and stderr,
//! kept in memory up to a byte cap so a chatty or hostile guest cannot grow
//! the host without bound.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

pub use crate::storage::types::{LogLevel, LogLine, LogSource};

/// A call's log lines, shared between the store and the stdio streams.
#[derive(Debug, Clone)]
pub struct CallLog {
    inner: Arc<Mutex<LogInner>>,
}

#[derive(Debug)]
struct LogInner {
    lines: Vec<LogLine>,
    bytes: usize,
    cap: usize,
    truncated: bool,
    /// Lines dropped over the cap.
    dropped: u64,
    /// Bytes of stdout/stderr not yet ended by a newline.
    partial: [Vec<u8>; 2],
}

/// Longest single line kept; the rest of the line is cut.
const MAX_LINE: usize = 4096;
/// What a line costs beyond its text (its level, source and row): empty
/// lines are not free, so a flood of newlines hits the cap too.
const LINE_OVERHEAD: usize = 64;

impl CallLog {
    pub fn new(cap: usize) -> Self {
        CallLog {
            inner: Arc::new(Mutex::new(LogInner {
                lines: Vec::new(),
                bytes: 0,
                cap,
                truncated: false,
                dropped: 0,
                partial: [Vec::new(), Vec::new()],
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, level: LogLevel, source: LogSource, message: &str) {
        self.lock().push(level, source, message);
    }

    fn write_stream(&self, source: LogSource, buf: &[u8]) {
        let mut inner = self.lock();
        let slot = if source == LogSource::Stdout { 0 } else { 1 };
        let level = if source == LogSource::Stdout {
            LogLevel::Info
        } else {
            LogLevel::Warn
        };
        for &b in buf {
            if b == b'\n' {
                let line = std::mem::take(&mut inner.partial[slot]);
                inner.push(level, source, &String::from_utf8_lossy(&line));
            } else if inner.partial[slot].len() < MAX_LINE {
                inner.partial[slot].push(b);
            }
        }
    }

    /// The lines so far (including unterminated stdout/stderr text), and
    /// whether any were cut.
    pub fn snapshot(&self) -> (Vec<LogLine>, bool) {
        let mut inner = self.lock();
        for (slot, source, level) in [
            (0, LogSource::Stdout, LogLevel::Info),
            (1, LogSource::Stderr, LogLevel::Warn),
        ] {
            let rest = std::mem::take(&mut inner.partial[slot]);
            if !rest.is_empty() {
                inner.push(level, source, &String::from_utf8_lossy(&rest));
            }
        }
        let mut lines = inner.lines.clone();
        if inner.dropped > 0 {
            lines.push(LogLine {
                level: LogLevel::Warn,
                source: LogSource::Host,
                message: format!(
                    "{} more lines dropped: one call's log keeps {} bytes, counting {LINE_OVERHEAD} per line (limits.max_log_bytes)",
                    inner.dropped, inner.cap
                ),
            });
        }
        (lines, inner.truncated)
    }

    /// The guest's own uncaught exception when its stderr holds a Python
    /// traceback (the SDKs print it before the interpreter's runtime traps):
    /// the exception line and the innermost frame, e.g. `AttributeError:
    /// 'NoneType' object has no attribute 'get' (File "app.py", line 9, in
    /// check)`. What follows the traceback (the runtime's own panic) is
    /// left out: it names the interpreter, not the author's mistake.
    pub fn guest_exception(&self) -> Option<String> {
        let (lines, _) = self.snapshot();
        let stderr: Vec<&str> = lines
            .iter()
            .filter(|l| l.source == LogSource::Stderr)
            .map(|l| l.message.as_str())
            .collect();
        let start = stderr
            .iter()
            .rposition(|l| l.trim() == "Traceback (most recent call last):")?;
        let mut frame = None;
        for line in &stderr[start + 1..] {
            let trimmed = line.trim_start();
            if trimmed.starts_with("File ") {
                frame = Some(trimmed);
            } else if !line.starts_with(' ') && !trimmed.is_empty() {
                // The first unindented line ends the traceback: the exception.
                let found = match frame {
                    Some(f) => format!("{} ({f})", line.trim()),
                    None => line.trim().to_string(),
                };
                return Some(crate::text::truncate(&found, 1024));
            }
        }
        None
    }

    /// The last few stderr lines: where a Rust guest's panic message lands.
    pub fn stderr_tail(&self, n: usize) -> Vec<String> {
        let (lines, _) = self.snapshot();
        let mut tail: Vec<String> = lines
            .into_iter()
            .rev()
            .filter(|l| l.source == LogSource::Stderr && !l.message.trim().is_empty())
            .take(n)
            .map(|l| l.message)
            .collect();
        tail.reverse();
        tail
    }
}

impl LogInner {
    fn push(&mut self, level: LogLevel, source: LogSource, message: &str) {
        let mut message = message.trim_end_matches('\r').to_string();
        if message.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" [cut]");
        }
        let cost = message.len() + LINE_OVERHEAD;
        if self.bytes + cost > self.cap {
            self.truncated = true;
            self.dropped += 1;
            return;
        }
        self.bytes += cost;
        self.lines.push(LogLine {
            level,
            source,
            message,
        });
    }
}

/// Where a guest's stdout and stderr go: the log of the call running now.
/// A warm instance keeps the stream handles it got in an earlier call, so
/// the streams write through this, and each call points it at its own log.
#[derive(Debug, Clone)]
pub struct LogTarget(Arc<Mutex<CallLog>>);

impl LogTarget {
    pub fn new(log: &CallLog) -> Self {
        LogTarget(Arc::new(Mutex::new(log.clone())))
    }

    pub fn set(&self, log: &CallLog) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = log.clone();
    }

    fn get(&self) -> CallLog {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// stdout or stderr of a guest, feeding the call's log.
pub struct LogStream {
    target: LogTarget,
    source: LogSource,
}

impl LogStream {
    pub fn stdout(target: &LogTarget) -> Self {
        LogStream {
            target: target.clone(),
            source: LogSource::Stdout,
        }
    }

    pub fn stderr(target: &LogTarget) -> Self {
        LogStream {
            target: target.clone(),
            source: LogSource::Stderr,
        }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LogWriter {
            target: self.target.clone(),
            source: self.source,
        })
    }
}

struct LogWriter {
    target: LogTarget,
    source: LogSource,
}

impl tokio::io::AsyncWrite for LogWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        // Output past the cap is accepted and dropped: a guest must not fail
        // (or panic in `println!`) because its log is full.
        self.target.get().write_stream(self.source, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_capped() {
        let log = CallLog::new(2 * LINE_OVERHEAD + 20);
        log.write_stream(LogSource::Stdout, b"hello\nwor");
        log.write_stream(LogSource::Stdout, b"ld\n");
        log.push(
            LogLevel::Error,
            LogSource::Guest,
            "this one is far too long to fit",
        );
        let (lines, truncated) = log.snapshot();
        assert_eq!(
            lines.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(),
            [
                "hello",
                "world",
                "1 more lines dropped: one call's log keeps 148 bytes, counting 64 per line (limits.max_log_bytes)"
            ]
        );
        assert!(truncated);
    }

    #[test]
    fn empty_lines_count_against_the_cap() {
        let log = CallLog::new(10 * LINE_OVERHEAD);
        log.write_stream(LogSource::Stdout, &[b'\n'; 100_000]);
        let (lines, truncated) = log.snapshot();
        assert_eq!(lines.len(), 11, "ten lines and the note");
        assert!(truncated);
        let note = &lines[10];
        assert_eq!(note.source, LogSource::Host);
        assert!(
            note.message.starts_with("99990 more lines dropped"),
            "{}",
            note.message
        );
    }

    #[test]
    fn a_python_traceback_names_the_guests_exception_not_the_runtimes_panic() {
        let log = CallLog::new(1 << 20);
        log.write_stream(
            LogSource::Stderr,
            b"Traceback (most recent call last):\n  File \"/app/junction_guest/component.py\", line 85, in _guard\n    return f(HOST, *args)\n  File \"/app/deals.py\", line 52, in check\n    return found.get('total')\nAttributeError: 'NoneType' object has no attribute 'get'\nthread '<unnamed>' panicked at src/lib.rs:431:17:\nPython function call failed\n",
        );
        assert_eq!(
            log.guest_exception().as_deref(),
            Some(
                "AttributeError: 'NoneType' object has no attribute 'get' (File \"/app/deals.py\", line 52, in check)"
            )
        );
        let rust = CallLog::new(1 << 20);
        rust.write_stream(
            LogSource::Stderr,
            b"thread 'main' panicked at src/lib.rs:3:5:\nboom\n",
        );
        assert_eq!(rust.guest_exception(), None);
        assert_eq!(
            rust.stderr_tail(3),
            ["thread 'main' panicked at src/lib.rs:3:5:", "boom"]
        );
    }
}
