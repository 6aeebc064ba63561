//! Admin console commands, parsed from SQL-ish text. Pure.

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Show {
    Shards,
    Pools,
    Clients,
    Servers,
    Stats,
    Config,
    Map,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Show(Show),
    Reload,
    /// `None` means every shard.
    Pause(Option<String>),
    Resume(Option<String>),
    Shutdown,
    /// Drivers send these at connect; answered with an empty success.
    Ignored,
}

pub(crate) fn parse(sql: &str) -> Result<Command, String> {
    let text = sql.trim().trim_end_matches(';').trim();
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| w.to_ascii_lowercase())
        .collect();
    let arg = |i: usize| {
        words
            .get(i)
            .map(|w| w.trim_matches(|c| c == '\'' || c == '"').to_owned())
    };
    match words
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => Ok(Command::Ignored),
        ["show", what] => Ok(Command::Show(match *what {
            "shards" => Show::Shards,
            "pools" => Show::Pools,
            "clients" => Show::Clients,
            "servers" => Show::Servers,
            "stats" => Show::Stats,
            "config" => Show::Config,
            "map" => Show::Map,
            other => {
                return Err(format!(
                    "unknown SHOW {other:?}; try SHOW SHARDS, POOLS, CLIENTS, SERVERS, STATS, CONFIG or MAP"
                ));
            }
        })),
        ["reload"] => Ok(Command::Reload),
        ["pause"] => Ok(Command::Pause(None)),
        ["pause", _] => Ok(Command::Pause(arg(1))),
        ["resume"] => Ok(Command::Resume(None)),
        ["resume", _] => Ok(Command::Resume(arg(1))),
        ["shutdown"] => Ok(Command::Shutdown),
        ["set", ..] | ["begin"] | ["commit"] | ["rollback"] => Ok(Command::Ignored),
        _ => Err(format!("unknown admin command {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sql: &str, want: Result<Command, &str>) {
        match (parse(sql), want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{sql}"),
            (Err(got), Err(want)) => assert!(got.contains(want), "{got} vs {want}"),
            (got, want) => panic!("{sql}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn commands() {
        check("SHOW POOLS;", Ok(Command::Show(Show::Pools)));
        check("show map", Ok(Command::Show(Show::Map)));
        check("PAUSE", Ok(Command::Pause(None)));
        check("PAUSE shard0", Ok(Command::Pause(Some("shard0".into()))));
        check(
            "resume 'shard1'",
            Ok(Command::Resume(Some("shard1".into()))),
        );
        check("RELOAD", Ok(Command::Reload));
        check("SHUTDOWN", Ok(Command::Shutdown));
        check("SET extra_float_digits = 3", Ok(Command::Ignored));
        check("SHOW FOO", Err("unknown SHOW"));
        check("DROP TABLE x", Err("unknown admin command"));
    }
}
