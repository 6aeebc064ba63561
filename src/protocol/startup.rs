//! The untagged packets a client may open with (55.7: StartupMessage, SSLRequest, GSSENCRequest,
//! CancelRequest).

use super::ProtocolError;
use super::frame::Cursor;

/// Request codes that stand where a protocol version would (55.7).
const SSL_REQUEST: i32 = 80877103;
const GSSENC_REQUEST: i32 = 80877104;
const CANCEL_REQUEST: i32 = 80877102;
const PROTOCOL_3_0: i32 = 196608;

/// The key a client presents to cancel its running query (BackendKeyData / CancelRequest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CancelKey {
    pub pid: i32,
    pub secret: i32,
}

/// One decoded startup-phase packet.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StartupPacket {
    Ssl,
    GssEnc,
    Cancel(CancelKey),
    Startup(Vec<(String, String)>),
}

/// Decodes a whole startup packet (length prefix included).
pub(crate) fn parse(packet: &[u8]) -> Result<StartupPacket, ProtocolError> {
    let mut c = Cursor::new(packet.get(4..).unwrap_or_default(), "startup");
    let code = c.i32()?;
    match code {
        SSL_REQUEST => Ok(StartupPacket::Ssl),
        GSSENC_REQUEST => Ok(StartupPacket::GssEnc),
        CANCEL_REQUEST => {
            let pid = c.i32()?;
            let secret = c.i32()?;
            Ok(StartupPacket::Cancel(CancelKey { pid, secret }))
        }
        PROTOCOL_3_0 => {
            let mut params = Vec::new();
            loop {
                let name = c.cstr()?;
                if name.is_empty() {
                    break;
                }
                params.push((name.to_owned(), c.cstr()?.to_owned()));
            }
            Ok(StartupPacket::Startup(params))
        }
        other => Err(ProtocolError::UnsupportedVersion {
            major: (other >> 16) as u16,
            minor: other as u16,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bytes: &[u8], want: Result<StartupPacket, ProtocolError>) {
        assert_eq!(parse(bytes), want);
    }

    #[test]
    fn packets() {
        check(b"\0\0\0\x08\x04\xd2\x16\x2f", Ok(StartupPacket::Ssl));
        check(b"\0\0\0\x08\x04\xd2\x16\x30", Ok(StartupPacket::GssEnc));
        check(
            b"\0\0\0\x10\x04\xd2\x16\x2e\0\0\0\x07\0\0\0\x09",
            Ok(StartupPacket::Cancel(CancelKey { pid: 7, secret: 9 })),
        );
        check(
            b"\0\0\0\x17\0\x03\0\0user\0bob\0database\0d\0\0",
            Ok(StartupPacket::Startup(vec![
                ("user".into(), "bob".into()),
                ("database".into(), "d".into()),
            ])),
        );
        check(
            b"\0\0\0\x09\0\x03\0\0user",
            Err(ProtocolError::Malformed { what: "startup" }),
        );
        check(
            b"\0\0\0\x08\0\x02\0\0",
            Err(ProtocolError::UnsupportedVersion { major: 2, minor: 0 }),
        );
    }
}
