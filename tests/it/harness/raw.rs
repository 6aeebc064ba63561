//! A bare protocol client over a TcpStream, for what tokio-postgres will not do: choose statement names,
//! send malformed or unexpected messages, or disconnect without a Terminate.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A backend message, reduced to what the tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Row(Vec<Option<String>>),
    Error {
        severity: String,
        code: String,
        message: String,
    },
    Ready(u8),
    /// A FunctionCallResponse with its result, as text.
    Function(Option<String>),
    /// Any other message, by tag.
    Other(u8),
}

pub struct RawClient {
    stream: TcpStream,
    buf: BytesMut,
}

/// Bind of the unnamed portal from `statement` (text parameters, text results), then Execute.
pub fn bind_execute(b: &mut BytesMut, statement: &str, params: &[&str]) {
    let text = |v: &&str, buf: &mut BytesMut| {
        buf.extend_from_slice(v.as_bytes());
        Ok(postgres_protocol::IsNull::No)
    };
    frontend::bind("", statement, [0], params.iter(), text, [0], b)
        .map_err(|_| "bind")
        .expect("a Bind message");
    frontend::execute("", 0, b).expect("an Execute message");
}

/// The SQLSTATE of the first ErrorResponse among `replies`.
pub fn first_error(replies: &[Reply]) -> Option<&str> {
    replies.iter().find_map(|r| match r {
        Reply::Error { code, .. } => Some(code.as_str()),
        _ => None,
    })
}

impl RawClient {
    /// A TCP connection with nothing sent yet.
    pub async fn open(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect to shardgate");
        RawClient {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// Logs in as a trust user and reads up to the first ReadyForQuery.
    pub async fn login(addr: SocketAddr, user: &str, db: &str) -> RawClient {
        let mut c = RawClient::open(addr).await;
        c.send(|b| frontend::startup_message([("user", user), ("database", db)], b).unwrap())
            .await;
        let greeting = c.until_ready().await;
        assert!(
            first_error(&greeting).is_none(),
            "login as {user}: {greeting:?}"
        );
        c
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .await
            .expect("write to shardgate");
    }

    /// Sends whatever `build` writes, in one write.
    pub async fn send(&mut self, build: impl FnOnce(&mut BytesMut)) {
        let mut out = BytesMut::new();
        build(&mut out);
        self.write(&out).await;
    }

    /// Bind (text parameters, text results), Execute and Sync of a prepared statement, in one write.
    pub async fn execute_prepared(&mut self, statement: &str, params: &[&str]) {
        self.send(|b| {
            bind_execute(b, statement, params);
            frontend::sync(b);
        })
        .await
    }

    /// The next message; `None` once the connection is closed (or reset).
    pub async fn recv(&mut self) -> Option<Reply> {
        loop {
            if let Some(r) = self.function_call_response() {
                return Some(r);
            }
            let tag = self.buf.first().copied();
            match Message::parse(&mut self.buf).expect("a well-formed backend message") {
                Some(m) => return Some(reduce(m, tag.expect("a parsed message has a tag"))),
                None => {
                    let read = tokio::time::timeout(
                        Duration::from_secs(30),
                        self.stream.read_buf(&mut self.buf),
                    )
                    .await
                    .expect("shardgate answers within 30 s");
                    match read {
                        Ok(0) | Err(_) => return None,
                        Ok(_) => {}
                    }
                }
            }
        }
    }

    /// A whole FunctionCallResponse at the head of the buffer (postgres-protocol does not parse one):
    /// 'V', length, the result's length (-1: NULL), the result.
    fn function_call_response(&mut self) -> Option<Reply> {
        if self.buf.first() != Some(&b'V') || self.buf.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes(self.buf[1..5].try_into().unwrap()) as usize;
        if self.buf.len() < 1 + len {
            return None;
        }
        let frame = self.buf.split_to(1 + len);
        let n = i32::from_be_bytes(frame[5..9].try_into().unwrap());
        let value =
            (n >= 0).then(|| String::from_utf8_lossy(&frame[9..9 + n as usize]).into_owned());
        Some(Reply::Function(value))
    }

    /// True when nothing arrives for `d` (and nothing read is waiting to be parsed).
    pub async fn quiet_for(&mut self, d: Duration) -> bool {
        self.buf.is_empty()
            && tokio::time::timeout(d, self.stream.read_buf(&mut self.buf))
                .await
                .is_err()
    }

    /// A FunctionCall of `oid` with text arguments and a text result.
    pub async fn call_function(&mut self, oid: u32, args: &[&str]) {
        let mut body = BytesMut::new();
        body.extend_from_slice(&oid.to_be_bytes());
        body.extend_from_slice(&1i16.to_be_bytes()); // one format code for all arguments: text
        body.extend_from_slice(&0i16.to_be_bytes());
        body.extend_from_slice(&(args.len() as i16).to_be_bytes());
        for a in args {
            body.extend_from_slice(&(a.len() as i32).to_be_bytes());
            body.extend_from_slice(a.as_bytes());
        }
        body.extend_from_slice(&0i16.to_be_bytes()); // the result as text
        let mut m = BytesMut::new();
        m.extend_from_slice(b"F");
        m.extend_from_slice(&(4 + body.len() as u32).to_be_bytes());
        m.extend_from_slice(&body);
        self.write(&m).await;
    }

    /// Every message up to and including the next ReadyForQuery; panics if the connection closes first.
    pub async fn until_ready(&mut self) -> Vec<Reply> {
        let mut got = Vec::new();
        loop {
            let r = self
                .recv()
                .await
                .unwrap_or_else(|| panic!("connection closed before ReadyForQuery; got {got:?}"));
            let done = matches!(r, Reply::Ready(_));
            got.push(r);
            if done {
                return got;
            }
        }
    }

    /// Every message until the connection closes.
    pub async fn until_closed(&mut self) -> Vec<Reply> {
        let mut got = Vec::new();
        while let Some(r) = self.recv().await {
            got.push(r);
        }
        got
    }

    /// Expects exactly one FATAL error with `code`, then the connection closed.
    pub async fn fatal_then_closed(&mut self, code: &str) {
        let replies = self.until_closed().await;
        assert!(
            matches!(replies.as_slice(), [Reply::Error { severity, code: got, .. }] if severity == "FATAL" && got == code),
            "want one FATAL {code}, then close: {replies:?}"
        );
    }

    /// A simple Query, read through its ReadyForQuery.
    pub async fn simple(&mut self, sql: &str) -> Vec<Reply> {
        self.send(|b| frontend::query(sql, b).unwrap()).await;
        self.until_ready().await
    }
}

fn reduce(m: Message, tag: u8) -> Reply {
    match m {
        Message::DataRow(row) => {
            let buf = row.buffer();
            let cols = row
                .ranges()
                .map(|r| Ok(r.map(|r| String::from_utf8_lossy(&buf[r]).into_owned())))
                .collect()
                .unwrap();
            Reply::Row(cols)
        }
        Message::ErrorResponse(e) => {
            let (mut severity, mut code, mut message) =
                (String::new(), String::new(), String::new());
            let mut fields = e.fields();
            while let Some(f) = fields.next().unwrap() {
                let v = String::from_utf8_lossy(f.value_bytes()).into_owned();
                match f.type_() {
                    b'S' => severity = v,
                    b'C' => code = v,
                    b'M' => message = v,
                    _ => {}
                }
            }
            Reply::Error {
                severity,
                code,
                message,
            }
        }
        Message::ReadyForQuery(r) => Reply::Ready(r.status()),
        _ => Reply::Other(tag),
    }
}
