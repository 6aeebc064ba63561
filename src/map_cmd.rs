//! `shardgate map ...`: the shard map tools a DBA runs before a reload (part of the binary, not the
//! library): check a file, show where a statement routes and why, plan adding a shard.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use shardgate::sharding::plan_add::{NewShard, plan_add_shard};

#[derive(Subcommand)]
pub enum MapCommand {
    /// Validates a shard map; prints a summary, or each problem with its file:line.
    Check {
        #[arg(default_value = "shardmap.yaml")]
        file: PathBuf,
    },
    /// Prints the new map after adding a shard with the fewest bucket moves, and the share of keys that move.
    PlanAddShard {
        name: String,
        #[arg(long, default_value = "shardmap.yaml")]
        file: PathBuf,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long, default_value_t = 5432)]
        port: u16,
        /// Defaults to the first shard's database.
        #[arg(long)]
        database: Option<String>,
    },
}

pub fn run(cmd: MapCommand) -> anyhow::Result<()> {
    match cmd {
        MapCommand::Check { file } => check(&file),
        MapCommand::PlanAddShard {
            name,
            file,
            host,
            port,
            database,
        } => {
            let text = read(&file)?;
            let map = shardgate::ShardMap::parse(&text, &file)?;
            let database = database.unwrap_or_else(|| map.shards[0].database.clone());
            let new = NewShard {
                name: &name,
                host: &host,
                port,
                database: &database,
            };
            let plan = plan_add_shard(&text, &file, &new)?;
            print!("{}", plan.yaml);
            eprintln!(
                "# {} of {} buckets move to {name} ({:.2}% of keys); no bucket moves between existing shards",
                plan.moved_buckets,
                plan.total_buckets,
                plan.moved_share() * 100.0
            );
            Ok(())
        }
    }
}

fn read(file: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))
}

fn check(file: &Path) -> anyhow::Result<()> {
    let map = match shardgate::ShardMap::load(file) {
        Ok(map) => map,
        Err(e) => bail!("{e}"),
    };
    println!(
        "{}: ok (version {}, {} shards, {} tables{})",
        file.display(),
        map.version,
        map.shards.len(),
        map.tables.len(),
        map.buckets
            .as_ref()
            .map(|b| format!(", {} buckets", b.count()))
            .unwrap_or_default()
    );
    Ok(())
}
