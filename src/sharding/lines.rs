//! Finding the line of a field in a hand-edited YAML file, so validation errors point a DBA at the
//! right place (`shardmap.yaml:23: tables[2].ranges[1]: ...`). Works on block-style YAML as people
//! write it; flow-style items (`- {from: 0, to: 10, shard: a}`) resolve to their own line.

/// 1-based line numbers over the text of one file.
pub(crate) struct Lines<'a> {
    lines: Vec<&'a str>,
}

/// A span of lines `[start, end)` (0-based) that belongs to one mapping or list item.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Block {
    start: usize,
    end: usize,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn blank(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// The key a line starts with, after an optional list dash.
fn key_of(line: &str) -> Option<&str> {
    let t = line.trim_start();
    let t = t.strip_prefix("- ").unwrap_or(t).trim_start();
    let t = t.strip_prefix('{').unwrap_or(t);
    t.split_once(':').map(|(k, _)| k.trim())
}

impl<'a> Lines<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Lines {
            lines: text.lines().collect(),
        }
    }

    pub(crate) fn whole(&self) -> Block {
        Block {
            start: 0,
            end: self.lines.len(),
        }
    }

    /// The 1-based line where a block starts (0 for an empty file).
    pub(crate) fn line(&self, b: Block) -> usize {
        if self.lines.is_empty() {
            0
        } else {
            b.start + 1
        }
    }

    /// The block of `key` directly inside `within` (its own line and everything indented below it).
    pub(crate) fn field(&self, within: Block, key: &str) -> Option<Block> {
        let base = self.first_indent(within)?;
        for i in within.start..within.end {
            let l = self.lines[i];
            if blank(l) {
                continue;
            }
            let own = if i == within.start {
                // The item's first line: `- key: v` counts at the indentation after the dash.
                key_of(l) == Some(key) || l.contains(&format!(" {key}:"))
            } else {
                indent(l) <= base + 2 && key_of(l) == Some(key)
            };
            if own {
                return Some(Block {
                    start: i,
                    end: self.block_end(i, within.end),
                });
            }
        }
        None
    }

    /// The `index`-th list item of a list-valued block.
    pub(crate) fn item(&self, list: Block, index: usize) -> Option<Block> {
        let mut starts = (list.start + 1..list.end).filter(|&i| {
            let l = self.lines[i];
            !blank(l) && l.trim_start().starts_with("- ")
        });
        let first = starts.next()?;
        let depth = indent(self.lines[first]);
        let nth = std::iter::once(first)
            .chain(starts.filter(|&i| indent(self.lines[i]) == depth))
            .nth(index)?;
        let end = (nth + 1..list.end)
            .find(|&i| {
                let l = self.lines[i];
                !blank(l) && indent(l) <= depth
            })
            .unwrap_or(list.end);
        Some(Block { start: nth, end })
    }

    /// The line of `path` (`["tables", "2", "ranges", "1", "shard"]`), as deep as it resolves.
    pub(crate) fn locate(&self, path: &[&str]) -> usize {
        let mut at = self.whole();
        let mut found = 0;
        for step in path {
            let next = match step.parse::<usize>() {
                Ok(i) => self.item(at, i),
                Err(_) => self.field(at, step),
            };
            match next {
                Some(b) => {
                    at = b;
                    found = self.line(b);
                }
                None => break,
            }
        }
        found
    }

    /// The 0-based `[start, end)` lines of `path`, if it resolves all the way.
    pub(crate) fn span(&self, path: &[&str]) -> Option<(usize, usize)> {
        let mut at = self.whole();
        for step in path {
            at = match step.parse::<usize>() {
                Ok(i) => self.item(at, i)?,
                Err(_) => self.field(at, step)?,
            };
        }
        Some((at.start, at.end))
    }

    fn first_indent(&self, b: Block) -> Option<usize> {
        (b.start..b.end)
            .map(|i| self.lines[i])
            .find(|l| !blank(l))
            .map(indent)
    }

    /// A key's block runs until a line that is not nested under it (a list may sit at the key's own
    /// indentation, as YAML allows).
    fn block_end(&self, start: usize, limit: usize) -> usize {
        let depth = key_indent(self.lines[start]);
        (start + 1..limit)
            .find(|&i| {
                let l = self.lines[i];
                !blank(l)
                    && (indent(l) < depth
                        || indent(l) == depth && !l.trim_start().starts_with("- "))
            })
            .unwrap_or(limit)
    }
}

/// The column of a line's key, past a list dash.
fn key_indent(line: &str) -> usize {
    let t = line.trim_start();
    match t.strip_prefix("- ") {
        Some(rest) => indent(line) + 2 + (rest.len() - rest.trim_start().len()),
        None => indent(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = "\
version: 1
buckets: 8
shards:
  - name: a
    host: h
    buckets: [0-3]
  - name: b
    buckets: [4-7]
tables:
  - name: users
    key: id
  - name: events
    strategy: range
    ranges:
      - {from: 0, to: 10, shard: a}
      - from: 10
        shard: c
";

    fn check(path: &[&str], want: usize) {
        assert_eq!(Lines::new(MAP).locate(path), want, "{path:?}");
    }

    #[test]
    fn locates_fields_and_items() {
        check(&["version"], 1);
        check(&["shards"], 3);
        check(&["shards", "0"], 4);
        check(&["shards", "1", "buckets"], 8);
        check(&["shards", "0", "buckets"], 6);
        check(&["tables", "1"], 12);
        check(&["tables", "1", "ranges", "0"], 15);
        check(&["tables", "1", "ranges", "1", "shard"], 17);
        check(&["tables", "0", "key"], 11);
        check(&["tables", "0", "missing"], 10);
    }
}
