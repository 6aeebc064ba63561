//! The I/O of `shardgate migrate`: connect to every shard, read what each applied, plan, then run each
//! step in its own transaction (the file, then its row in `shardgate_migrations`), stopping at the
//! first failure.

use std::fmt;
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use super::MigrateError;
use super::files::Migration;
use super::plan::{Applied, ShardApplied, Step, plan};
use crate::backend::server::ServerTarget;
use crate::{Config, ShardMap};

/// Created where missing. `checksum` is added to a table made before it existed (old `scripts/dev.sh`),
/// where it stays nullable.
const CREATE_TABLE: &str = "\
CREATE TABLE IF NOT EXISTS shardgate_migrations (
    name text PRIMARY KEY,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE shardgate_migrations ADD COLUMN IF NOT EXISTS checksum text;";

/// Session advisory lock key ("sgmg") held during a run, so two runs never apply the same migration.
const LOCK_KEY: i64 = 0x7367_6d67;

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Print the plan; change nothing (not even create the table).
    pub dry_run: bool,
    pub connect_timeout: Duration,
}

/// What a run did (or, on a dry run, would do) on each shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub outcome: Outcome,
    /// Each shard of the map, in map order, with its migrations in the order they ran.
    pub shards: Vec<(String, Vec<String>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    DryRun,
    Done,
    /// Stopped at a failure: a shard with nothing applied is not up to date.
    Stopped,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self.outcome {
            Outcome::DryRun => "would apply",
            Outcome::Done | Outcome::Stopped => "applied",
        };
        let mut first = true;
        for (shard, names) in &self.shards {
            let mut line = |text: String| {
                let sep = if first { "" } else { "\n" };
                first = false;
                write!(f, "{sep}{shard}: {text}")
            };
            if names.is_empty() {
                line(match self.outcome {
                    Outcome::Stopped => "nothing applied".into(),
                    _ => "up to date".into(),
                })?;
            }
            for n in names {
                line(format!("{verb} {n}"))?;
            }
        }
        Ok(())
    }
}

/// Brings every shard of `map` up to `files`, or on a dry run says what that would take.
pub async fn migrate(
    config: &Config,
    map: &ShardMap,
    files: &[Migration],
    options: Options,
) -> Result<Summary, MigrateError> {
    let mut clients = Vec::with_capacity(map.shards.len());
    for spec in &map.shards {
        let target = crate::proxy::target(config, spec, &Default::default());
        let client = connect(&target, options.connect_timeout).await?;
        if !options.dry_run {
            prepare(&client)
                .await
                .map_err(|message| shard_error(&target, message))?;
        }
        clients.push((target, client));
    }
    let mut recorded = Vec::with_capacity(clients.len());
    for (target, client) in &clients {
        let applied = read_applied(client)
            .await
            .map_err(|e| shard_error(target, describe(&e)))?;
        recorded.push(ShardApplied {
            shard: target.shard.clone(),
            applied,
        });
    }
    let plan = plan(files, &recorded).map_err(MigrateError::Drift)?;
    let mut summary = Summary {
        outcome: Outcome::Stopped,
        shards: recorded
            .into_iter()
            .map(|s| (s.shard, Vec::new()))
            .collect(),
    };
    if options.dry_run {
        for step in &plan.steps {
            summary.shards[step.shard]
                .1
                .push(files[step.migration].name.clone());
        }
        summary.outcome = Outcome::DryRun;
        return Ok(summary);
    }
    for step in &plan.unverified {
        let (target, client) = &clients[step.shard];
        let m = &files[step.migration];
        client
            .execute(
                "UPDATE shardgate_migrations SET checksum = $2 WHERE name = $1 AND checksum IS NULL",
                &[&m.name, &m.checksum],
            )
            .await
            .map_err(|e| shard_error(target, describe(&e)))?;
    }
    for &Step { shard, migration } in &plan.steps {
        let (target, client) = &mut clients[shard];
        let m = &files[migration];
        if let Err(e) = apply(client, m).await {
            return Err(MigrateError::Failed {
                shard: target.shard.clone(),
                migration: m.name.clone(),
                message: describe(&e),
                applied: summary,
            });
        }
        summary.shards[shard].1.push(m.name.clone());
    }
    summary.outcome = Outcome::Done;
    Ok(summary)
}

async fn connect(target: &ServerTarget, timeout: Duration) -> Result<Client, MigrateError> {
    let mut pg = tokio_postgres::Config::new();
    pg.host(&target.host)
        .port(target.port)
        .dbname(&target.database)
        .user(&target.user)
        .application_name("shardgate migrate")
        .connect_timeout(timeout);
    if let Some(p) = &target.password {
        pg.password(p);
    }
    let (client, connection) = pg
        .connect(NoTls)
        .await
        .map_err(|e| shard_error(target, describe(&e)))?;
    // The connection task ends when the client is dropped.
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "migrate connection closed");
        }
    });
    Ok(client)
}

/// Takes the run's lock and makes sure the table exists.
async fn prepare(client: &Client) -> Result<(), String> {
    let row = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(|e| describe(&e))?;
    if !row.get::<_, bool>(0) {
        return Err("another shardgate migrate is running against this database".into());
    }
    client
        .batch_execute(CREATE_TABLE)
        .await
        .map_err(|e| describe(&e))
}

/// The shard's rows, or none when the table does not exist yet (a dry run does not create it). Reads the
/// checksum through `to_jsonb` so that a table without the column (old `scripts/dev.sh`) reads as `NULL`.
async fn read_applied(client: &Client) -> Result<Vec<Applied>, tokio_postgres::Error> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('shardgate_migrations') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT m.name, to_jsonb(m) ->> 'checksum' FROM shardgate_migrations m ORDER BY m.name",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Applied {
            name: r.get(0),
            checksum: r.get(1),
        })
        .collect())
}

/// One migration on one shard, in one transaction: the file's statements, then its row. On any error
/// the transaction is rolled back, so the shard is as it was.
async fn apply(client: &mut Client, m: &Migration) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let result = async {
        tx.batch_execute(&m.sql).await?;
        tx.execute(
            "INSERT INTO shardgate_migrations (name, checksum) VALUES ($1, $2)",
            &[&m.name, &m.checksum],
        )
        .await
    }
    .await;
    match result {
        Ok(_) => tx.commit().await,
        Err(e) => {
            // A failed rollback leaves nothing committed either: the server aborts the transaction
            // when the connection closes.
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

fn shard_error(target: &ServerTarget, message: String) -> MigrateError {
    MigrateError::Shard {
        shard: target.shard.clone(),
        message: format!(
            "{message} ({}:{}/{} as {})",
            target.host, target.port, target.database, target.user
        ),
    }
}

/// A server error as psql shows it (`ERROR 42P07: relation "t" already exists`), else the client's.
fn describe(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        return match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        };
    };
    let mut s = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    if let Some(d) = db.detail() {
        s.push_str(&format!(" (detail: {d})"));
    }
    if let Some(h) = db.hint() {
        s.push_str(&format!(" (hint: {h})"));
    }
    if let Some(w) = db.where_() {
        s.push_str(&format!(" (where: {w})"));
    }
    s
}
