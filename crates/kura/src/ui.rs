//! Output: human text or JSON, progress bars on a terminal only, passphrase input.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// How to talk to the user.
#[derive(Clone, Copy)]
pub struct Ui {
    pub json: bool,
    pub quiet: bool,
}

impl Ui {
    /// A line of human output (suppressed by --json and --quiet).
    pub fn say(&self, text: impl AsRef<str>) {
        if !self.json && !self.quiet {
            println!("{}", text.as_ref());
        }
    }

    /// A result line: printed unless --json (then the JSON summary is the result).
    pub fn result(&self, text: impl AsRef<str>) {
        if !self.json {
            println!("{}", text.as_ref());
        }
    }

    /// The JSON summary (last line of stdout).
    pub fn json(&self, value: &impl serde::Serialize) {
        if self.json {
            println!("{}", serde_json::to_string(value).expect("serializable"));
        }
    }

    /// A warning on stderr.
    pub fn warn(&self, text: impl AsRef<str>) {
        eprintln!("warning: {}", text.as_ref());
    }

    /// A progress bar over byte counters, drawn only on a terminal.
    pub fn progress(
        &self,
        message: &str,
        counters: Vec<Arc<dyn Fn() -> (u64, u64) + Send + Sync>>,
    ) -> Progress {
        let visible = !self.json && !self.quiet && std::io::stderr().is_terminal();
        let bar = ProgressBar::with_draw_target(
            None,
            if visible {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg} {binary_bytes} ({binary_bytes_per_sec}) {prefix} files [{elapsed_precise}]",
            )
            .expect("valid template"),
        );
        bar.set_message(message.to_string());
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (bar, stop) = (bar.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let (mut files, mut bytes) = (0, 0);
                    for c in &counters {
                        let (f, b) = c();
                        files += f;
                        bytes += b;
                    }
                    bar.set_position(bytes);
                    bar.set_prefix(files.to_string());
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        Progress {
            bar,
            stop,
            ticker: Some(ticker),
        }
    }
}

/// A running progress display; cleared on drop.
pub struct Progress {
    bar: ProgressBar,
    stop: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        self.bar.finish_and_clear();
    }
}

/// Reads two counters as one (files, bytes) source.
pub fn counters(
    files: &Arc<impl AsFiles + Send + Sync + 'static>,
) -> Arc<dyn Fn() -> (u64, u64) + Send + Sync> {
    let f = Arc::clone(files);
    Arc::new(move || f.read())
}

/// Progress structs that count files and bytes.
pub trait AsFiles {
    fn read(&self) -> (u64, u64);
}

impl AsFiles for kura_agent::backup::BackupProgress {
    fn read(&self) -> (u64, u64) {
        (
            self.files.load(Ordering::Relaxed),
            self.bytes_read.load(Ordering::Relaxed) + self.bytes_skipped.load(Ordering::Relaxed),
        )
    }
}

impl AsFiles for kura_agent::restore::RestoreProgress {
    fn read(&self) -> (u64, u64) {
        (
            self.files.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// The vault passphrase: --password-file, then KURA_PASSWORD, then a terminal prompt.
pub fn passphrase(file: Option<&Path>, confirm: bool) -> Result<Vec<u8>> {
    read_secret(file, "KURA_PASSWORD", "vault passphrase", confirm)
}

/// A secret from a file, an environment variable or the terminal.
pub fn read_secret(file: Option<&Path>, env: &str, what: &str, confirm: bool) -> Result<Vec<u8>> {
    if let Some(f) = file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("cannot read {what} from {}", f.display()))?;
        return non_empty(text.trim_end_matches(['\n', '\r']).as_bytes().to_vec(), what);
    }
    if let Ok(v) = std::env::var(env) {
        return non_empty(v.into_bytes(), what);
    }
    if !std::io::stdin().is_terminal() {
        bail!("a {what} is needed: set {env} or use --password-file");
    }
    let first = rpassword::prompt_password(format!("Enter {what}: "))?;
    if confirm {
        let second = rpassword::prompt_password(format!("Repeat {what}: "))?;
        if first != second {
            bail!("the two entries differ");
        }
    }
    non_empty(first.into_bytes(), what)
}

fn non_empty(v: Vec<u8>, what: &str) -> Result<Vec<u8>> {
    if v.is_empty() {
        bail!("the {what} is empty");
    }
    Ok(v)
}

/// A snapshot time in the local time zone.
pub fn local_time(ns: i64) -> String {
    Timestamp::from_nanosecond(ns as i128)
        .map(|t| {
            t.to_zoned_datetime(TimeZone::system())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| "?".into())
}

/// RFC 3339 UTC.
pub fn utc_time(ns: i64) -> String {
    Timestamp::from_nanosecond(ns as i128)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Bytes in binary units.
pub fn size(bytes: u64) -> String {
    indicatif::BinaryBytes(bytes).to_string()
}

/// The daemon's log on stderr: `TIME LEVEL message key=value …` for people, or one JSON
/// object per line (`time`, `level`, `message` and the fields) with --json.
pub fn daemon_log(json: bool) -> kura_agent::daemon::Log {
    Arc::new(move |level, message: &str, fields: serde_json::Value| {
        let time = Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or_else(|_| Timestamp::now());
        let line = if json {
            let mut object =
                serde_json::json!({ "time": time.to_string(), "level": level.as_str(), "message": message });
            if let (Some(object), serde_json::Value::Object(fields)) = (object.as_object_mut(), fields) {
                object.extend(fields.into_iter().filter(|(_, v)| !v.is_null()));
            }
            object.to_string()
        } else {
            let mut line = format!("{time} {:<5} {message}", level.as_str().to_uppercase());
            if let serde_json::Value::Object(fields) = fields {
                for (key, value) in fields.into_iter().filter(|(_, v)| !v.is_null()) {
                    match value {
                        serde_json::Value::String(text) => line.push_str(&format!(" {key}={text:?}")),
                        other => line.push_str(&format!(" {key}={other}")),
                    }
                }
            }
            line
        };
        eprintln!("{line}");
    })
}
