//! `shardgate map plan-add-shard NAME`: the shard map after adding a shard with the fewest bucket moves,
//! written as an edit of the DBA's own file (comments and layout stay), and the share of keys that move.

use std::path::Path;

use super::buckets::format_range;
use super::lines::Lines;
use super::map::{MapError, ShardId, ShardMap};

/// Where the new shard lives; written into the new map as given.
pub struct NewShard<'a> {
    pub name: &'a str,
    pub host: &'a str,
    pub port: u16,
    pub database: &'a str,
}

pub struct AddShardPlan {
    /// The complete new map file.
    pub yaml: String,
    pub moved_buckets: usize,
    pub total_buckets: u32,
}

impl AddShardPlan {
    /// Keys spread evenly over buckets (that is what the partition hash is for), so the share of keys
    /// that move is the share of buckets that move.
    pub fn moved_share(&self) -> f64 {
        self.moved_buckets as f64 / f64::from(self.total_buckets)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Map(#[from] MapError),
    #[error("the map has no hash buckets to move (add `buckets: N` and bucket ranges first)")]
    NoBuckets,
    #[error("a shard named {0:?} already exists")]
    Exists(String),
    /// The file is valid but not laid out in the block style this edit understands.
    #[error(
        "cannot find {0} in the file's layout; write the map in block style (one key per line)"
    )]
    Layout(String),
}

/// Plans adding `new` to the map in `text`; the result is validated by parsing it back.
pub fn plan_add_shard(text: &str, path: &Path, new: &NewShard) -> Result<AddShardPlan, PlanError> {
    let map = ShardMap::parse(text, path)?;
    let buckets = map.buckets.as_ref().ok_or(PlanError::NoBuckets)?;
    if map.shard_named(new.name).is_some() {
        return Err(PlanError::Exists(new.name.into()));
    }
    let (after, moved) = buckets.plan_add_shard();
    let lines = Lines::new(text);
    let mut out: Vec<String> = text.lines().map(str::to_owned).collect();
    // Edit from the bottom up so earlier line numbers stay valid.
    let mut edits: Vec<(usize, usize, Vec<String>)> = Vec::new();
    let version = lines
        .span(&["version"])
        .ok_or_else(|| PlanError::Layout("version".into()))?;
    edits.push((
        version.0,
        version.1,
        vec![format!("version: {}", map.version + 1)],
    ));
    for (i, _) in map.shards.iter().enumerate() {
        let ranges = ranges(&after.ranges_of(ShardId(i)));
        let item = lines
            .span(&["shards", &i.to_string()])
            .ok_or_else(|| PlanError::Layout(format!("shards[{i}]")))?;
        if let Some(line) = flow_item(&out[item.0], &ranges) {
            // `- {name: a, ..., buckets: [0-511]}` on one line.
            edits.push((item.0, item.0 + 1, vec![line]));
            continue;
        }
        let (start, end) = lines
            .span(&["shards", &i.to_string(), "buckets"])
            .ok_or_else(|| PlanError::Layout(format!("shards[{i}].buckets")))?;
        let indent = out[start].len() - out[start].trim_start().len();
        let first = out[start].trim_start();
        let prefix = if first.starts_with("- ") { "- " } else { "" };
        let line = format!("{}{prefix}buckets: [{ranges}]", " ".repeat(indent));
        edits.push((start, end, vec![line]));
    }
    let last = lines
        .span(&["shards", &(map.shards.len() - 1).to_string()])
        .ok_or_else(|| PlanError::Layout("shards".into()))?;
    let item_indent = out[last.0].len() - out[last.0].trim_start().len();
    let pad = " ".repeat(item_indent);
    let new_ranges = ranges(&after.ranges_of(ShardId(map.shards.len())));
    let item = if out[last.0].contains('{') {
        format!(
            "{pad}- {{name: {}, host: {}, port: {}, database: {}, buckets: [{new_ranges}]}}",
            new.name, new.host, new.port, new.database
        )
    } else {
        format!(
            "{pad}- name: {}\n{pad}  host: {}\n{pad}  port: {}\n{pad}  database: {}\n{pad}  buckets: [{new_ranges}]",
            new.name, new.host, new.port, new.database
        )
    };
    edits.push((last.1, last.1, item.lines().map(str::to_owned).collect()));
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    for (start, end, with) in edits {
        out.splice(start..end, with);
    }
    let mut yaml = out.join("\n");
    yaml.push('\n');
    ShardMap::parse(&yaml, path)?;
    Ok(AddShardPlan {
        yaml,
        moved_buckets: moved.len(),
        total_buckets: buckets.count(),
    })
}

/// A flow-style shard line with its `buckets: [...]` replaced; `None` for block style.
fn flow_item(line: &str, ranges: &str) -> Option<String> {
    if !line.trim_start().starts_with("- {") {
        return None;
    }
    let at = line.find("buckets:")?;
    let open = at + line[at..].find('[')?;
    let close = open + line[open..].find(']')?;
    Some(format!("{}[{ranges}]{}", &line[..open], &line[close + 1..]))
}

fn ranges(rs: &[std::ops::RangeInclusive<u32>]) -> String {
    rs.iter().map(format_range).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = "# our shards
version: 3
buckets: 1024
shards:
  - name: s0
    host: h
    port: 1
    database: d
    buckets:
      - 0-511
  - name: s1   # the second
    host: h
    port: 2
    database: d
    buckets: [512-1023]
tables:
  - name: users
    key: id
    type: int8
    strategy: hash
";

    #[test]
    fn adds_a_shard_moving_a_third() {
        let new = NewShard {
            name: "s2",
            host: "10.0.0.3",
            port: 5432,
            database: "d",
        };
        let plan = plan_add_shard(MAP, Path::new("m.yaml"), &new).expect("plan");
        assert!(matches!(plan.moved_buckets, 341 | 342));
        assert!((plan.moved_share() - plan.moved_buckets as f64 / 1024.0).abs() < 1e-9);
        let map = ShardMap::parse(&plan.yaml, Path::new("m.yaml")).expect("valid");
        assert_eq!(map.version, 4);
        assert_eq!(map.shards.len(), 3);
        assert_eq!(map.shards[2].host, "10.0.0.3");
        assert!(plan.yaml.starts_with("# our shards\n"));
        assert!(plan.yaml.contains("  - name: s1   # the second\n"));
        assert_eq!(map.tables.len(), 1);
        // No bucket moves between the old shards.
        let before = ShardMap::parse(MAP, Path::new("m.yaml")).expect("valid");
        let (b, a) = (before.buckets.expect("b"), map.buckets.expect("a"));
        for i in 0..1024 {
            let bucket = crate::sharding::Bucket(i);
            assert!(a.owner(bucket) == b.owner(bucket) || a.owner(bucket) == ShardId(2));
        }
    }

    #[test]
    fn refuses_an_existing_name_and_maps_without_buckets() {
        let new = NewShard {
            name: "s1",
            host: "h",
            port: 1,
            database: "d",
        };
        let e = plan_add_shard(MAP, Path::new("m.yaml"), &new)
            .err()
            .expect("refused");
        assert!(e.to_string().contains("already exists"));
        let plain = "version: 1\nshards:\n  - {name: a, host: h, port: 1, database: d}\n";
        let e = plan_add_shard(plain, Path::new("m.yaml"), &NewShard { name: "b", ..new });
        assert!(matches!(e, Err(PlanError::NoBuckets)));
        let flow = "{version: 1, buckets: 2, shards: [{name: a, host: h, port: 1, database: d, buckets: [0-1]}]}\n";
        let e = plan_add_shard(flow, Path::new("m.yaml"), &NewShard { name: "b", ..new });
        assert!(matches!(e, Err(PlanError::Layout(_))), "{:?}", e.err());
    }
}
