//! A small SQL lexer for what the parser does not give: comments (where hints live), statement
//! boundaries and the leading words of a statement the parser cannot read. Skips strings, quoted
//! names and dollar quotes, so nothing inside them counts. Pure.

/// One statement of a query string: its text, its words (lowercased, strings and comments left out)
/// and its comments' contents.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Lexed<'a> {
    pub(crate) text: &'a str,
    pub(crate) words: Vec<String>,
    pub(crate) comments: Vec<&'a str>,
    /// The longest chain of binary operators (`+`, `=`, `AND`, ...) at one nesting level, between
    /// commas and clause words: the parser's expression tree is as deep as such a chain is long.
    pub(crate) chain: usize,
}

/// Splits `sql` into statements at top-level semicolons; statements with no words are dropped.
pub(crate) fn statements(sql: &str) -> Vec<Lexed<'_>> {
    let mut all = lex(sql);
    all.retain(|s| !s.words.is_empty());
    all
}

/// Every comment in `sql`, also those after the last statement.
pub(crate) fn comments(sql: &str) -> Vec<&str> {
    lex(sql).into_iter().flat_map(|s| s.comments).collect()
}

fn lex<'a>(sql: &'a str) -> Vec<Lexed<'a>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut cur = Lexed::default();
    let mut start = 0;
    let mut i = 0;
    // `operand`: the last token was an operand, so an operator after it is binary (`1 - 2`), not a
    // sign (`(1, -2)`). `run`, `outer`: the chain at this nesting level, and at the enclosing ones.
    let mut operand = false;
    let mut run = 0;
    let mut outer: Vec<usize> = Vec::new();
    let finish = |out: &mut Vec<Lexed<'a>>, cur: &mut Lexed<'a>, end: usize, start: usize| {
        let mut done = std::mem::take(cur);
        done.text = sql[start..end].trim();
        if !done.words.is_empty() || !done.comments.is_empty() {
            out.push(done);
        }
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b';' => {
                finish(&mut out, &mut cur, i, start);
                i += 1;
                start = i;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                let end = sql[i..].find('\n').map_or(b.len(), |n| i + n);
                cur.comments.push(&sql[i + 2..end]);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let open = i;
                let (end, close) = match block_comment_end(b, i) {
                    Some(end) => (end, end - 2),
                    None => (b.len(), b.len()),
                };
                i = end;
                cur.comments.push(&sql[open + 2..close.max(open + 2)]);
            }
            b'\'' => {
                i = skip_quoted(b, i, b'\'');
                operand = true;
            }
            b'"' => {
                let end = skip_quoted(b, i, b'"');
                // An unclosed quote runs to the end of the text, whose last byte may be inside a
                // multi-byte character: only a closing quote (ASCII) is cut off.
                let closed = end > i + 1 && b[end - 1] == b'"';
                let inner = &sql[i + 1..if closed { end - 1 } else { end }];
                cur.words.push(inner.replace("\"\"", "\""));
                i = end;
                operand = true;
            }
            b'$' => match dollar_tag(b, i) {
                Some(tag_end) => {
                    let tag = &sql[i..tag_end];
                    i = sql[tag_end..]
                        .find(tag)
                        .map_or(b.len(), |n| tag_end + n + tag.len());
                    operand = true;
                }
                None => i += 1,
            },
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let s = i;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'$') || b[i] >= 0x80)
                {
                    i += 1;
                }
                // E'...' strings: the E is a prefix, not a word.
                if i - s == 1 && matches!(c, b'e' | b'E') && b.get(i) == Some(&b'\'') {
                    i = skip_quoted_escaped(b, i);
                    operand = true;
                    continue;
                }
                let word = sql[s..i].to_ascii_lowercase();
                operand = !matches!(word.as_str(), "and" | "or");
                if !operand {
                    chained(&mut run, &mut cur.chain);
                } else if starts_clause(&word) {
                    run = 0;
                }
                cur.words.push(word);
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'<' | b'>' | b'=' | b'!' | b'~' | b'&' | b'|'
            | b'^' | b'#' | b'@' => {
                // The sign of a number's exponent (`1.5e-05`) is no operator.
                let exponent = matches!(c, b'+' | b'-')
                    && i >= 2
                    && b[i - 1] | 0x20 == b'e'
                    && b[i - 2].is_ascii_digit();
                if operand && !exponent {
                    chained(&mut run, &mut cur.chain);
                }
                operand = false;
                i += 1;
            }
            c => {
                match c {
                    b'(' => outer.push(std::mem::take(&mut run)),
                    b')' => run = outer.pop().unwrap_or(run),
                    b',' => run = 0,
                    _ => {}
                }
                if !c.is_ascii_whitespace() && c != b'.' {
                    operand = c.is_ascii_digit() || c == b')' || c == b']';
                }
                i += 1;
            }
        }
    }
    finish(&mut out, &mut cur, b.len(), start);
    out
}

/// One more operator in the current chain.
fn chained(run: &mut usize, longest: &mut usize) {
    *run += 1;
    *longest = (*longest).max(*run);
}

/// Words that start another part of a statement (or of a CASE): an operator chain ends there.
fn starts_clause(word: &str) -> bool {
    matches!(
        word,
        "select"
            | "from"
            | "where"
            | "values"
            | "set"
            | "on"
            | "having"
            | "by"
            | "limit"
            | "offset"
            | "returning"
            | "case"
            | "when"
            | "then"
            | "else"
            | "end"
            | "as"
            | "join"
            | "using"
            | "into"
    )
}

/// The index after a quoted run starting at `i` (doubled quotes stay inside), or the end of the text.
pub(crate) fn skip_quoted(b: &[u8], i: usize, q: u8) -> usize {
    quoted_end(b, i, q).unwrap_or(b.len())
}

/// The index after the closing quote of a run starting at `i`; `None` when it is not closed.
pub(crate) fn quoted_end(b: &[u8], mut i: usize, q: u8) -> Option<usize> {
    i += 1;
    while i < b.len() {
        if b[i] == q {
            if b.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

/// `text` from its first token on: leading blanks and comments skipped.
pub(crate) fn skip_blanks(text: &str) -> &str {
    let b = text.as_bytes();
    let mut i = 0;
    loop {
        while b.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        if b[i..].starts_with(b"--") {
            i = text[i..].find('\n').map_or(b.len(), |n| i + n);
        } else if b[i..].starts_with(b"/*") {
            i = block_comment_end(b, i).unwrap_or(b.len());
        } else {
            return &text[i..];
        }
    }
}

/// The index after a block comment starting at `i` (they nest in PostgreSQL); `None` when unclosed.
pub(crate) fn block_comment_end(b: &[u8], start: usize) -> Option<usize> {
    let (mut depth, mut i) = (0usize, start);
    while i + 1 < b.len() {
        if b[i] == b'/' && b[i + 1] == b'*' {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b[i + 1] == b'/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return Some(i);
            }
        } else {
            i += 1;
        }
    }
    None
}

/// Like `skip_quoted` for `E'...'`, where a backslash escapes the next byte.
fn skip_quoted_escaped(b: &[u8], mut i: usize) -> usize {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// `$tag$` or `$$` opening a dollar quote at `i`: the index after it. `$1` is a parameter.
fn dollar_tag(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if b.get(j).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] >= 0x80) {
        j += 1;
    }
    (b.get(j) == Some(&b'$')).then_some(j + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sql: &str, want: &[(&[&str], &[&str])]) {
        let got = statements(sql);
        let got: Vec<(Vec<&str>, Vec<&str>)> = got
            .iter()
            .map(|s| {
                (
                    s.words.iter().map(String::as_str).collect(),
                    s.comments.clone(),
                )
            })
            .collect();
        let want: Vec<(Vec<&str>, Vec<&str>)> =
            want.iter().map(|(w, c)| (w.to_vec(), c.to_vec())).collect();
        assert_eq!(got, want, "{sql:?}");
    }

    #[test]
    fn blanks_and_comments_are_skipped() {
        assert_eq!(
            skip_blanks("  -- a\n /* b /* c */ */\tBEGIN -- d"),
            "BEGIN -- d"
        );
        assert_eq!(skip_blanks("/* open"), "");
        assert_eq!(skip_blanks("-- only"), "");
        assert_eq!(skip_blanks("x"), "x");
    }

    #[test]
    fn lexes() {
        check("VACUUM users", &[(&["vacuum", "users"], &[])]);
        check(
            "select 1; select 2;",
            &[(&["select"], &[]), (&["select"], &[])],
        );
        check("select ';' -- x;y\n", &[(&["select"], &[" x;y"])]);
        check("/* a /* b */ c */ do", &[(&["do"], &[" a /* b */ c "])]);
        check("select $$;$$, $q$ ; $q$, $1", &[(&["select"], &[])]);
        check("select E'\\';', 1", &[(&["select"], &[])]);
        check(
            "select \"My;Col\" from t",
            &[(&["select", "My;Col", "from", "t"], &[])],
        );
        check(";;  ; ", &[]);
        check("select 'unterminated", &[(&["select"], &[])]);
        check("/* unterminated", &[]);
        assert_eq!(comments("select 1; -- x"), vec![" x"]);
    }
}
