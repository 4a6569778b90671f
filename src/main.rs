//! The command line: parse, load config, build, run, exit codes.
//! Exit codes: 0 ok; 1 runtime failure (or `once` found a problem); 2 invalid
//! flags or config (nothing was started, no port bound).

use clap::{Parser, Subcommand, ValueEnum};
use nodevitals::agent::{Agent, SHUTDOWN_GRACE};
use nodevitals::config::{Config, ConfigSource, DEFAULT_CONFIG_PATH};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "nodevitals",
    version,
    about = "Node health agent: container runtime, DNS and CPU throttling probes"
)]
struct Cli {
    /// Config file [default: /etc/nodevitals/config.toml, built-in defaults if absent]
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Address to serve on, overriding server.listen
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Take every remediation decision but never act on it
    #[arg(long)]
    dry_run: bool,
    /// Log format on stderr
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the config and print the effective config
    CheckConfig,
    /// Run every probe once, print a report, exit 0 if all healthy, 1 if not
    Once,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    // Before anything else: may execute the binary again (see `memory`).
    nodevitals::memory::tune_allocator();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging(cli.log_format);
    let source = match &cli.config {
        Some(p) => ConfigSource::Explicit(p.clone()),
        None => ConfigSource::Default(PathBuf::from(DEFAULT_CONFIG_PATH)),
    };
    let mut config = match Config::load(&source) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nodevitals: invalid config: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.dry_run {
        config.remediation.dry_run = true;
    }
    match cli.command {
        Some(Command::CheckConfig) => check_config(&source, &config),
        Some(Command::Once) => once(&config),
        None => run_agent(source, config, cli.listen, cli.dry_run),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NODEVITALS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn check_config(source: &ConfigSource, config: &Config) -> ExitCode {
    match toml::to_string_pretty(config) {
        Ok(text) => {
            let origin = if source.path().exists() {
                source.path().display().to_string()
            } else {
                "built-in defaults".to_owned()
            };
            // A closed stdout (`| head`) is an exit code, not a panic.
            let mut out = std::io::stdout().lock();
            match writeln!(out, "# effective config ({origin})\n{text}") {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::from(1),
            }
        }
        Err(e) => {
            eprintln!("nodevitals: cannot print config: {e}");
            ExitCode::from(1)
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    // Two workers: a probe blocked in a system call never starves the server.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

fn once(config: &Config) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nodevitals: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let rows = rt.block_on(nodevitals::once::run(config));
    print!("{}", nodevitals::once::render(&rows));
    rt.shutdown_timeout(SHUTDOWN_GRACE);
    if nodevitals::once::all_healthy(&rows) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn run_agent(
    source: ConfigSource,
    config: Config,
    listen: Option<SocketAddr>,
    dry_run: bool,
) -> ExitCode {
    let addr = listen.unwrap_or(config.server.listen);
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nodevitals: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async move {
        let listener = nodevitals::server::bind(addr)
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        Agent::new(source, config)
            .force_dry_run(dry_run)
            .run(listener)
            .await
    });
    rt.shutdown_timeout(SHUTDOWN_GRACE);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nodevitals: {e}");
            ExitCode::from(1)
        }
    }
}
