//! The migration plan: from the files and what each shard records as applied, the (shard, migration)
//! steps still to run, or the drift that forbids running anything. Pure: no I/O.
//!
//! A shard that recorded a prefix of the files is just behind. Anything else is drift: a hole (a
//! migration missing where a later one ran), a file changed after it ran, or a recorded name with no file.

use std::collections::HashMap;

use super::error::{Disagreement, Drift};
use super::files::Migration;

/// A row of `shardgate_migrations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Applied {
    pub(crate) name: String,
    /// `None` for rows recorded before the table had a checksum (the old `scripts/dev.sh`).
    pub(crate) checksum: Option<String>,
}

/// What one shard of the map records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShardApplied {
    pub(crate) shard: String,
    pub(crate) applied: Vec<Applied>,
}

/// Migration `migration` (an index into the files) on shard `shard` (an index into the shards).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    pub(crate) shard: usize,
    pub(crate) migration: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// In file order, and within one migration in shard order: a migration that fails somewhere is found
    /// before any shard runs a later one.
    pub(crate) steps: Vec<Step>,
    /// Applied without a recorded checksum: the run records the file's.
    pub(crate) unverified: Vec<Step>,
}

pub(crate) fn plan(files: &[Migration], shards: &[ShardApplied]) -> Result<Plan, Drift> {
    let applied: Vec<HashMap<&str, Option<&str>>> = shards
        .iter()
        .map(|s| {
            s.applied
                .iter()
                .map(|a| (a.name.as_str(), a.checksum.as_deref()))
                .collect()
        })
        .collect();
    let mut drift = Vec::new();
    let mut unverified = Vec::new();
    for (s, done) in applied.iter().enumerate() {
        drift.extend(shard_drift(files, shards, &applied, s));
        for (m, file) in files.iter().enumerate() {
            if let Some(None) = done.get(file.name.as_str()) {
                unverified.push(Step {
                    shard: s,
                    migration: m,
                });
            }
        }
    }
    if !drift.is_empty() {
        return Err(Drift(drift));
    }
    let mut steps = Vec::new();
    for (m, file) in files.iter().enumerate() {
        for (s, done) in applied.iter().enumerate() {
            if !done.contains_key(file.name.as_str()) {
                steps.push(Step {
                    shard: s,
                    migration: m,
                });
            }
        }
    }
    Ok(Plan { steps, unverified })
}

/// How shard `s` disagrees with the files.
fn shard_drift(
    files: &[Migration],
    shards: &[ShardApplied],
    applied: &[HashMap<&str, Option<&str>>],
    s: usize,
) -> Vec<Disagreement> {
    let shard = &shards[s].shard;
    let mut out = Vec::new();
    for a in &shards[s].applied {
        if !files.iter().any(|f| f.name == a.name) {
            out.push(Disagreement::Unknown {
                shard: shard.clone(),
                name: a.name.clone(),
            });
        }
    }
    for (m, file) in files.iter().enumerate() {
        match applied[s].get(file.name.as_str()) {
            Some(Some(sum)) if *sum != file.checksum => out.push(Disagreement::Changed {
                shard: shard.clone(),
                name: file.name.clone(),
            }),
            Some(_) => {}
            None => {
                let later = files[m + 1..]
                    .iter()
                    .find(|f| applied[s].contains_key(f.name.as_str()));
                if let Some(later) = later {
                    out.push(Disagreement::Hole {
                        shard: shard.clone(),
                        missing: file.name.clone(),
                        later: later.name.clone(),
                        applied_on: shards
                            .iter()
                            .zip(applied)
                            .filter(|(_, a)| a.contains_key(file.name.as_str()))
                            .map(|(o, _)| o.shard.clone())
                            .collect(),
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files `0001_a.sql`.. with checksum `c<letter>`.
    fn files(names: &[&str]) -> Vec<Migration> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| Migration {
                name: format!("{:04}_{n}.sql", i + 1),
                number: i as u64 + 1,
                checksum: format!("c{n}"),
                sql: String::new(),
            })
            .collect()
    }

    /// A shard's rows as `"a"` (checksum `ca`), `"a=x"` (checksum `x`) or `"a="` (no checksum); the
    /// number is found from the file list.
    fn shard(files: &[Migration], name: &str, rows: &[&str]) -> ShardApplied {
        let applied = rows
            .iter()
            .map(|r| {
                let (n, sum) = match r.split_once('=') {
                    Some((n, "")) => (n, None),
                    Some((n, s)) => (n, Some(s.to_string())),
                    None => (*r, Some(format!("c{r}"))),
                };
                let name = files
                    .iter()
                    .find(|f| f.name.ends_with(&format!("_{n}.sql")))
                    .map(|f| f.name.clone())
                    .unwrap_or_else(|| format!("9999_{n}.sql"));
                Applied {
                    name,
                    checksum: sum,
                }
            })
            .collect();
        ShardApplied {
            shard: name.into(),
            applied,
        }
    }

    /// `want`: the steps as `"s0:a"`, or `Err` with each disagreement's text.
    fn check(names: &[&str], shards: &[&[&str]], want: Result<&[&str], &[&str]>) {
        let files = files(names);
        let shards: Vec<ShardApplied> = shards
            .iter()
            .enumerate()
            .map(|(i, rows)| shard(&files, &format!("s{i}"), rows))
            .collect();
        let got = plan(&files, &shards)
            .map(|p| {
                p.steps
                    .iter()
                    .map(|s| format!("s{}:{}", s.shard, names[s.migration]))
                    .collect::<Vec<_>>()
            })
            .map_err(|d| d.0.iter().map(|d| d.to_string()).collect::<Vec<_>>());
        let want = want
            .map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .map_err(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(got, want, "{names:?} {shards:?}");
    }

    #[test]
    fn table() {
        // Fresh shards: everything, migration by migration.
        check(
            &["a", "b"],
            &[&[], &[]],
            Ok(&["s0:a", "s1:a", "s0:b", "s1:b"]),
        );
        // Up to date.
        check(&["a", "b"], &[&["a", "b"], &["b", "a"]], Ok(&[]));
        // No files, nothing recorded.
        check(&[], &[&[], &[]], Ok(&[]));
        // Shards at different points, each a prefix: not drift, the plan catches them up.
        check(
            &["a", "b", "c"],
            &[&["a"], &["a", "b"], &[]],
            Ok(&["s2:a", "s0:b", "s2:b", "s0:c", "s1:c", "s2:c"]),
        );
        // A row recorded before checksums existed counts as applied.
        check(&["a", "b"], &[&["a="], &["a", "b"]], Ok(&["s0:b"]));
        // A hole: b ran on s0 only, c ran on s1.
        check(
            &["a", "b", "c"],
            &[&["a", "b"], &["a", "c"]],
            Err(&[
                "s1: 0002_b.sql was never applied, but the later 0003_c.sql was (0002_b.sql is applied on s0)",
            ]),
        );
        // A migration added below one that already ran everywhere.
        check(
            &["a", "new", "b"],
            &[&["a", "b"]],
            Err(&["s0: 0002_new.sql was never applied, but the later 0003_b.sql was"]),
        );
        // A file changed after it ran.
        check(
            &["a", "b"],
            &[&["a", "b=old"], &["a"]],
            Err(&["s0: 0002_b.sql changed after it was applied (checksum differs)"]),
        );
        // A recorded migration whose file is gone.
        check(
            &["a"],
            &[&["a", "gone"], &["a"]],
            Err(&[
                "s0: 9999_gone.sql is recorded as applied but is not in the migrations directory",
            ]),
        );
        // Every disagreement is named, shard by shard.
        check(
            &["a", "b"],
            &[&["a=x"], &["b"]],
            Err(&[
                "s0: 0001_a.sql changed after it was applied (checksum differs)",
                "s1: 0001_a.sql was never applied, but the later 0002_b.sql was (0001_a.sql is applied on s0)",
            ]),
        );
    }

    #[test]
    fn unverified_rows_are_listed() {
        let files = files(&["a", "b"]);
        let shards = [shard(&files, "s0", &["a=", "b"])];
        let p = plan(&files, &shards).unwrap();
        assert_eq!(
            p.unverified,
            [Step {
                shard: 0,
                migration: 0
            }]
        );
    }
}
