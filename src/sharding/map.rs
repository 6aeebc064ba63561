//! `shardmap.yaml`: the versioned list of shards (name, host, port, database, optional credentials).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Index of a shard in the map's `shards` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub usize);

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardSpec {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub database: String,
    /// Overrides the proxy's `server_auth` for this shard.
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardMap {
    pub version: u64,
    pub shards: Vec<ShardSpec>,
}

#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

impl ShardMap {
    pub fn load(path: &Path) -> Result<ShardMap, MapError> {
        let text = std::fs::read_to_string(path).map_err(|source| MapError::Read {
            path: path.into(),
            source,
        })?;
        ShardMap::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<ShardMap, MapError> {
        let invalid = |line: usize, message: String| MapError::Invalid {
            path: path.into(),
            line,
            message,
        };
        let map: ShardMap = yaml_serde::from_str(text).map_err(|e| {
            let line = e.location().map(|l| l.line()).unwrap_or(0);
            invalid(line, e.to_string())
        })?;
        if map.shards.is_empty() {
            return Err(invalid(
                line_of(text, "shards"),
                "shards: at least one shard is required".into(),
            ));
        }
        for (i, s) in map.shards.iter().enumerate() {
            if map.shards[..i].iter().any(|o| o.name == s.name) {
                let line = line_of(text, &format!("name: {}", s.name));
                return Err(invalid(
                    line,
                    format!("shards[{i}].name: duplicate shard {:?}", s.name),
                ));
            }
        }
        Ok(map)
    }

    pub fn shard(&self, id: ShardId) -> &ShardSpec {
        &self.shards[id.0]
    }
}

/// The 1-based line of the last occurrence of `needle`, for messages that point a DBA at the right place.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
        .last()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str, want: &str) {
        let got = match ShardMap::parse(yaml, Path::new("m.yaml")) {
            Ok(m) => format!("ok {}", m.shards.len()),
            Err(e) => e.to_string(),
        };
        assert!(got.contains(want), "{got:?} does not contain {want:?}");
    }

    #[test]
    fn validation() {
        let one = "version: 1\nshards:\n  - name: a\n    host: h\n    port: 1\n    database: d\n";
        check(one, "ok 1");
        check("version: 1\nshards: []\n", "m.yaml:2: shards: at least one");
        check(
            &format!("{one}  - name: a\n    host: h\n    port: 2\n    database: d\n"),
            "m.yaml:7: shards[1].name: duplicate",
        );
        check(
            "version: 1\nshards:\n  - name: a\n    host: h\n    port: x\n    database: d\n",
            "m.yaml:5:",
        );
        check(
            "version: 1\nshards:\n  - name: a\n    hots: h\n",
            "unknown field `hots`",
        );
    }
}
