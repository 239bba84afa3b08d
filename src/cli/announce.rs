//! `herald announce FILE.md --to all|schedule:NAME|tag:NAME [--dry-run]`:
//! a one-off message to the list, planned into the ledger as a run and
//! sent exactly as a digest is (see `digest::announce`): by this process
//! when it may send, else queued to the running daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};

use crate::config::Config;
use crate::digest::announce::announcement_from_markdown;
use crate::digest::Published;
use crate::store::{self, Audience};

#[derive(Debug, clap::Args)]
pub struct AnnounceArgs {
    /// The message: Markdown, its subject the front matter's `title` or
    /// its first `# Heading`.
    file: PathBuf,
    /// Who gets it: `all` active subscribers, `schedule:NAME` (or just
    /// NAME) for one `[[digest]]` schedule's, `tag:NAME` for those who
    /// follow a tag.
    #[arg(long, value_name = "AUDIENCE")]
    to: String,
    /// Only say how many would get it; send and record nothing.
    #[arg(long)]
    dry_run: bool,
    /// Leave it out of the web archive.
    #[arg(long)]
    no_archive: bool,
}

/// `all`, `schedule:NAME`, `tag:NAME`, or a schedule's bare name.
fn audience(config: &Config, to: &str) -> anyhow::Result<Audience> {
    let audience = match Audience::parse(to) {
        Some(a) => a,
        None if config.digest.iter().any(|d| d.name == to) => Audience::Schedule(to.to_string()),
        None => bail!("--to `{to}`: give all, schedule:NAME or tag:NAME"),
    };
    match &audience {
        Audience::Schedule(s) if !config.digest.iter().any(|d| &d.name == s) => {
            let known: Vec<&str> = config.digest.iter().map(|d| d.name.as_str()).collect();
            bail!(
                "--to: there is no digest schedule called `{s}` (the config has: {})",
                known.join(", ")
            )
        }
        Audience::Tag(t) => Ok(Audience::Tag(crate::base::text::slugify(t))),
        _ => Ok(audience),
    }
}

pub async fn run(config: Config, args: AnnounceArgs) -> anyhow::Result<ExitCode> {
    let config = Arc::new(config);
    let audience = audience(&config, &args.to)?;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let message = announcement_from_markdown(
        &text,
        config.site.base_url.url(),
        audience,
        !args.no_archive,
    )
    .with_context(|| args.file.display().to_string())?;
    let store = store::open(&config).await?;
    let digests = super::digest::digests(&config, Arc::clone(&store)).await?;
    let now = crate::store::db_time(chrono::Utc::now());
    let planned = digests.plan_announcement(&message, now).await?;
    let code = if planned.is_empty() {
        // Most likely a misspelt tag: a run to nobody would only clutter
        // the ledger and the archive.
        eprintln!(
            "error: no active subscriber is in {} (is the tag or schedule spelt as subscribers have it?); nothing was sent or recorded",
            message.audience
        );
        ExitCode::FAILURE
    } else if args.dry_run {
        outln!(
            "dry run: `{}` would go to {} subscribers ({}); nothing was sent or recorded",
            message.subject,
            planned.len(),
            message.audience
        )?;
        ExitCode::SUCCESS
    } else {
        let run = digests
            .start_planned_announcement(&message, now, planned)
            .await?;
        outln!(
            "run {}: announcement `{}` planned for {}",
            run.id,
            message.subject,
            message.audience
        )?;
        let articles = Arc::new(Published::default());
        super::digest::send_now_or_queue(&digests, &run, &articles).await?
    };
    store.close().await;
    Ok(code)
}
