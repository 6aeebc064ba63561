//! Combining the replies of one statement run on several shards (a write or DDL on every shard, or the
//! parts of a split INSERT) into the replies one server would have given: result headers once, rows of
//! every shard in shard order, command tags added up, and the first error (naming its shard) instead of
//! everything else. Pure: backend messages in, backend messages out.

use bytes::BytesMut;

use crate::protocol::backend;
use crate::protocol::frame;

/// One backend message: its tag and the whole frame.
pub(crate) type Message<'a> = (u8, &'a [u8]);

/// What one shard answered, through its ReadyForQuery.
pub(crate) struct ShardReply<'a> {
    pub shard: &'a str,
    pub messages: Vec<Message<'a>>,
}

/// Splits a buffer of whole backend messages.
pub(crate) fn messages(buf: &[u8]) -> Vec<Message<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Ok(Some(n)) = frame::tagged_len(&buf[pos..], usize::MAX) {
        out.push((buf[pos], &buf[pos..pos + n]));
        pos += n;
    }
    out
}

/// Writes the combined replies, ending with a ReadyForQuery of status idle.
pub(crate) fn combine(replies: &[ShardReply], out: &mut BytesMut) {
    if let Some(error) = first_error(replies) {
        out.extend_from_slice(&error);
        backend::ready_for_query(out, b'I');
        return;
    }
    // Results end with CommandComplete, EmptyQueryResponse or PortalSuspended; the k-th result of
    // every shard answers the same statement.
    let results: Vec<Vec<&[Message]>> =
        replies.iter().map(|r| split_results(&r.messages)).collect();
    let Some(first) = results.first() else {
        backend::ready_for_query(out, b'I');
        return;
    };
    for (k, head) in first.iter().enumerate() {
        for &(tag, m) in head.iter() {
            match tag {
                b'C' => {
                    let others = results[1..].iter().filter_map(|r| r.get(k).copied());
                    for &(_, row) in others.flatten().filter(|(t, _)| *t == b'D') {
                        out.extend_from_slice(row);
                    }
                    let tags = results
                        .iter()
                        .filter_map(|r| r.get(k)?.iter().find(|(t, _)| *t == b'C'))
                        .map(|(_, c)| tag_text(c));
                    backend::command_complete(out, &add_tags(tags));
                }
                b'Z' => {}
                _ => out.extend_from_slice(m),
            }
        }
    }
    backend::ready_for_query(out, b'I');
}

/// Messages grouped per result, the last group holding what follows the last result (ReadyForQuery).
fn split_results<'m, 'a>(messages: &'m [Message<'a>]) -> Vec<&'m [Message<'a>]> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, (tag, _)) in messages.iter().enumerate() {
        if matches!(tag, b'C' | b'I' | b's') {
            out.push(&messages[start..=i]);
            start = i + 1;
        }
    }
    out.push(&messages[start..]);
    out
}

/// The tag of a CommandComplete frame.
pub(crate) fn tag_text(frame_bytes: &[u8]) -> &str {
    let body = &frame_bytes[frame::HEADER_LEN..];
    let body = body.strip_suffix(b"\0").unwrap_or(body);
    std::str::from_utf8(body).unwrap_or("")
}

/// A tag's row count and what comes before it (`COPY 5` -> `COPY`, 5); None without one.
pub(crate) fn tag_count(tag: &str) -> Option<(&str, u64)> {
    let (prefix, n) = tag.rsplit_once(' ')?;
    Some((prefix, n.parse().ok()?))
}

/// `INSERT 0 2` + `INSERT 0 3` = `INSERT 0 5`; tags without a count (`CREATE TABLE`) are the first one.
fn add_tags<'a>(tags: impl Iterator<Item = &'a str>) -> String {
    let mut first: Option<(&str, Option<u64>)> = None;
    let mut total = 0u64;
    for tag in tags {
        let (prefix, count) = match tag_count(tag) {
            Some((p, n)) => (p, Some(n)),
            None => (tag, None),
        };
        total += count.unwrap_or(0);
        first.get_or_insert((prefix, count));
    }
    match first {
        Some((prefix, Some(_))) => format!("{prefix} {total}"),
        Some((prefix, None)) => prefix.to_owned(),
        None => String::new(),
    }
}

/// The first shard's ErrorResponse, its message naming the shard and its detail saying what the other
/// shards did; every other field as the server sent it.
fn first_error(replies: &[ShardReply]) -> Option<BytesMut> {
    let (failed, m) = replies.iter().find_map(|r| {
        r.messages
            .iter()
            .find(|(t, _)| *t == b'E')
            .map(|(_, m)| (r, *m))
    })?;
    let others: Vec<String> = replies
        .iter()
        .filter(|r| r.shard != failed.shard)
        .map(|r| format!("shard {}: {}", r.shard, outcome(r)))
        .collect();
    let detail = (!others.is_empty())
        .then(|| format!("other shards (not rolled back): {}", others.join("; ")));
    Some(rename_error(m, failed.shard, detail))
}

/// A shard's ErrorResponse with its message naming the shard (and `detail` added); every other field
/// as the server sent it.
pub(crate) fn rename_error(m: &[u8], shard: &str, detail: Option<String>) -> BytesMut {
    let mut fields = backend::error_fields(m);
    for (code, value) in fields.iter_mut() {
        if *code == b'M' {
            *value = format!("on shard {shard}: {value}");
        }
    }
    if let Some(detail) = detail {
        match fields.iter_mut().find(|(c, _)| *c == b'D') {
            Some((_, d)) => *d = format!("{d}\n{detail}"),
            None => fields.push((b'D', detail)),
        }
    }
    let mut out = BytesMut::new();
    backend::write_error_fields(&mut out, &fields);
    out
}

fn outcome(r: &ShardReply) -> String {
    if r.messages.iter().any(|(t, _)| *t == b'E') {
        return "failed".into();
    }
    let tags: Vec<&str> = r
        .messages
        .iter()
        .filter(|(t, _)| *t == b'C')
        .map(|(_, c)| tag_text(c))
        .collect();
    format!("completed ({})", tags.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        frame::write_message(&mut out, tag, |b| b.extend_from_slice(body));
        out.to_vec()
    }

    /// Each shard's messages as one buffer, to split into a `ShardReply`.
    fn buffers(shards: &[(&str, Vec<Vec<u8>>)]) -> Vec<(String, Vec<u8>)> {
        shards
            .iter()
            .map(|(s, ms)| (s.to_string(), ms.concat()))
            .collect()
    }

    fn replies(bufs: &[(String, Vec<u8>)]) -> Vec<ShardReply<'_>> {
        bufs.iter()
            .map(|(s, b)| ShardReply {
                shard: s,
                messages: messages(b),
            })
            .collect()
    }

    fn check(shards: &[(&str, Vec<Vec<u8>>)], want: &[(u8, &[u8])]) {
        let bufs = buffers(shards);
        let replies = replies(&bufs);
        let mut out = BytesMut::new();
        combine(&replies, &mut out);
        let got: Vec<(u8, Vec<u8>)> = messages(&out)
            .into_iter()
            .map(|(t, m)| (t, m[frame::HEADER_LEN..].to_vec()))
            .collect();
        let want: Vec<(u8, Vec<u8>)> = want.iter().map(|(t, b)| (*t, b.to_vec())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn rows_concatenate_and_tags_add_up() {
        let shard = |rows: &[&[u8]], tag: &[u8]| {
            let mut ms = vec![msg(b'1', b""), msg(b'2', b""), msg(b'T', b"desc")];
            ms.extend(rows.iter().map(|r| msg(b'D', r)));
            ms.push(msg(b'C', tag));
            ms.push(msg(b'Z', b"I"));
            ms
        };
        check(
            &[
                ("s0", shard(&[b"r1", b"r2"], b"INSERT 0 2\0")),
                ("s1", shard(&[b"r3"], b"INSERT 0 1\0")),
            ],
            &[
                (b'1', b""),
                (b'2', b""),
                (b'T', b"desc"),
                (b'D', b"r1"),
                (b'D', b"r2"),
                (b'D', b"r3"),
                (b'C', b"INSERT 0 3\0"),
                (b'Z', b"I"),
            ],
        );
    }

    #[test]
    fn several_statements_and_tags_without_counts() {
        let shard = || {
            vec![
                msg(b'C', b"CREATE TABLE\0"),
                msg(b'C', b"UPDATE 2\0"),
                msg(b'Z', b"I"),
            ]
        };
        check(
            &[("s0", shard()), ("s1", shard()), ("s2", shard())],
            &[
                (b'C', b"CREATE TABLE\0"),
                (b'C', b"UPDATE 6\0"),
                (b'Z', b"I"),
            ],
        );
    }

    #[test]
    fn an_error_names_its_shard_and_what_the_others_did() {
        let mut err = BytesMut::new();
        backend::error_response(
            &mut err,
            &backend::ErrorFields::new(
                crate::protocol::backend::Severity::Error,
                "42P07",
                "relation \"t\" already exists",
            ),
        );
        let ok = [msg(b'C', b"CREATE TABLE\0"), msg(b'Z', b"I")];
        let bad = vec![err.to_vec(), msg(b'Z', b"I")];
        let bufs = buffers(&[("s0", ok.to_vec()), ("s1", bad)]);
        let replies = replies(&bufs);
        let e = first_error(&replies).expect("an error");
        let text = String::from_utf8_lossy(&e).replace('\0', "|");
        assert!(text.contains("|C42P07|"), "{text}");
        assert!(
            text.contains("|Mon shard s1: relation \"t\" already exists|"),
            "{text}"
        );
        assert!(
            text.contains("|Dother shards (not rolled back): shard s0: completed (CREATE TABLE)|"),
            "{text}"
        );
    }
}
