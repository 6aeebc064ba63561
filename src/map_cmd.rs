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
    /// Prints where a statement goes and why: `route [FILE] "SQL" [PARAM...]` (parameters as text).
    Route {
        /// An optional map file (default shardmap.yaml), then the SQL, then its parameters.
        #[arg(required = true, num_args = 1..)]
        args: Vec<String>,
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
        MapCommand::Route { args } => route(&args),
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

fn route(args: &[String]) -> anyhow::Result<()> {
    use shardgate::router::{Params, Route, Router, resolve};
    // A first argument naming an existing file is the map; otherwise the default map and the SQL.
    let (file, rest) = match args {
        [first, rest @ ..] if !rest.is_empty() && Path::new(first).is_file() => {
            (PathBuf::from(first), rest)
        }
        _ => (PathBuf::from("shardmap.yaml"), args),
    };
    let [sql, params @ ..] = rest else {
        bail!("usage: shardgate map route [FILE] \"SQL\" [PARAM...]");
    };
    let map = shardgate::ShardMap::load(&file)?;
    let plan = Router::new(1).plan(sql, &map);
    let values: Vec<Option<&[u8]>> = params.iter().map(|p| Some(p.as_bytes())).collect();
    let route = resolve(&plan, &map, &Params::new(&[], &values), None);
    let name = |s: &shardgate::sharding::ShardId| map.shard(*s).name.clone();
    let names = |list: &[shardgate::sharding::ShardId]| {
        list.iter().map(name).collect::<Vec<_>>().join(", ")
    };
    let shown = match &route {
        Route::Shard(s) => format!("shard {}", name(s)),
        Route::Any => "any one shard".into(),
        Route::All => format!(
            "every shard ({})",
            names(&map.all_shards().collect::<Vec<_>>())
        ),
        Route::Multi(list) => format!("several shards: {}", names(list)),
        Route::Scatter(list) => format!("a read over several shards, merged: {}", names(list)),
        Route::CopyIn(_) => format!(
            "COPY split row by row over every shard ({})",
            names(&map.all_shards().collect::<Vec<_>>())
        ),
        Route::Split(parts) => {
            let parts: Vec<String> = parts
                .iter()
                .map(|p| format!("{} ({} rows): {}", name(&p.shard), p.rows, p.sql))
                .collect();
            format!("split:\n  {}", parts.join("\n  "))
        }
        Route::Lookup { key, .. } => format!("the directory's lookup table decides ({key})"),
        Route::Refused(r) => format!("refused: {r}"),
    };
    println!("route: {shown}");
    println!("why: {}", plan.reason);
    for line in key_lines(&plan, &map, params) {
        println!("  {line}");
    }
    println!("command: {:?}", plan.command);
    Ok(())
}

/// For a keyed plan, each key with its bucket (hash tables) and owner: what a DBA checks by hand.
fn key_lines(
    plan: &shardgate::router::Plan,
    map: &shardgate::ShardMap,
    params: &[String],
) -> Vec<String> {
    use shardgate::router::{KeySource, Target};
    use shardgate::sharding::{Placement, Strategy, TableKind};
    let (table, keys) = match &plan.target {
        Target::Keys { table, keys, .. } => (*table, keys),
        Target::Insert { table, rows, .. } => (*table, rows),
        _ => return Vec::new(),
    };
    let spec = &map.tables[table];
    let TableKind::Sharded(sharded) = &spec.kind else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for k in keys {
        let value = match k {
            KeySource::Value(v) => Some(v.clone()),
            KeySource::Param(i) => params
                .get(*i)
                .and_then(|p| sharded.key_type.parse_text(p).ok()),
            KeySource::ParamArray(_) => None,
        };
        let Some(v) = value else { continue };
        let bucket = match (&sharded.strategy, &map.buckets) {
            (Strategy::Hash, Some(b)) => {
                format!(" -> bucket {}", b.bucket_of(v.partition_hash()).0)
            }
            _ => String::new(),
        };
        let owner = match map.place(sharded, &v) {
            Placement::Shard(s) => map.shard(s).name.clone(),
            Placement::Lookup => "the lookup table".into(),
            Placement::Nowhere(why) => format!("nowhere ({why})"),
        };
        out.push(format!(
            "{}.{} = {v}{bucket} -> {owner}",
            spec.name, sharded.key
        ));
    }
    out
}
