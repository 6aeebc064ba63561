//! RowDescription and DataRow as the merge reads and rewrites them (55.7): the type and format of each
//! field, a row's column values, a description without the hidden sort columns. Pure. (DataRows are
//! written by `protocol::backend::data_row_bytes`.)

use bytes::{BufMut, BytesMut};

use crate::protocol::frame::{self, Cursor};

/// One field of a RowDescription: what a merge needs to compare its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field {
    pub name: Vec<u8>,
    pub type_oid: u32,
    pub typlen: i16,
    pub typmod: i32,
    pub format: i16,
}

/// The first object id a database gives its own types (PostgreSQL's FirstNormalObjectId).
const FIRST_USER_OID: u32 = 16384;

/// Whether two shards' RowDescriptions describe the same result: the same names, formats, sizes and
/// modifiers, and the same types, where a type of the database's own (an enum, a domain, an
/// extension's type) counts as the same whatever its oid, which each shard numbers itself. (A merge
/// that must compare such values refuses them as a type it does not know.)
pub(crate) fn same_shape(a: &Option<Vec<Field>>, b: &Option<Vec<Field>>) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        return a.is_none() && b.is_none();
    };
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            let user = x.type_oid >= FIRST_USER_OID && y.type_oid >= FIRST_USER_OID;
            (x.type_oid == y.type_oid || user)
                && (x.name.as_slice(), x.typlen, x.typmod, x.format)
                    == (y.name.as_slice(), y.typlen, y.typmod, y.format)
        })
}

/// The fields of a RowDescription frame (tag and length included); `None` if malformed.
pub(crate) fn fields(frame_bytes: &[u8]) -> Option<Vec<Field>> {
    let mut c = Cursor::new(frame_bytes.get(frame::HEADER_LEN..)?, "RowDescription");
    let n = c.i16().ok()?;
    let mut out = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n {
        let name = c.cstr().ok()?.as_bytes().to_vec();
        let _table = c.i32().ok()?;
        let _attnum = c.i16().ok()?;
        let type_oid = c.i32().ok()? as u32;
        let typlen = c.i16().ok()?;
        let typmod = c.i32().ok()?;
        let format = c.i16().ok()?;
        out.push(Field {
            name,
            type_oid,
            typlen,
            typmod,
            format,
        });
    }
    Some(out)
}

/// Where each field of a RowDescription comes from: (table oid, attribute number), (0, 0) for a
/// computed field. Per server: the same table has another oid on each shard. `None` if malformed.
pub(crate) fn sources(frame_bytes: &[u8]) -> Option<Vec<(u32, i16)>> {
    let mut c = Cursor::new(frame_bytes.get(frame::HEADER_LEN..)?, "RowDescription");
    let n = c.i16().ok()?;
    let mut out = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n {
        c.cstr().ok()?;
        out.push((c.i32().ok()? as u32, c.i16().ok()?));
        c.take(12).ok()?;
    }
    Some(out)
}

/// The RowDescription frame with only its first `keep` fields.
pub(crate) fn strip_description(frame_bytes: &[u8], keep: usize) -> Option<BytesMut> {
    let mut c = Cursor::new(frame_bytes.get(frame::HEADER_LEN..)?, "RowDescription");
    let n = c.i16().ok()? as usize;
    let body_start = frame::HEADER_LEN + 2;
    let mut end = body_start;
    for _ in 0..keep.min(n) {
        let name = c.cstr().ok()?;
        c.take(18).ok()?;
        end += name.len() + 1 + 18;
    }
    let mut out = BytesMut::new();
    frame::write_message(&mut out, b'T', |b| {
        b.put_i16(keep.min(n) as i16);
        b.put_slice(&frame_bytes[body_start..end]);
    });
    Some(out)
}

/// A RowDescription of these fields (computed columns: no table, no attribute number).
pub(crate) fn write_description(out: &mut BytesMut, fields: &[Field]) {
    frame::write_message(out, b'T', |b| {
        b.put_i16(fields.len() as i16);
        for f in fields {
            b.put_slice(&f.name);
            b.put_u8(0);
            b.put_i32(0);
            b.put_i16(0);
            b.put_i32(f.type_oid as i32);
            b.put_i16(f.typlen);
            b.put_i32(f.typmod);
            b.put_i16(f.format);
        }
    });
}

pub(crate) use crate::protocol::frame::data_row as columns;

#[cfg(test)]
mod tests {
    use super::*;

    fn description(fields: &[(&str, u32)]) -> BytesMut {
        let mut out = BytesMut::new();
        frame::write_message(&mut out, b'T', |b| {
            b.put_i16(fields.len() as i16);
            for (name, oid) in fields {
                frame::put_cstr(b, name);
                b.put_i32(16384);
                b.put_i16(1);
                b.put_i32(*oid as i32);
                b.put_i16(8);
                b.put_i32(-1);
                b.put_i16(0);
            }
        });
        out
    }

    #[test]
    fn descriptions_and_rows() {
        let t = description(&[("id", 20), ("name", 25), ("__shardgate_sort_0", 23)]);
        let f = fields(&t).unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(
            (f[1].name.as_slice(), f[1].type_oid, f[1].format),
            (&b"name"[..], 25, 0)
        );
        let stripped = strip_description(&t, 2).unwrap();
        assert_eq!(fields(&stripped).unwrap(), f[..2].to_vec());
        let mut rebuilt = BytesMut::new();
        write_description(&mut rebuilt, &f);
        assert_eq!(fields(&rebuilt).unwrap(), f);
        let mut row = BytesMut::new();
        crate::protocol::backend::data_row_bytes(
            &mut row,
            [Some(&b"7"[..]), None, Some(&b"x"[..])].into_iter(),
        );
        assert_eq!(
            &row[..],
            b"D\0\0\0\x14\0\x03\0\0\0\x017\xff\xff\xff\xff\0\0\0\x01x"
        );
        let cols = columns(&row).unwrap();
        assert_eq!(cols, vec![Some(&b"7"[..]), None, Some(&b"x"[..])]);
        assert!(columns(b"D\0\0\0\x08\0\x01\0\0").is_none());
    }
}
