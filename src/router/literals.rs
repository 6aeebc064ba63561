//! Simple-protocol statements carry their keys as literals, so every text is new to the parse cache
//! (`SELECT ... WHERE id = 41`, then `= 42`). Replacing the literals with placeholders gives one cache
//! entry per statement shape; the literals become the text parameters its plan reads. Pure.
//!
//! Only the plan comes from the normalized text; the server always gets the client's own text. Anything
//! unusual (escape strings, dollar quotes, placeholders already present) is left alone: `None`.

use super::lex::{block_comment_end, quoted_end};

/// A statement with its literals replaced by `$1..$n`, and the literals as text.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Normalized {
    pub text: String,
    pub literals: Vec<String>,
    /// Which literals were numbers (a number is no text or uuid key, as the text as sent shows).
    pub numeric: Vec<bool>,
}

/// More literals than this (long VALUES lists) are not worth a cache entry of their own shape.
const MAX_LITERALS: usize = 64;

fn ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

pub(crate) fn normalize(sql: &str) -> Option<Normalized> {
    let b = sql.as_bytes();
    let mut text = String::with_capacity(sql.len() + 8);
    let mut literals = Vec::new();
    let mut numeric = Vec::new();
    // Text from `plain` up to `i` is copied as is, in one piece, when a literal is met or at the end
    // (always on char boundaries: every split point is an ASCII byte).
    let mut plain = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let prev = if i > 0 { b[i - 1] } else { b' ' };
        match c {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(b.len(), |n| i + n);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => i = block_comment_end(b, i)?,
            b'"' => i = quoted_end(b, i, b'"')?,
            // E'..', U&'..', B'..', X'..' and the like: escapes we do not interpret.
            b'\'' if ident_char(prev) || prev == b'&' => return None,
            b'\'' => {
                let end = quoted_end(b, i, b'\'')?;
                text.push_str(&sql[plain..i]);
                literals.push(sql[i + 1..end - 1].replace("''", "'"));
                numeric.push(false);
                push_placeholder(&mut text, literals.len());
                i = end;
                plain = end;
            }
            // Placeholders in a simple query, or dollar quotes.
            b'$' if !ident_char(prev) => return None,
            b'0'..=b'9' if !ident_char(prev) && prev != b'.' => {
                let end = number_end(b, i);
                if b.get(end).is_some_and(|&n| ident_char(n)) {
                    return None;
                }
                text.push_str(&sql[plain..i]);
                let mut literal = sql[i..end].to_owned();
                if take_minus(&mut text) {
                    literal.insert(0, '-');
                }
                literals.push(literal);
                numeric.push(true);
                push_placeholder(&mut text, literals.len());
                i = end;
                plain = end;
            }
            _ => i += 1,
        }
        if literals.len() > MAX_LITERALS {
            return None;
        }
    }
    text.push_str(&sql[plain..]);
    Some(Normalized {
        text,
        literals,
        numeric,
    })
}

fn push_placeholder(text: &mut String, n: usize) {
    use std::fmt::Write;
    let _ = write!(text, "${n}");
}

/// A unary minus right before a number (`= -5`, `(-5`, `, -5`) belongs to the literal.
fn take_minus(text: &mut String) -> bool {
    let trimmed = text.trim_end();
    let Some(before) = trimmed.strip_suffix('-') else {
        return false;
    };
    let unary = before
        .trim_end()
        .chars()
        .last()
        .is_some_and(|c| "=<>(,+*/".contains(c));
    if unary {
        let keep = before.len();
        text.truncate(keep);
    }
    unary
}

fn number_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i < b.len() && b[i] == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            i = j;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sql: &str, want: Option<(&str, &[&str])>) {
        let got = normalize(sql);
        let got = got.as_ref().map(|n| {
            assert_eq!(n.numeric.len(), n.literals.len());
            (
                n.text.as_str(),
                n.literals.iter().map(String::as_str).collect::<Vec<_>>(),
            )
        });
        let want = want.map(|(t, l)| (t, l.to_vec()));
        assert_eq!(got, want, "{sql}");
    }

    #[test]
    fn literals_become_placeholders() {
        check(
            "SELECT abalance FROM pgbench_accounts WHERE aid = 4211;",
            Some((
                "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
                &["4211"],
            )),
        );
        check(
            "select * from t1 where id in (1, -2, 3.5e3) and s = 'it''s' and x > -7",
            Some((
                "select * from t1 where id in ($1, $2, $3) and s = $4 and x > $5",
                &["1", "-2", "3.5e3", "it's", "-7"],
            )),
        );
        check(
            "SELECT a - 5 FROM t",
            Some(("SELECT a - $1 FROM t", &["5"])),
        );
        check(
            "/* shardgate: key=7 */ SELECT \"Col 1\" FROM t -- 5 'x'\nWHERE k = 'é'",
            Some((
                "/* shardgate: key=7 */ SELECT \"Col 1\" FROM t -- 5 'x'\nWHERE k = $1",
                &["é"],
            )),
        );
        check("SELECT 1", Some(("SELECT $1", &["1"])));
        check("BEGIN", Some(("BEGIN", &[])));
        check(
            "SELECT x.a1, t2.b FROM t2 x",
            Some(("SELECT x.a1, t2.b FROM t2 x", &[])),
        );
    }

    #[test]
    fn unusual_texts_are_left_alone() {
        check("SELECT E'\\n'", None);
        check("SELECT $1", None);
        check("DO $$ BEGIN END $$", None);
        check("SELECT 'unterminated", None);
        check("SELECT 1abc", None);
        check("SELECT /* open", None);
        let many: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        check(&format!("SELECT {}", many.join(",")), None);
    }
}
