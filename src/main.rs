//! The `herald` command line: parse arguments, load config, set up logging,
//! call into the library.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use herald::cli::site::{build, BuildOptions};
use herald::config::Config;

// Builds allocate many short-lived strings on several threads; mimalloc
// handles that markedly better than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "herald",
    version,
    about = "Turns a content directory into RSS, Atom and JSON feeds, serves them over HTTP, \
             and sends email digests of new articles to double-opt-in subscribers"
)]
struct Cli {
    /// Configuration file.
    #[arg(
        long,
        short,
        global = true,
        env = "HERALD_CONFIG",
        default_value = "config/herald.toml"
    )]
    config: PathBuf,
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        env = "HERALD_LOG_FORMAT",
        default_value = "human"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Read the content directory once and write every feed (site-wide and
    /// per tag, in each configured format) to the output directory. Files
    /// whose bytes would not change are left alone. Exits 1 when any content
    /// file was rejected (the others are still published), 2 on a fatal error.
    Build {
        /// Also list every file that is not an article, with the reason.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Validate the config and every content file, render every feed in
    /// memory, make every check `herald run` makes at start (each template
    /// rendered with sample data, digest subjects, the DKIM key, the signing
    /// secret, the SMTP settings), and write nothing. Exits 1 when any
    /// content file would be rejected, 2 on any other failure.
    Check {
        /// Also list every file that is not an article (README, redirect
        /// stubs, template pages, data files, …), with the reason.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Run the daemon: build at start, keep the feeds current (rescan on the
    /// `[rescan]` schedule and when content files change, publish future-dated
    /// articles at their time) and serve them over HTTP with conditional GET,
    /// plus /healthz, /readyz and /metrics. SIGTERM or SIGINT stops it
    /// gracefully (exit 0).
    Run,
    /// Manage subscribers in the database (works while the daemon runs):
    /// add, list, remove, import and export (CSV, with consent data).
    Subscribers {
        #[command(subcommand)]
        cmd: herald::cli::subscribers::SubscribersCommand,
    },
    /// Digest emails: preview one, send a schedule now, see what a run
    /// delivered, send failed or uncertain deliveries again.
    Digest {
        #[command(subcommand)]
        cmd: herald::cli::digest::DigestCommand,
    },
    /// Send a one-off message (Markdown; subject from its `title` or first
    /// heading) to the list, one schedule's subscribers or one tag's,
    /// through the same ledger, templates, headers, retries and crash
    /// guarantees as a digest, and into the web archive. Queued to the
    /// daemon when it holds the send lock. Exits 1 when a delivery failed
    /// or bounced, or nobody is in the audience.
    Announce(herald::cli::announce::AnnounceArgs),
    /// Bounce reports mailed back to `mail.bounce_address`: `ingest` reads
    /// one (a DSN or an abuse report) from a file or standard input, as an
    /// MTA alias pipes it, and applies it.
    Bounces {
        #[command(subcommand)]
        cmd: herald::cli::bounces::BouncesCommand,
    },
    /// The subscriber database: apply migrations, or copy everything from
    /// one database into another (SQLite to PostgreSQL).
    Db {
        #[command(subcommand)]
        cmd: herald::cli::db::DbCommand,
    },
    /// Ask the running daemon whether it answers: GET /healthz at
    /// `server.listen` (0.0.0.0 and :: are reached through loopback), with a
    /// 5 s timeout. Exits 0 on 200 OK, 1 with one line saying why otherwise,
    /// as a container HEALTHCHECK expects.
    Healthcheck {
        /// Ask /readyz instead: healthy only while current feeds are
        /// served (not before the first build, not when it failed, not
        /// while stopping); the reason is printed.
        #[arg(long)]
        ready: bool,
        /// Check this URL instead of the one `server.listen` gives.
        #[arg(long, value_name = "URL")]
        url: Option<url::Url>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match run(cli) {
        Ok(code) => code,
        // The reader of stdout went away (`| head`): a normal end.
        Err(e) if herald::cli::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Healthcheck { url, ready } = &cli.command {
        // Reads the config itself: a config that does not load is an
        // unhealthy 1 here, not the fatal 2 of the other commands.
        let probe = if *ready {
            herald::cli::healthcheck::Probe::Ready
        } else {
            herald::cli::healthcheck::Probe::Alive
        };
        return Ok(herald::cli::healthcheck::run(
            &cli.config,
            url.as_ref(),
            probe,
        ));
    }
    let config = Config::load(&cli.config)?;
    let command = match cli.command {
        Command::Run => return run_daemon(config),
        Command::Subscribers { cmd } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            return runtime.block_on(herald::cli::subscribers::run(&config, cmd));
        }
        Command::Announce(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            return runtime.block_on(herald::cli::announce::run(config, args));
        }
        Command::Bounces { cmd } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            return runtime.block_on(herald::cli::bounces::run(config, cmd));
        }
        Command::Db { cmd } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            return runtime.block_on(herald::cli::db::run(&config, cmd));
        }
        Command::Digest { cmd } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            return runtime.block_on(herald::cli::digest::run(config, cmd));
        }
        other => other,
    };
    let write = matches!(command, Command::Build { .. });
    let verbose = matches!(
        command,
        Command::Build { verbose: true } | Command::Check { verbose: true }
    );
    if !write {
        // Everything `herald run` checks before it serves, so that a
        // passing check means a daemon that starts.
        let config = std::sync::Arc::new(config.clone());
        let checked = herald::daemon::preflight::preflight(&config)?;
        for w in &checked.warnings {
            eprintln!("warning: {w}");
        }
    }
    tracing::info!("reading {}", config.content.dir.display());
    let outcome = build(
        &config,
        BuildOptions {
            write,
            now: chrono::Utc::now(),
        },
    )
    .context("build failed")?;
    for w in &outcome.load.warnings {
        eprintln!("warning: {w}");
    }
    if verbose {
        for s in &outcome.load.skipped {
            eprintln!("skipped: {}: {}", s.path.display(), s.reason);
        }
        for d in &outcome.load.draft_files {
            eprintln!(
                "draft: {}: not published until it is no longer a draft",
                d.display()
            );
        }
    }
    for e in &outcome.load.rejected {
        eprintln!("rejected: {e}");
    }
    eprintln!("{}", outcome.summary());
    Ok(if outcome.load.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn run_daemon(config: Config) -> anyhow::Result<ExitCode> {
    // A panic that herald catches (a request, a rebuild) is reported in the
    // log, with where it happened, not as bare text on stderr.
    herald::base::panic::log_panics();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .with_context(|| {
                format!("cannot listen on {} (server.listen)", config.server.listen)
            })?;
        let shutdown = herald::base::shutdown::Shutdown::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            // The first signal stops herald within server.shutdown_grace;
            // a second one gives up on what is in flight at once.
            if let Err(e) = herald::base::shutdown::os_signal().await {
                tracing::warn!("cannot handle SIGTERM and SIGINT: {e}");
                return;
            }
            trigger.trigger();
            if herald::base::shutdown::os_signal().await.is_ok() {
                tracing::warn!("second signal: not waiting for work in flight");
                trigger.abandon();
            }
        });
        herald::daemon::run(
            config,
            listener,
            herald::daemon::Runtime {
                clock: std::sync::Arc::new(herald::base::clock::SystemClock),
                shutdown,
            },
        )
        .await
    });
    // `run` has returned by the shutdown deadline; a rebuild still running
    // on a blocking thread must not hold the exit (its writes are atomic).
    runtime.shutdown_timeout(std::time::Duration::from_millis(50));
    result?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.with_target(false).init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every subcommand, option and argument, by its path, that has no
    /// help text.
    fn undocumented(cmd: &clap::Command, path: &str, found: &mut Vec<String>) {
        if cmd.get_about().is_none() && cmd.get_long_about().is_none() {
            found.push(format!("command `{path}`"));
        }
        for arg in cmd.get_arguments() {
            let builtin = matches!(arg.get_id().as_str(), "help" | "version");
            if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                found.push(format!("`{path}` argument `{}`", arg.get_id()));
            }
        }
        for sub in cmd.get_subcommands() {
            undocumented(sub, &format!("{path} {}", sub.get_name()), found);
        }
    }

    #[test]
    fn every_command_option_and_argument_has_help_text() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut found = Vec::new();
        undocumented(&cmd, "herald", &mut found);
        assert!(found.is_empty(), "no help text: {found:#?}");
    }

    #[test]
    fn the_top_level_help_says_herald_sends_email_digests() {
        let help = Cli::command().render_help().to_string();
        assert!(help.contains("email digests"), "{help}");
    }
}
