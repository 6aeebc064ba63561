//! From a merged result back to the bytes PostgreSQL would have sent for it, in the text format (the
//! type's output function) or the binary format (its send function).

use super::decimal::Decimal;
use super::{FORMAT_BINARY, FORMAT_TEXT, Kind, ValueError, float_text, numeric_binary, oid};

fn text_or_binary(
    format: i16,
    text: impl FnOnce() -> String,
    binary: impl FnOnce() -> Vec<u8>,
) -> Result<Vec<u8>, ValueError> {
    match format {
        FORMAT_TEXT => Ok(text().into_bytes()),
        FORMAT_BINARY => Ok(binary()),
        _ => Err(ValueError::UnknownFormat(format)),
    }
}

/// An integer as a value of `type_oid` (int2, int4, int8 or oid); out of the type's range is an error,
/// as it would be on the server.
pub(crate) fn int(type_oid: u32, format: i16, value: i64) -> Result<Vec<u8>, ValueError> {
    let out_of_range = ValueError::OutOfRange(Kind::Int);
    let bytes = match type_oid {
        oid::INT2 => i16::try_from(value)
            .map_err(|_| out_of_range)?
            .to_be_bytes()
            .to_vec(),
        oid::INT4 => i32::try_from(value)
            .map_err(|_| out_of_range)?
            .to_be_bytes()
            .to_vec(),
        oid::OID => u32::try_from(value)
            .map_err(|_| out_of_range)?
            .to_be_bytes()
            .to_vec(),
        oid::INT8 => value.to_be_bytes().to_vec(),
        _ => return Err(ValueError::UnsupportedType(type_oid)),
    };
    text_or_binary(format, || value.to_string(), || bytes)
}

pub(crate) fn float8(format: i16, value: f64) -> Result<Vec<u8>, ValueError> {
    text_or_binary(
        format,
        || float_text::float8(value),
        || value.to_be_bytes().to_vec(),
    )
}

pub(crate) fn float4(format: i16, value: f32) -> Result<Vec<u8>, ValueError> {
    text_or_binary(
        format,
        || float_text::float4(value),
        || value.to_be_bytes().to_vec(),
    )
}

pub(crate) fn numeric(format: i16, value: &Decimal) -> Result<Vec<u8>, ValueError> {
    let text = || String::from_utf8_lossy(&value.to_text()).into_owned();
    text_or_binary(format, text, || numeric_binary::encode(value))
}

pub(crate) fn bool(format: i16, value: bool) -> Result<Vec<u8>, ValueError> {
    let text = || if value { "t" } else { "f" }.to_owned();
    text_or_binary(format, text, || vec![u8::from(value)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints() {
        fn check(type_oid: u32, format: i16, value: i64, want: Result<&[u8], ValueError>) {
            assert_eq!(
                int(type_oid, format, value),
                want.map(<[u8]>::to_vec),
                "{type_oid} {value}"
            );
        }
        let out = Err(ValueError::OutOfRange(Kind::Int));
        check(20, 0, -12, Ok(b"-12"));
        check(
            20,
            1,
            -2,
            Ok(&[0xff; 8][..7]
                .iter()
                .copied()
                .chain([0xfe])
                .collect::<Vec<_>>()),
        );
        check(23, 1, 258, Ok(&[0, 0, 1, 2]));
        check(21, 1, 258, Ok(&[1, 2]));
        check(26, 1, 4294967295, Ok(&[0xff; 4]));
        check(21, 0, 32768, out.clone());
        check(23, 1, -2147483649, out.clone());
        check(26, 0, -1, out);
        check(700, 0, 1, Err(ValueError::UnsupportedType(700)));
        check(20, 3, 1, Err(ValueError::UnknownFormat(3)));
    }

    #[test]
    fn others() {
        assert_eq!(float8(0, 1e20), Ok(b"1e+20".to_vec()));
        assert_eq!(float8(1, 1.0), Ok(1.0f64.to_be_bytes().to_vec()));
        assert_eq!(float4(0, 1e6), Ok(b"1e+06".to_vec()));
        assert_eq!(float4(1, 1.0), Ok(1.0f32.to_be_bytes().to_vec()));
        let d = Decimal::Finite {
            mantissa: 350,
            scale: 2,
        };
        assert_eq!(numeric(0, &d), Ok(b"3.50".to_vec()));
        assert_eq!(
            numeric(1, &d),
            Ok(vec![0, 2, 0, 0, 0, 0, 0, 2, 0, 3, 0x13, 0x88])
        );
        assert_eq!(bool(0, true), Ok(b"t".to_vec()));
        assert_eq!(bool(1, false), Ok(vec![0]));
    }
}
