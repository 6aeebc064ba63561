//! Routing hints a client writes in a comment: `/* shardgate: shard=NAME */` or
//! `/* shardgate: key=VALUE */`. They win over everything else the router would decide.

use super::lex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hint {
    Shard(String),
    Key(String),
    /// A `shardgate:` comment the router does not understand: refused rather than ignored, so a typo
    /// never silently routes somewhere else.
    Bad(String),
}

/// The first hint in the text, if any.
pub(crate) fn find(sql: &str) -> Option<Hint> {
    // Most statements carry no hint: skip the lexer unless the marker is there at all.
    if !sql.contains("shardgate") && !sql.contains("SHARDGATE") {
        return None;
    }
    lex::comments(sql).into_iter().find_map(parse)
}

fn parse(comment: &str) -> Option<Hint> {
    let body = comment.trim();
    let rest = body
        .get(..10)
        .filter(|p| p.eq_ignore_ascii_case("shardgate:"))
        .map(|_| body[10..].trim())?;
    let Some((name, value)) = rest.split_once('=') else {
        return Some(Hint::Bad(rest.to_owned()));
    };
    let value = unquote(value.trim());
    match name.trim().to_ascii_lowercase().as_str() {
        "shard" if !value.is_empty() => Some(Hint::Shard(value.to_owned())),
        "key" => Some(Hint::Key(value.to_owned())),
        _ => Some(Hint::Bad(rest.to_owned())),
    }
}

fn unquote(v: &str) -> &str {
    for q in ['\'', '"'] {
        if let Some(inner) = v.strip_prefix(q).and_then(|x| x.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sql: &str, want: Option<Hint>) {
        assert_eq!(find(sql), want, "{sql:?}");
    }

    #[test]
    fn hints() {
        let shard = |s: &str| Some(Hint::Shard(s.into()));
        let key = |s: &str| Some(Hint::Key(s.into()));
        check("select 1", None);
        check("/* shardgate: shard=s1 */ select 1", shard("s1"));
        check("select 1 /*shardgate:shard = s2*/", shard("s2"));
        check("select 1 -- shardgate: key=42", key("42"));
        check("select 1 /* shardgate: key='a b' */", key("a b"));
        check("select '/* shardgate: shard=s1 */'", None);
        check(
            "select 1 /* shardgate: shrd=s1 */",
            Some(Hint::Bad("shrd=s1".into())),
        );
        check(
            "select 1 /* shardgate: shard= */",
            Some(Hint::Bad("shard=".into())),
        );
        check("select 1 /* shardgate */", None);
    }
}
