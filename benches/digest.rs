//! Sends one digest run to N subscribers (default 10,000 and 100,000)
//! through the real ledger and SMTP pool to Postfix's `smtp-sink` on
//! loopback, and beside it times Postfix's own load generator
//! `smtp-source` sending as many messages of the same bytes over as many
//! reused connections to the same sink. Each herald run is a child process
//! on a fresh copy of the database, so peak memory is that run's.
//!
//! `cargo bench --bench digest`, or
//! `cargo bench --bench digest -- 10000 --pools=4,8,16 --phases`.
//! `--backends=sqlite,postgres` and `--replicas=1,3` choose the store and
//! how many herald processes send the run together (each its own child,
//! claiming from the same ledger; the run is planned once before them).
//! PostgreSQL needs `HERALD_BENCH_PG=postgres://user@127.0.0.1:PORT` and
//! `HERALD_BENCH_PG_PASSWORD`: `scripts/bench-digest.sh` starts a private
//! cluster and sets both. Each run gets a fresh copy of the database
//! (`CREATE DATABASE … TEMPLATE`); `peak MiB` is then the largest of the
//! replicas' peaks, `cpu ms/msg` all replicas' CPU over all messages.
//! `--phases` also times the parts of sending one by one on another copy:
//! composing (one thread), the ledger's claim and settle transactions
//! without sending, and the SMTP pool sending one composed message over
//! and over.
//! Needs `smtp-sink` and `smtp-source` (Debian: `apt-get install postfix`;
//! `scripts/bench-digest.sh` does that and runs this).
//!
//! Columns: `send s` is the drain of the run (claim, compose, send,
//! settle), `plan s` the run's planning before it; `cpu ms/msg` is the
//! herald process's CPU time during the drain per message (steadier than
//! the rate when other work shares the machine); `plan/send MiB` splits
//! the peak memory into planning's and sending's (the peak is reset in
//! between, so sending's includes what planning left resident); `ratio`
//! is herald's rate over smtp-source's. `RUST_LOG=herald=debug` shows
//! herald's own log (one line per batch); `DIGEST_BENCH_WRAP="perf record
//! -g -o x.perf"` runs each child under that command.

use std::collections::HashMap;
use std::io::{self, BufRead as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use chrono::{DateTime, TimeZone, Utc};
use herald::base::clock::SystemClock;
use herald::base::metrics::Metrics;
use herald::base::shutdown::Shutdown;
use herald::config::{Config, DatabaseLocation};
use herald::content::FirstSeen;
use herald::digest::{Articles, Composer, Digests, Published, Recipient};
use herald::mail::{Mailer, SendError};
use herald::store::{
    Candidate, Claim, DeliveryState, NewSubscription, Outcome, Run, Store, SubscriberEmail, Trigger,
};
use herald::subscribers::tokens::Signer;
use herald::templates::Templates;

mod corpus;

// The same allocator as the `herald` binary, so the figures are its figures.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEFAULT_SIZES: [usize; 2] = [10_000, 100_000];
const DEFAULT_POOLS: [u32; 2] = [4, 8];
/// Articles on the site; the digest carries the newest 10 (its default
/// `max_articles`), as summaries (its default `content`).
const ARTICLES: usize = 20;
const SCHEDULE: &str = "weekly";
const FROM: &str = "news@bench.example";
/// Messages composed after the run to measure the average size.
const SIZE_SAMPLES: usize = 200;
const TARGETS: &str =
    "targets (issue 15): >= 0.5 x smtp-source's msgs/s, <= 0.1 cpu ms/msg, peak < 100 MiB at 1,000,000";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.first().map(String::as_str) == Some("--child") {
        child(&args[1..])
    } else {
        parent(&args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("digest bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------- parent

struct Options {
    sizes: Vec<usize>,
    /// `summary` (the digest's default) and/or `full` (whole articles).
    contents: Vec<String>,
    pools: Vec<u32>,
    phases: bool,
    backends: Vec<String>,
    replicas: Vec<usize>,
}

/// Numbers are subscriber counts, `--pools=4,8` the pool sizes,
/// `--phases` asks for the breakdown; other flags (cargo's `--bench`) are
/// ignored.
fn parse_options(args: &[String]) -> anyhow::Result<Options> {
    let mut sizes = Vec::new();
    let mut pools = Vec::new();
    let mut phases = false;
    let mut backends = Vec::new();
    let mut replicas = Vec::new();
    let mut contents = Vec::new();
    for arg in args {
        if arg == "--phases" {
            phases = true;
        } else if let Some(list) = arg.strip_prefix("--content=") {
            for c in list.split(',') {
                ensure!(c == "summary" || c == "full", "unknown content {c:?}");
                contents.push(c.to_string());
            }
        } else if let Some(list) = arg.strip_prefix("--backends=") {
            for b in list.split(',') {
                ensure!(b == "sqlite" || b == "postgres", "unknown backend {b:?}");
                backends.push(b.to_string());
            }
        } else if let Some(list) = arg.strip_prefix("--replicas=") {
            for r in list.split(',') {
                match r.trim().parse::<usize>() {
                    Ok(n) if n > 0 => replicas.push(n),
                    _ => bail!("not a positive replica count: {r:?}"),
                }
            }
        } else if let Some(list) = arg.strip_prefix("--pools=") {
            for p in list.split(',') {
                match p.trim().parse::<u32>() {
                    Ok(n) if n > 0 => pools.push(n),
                    _ => bail!("not a positive pool size: {p:?}"),
                }
            }
        } else if !arg.starts_with('-') {
            match arg.replace('_', "").parse::<usize>() {
                Ok(n) if n > 0 => sizes.push(n),
                _ => bail!("not a positive subscriber count: {arg:?}"),
            }
        }
    }
    if sizes.is_empty() {
        sizes.extend(DEFAULT_SIZES);
    }
    if pools.is_empty() {
        pools.extend(DEFAULT_POOLS);
    }
    if backends.is_empty() {
        backends.push("sqlite".into());
        if std::env::var_os("HERALD_BENCH_PG").is_some() {
            backends.push("postgres".into());
        }
    }
    if replicas.is_empty() {
        replicas.push(1);
    }
    if contents.is_empty() {
        contents.extend(["summary".to_string(), "full".to_string()]);
    }
    Ok(Options {
        sizes,
        contents,
        pools,
        phases,
        backends,
        replicas,
    })
}

struct Row {
    subscribers: usize,
    content: String,
    backend: String,
    replicas: usize,
    pool: u32,
    herald: Report,
    source_secs: f64,
    /// smtp-source's CPU time for the same messages.
    source_cpu_secs: f64,
    phases: Option<Report>,
}

impl Row {
    fn rate(&self) -> f64 {
        self.herald.num("sent") / self.herald.num("send_secs")
    }

    fn source_rate(&self) -> f64 {
        self.subscribers as f64 / self.source_secs
    }
}

fn parent(args: &[String]) -> anyhow::Result<()> {
    let options = parse_options(args)
        .context("usage: cargo bench --bench digest [-- N... --pools=P,Q --phases]")?;
    let sink_bin = find_tool("smtp-sink")?;
    let source_bin = find_tool("smtp-source")?;
    let exe = std::env::current_exe().context("cannot find the bench executable")?;
    let root = tempfile::Builder::new()
        .prefix("herald-digest-bench-")
        .tempdir()
        .context("cannot create a temp directory")?;
    let sink = Sink::start(&sink_bin)?;
    let nproc = std::thread::available_parallelism().map_or(1, |p| p.get());
    eprintln!("smtp-sink on {} (pid {})", sink.addr, sink.child.id());

    let mut rows = Vec::new();
    for &n in &options.sizes {
        let site = Site::prepare(root.path(), n)?;
        for backend in &options.backends {
            let template = site.template_db(backend, n)?;
            for &replicas in &options.replicas {
                for &pool in &options.pools {
                    for content in &options.contents {
                        let tag = format!("[{n} {content} {backend} x{replicas} pool {pool}]");
                        let name = format!("{backend}-r{replicas}-p{pool}-{content}");
                        let data = site.dir.join(format!("data-{name}"));
                        copy_dir(&site.template_data, &data)?;
                        let database = site.fresh_db(&template, &data, &name)?;
                        let config = site.write_config(
                            &name,
                            &data,
                            sink.addr.port(),
                            pool,
                            &database,
                            content,
                        )?;
                        eprintln!("{tag} herald sending");
                        let sink_before = sink.cpu_secs();
                        let herald = if replicas == 1 {
                            run_child(&exe, "send", &config, n, None)?
                        } else {
                            run_fleet(&exe, &config, n, replicas)?
                        };
                        let sink_herald = sink.cpu_secs() - sink_before;
                        let sample = PathBuf::from(herald.text("sample")?);
                        eprintln!(
                        "{tag} herald: {} sent in {:.2} s ({:.0}/s), plan {:.2} s, cpu {:.2} s, \
                         peak {:.1} MiB (planning {:.1}, sending {:.1}), {} bytes/message; \
                         smtp-sink cpu {:.0} us/message",
                        herald.num("sent"),
                        herald.num("send_secs"),
                        herald.num("sent") / herald.num("send_secs"),
                        herald.num("plan_secs"),
                        herald.num("send_cpu_secs"),
                        herald.peak_mib(),
                        herald.num("plan_peak_mib"),
                        herald.num("send_peak_mib"),
                        herald.num("message_bytes"),
                        sink_herald / n as f64 * 1e6
                    );
                        let sink_before = sink.cpu_secs();
                        let (source_secs, source_cpu_secs) =
                            run_smtp_source(&source_bin, sink.addr, pool, n, &sample)?;
                        let sink_source = sink.cpu_secs() - sink_before;
                        eprintln!(
                        "{tag} smtp-source: {n} in {source_secs:.2} s ({:.0}/s), cpu {source_cpu_secs:.2} s; smtp-sink cpu {:.0} us/message",
                        n as f64 / source_secs,
                        sink_source / n as f64 * 1e6
                    );
                        // The copy goes now, not at the end: 100k runs are large.
                        remove_dir(&data)?;
                        site.drop_db(&database)?;
                        let phases = if options.phases && replicas == 1 {
                            copy_dir(&site.template_data, &data)?;
                            let database = site.fresh_db(&template, &data, &name)?;
                            let config = site.write_config(
                                &name,
                                &data,
                                sink.addr.port(),
                                pool,
                                &database,
                                content,
                            )?;
                            eprintln!("{tag} timing the phases apart");
                            let report = run_child(&exe, "phases", &config, n, None)?;
                            remove_dir(&data)?;
                            site.drop_db(&database)?;
                            Some(report)
                        } else {
                            None
                        };
                        rows.push(Row {
                            subscribers: n,
                            content: content.clone(),
                            backend: backend.clone(),
                            replicas,
                            pool,
                            herald,
                            source_secs,
                            source_cpu_secs,
                            phases,
                        });
                    }
                }
            }
        }
    }
    drop(sink);

    println!();
    println!(
        "nproc {nproc}; a digest of the newest 10 of {ARTICLES} articles (summaries or whole \
         articles); herald and smtp-source (-d: connections reused) each over `pool` connections \
         to one smtp-sink, with messages of the same bytes"
    );
    print_table(&rows);
    println!("{TARGETS}");
    if options.phases {
        println!();
        print_phases(&rows);
    }
    Ok(())
}

fn print_table(rows: &[Row]) {
    println!(
        "{:>11}  {:>7}  {:>8}  {:>8}  {:>4}  {:>8}  {:>6}  {:>7}  {:>7}  {:>10}  {:>8}  {:>13}  {:>9}  {:>9}  {:>5}  {:>13}  targets",
        "subscribers",
        "content",
        "backend",
        "replicas",
        "pool",
        "messages",
        "plan s",
        "send s",
        "msgs/s",
        "cpu ms/msg",
        "peak MiB",
        "plan/send MiB",
        "msg bytes",
        "source/s",
        "ratio",
        "source ms/msg",
    );
    for r in rows {
        let h = &r.herald;
        let ratio = r.rate() / r.source_rate();
        let cpu_ms = h.num("send_cpu_secs") / h.num("sent") * 1e3;
        let memory_ok = r.subscribers < 1_000_000 || h.peak_mib() < 100.0;
        let met = ratio >= 0.5 && cpu_ms <= 0.1 && memory_ok;
        println!(
            "{:>11}  {:>7}  {:>8}  {:>8}  {:>4}  {:>8}  {:>6.2}  {:>7.2}  {:>7.0}  {:>10.3}  {:>8.1}  {:>13}  {:>9}  {:>9.0}  {:>5.2}  {:>13.3}  {}",
            r.subscribers,
            r.content,
            r.backend,
            r.replicas,
            r.pool,
            h.num("sent"),
            h.num("plan_secs"),
            h.num("send_secs"),
            r.rate(),
            cpu_ms,
            h.peak_mib(),
            format!("{:.0}/{:.0}", h.num("plan_peak_mib"), h.num("send_peak_mib")),
            h.num("message_bytes"),
            r.source_rate(),
            ratio,
            r.source_cpu_secs / r.subscribers as f64 * 1e3,
            if met { "met" } else { "missed" }
        );
    }
}

/// The parts of sending, each timed alone.
fn print_phases(rows: &[Row]) {
    println!("phases, each alone on a fresh copy of the database:");
    println!(
        "{:>11}  {:>4}  {:>16}  {:>15}  {:>16}  {:>14}  {:>13}  {:>15}",
        "subscribers",
        "pool",
        "compose us/msg",
        "claim ms/batch",
        "settle ms/batch",
        "ledger us/msg",
        "smtp msgs/s",
        "smtp cpu us/msg"
    );
    for r in rows {
        let Some(p) = &r.phases else { continue };
        println!(
            "{:>11}  {:>4}  {:>16.0}  {:>15.2}  {:>16.2}  {:>14.0}  {:>13.0}  {:>15.0}",
            r.subscribers,
            r.pool,
            p.num("compose_us"),
            p.num("claim_ms"),
            p.num("settle_ms"),
            p.num("ledger_us"),
            p.num("smtp_rate"),
            p.num("smtp_cpu_us"),
        );
    }
    println!(
        "compose: one thread, the recipient's whole message (templates, MIME, QP); claim/settle: \
         batches of mail.batch_size, all marked sent; smtp: one composed message sent again \
         and again through herald's Mailer"
    );
}

/// `name` on the PATH or in the sbin folders Debian installs Postfix to.
fn find_tool(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "`{name}` not found; it comes with Postfix (`apt-get install postfix`, \
                 or run scripts/bench-digest.sh)"
            )
        })
}

/// A running `smtp-sink`, stopped when dropped.
struct Sink {
    child: Child,
    addr: SocketAddr,
}

impl Sink {
    fn start(bin: &Path) -> anyhow::Result<Sink> {
        // A free port: bind port 0, note the port, let it go.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = Command::new(bin);
        // As root it must be told whom to run as.
        if std::fs::metadata("/proc/self").map(|m| m.uid()).ok() == Some(0) {
            cmd.args(["-u", "nobody"]);
        }
        // No -c: a counter update per message would cost the sink a write.
        cmd.arg(addr.to_string())
            .arg("1024")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut sink = Sink { child, addr };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(sink);
            }
            if let Some(status) = sink.child.try_wait()? {
                bail!("smtp-sink exited at start: {status}");
            }
            ensure!(
                Instant::now() < deadline,
                "smtp-sink does not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Sink {
    /// CPU time the sink has used so far.
    fn cpu_secs(&self) -> f64 {
        cpu_secs(&format!("/proc/{}/stat", self.child.id())).unwrap_or(f64::NAN)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One size's site: content, and a database of `n` active subscribers that
/// each run starts from a copy of.
struct Site {
    dir: PathBuf,
    content: PathBuf,
    template_data: PathBuf,
}

impl Site {
    fn prepare(root: &Path, n: usize) -> anyhow::Result<Site> {
        let dir = root.join(n.to_string());
        let site = Site {
            content: dir.join("content"),
            template_data: dir.join("data-template"),
            dir,
        };
        corpus::generate_corpus(&site.content, ARTICLES)?;
        let config = site.write_config("template", &site.template_data, 25, 1, "", "summary")?;
        let config = Config::parse(&std::fs::read_to_string(config)?)?;
        let started = Instant::now();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let store = herald::store::open(&config).await?;
            let confirmed = Utc.with_ymd_and_hms(2014, 6, 1, 9, 0, 0).unwrap();
            let mut added = 0;
            for chunk in (0..n).collect::<Vec<_>>().chunks(20_000) {
                let rows = chunk
                    .iter()
                    .map(|&i| subscription(i, confirmed))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                added += store.import(rows).await?.added;
            }
            ensure!(added == n as u64, "imported {added} of {n} subscribers");
            store.close().await;
            anyhow::Ok(())
        })?;
        eprintln!(
            "[{n}] {n} subscribers imported in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(site)
    }

    /// The PostgreSQL template database for `n` subscribers (copied from
    /// the SQLite template with the store's own copy); `""` for SQLite.
    fn template_db(&self, backend: &str, n: usize) -> anyhow::Result<String> {
        if backend == "sqlite" {
            return Ok(String::new());
        }
        let name = format!("herald_bench_t{n}");
        pg_admin(&format!("DROP DATABASE IF EXISTS {name}"))?;
        pg_admin(&format!("CREATE DATABASE {name}"))?;
        let started = Instant::now();
        let sqlite = DatabaseLocation::Sqlite(self.template_data.join("herald.sqlite3"));
        let pg = DatabaseLocation::Postgres(pg_url(&name)?);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(async {
                let options = pg_options();
                let from = herald::store::open_location(&sqlite, &options).await?;
                let to = herald::store::open_location(&pg, &options).await?;
                herald::store::copy::copy(&*from, &*to, |_, _| {}).await?;
                from.close().await;
                to.close().await;
                anyhow::Ok(())
            })?;
        eprintln!(
            "[{n}] copied into PostgreSQL in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(name)
    }

    /// A fresh copy of the template database for one run: its
    /// `subscribers.database` value (`""`: SQLite in `data`).
    fn fresh_db(&self, template: &str, _data: &Path, name: &str) -> anyhow::Result<String> {
        if template.is_empty() {
            return Ok(String::new());
        }
        let db = format!("herald_bench_{}", name.replace('-', "_"));
        pg_admin(&format!("DROP DATABASE IF EXISTS {db}"))?;
        pg_admin(&format!("CREATE DATABASE {db} TEMPLATE {template}"))?;
        Ok(pg_url(&db)?.to_string())
    }

    fn drop_db(&self, database: &str) -> anyhow::Result<()> {
        if let Some(name) = database.rsplit('/').next().filter(|_| !database.is_empty()) {
            pg_admin(&format!("DROP DATABASE IF EXISTS {name}"))?;
        }
        Ok(())
    }

    /// Writes `herald-<name>.toml` for a run on `data` with `pool`
    /// connections to the sink at `port`, on `database` (`""`: SQLite in
    /// `data`).
    fn write_config(
        &self,
        name: &str,
        data: &Path,
        port: u16,
        pool: u32,
        database: &str,
        content: &str,
    ) -> anyhow::Result<PathBuf> {
        let subscribers = if database.is_empty() {
            String::new()
        } else {
            let pw = self.dir.join("pg-password");
            std::fs::write(&pw, pg_password())?;
            format!(
                "[subscribers]\ndatabase = \"{database}\"\ndatabase_password_file = {:?}\n",
                pw.display().to_string()
            )
        };
        let text = format!(
            r#"data_dir = {data:?}
{subscribers}

[site]
title = "Bench Gazette"
description = "Benchmark site"
base_url = "https://bench.example/"
author = {{ name = "Bench Author" }}

[content]
dir = {content:?}

[feeds]
dir = {feeds:?}

[mail]
transport = "smtp"
from = "Bench Gazette <{FROM}>"
postal_address = "Bench Gazette Ltd\n1 Loopback Road\nLocalhost"
unsubscribe_mailto = "unsubscribe@bench.example"
{batch}
[mail.smtp]
host = "127.0.0.1"
port = {port}
tls = "none"
pool_size = {pool}
timeout = "30s"

[[digest]]
name = "{SCHEDULE}"
description = "Once a week, on Monday morning"
schedule = "0 0 8 * * Mon"
content = "{digest_content}"
"#,
            digest_content = content,
            // `DIGEST_BENCH_BATCH=N` sets `mail.batch_size`; otherwise
            // herald's default is measured.
            batch = std::env::var("DIGEST_BENCH_BATCH")
                .map(|n| format!("batch_size = {n}\n"))
                .unwrap_or_default(),
            data = data.display().to_string(),
            content = self.content.display().to_string(),
            feeds = self.dir.join("feeds").display().to_string(),
        );
        let path = self.dir.join(format!("herald-{name}.toml"));
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

/// The PostgreSQL server of `HERALD_BENCH_PG`, database `db`.
fn pg_url(db: &str) -> anyhow::Result<url::Url> {
    let base = std::env::var("HERALD_BENCH_PG")
        .context("HERALD_BENCH_PG (postgres://user@host:port) is not set")?;
    Ok(format!("{}/{db}", base.trim_end_matches('/')).parse()?)
}

fn pg_password() -> String {
    std::env::var("HERALD_BENCH_PG_PASSWORD").unwrap_or_default()
}

fn pg_options() -> herald::store::OpenOptions {
    herald::store::OpenOptions {
        pool_size: 4,
        statement_timeout: Duration::from_secs(600),
        connect_timeout: Duration::from_secs(10),
        migrate: true,
        password: Some(pg_password()),
    }
}

/// One statement on the server's `postgres` database.
fn pg_admin(sql: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut url = pg_url("postgres")?;
    url.set_password(Some(&pg_password()))
        .map_err(|_| anyhow::anyhow!("bad URL"))?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let mut c = sqlx::PgConnection::connect(url.as_str()).await?;
            sqlx::query(sql).execute(&mut c).await?;
            c.close().await?;
            anyhow::Ok(())
        })
        .with_context(|| format!("PostgreSQL: {sql}"))
}

/// Subscriber `i`: active since `confirmed`, every article, weekly.
fn subscription(i: usize, confirmed: DateTime<Utc>) -> anyhow::Result<NewSubscription> {
    Ok(NewSubscription {
        email: SubscriberEmail::parse(&format!("reader{i:06}@mail{}.example", i % 97))?,
        name: None,
        schedules: vec![SCHEDULE.into()],
        tags: Vec::new(),
        at: confirmed,
        ip: None,
        source: "import".into(),
        confirmed_note: Some("benchmark".into()),
    })
}

/// What a child printed on its stdout: a `result key=value ...` line.
struct Report {
    fields: HashMap<String, String>,
}

impl Report {
    /// The herald run's peak resident memory: planning's or sending's.
    fn peak_mib(&self) -> f64 {
        self.num("plan_peak_mib").max(self.num("send_peak_mib"))
    }

    fn parse(stdout: &[u8]) -> Report {
        let fields = stdout
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| l.strip_prefix("result ").map(str::to_string))
            .flat_map(|l| {
                l.split(' ')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>()
            })
            .collect();
        Report { fields }
    }

    fn text(&self, key: &str) -> anyhow::Result<&str> {
        self.fields
            .get(key)
            .map(String::as_str)
            .with_context(|| format!("the child did not report `{key}`"))
    }

    /// A number the child reported; NaN when it did not (checked in
    /// `run_child`).
    fn num(&self, key: &str) -> f64 {
        self.text(key)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    }
}

/// `mode` (`send` or `phases`) in a child process. `DIGEST_BENCH_WRAP`
/// (e.g. `perf record -g -o digest.perf`) is put in front of the command.
fn run_child(
    exe: &Path,
    mode: &str,
    config: &Path,
    n: usize,
    run: Option<i64>,
) -> anyhow::Result<Report> {
    let output = child_command(exe, mode, config, n, run)
        .output()
        .context("cannot start the bench child")?;
    ensure!(
        output.status.success(),
        "the {mode} child failed: {}",
        output.status
    );
    let report = Report::parse(&output.stdout);
    let expected: &[&str] = match mode {
        "send" => &[
            "plan_secs",
            "send_secs",
            "send_cpu_secs",
            "sent",
            "plan_peak_mib",
            "send_peak_mib",
            "message_bytes",
        ],
        "plan" => &["run", "plan_secs", "plan_peak_mib"],
        "drain" => &["send_cpu_secs", "send_peak_mib"],
        "finish" => &["sent", "message_bytes"],
        _ => &[
            "compose_us",
            "claim_ms",
            "settle_ms",
            "ledger_us",
            "smtp_rate",
            "smtp_cpu_us",
        ],
    };
    for key in expected {
        ensure!(
            report.num(key).is_finite(),
            "the {mode} child reported no number `{key}`"
        );
    }
    Ok(report)
}

/// `replicas` processes sending one run together: planned once by a
/// child, drained by `replicas` children started at once, checked and
/// sampled by a last one. The wall time is from the drains' start to the
/// last one's end; CPU is all of theirs, peak memory the largest.
fn run_fleet(exe: &Path, config: &Path, n: usize, replicas: usize) -> anyhow::Result<Report> {
    let plan = run_child(exe, "plan", config, n, None)?;
    let run = plan.num("run") as i64;
    let started = Instant::now();
    let children: Vec<Child> = (0..replicas)
        .map(|_| {
            child_command(exe, "drain", config, n, Some(run))
                .stdout(Stdio::piped())
                .spawn()
                .context("cannot start a drain child")
        })
        .collect::<anyhow::Result<_>>()?;
    let mut cpu = 0.0;
    let mut peak: f64 = 0.0;
    for c in children {
        let out = c.wait_with_output()?;
        ensure!(out.status.success(), "a drain child failed: {}", out.status);
        let r = Report::parse(&out.stdout);
        cpu += r.num("send_cpu_secs");
        peak = peak.max(r.num("send_peak_mib"));
    }
    let send_secs = started.elapsed().as_secs_f64();
    let finish = run_child(exe, "finish", config, n, Some(run))?;
    let mut fields = plan.fields;
    fields.extend(finish.fields);
    for (k, v) in [
        ("send_secs", send_secs),
        ("send_cpu_secs", cpu),
        ("send_peak_mib", peak),
    ] {
        fields.insert(k.into(), v.to_string());
    }
    Ok(Report { fields })
}

/// The command line of a child.
fn child_command(exe: &Path, mode: &str, config: &Path, n: usize, run: Option<i64>) -> Command {
    let wrap = std::env::var("DIGEST_BENCH_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    let mut cmd = match words.next() {
        Some(first) => {
            let mut c = Command::new(first);
            c.args(words).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.args(["--child", mode])
        .arg(config)
        .arg(n.to_string())
        .args(run.map(|r| r.to_string()))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    cmd
}

/// `smtp-source` sending `n` copies of `sample` over `sessions` parallel
/// connections, each reused for its next message (`-d`), as herald's pool
/// does. Returns the wall time and smtp-source's CPU time (user + system,
/// from bash's `times` after it exits: the same measure as herald's).
fn run_smtp_source(
    bin: &Path,
    sink: SocketAddr,
    sessions: u32,
    n: usize,
    sample: &Path,
) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    let output = Command::new("bash")
        .args(["-c", r#""$@"; rc=$?; times >&2; exit $rc"#, "smtp-source"])
        .arg(bin)
        .args(["-d", "-s", &sessions.to_string(), "-m", &n.to_string()])
        .arg("-F")
        .arg(sample)
        .args([
            "-f",
            FROM,
            "-t",
            "reader@mail0.example",
            "-M",
            "bench.example",
        ])
        .arg(sink.to_string())
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let secs = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "smtp-source failed ({}): {}",
        output.status,
        stderr.trim()
    );
    // `times` prints the shell's user and system time, then its
    // children's: "0m1.234s 0m0.567s".
    let children = stderr.trim().lines().last().unwrap_or("");
    let cpu: f64 = children
        .split_whitespace()
        .map(|t| {
            let (m, s) = t
                .trim_end_matches('s')
                .split_once('m')
                .unwrap_or(("0", "nan"));
            m.parse::<f64>().unwrap_or(f64::NAN) * 60.0 + s.parse::<f64>().unwrap_or(f64::NAN)
        })
        .sum();
    Ok((secs, cpu))
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

fn remove_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}

// ----------------------------------------------------------------- child

/// `--child send|phases CONFIG N`: one run on the database of `CONFIG`.
fn child(args: &[String]) -> anyhow::Result<()> {
    let (mode, config, n, run) = match args {
        [mode, config, n] => (mode, config, n, None),
        [mode, config, n, run] => (mode, config, n, Some(run.parse::<i64>()?)),
        _ => bail!("usage: digest --child send|phases|plan|drain|finish CONFIG SUBSCRIBERS [RUN]"),
    };
    let n: u64 = n.parse().context("subscriber count")?;
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(io::stderr)
            .init();
    }
    let config = Arc::new(Config::parse(&std::fs::read_to_string(config)?)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // Everything, drops included, inside the runtime: the pools' drops
    // need it.
    let line = runtime.block_on(async {
        let service = Service::start(config).await?;
        let line = match mode.as_str() {
            "send" => send_run(&service, n).await?,
            "phases" => time_phases(&service, n).await?,
            "plan" => {
                let (run, plan_secs) = service.plan().await?;
                format!(
                    "run={} plan_secs={plan_secs} plan_peak_mib={}",
                    run.id,
                    peak_mib()?
                )
            }
            "drain" | "finish" => {
                let run = run.context("a run id")?;
                let run = service.store.run(run).await?.context("no such run")?;
                if mode == "drain" {
                    reset_peak()?;
                    let (_, cpu) = drain_run(&service, &run).await?;
                    format!("send_cpu_secs={cpu} send_peak_mib={}", peak_mib()?)
                } else {
                    finish_run(&service, &run, n).await?
                }
            }
            other => bail!("unknown child mode `{other}`"),
        };
        service.mailer.shutdown().await;
        service.store.close().await;
        anyhow::Ok(line)
    })?;
    println!("result {line}");
    Ok(())
}

/// herald's digest service wired as the daemon wires it.
struct Service {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    mailer: Arc<Mailer>,
    digests: Digests,
    articles: Articles,
}

impl Service {
    async fn start(config: Arc<Config>) -> anyhow::Result<Service> {
        let store = herald::store::open(&config).await?;
        let mailer = Arc::new(Mailer::from_config(&config).await?);
        let templates = Arc::new(Templates::load(None)?);
        let signer = Signer::new(b"a benchmark signing secret, 32+ bytes long")?;
        let composer = Arc::new(Composer::new(Arc::clone(&config), templates, signer)?);
        let digests = Digests::new(
            Arc::clone(&config),
            Arc::clone(&store),
            Arc::clone(&mailer),
            composer,
            Arc::new(Metrics::new()),
            Arc::new(SystemClock),
        );
        let (catalog, report) =
            herald::content::load(&config, Utc::now(), &mut FirstSeen::in_memory())?;
        ensure!(
            report.rejected.is_empty(),
            "rejected: {:?}",
            report.rejected
        );
        Ok(Service {
            articles: Arc::new(Published::dated(catalog.articles().to_vec(), Utc::now())),
            config,
            store,
            mailer,
            digests,
        })
    }

    /// Plans the run; returns it and the seconds planning took.
    async fn plan(&self) -> anyhow::Result<(Run, f64)> {
        let started = Instant::now();
        let run = self
            .digests
            .start_run(SCHEDULE, Utc::now(), Trigger::Manual, &self.articles)
            .await?
            .context("the run exists already")?;
        Ok((run, started.elapsed().as_secs_f64()))
    }

    /// Composes the digests of the first `count` recipients; returns the
    /// first one as bytes on the wire (before dot-stuffing), the average
    /// size and how many were composed.
    async fn compose_some(
        &self,
        run: &Run,
        count: usize,
    ) -> anyhow::Result<(Vec<u8>, usize, usize)> {
        let composer = self.digests.composer();
        let ctx = composer.context(run.clone(), Arc::clone(&self.articles))?;
        let (mut first, mut total, mut composed) = (None, 0, 0);
        for c in first_candidates(&*self.store, count).await?.iter() {
            let to = Recipient {
                id: c.id,
                email: &c.email,
                since: c.confirmed_at,
                first: true,
                tags: &c.tags,
            };
            let message = composer
                .prepare(&ctx, to, Utc::now())?
                .context("a sample subscriber has nothing new")?
                .wire
                .to_bytes();
            total += message.len();
            composed += 1;
            first.get_or_insert(message);
        }
        let first = first.context("no subscribers to compose for")?;
        Ok((first, total / composed, composed))
    }
}

/// The first `count` subscribers of the schedule.
async fn first_candidates(store: &dyn Store, count: usize) -> anyhow::Result<Vec<Candidate>> {
    Ok(store.candidates_page(SCHEDULE, None, count).await?)
}

/// Plans and sends the whole run as the daemon would; reports times, peak
/// memory, and the average message size (and writes one message for
/// smtp-source).
async fn send_run(s: &Service, n: u64) -> anyhow::Result<String> {
    let (run, plan_secs) = s.plan().await?;
    // The peak so far is start-up and planning; the sending's own is
    // measured from here.
    let plan_peak_mib = peak_mib()?;
    reset_peak()?;

    let (send_secs, send_cpu_secs) = drain_run(s, &run).await?;
    let send_peak_mib = peak_mib()?;
    let finished = finish_run(s, &run, n).await?;
    Ok(format!(
        "plan_secs={plan_secs} send_secs={send_secs} send_cpu_secs={send_cpu_secs} \
         plan_peak_mib={plan_peak_mib} send_peak_mib={send_peak_mib} {finished}"
    ))
}

/// Sends `run` until it is done (beside other replicas, if any): wall
/// seconds and CPU seconds.
async fn drain_run(s: &Service, run: &Run) -> anyhow::Result<(f64, f64)> {
    let cpu_before = own_cpu_secs()?;
    let started = Instant::now();
    let shutdown = Shutdown::new();
    loop {
        let drained = s
            .digests
            .drain(run, &s.articles, &shutdown.signal())
            .await?;
        if drained.done {
            break;
        }
        // Only retries are left: wait for the first to come due.
        let wait = drained.next_retry.map_or(Duration::from_millis(100), |at| {
            (at - Utc::now()).to_std().unwrap_or_default()
        });
        tokio::time::sleep(wait).await;
    }
    Ok((
        started.elapsed().as_secs_f64(),
        own_cpu_secs()? - cpu_before,
    ))
}

/// Checks that everybody got the run; writes one message for smtp-source.
async fn finish_run(s: &Service, run: &Run, n: u64) -> anyhow::Result<String> {
    let status = s.digests.status(run.id).await?;
    let sent = status.count(DeliveryState::Sent);
    ensure!(
        sent == n && status.total() == n,
        "expected {n} sent, the ledger says {status:?}"
    );

    let (first, message_bytes, _) = s.compose_some(run, SIZE_SAMPLES).await?;
    let sample_path = s.config.data_dir.join("sample.eml");
    // smtp-source -F reads lines and ends each with CRLF itself.
    let sample = String::from_utf8(first)?.replace("\r\n", "\n");
    std::fs::write(&sample_path, sample)?;

    Ok(format!(
        "sent={sent} message_bytes={message_bytes} sample={}",
        sample_path.display()
    ))
}

/// Times composing, the ledger's transactions and the SMTP pool apart.
async fn time_phases(s: &Service, n: u64) -> anyhow::Result<String> {
    let (run, _) = s.plan().await?;

    // Composing, on this one thread.
    let count = (n as usize).min(2_000);
    let started = Instant::now();
    let (_, _, composed) = s.compose_some(&run, count).await?;
    let compose_us = started.elapsed().as_secs_f64() * 1e6 / composed as f64;

    // The ledger: every batch claimed and settled as sent.
    let store = s.digests.store();
    let batch = s.config.mail.batch_size;
    let (mut claim, mut settle, mut batches, mut rows) = (0.0, 0.0, 0u64, 0u64);
    loop {
        let started = Instant::now();
        let now = Utc::now();
        let take = Claim {
            by: "bench",
            now,
            lease_until: now + chrono::Duration::minutes(5),
            limit: batch,
        };
        let claimed = store.claim(run.id, take).await?;
        claim += started.elapsed().as_secs_f64();
        if claimed.is_empty() {
            break;
        }
        let outcomes: Vec<(i64, Outcome)> = claimed
            .iter()
            .map(|c| (c.subscriber_id, Outcome::Sent { article_count: 10 }))
            .collect();
        let started = Instant::now();
        store
            .settle(
                &run,
                "bench",
                &outcomes,
                Utc::now(),
                s.config.mail.bounce_limit,
            )
            .await?;
        settle += started.elapsed().as_secs_f64();
        batches += 1;
        rows += outcomes.len() as u64;
    }
    ensure!(rows == n, "the ledger phase settled {rows} of {n}");

    // The SMTP pool alone: one composed message, sent as often as there
    // are subscribers (at most 10,000), with as many sends under way as
    // herald has in a batch.
    let message = {
        let composer = s.digests.composer();
        let ctx = composer.context(run.clone(), Arc::clone(&s.articles))?;
        let c = &first_candidates(&*s.store, 1).await?[0];
        let to = Recipient {
            id: c.id,
            email: &c.email,
            since: c.confirmed_at,
            first: true,
            tags: &c.tags,
        };
        let prepared = composer.prepare(&ctx, to, Utc::now())?;
        Arc::new(prepared.context("nothing new")?.wire)
    };
    let sends = (n as usize).min(10_000);
    let cpu_before = own_cpu_secs()?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::<Result<(), SendError>>::new();
    for i in 0..sends {
        if i >= batch {
            let sent = tasks.join_next().await.context("a send task")?;
            sent?.map_err(|e| anyhow::anyhow!("sending: {e}"))?;
        }
        let mailer = Arc::clone(&s.mailer);
        let message = Arc::clone(&message);
        tasks.spawn(async move { mailer.send_wire(&message).await });
    }
    while let Some(sent) = tasks.join_next().await {
        sent?.map_err(|e| anyhow::anyhow!("sending: {e}"))?;
    }
    let smtp_secs = started.elapsed().as_secs_f64();
    let smtp_cpu = own_cpu_secs()? - cpu_before;

    Ok(format!(
        "compose_us={compose_us} claim_ms={} settle_ms={} ledger_us={} smtp_rate={} smtp_cpu_us={}",
        claim * 1e3 / batches as f64,
        settle * 1e3 / batches as f64,
        (claim + settle) * 1e6 / rows as f64,
        sends as f64 / smtp_secs,
        smtp_cpu * 1e6 / sends as f64,
    ))
}

/// Starts `VmHWM` afresh from the current resident size (Linux 4.0+).
fn reset_peak() -> anyhow::Result<()> {
    std::fs::write("/proc/self/clear_refs", "5").context("resetting the peak in clear_refs")
}

/// This process's peak resident memory (`VmHWM`) in MiB.
fn peak_mib() -> anyhow::Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/self/status")?;
    Ok(kib / 1024.0)
}

fn own_cpu_secs() -> anyhow::Result<f64> {
    cpu_secs("/proc/self/stat")
}

/// User plus system CPU time from a `/proc/<pid>/stat` file (in the
/// kernel's fixed USER_HZ of 100 ticks per second).
fn cpu_secs(stat: &str) -> anyhow::Result<f64> {
    let text = std::fs::read_to_string(stat).with_context(|| format!("reading {stat}"))?;
    // The command name may hold spaces; the fields after it do not.
    let rest = &text[text.rfind(')').context("malformed stat")? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i - 3).context("short stat")?.parse::<f64>()?)
    };
    Ok((ticks(14)? + ticks(15)?) / 100.0)
}
