//! `shardgate migrate`: applies `migrations/NNNN_name.sql` to every shard of the map (part of the binary;
//! the work is in `shardgate::migrate`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use shardgate::migrate::{self, Options};

#[derive(Args)]
pub struct MigrateArgs {
    /// Print which migrations would run on each shard; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// The directory of NNNN_name.sql files.
    #[arg(long, default_value = "migrations")]
    dir: PathBuf,
}

/// Loads the config and map like the proxy does, then migrates every shard.
pub fn run(args: MigrateArgs, config: &Path, shardmap: Option<PathBuf>) -> anyhow::Result<()> {
    let mut config = shardgate::Config::load(config)?;
    if let Some(m) = shardmap {
        config.shardmap = m;
    }
    let map = shardgate::ShardMap::load(&config.shardmap)?;
    let files = migrate::load_dir(&args.dir)?;
    let options = Options {
        dry_run: args.dry_run,
        connect_timeout: Duration::from_millis(config.pool.connect_timeout_ms),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    match runtime.block_on(migrate::migrate(&config, &map, &files, options)) {
        Ok(summary) => {
            println!("{summary}");
            if args.dry_run {
                println!("dry run: nothing changed");
            }
            Ok(())
        }
        Err(e) => bail!("{e}"),
    }
}
