//! The edge of reporting: indicatif bars on a terminal, one progress line every few seconds
//! without one, and a `tracing` subscriber whose lines suspend the bars so neither garbles the other.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::cli::{GlobalArgs, LogFormat};
use crate::env_vars;
use crate::error::UserError;
use crate::report::{ProgressFactory, ProgressSink, Reporter};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    Bars,
    Lines,
    Off,
}

/// Set up logging and progress for the whole process from the global options. Fails (a usage
/// error) on an environment variable etd cannot read.
pub fn init(args: &GlobalArgs) -> Result<Reporter, UserError> {
    let interval = progress_interval(std::env::var_os(env_vars::ETD_PROGRESS_INTERVAL).as_deref())?;
    crate::fsx::direct_io_allowed().map_err(|e| {
        UserError::usage(format!("${e}")).with_hint("it chooses how shards are written; unset it for the default")
    })?;
    let stderr_tty = std::io::stderr().is_terminal();
    let mode = if args.quiet {
        ProgressMode::Off
    } else if stderr_tty && !args.no_progress && args.log_format == LogFormat::Text {
        ProgressMode::Bars
    } else {
        ProgressMode::Lines
    };
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let default_level = match (args.quiet, args.verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = std::env::var(env_vars::ETD_LOG)
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(format!("etd={default_level},warn")));
    let color = stderr_tty && std::env::var_os(env_vars::NO_COLOR).is_none_or(|v| v.is_empty());
    let writer = SuspendingWriter { multi: multi.clone() };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_target(false);
    // A second init (tests calling run() twice) keeps the first subscriber.
    let _ = match args.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.with_ansi(color).without_time().try_init(),
    };
    Ok(Reporter::new(Arc::new(TermFactory { mode, multi, interval })))
}

/// Seconds between progress lines without a terminal: `$ETD_PROGRESS_INTERVAL` (a number of
/// seconds, 0 or more), 5 when unset or empty.
fn progress_interval(value: Option<&std::ffi::OsStr>) -> Result<Duration, UserError> {
    let name = env_vars::ETD_PROGRESS_INTERVAL;
    let Some(value) = value else {
        return Ok(DEFAULT_PROGRESS_INTERVAL);
    };
    let text = value.to_string_lossy();
    if text.trim().is_empty() {
        return Ok(DEFAULT_PROGRESS_INTERVAL);
    }
    text.trim().parse::<f64>().ok().and_then(|v| Duration::try_from_secs_f64(v).ok()).ok_or_else(|| {
        UserError::usage(format!("${name} is `{text}`: expected a number of seconds, 0 or more (such as 5 or 0.5)"))
            .with_hint("it sets the seconds between progress lines; unset it for the default of 5")
    })
}

const DEFAULT_PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

struct TermFactory {
    mode: ProgressMode,
    multi: MultiProgress,
    interval: Duration,
}

impl ProgressFactory for TermFactory {
    fn start(&self, label: &str, unit: &str, total: u64) -> Box<dyn ProgressSink> {
        match self.mode {
            ProgressMode::Off => Box::new(LineProgress::off()),
            ProgressMode::Lines => Box::new(LineProgress::new(label, unit, total, self.interval)),
            ProgressMode::Bars => {
                let bar = self.multi.add(ProgressBar::new(total));
                let style = ProgressStyle::with_template(&format!(
                    "{{prefix:>8}} [{{bar:30}}] {{pos}}/{{len}} {unit}  {{msg}}  ETA {{eta}}"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
                bar.set_style(style);
                bar.set_prefix(label.to_string());
                bar.enable_steady_tick(Duration::from_millis(200));
                Box::new(BarProgress { bar, started: Instant::now(), bytes: Mutex::new(0), detail: Mutex::new(None) })
            }
        }
    }
}

struct BarProgress {
    bar: ProgressBar,
    started: Instant,
    bytes: Mutex<u64>,
    detail: Mutex<Option<String>>,
}

impl ProgressSink for BarProgress {
    fn advance(&self, items: u64, bytes: u64) {
        let mut total = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        *total += bytes;
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let detail = self.detail.lock().unwrap_or_else(|e| e.into_inner());
        match detail.as_deref() {
            Some(d) => self.bar.set_message(d.to_string()),
            None => self.bar.set_message(format!("{:.1} MB/s", *total as f64 / 1e6 / secs)),
        }
        self.bar.inc(items);
    }
    fn set_detail(&self, detail: String) {
        self.bar.set_message(detail.clone());
        *self.detail.lock().unwrap_or_else(|e| e.into_inner()) = Some(detail);
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Without a terminal: one line every `interval`, and one at the end.
struct LineProgress {
    label: String,
    unit: String,
    total: u64,
    interval: Duration,
    started: Instant,
    state: Mutex<LineState>,
    enabled: bool,
}

struct LineState {
    done: u64,
    bytes: u64,
    last: Instant,
    finished: bool,
    detail: Option<String>,
}

impl LineProgress {
    fn new(label: &str, unit: &str, total: u64, interval: Duration) -> Self {
        let now = Instant::now();
        LineProgress {
            label: label.to_string(),
            unit: unit.to_string(),
            total,
            interval,
            started: now,
            state: Mutex::new(LineState { done: 0, bytes: 0, last: now, finished: false, detail: None }),
            enabled: true,
        }
    }

    fn off() -> Self {
        LineProgress { enabled: false, ..LineProgress::new("", "", 0, Duration::MAX) }
    }

    fn line(&self, s: &LineState) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = s.done as f64 / secs;
        let eta = if rate > 0.0 && s.done < self.total {
            format!(
                ", ETA {}",
                crate::human::human_duration(Duration::from_secs_f64((self.total - s.done) as f64 / rate))
            )
        } else {
            String::new()
        };
        match &s.detail {
            Some(d) => tracing::info!("{}: {}/{} {d}{eta}", self.label, s.done, self.total),
            None => tracing::info!(
                "{}: {}/{} {}, {:.1} MB, {:.1} MB/s{eta}",
                self.label,
                s.done,
                self.total,
                self.unit,
                s.bytes as f64 / 1e6,
                s.bytes as f64 / 1e6 / secs
            ),
        }
    }
}

impl ProgressSink for LineProgress {
    fn advance(&self, items: u64, bytes: u64) {
        if !self.enabled {
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.done += items;
        s.bytes += bytes;
        if s.last.elapsed() >= self.interval {
            s.last = Instant::now();
            self.line(&s);
        }
    }
    fn set_detail(&self, detail: String) {
        if self.enabled {
            self.state.lock().unwrap_or_else(|e| e.into_inner()).detail = Some(detail);
        }
    }
    fn finish(&self) {
        if !self.enabled {
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !s.finished && s.done > 0 && self.started.elapsed() >= self.interval {
            self.line(&s);
        }
        s.finished = true;
    }
}

/// Writes each log line to stderr with the progress bars suspended.
#[derive(Clone)]
struct SuspendingWriter {
    multi: MultiProgress,
}

impl<'a> MakeWriter<'a> for SuspendingWriter {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> LineWriter {
        LineWriter { multi: self.multi.clone(), buf: Vec::new() }
    }
}

/// Buffers one event and writes it whole when dropped.
struct LineWriter {
    multi: MultiProgress,
    buf: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let buf = std::mem::take(&mut self.buf);
        self.multi.suspend(|| {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(&buf);
            let _ = err.flush();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn progress_interval_is_seconds_or_a_usage_error() {
        assert_eq!(progress_interval(None).unwrap(), Duration::from_secs(5));
        assert_eq!(progress_interval(Some(OsStr::new(""))).unwrap(), Duration::from_secs(5));
        assert_eq!(progress_interval(Some(OsStr::new("0.5"))).unwrap(), Duration::from_millis(500));
        assert_eq!(progress_interval(Some(OsStr::new("0"))).unwrap(), Duration::ZERO);
        for bad in ["abc", "-1", "5s", "NaN", "inf"] {
            let e = progress_interval(Some(OsStr::new(bad))).unwrap_err();
            assert_eq!(e.exit, crate::error::Exit::Usage, "{bad}");
            assert!(e.message.starts_with(&format!("$ETD_PROGRESS_INTERVAL is `{bad}`")), "{}", e.message);
        }
    }
}
