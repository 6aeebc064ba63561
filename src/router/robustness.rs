//! Property tests: whatever a client sends, every parser of it returns (an answer or an error) and
//! never panics (the COPY splitter has its own, in `execute::copy_split`). A panic would end the client's task without an ErrorResponse, and one inside a
//! shared lock would stop every client (the lexer did both once). Arbitrary text and bytes, plus
//! texts built from SQL's own troublesome pieces (quotes, comments, dollar quotes, multi-byte
//! characters) so that the cases reach deep into the lexers.

use proptest::prelude::*;

use super::params::Params;
use super::{hint, lex, literals, planner};
use crate::frontend::classify;
use crate::protocol::frontend as msg;
use crate::sharding::{KeyType, ShardMap};

/// SQL made of pieces that open and close quotes, comments and dollar quotes, in any order.
fn sqlish() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "SELECT ",
        "'",
        "\"",
        "$$",
        "$t$",
        "--",
        "\n",
        "/*",
        "*/",
        "é",
        "—",
        "\\",
        "E'",
        "U&'",
        "$1",
        " = ",
        "1",
        "-",
        "(",
        ")",
        ",",
        ";",
        "users",
        " WHERE id ",
        " IN ",
        "ANY",
        "/* shardgate: ",
        "shard=s0 */",
        "key=",
        "DO ",
        "SET ",
        "ON CONFLICT DO NOTHING",
        "DISCARD ALL",
        "x.y",
        "\0",
    ]);
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

fn map() -> ShardMap {
    let yaml = "version: 1\nbuckets: 16\ndefault: s0\nshards:\n  - {name: s0, host: h, port: 1, database: d, buckets: [0-7]}\n  - {name: s1, host: h, port: 1, database: d, buckets: [8-15]}\ntables:\n  - {name: users, key: id, type: int8, strategy: hash}\n";
    ShardMap::parse(yaml, std::path::Path::new("m.yaml")).expect("test map")
}

fn every_sql_parser(sql: &str, map: &ShardMap) {
    let _ = lex::statements(sql);
    let _ = lex::comments(sql);
    let _ = literals::normalize(sql);
    let _ = hint::find(sql);
    let _ = classify::session_state(sql);
    let _ = classify::reset(sql);
    let _ = planner::plan(sql, map);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn sql_text_never_panics(sql in prop_oneof![sqlish(), any::<String>()]) {
        every_sql_parser(&sql, &map());
    }

    #[test]
    fn frontend_messages_never_panic(body in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = msg::parse(&body);
        let _ = msg::bind(&body).map(|b| msg::bind_params(b.rest));
        let _ = msg::bind_params(&body);
        let _ = msg::execute(&body);
        let _ = msg::target(&body, "Describe");
        let _ = msg::query(&body);
    }

    #[test]
    fn bind_parameters_never_panic(value in prop::collection::vec(any::<u8>(), 0..48), format in 0i16..3) {
        let values = [Some(&value[..])];
        let formats = [format];
        let p = Params::new(&formats, &values);
        for ty in [KeyType::Int2, KeyType::Int4, KeyType::Int8, KeyType::Text, KeyType::Uuid] {
            let _ = p.key(0, ty);
            let _ = p.keys(0, ty);
        }
    }
}
