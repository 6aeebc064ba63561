//! The shardgate binary: CLI, logging, load config, run until SIGTERM.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod map_cmd;
mod migrate_cmd;

#[derive(Parser)]
#[command(name = "shardgate", about = "A PostgreSQL sharding proxy")]
struct Cli {
    /// The proxy configuration file.
    #[arg(long, short, global = true, default_value = "shardgate.yaml")]
    config: PathBuf,
    /// Overrides the shard map path from the config.
    #[arg(long, global = true)]
    shardmap: Option<PathBuf>,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Shard map tools: check, route, plan-add-shard.
    #[command(subcommand)]
    Map(map_cmd::MapCommand),
    /// Applies migrations/NNNN_name.sql to every shard, each in its own transaction.
    Migrate(migrate_cmd::MigrateArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Map(cmd)) => return map_cmd::run(cmd),
        Some(Command::Migrate(args)) => return migrate_cmd::run(args, &cli.config, cli.shardmap),
        None => {}
    }
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if cli.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let mut config = shardgate::Config::load(&cli.config)?;
    if let Some(m) = cli.shardmap {
        config.shardmap = m;
    }
    let map = shardgate::ShardMap::load(&config.shardmap)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(async {
        let running = shardgate::start(config, map).await?;
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM: draining"); break }
                _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT: draining"); break }
                _ = running.shutdown_requested() => { tracing::info!("admin SHUTDOWN: draining"); break }
                _ = hup.recv() => {
                    // A refused map is logged by reload; the old map stays.
                    let _ = running.reload();
                }
            }
        }
        running.shutdown().await;
        Ok(())
    })
}
