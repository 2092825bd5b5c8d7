//! Logs through `tracing`: human lines on the terminal (progress on stdout, warnings and
//! errors on stderr) or JSON objects for collectors, and every line in a log file too when
//! one is set. `RUST_LOG` narrows or widens what is logged (default: info).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tracing::Level;
use tracing_subscriber::fmt::writer::{MakeWriter, MakeWriterExt};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The format `app.log_format` names.
    pub(crate) fn from_name(name: &str) -> Result<LogFormat> {
        match name {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => bail!("unknown log format {other:?} (choose text or json)"),
        }
    }
}

/// Where and how to log.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogSettings {
    /// The terminal's format (the file takes the same).
    pub(crate) format: LogFormat,
    /// A file every line also goes to.
    pub(crate) file: Option<PathBuf>,
    /// Whether every terminal line goes to stderr (a miner's, whose stdout stays free).
    pub(crate) all_stderr: bool,
}

fn open(path: &Path) -> Result<std::fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the log directory {}", dir.display()))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open the log file {}", path.display()))
}

/// One output's layer: JSON objects or human lines to `writer`, at the level `RUST_LOG` asks
/// for (info by default).
fn layer<W>(json: bool, writer: W) -> Box<dyn Layer<Registry> + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(writer)
            .with_filter(filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(false)
            .with_writer(writer)
            .with_filter(filter)
            .boxed()
    }
}

/// Starts logging for the rest of the process; a second call changes nothing.
pub(crate) fn init(settings: &LogSettings) -> Result<()> {
    let floor = if settings.all_stderr {
        Level::TRACE
    } else {
        Level::WARN
    };
    let terminal = std::io::stderr
        .with_max_level(floor)
        .or_else(std::io::stdout);
    let json = settings.format == LogFormat::Json;
    let mut layers = vec![layer(json, terminal)];
    if let Some(path) = &settings.file {
        layers.push(layer(json, Arc::new(open(path)?)));
    }
    // Already set (a test, or a second command in one process): the first one stays.
    let _ = tracing_subscriber::registry().with(layers).try_init();
    Ok(())
}
