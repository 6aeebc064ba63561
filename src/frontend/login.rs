//! From a new TCP connection to a logged-in session: SSL/GSSENC negotiation, CancelRequest, the startup
//! packet, limits, authentication, and the greeting (ParameterStatus, BackendKeyData, ReadyForQuery).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use tokio::net::TcpStream;
use tracing::Instrument;

use super::conn::{ClientConn, LOGIN_MAX_MESSAGE};
use super::error::SessionError;
use super::session::Session;
use super::stream::ClientStream;
use super::{auth, cancel};
use crate::admin::{console, metrics};
use crate::config::User;
use crate::protocol::backend;
use crate::protocol::startup::{self, StartupPacket};
use crate::proxy::Proxy;

/// Keeps the client count right however the connection ends.
struct ClientCount<'a>(&'a Proxy);

impl Drop for ClientCount<'_> {
    fn drop(&mut self) {
        self.0.client_count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one accepted connection to its end. Errors are logged here, once.
pub(crate) async fn serve(proxy: Arc<Proxy>, tcp: TcpStream, peer: SocketAddr, session_id: u64) {
    let _ = tcp.set_nodelay(true);
    let count = proxy.client_count.fetch_add(1, Ordering::Relaxed) + 1;
    let _guard = ClientCount(&proxy);
    let span = tracing::info_span!(
        "session",
        id = session_id,
        user = tracing::field::Empty,
        database = tracing::field::Empty
    );
    let result = async {
        let conn = ClientConn::new(
            ClientStream::Plain(tcp),
            BytesMut::new(),
            LOGIN_MAX_MESSAGE.min(proxy.config.max_message_bytes),
        );
        let deadline = tokio::time::Instant::now() + proxy.config.auth_timeout();
        let negotiated = tokio::time::timeout_at(deadline, negotiate(&proxy, conn)).await;
        // A client that says nothing in time is closed without a word, as by PostgreSQL.
        let Ok(negotiated) = negotiated else {
            return Err(SessionError::AuthTimeout);
        };
        match negotiated {
            Ok(Some((conn, params))) => {
                login(
                    &proxy,
                    conn,
                    params,
                    count,
                    Client {
                        id: session_id,
                        peer,
                    },
                    deadline,
                )
                .await
            }
            Ok(None) => Ok(()),
            Err((e, conn)) => {
                if let (Some(fields), Some(mut conn)) = (e.to_client(), conn) {
                    conn.send_fatal(&fields).await;
                }
                Err(e)
            }
        }
    }
    .instrument(span.clone())
    .await;
    let _enter = span.enter();
    match result {
        Ok(()) => tracing::debug!("session ended"),
        Err(SessionError::ClientIo(e)) => tracing::debug!(error = %e, "client connection closed"),
        Err(e) => {
            metrics::error(e.kind().as_str());
            if let Some(reason) = e.rejection() {
                metrics::rejected(reason);
            }
            tracing::info!(kind = e.kind().as_str(), error = %e, "session ended with an error")
        }
    }
}

/// Who connected, for SHOW CLIENTS.
struct Client {
    id: u64,
    peer: SocketAddr,
}

type Startup = (ClientConn<ClientStream>, Vec<(String, String)>);

/// Reads startup packets until a StartupMessage, upgrading to TLS on request; `None` after a cancel.
async fn negotiate(
    proxy: &Proxy,
    mut conn: ClientConn<ClientStream>,
) -> Result<Option<Startup>, (SessionError, Option<ClientConn<ClientStream>>)> {
    loop {
        let packet = match conn.read_startup().await {
            Ok(p) => p,
            Err(e) => return Err((e, None)),
        };
        match startup::parse(&packet) {
            Ok(StartupPacket::Startup(params)) => return Ok(Some((conn, params))),
            Ok(StartupPacket::Cancel(key)) => {
                proxy.cancels.cancel(key).await;
                return Ok(None);
            }
            Ok(StartupPacket::GssEnc) => conn.send(b"N").await.map_err(|e| (e, None))?,
            Ok(StartupPacket::Ssl) => conn = upgrade(proxy, conn).await.map_err(|e| (e, None))?,
            Err(e) => return Err((e.into(), Some(conn))),
        }
    }
}

async fn upgrade(
    proxy: &Proxy,
    mut conn: ClientConn<ClientStream>,
) -> Result<ClientConn<ClientStream>, SessionError> {
    let (Some(acceptor), ClientStream::Plain(_)) = (&proxy.tls, &conn.stream) else {
        conn.send(b"N").await?;
        return Ok(conn);
    };
    // Bytes sent after SSLRequest but before the handshake would bypass TLS (CVE-2021-23214).
    if !conn.read_buf.is_empty() {
        return Err(SessionError::Startup("unencrypted data after SSL request"));
    }
    conn.send(b"S").await?;
    let ClientStream::Plain(tcp) = conn.stream else {
        unreachable!("checked above")
    };
    let tls = acceptor.accept(tcp).await.map_err(SessionError::Tls)?;
    Ok(ClientConn::new(
        ClientStream::Tls(Box::new(tls)),
        conn.read_buf,
        LOGIN_MAX_MESSAGE.min(proxy.config.max_message_bytes),
    ))
}

async fn login(
    proxy: &Arc<Proxy>,
    mut conn: ClientConn<ClientStream>,
    params: Vec<(String, String)>,
    count: usize,
    client: Client,
    deadline: tokio::time::Instant,
) -> Result<(), SessionError> {
    let result = tokio::time::timeout_at(
        deadline,
        check_and_authenticate(proxy, &mut conn, &params, count),
    )
    .await
    .unwrap_or(Err(SessionError::AuthTimeout));
    if result.is_ok() {
        conn.set_max_message(proxy.config.max_message_bytes);
    }
    let user = match result {
        Ok(user) => user,
        Err(e) => {
            if let Some(fields) = e.to_client() {
                conn.send_fatal(&fields).await;
            }
            return Err(e);
        }
    };
    let entry = proxy.clients.add(client.id, &user.name, Some(client.peer));
    if is_admin_database(proxy, &params) {
        return console::run(proxy, conn, registration_key(proxy)).await;
    }
    let registration = proxy.cancels.register();
    let desired = session_parameters(&params);
    if let Err(e) = greet(proxy, &mut conn, &desired, &registration).await {
        if let Some(fields) = e.to_client() {
            conn.send_fatal(&fields).await;
        }
        return Err(e);
    }
    Session::new(
        proxy.clone(),
        conn.stream,
        conn.read_buf,
        desired,
        registration.slot.clone(),
        entry.info.clone(),
    )
    .run()
    .await
}

fn is_admin_database(proxy: &Proxy, params: &[(String, String)]) -> bool {
    params
        .iter()
        .any(|(n, v)| n == "database" && *v == proxy.config.admin_database)
}

/// Admin sessions get a key too (drivers expect BackendKeyData) but nothing to cancel.
fn registration_key(proxy: &Proxy) -> crate::protocol::startup::CancelKey {
    proxy.cancels.register().key
}

async fn check_and_authenticate(
    proxy: &Proxy,
    conn: &mut ClientConn<ClientStream>,
    params: &[(String, String)],
    count: usize,
) -> Result<User, SessionError> {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let user_name =
        get("user").ok_or(SessionError::Startup("no user name in the startup packet"))?;
    let database = get("database").unwrap_or(user_name);
    let span = tracing::Span::current();
    span.record("user", user_name);
    span.record("database", database);
    if count > proxy.config.max_clients {
        return Err(SessionError::TooManyClients);
    }
    if *proxy.shutdown_signal().borrow() {
        return Err(SessionError::Shutdown);
    }
    let user = proxy
        .users
        .get(user_name)
        .ok_or_else(|| SessionError::UnknownUser(user_name.into()))?;
    if database == proxy.config.admin_database {
        if !user.admin {
            return Err(SessionError::NotAdmin(user_name.into()));
        }
    } else if database != proxy.config.database {
        return Err(SessionError::UnknownDatabase(database.into()));
    }
    auth::authenticate(conn, user).await?;
    Ok(user.clone())
}

/// Startup parameters that become session settings on the servers: everything but the identity, with
/// `options` (`-c name=value`) unpacked.
fn session_parameters(params: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, value) in params {
        match name.as_str() {
            "user" | "database" | "replication" => {}
            "options" => out.extend(parse_options(value)),
            _ if is_plain_name(name) => out.push((name.clone(), value.clone())),
            _ => {}
        }
    }
    out
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// `-c a=b --c=d` style command-line options, as libpq passes them.
fn parse_options(options: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut words = options.split_whitespace();
    while let Some(w) = words.next() {
        let setting = match w {
            "-c" => words.next(),
            _ => w.strip_prefix("-c").or_else(|| w.strip_prefix("--")),
        };
        if let Some((k, v)) = setting.and_then(|s| s.split_once('=')) {
            let k = k.replace('-', "_");
            if is_plain_name(&k) {
                out.push((k, v.to_owned()));
            }
        }
    }
    out
}

async fn greet(
    proxy: &Arc<Proxy>,
    conn: &mut ClientConn<ClientStream>,
    desired: &[(String, String)],
    registration: &cancel::Registration<'_>,
) -> Result<(), SessionError> {
    // Every shard runs the same PostgreSQL setup; the first one's parameters stand for all.
    let first = proxy.topology.load().pools[0].clone();
    let mut reported = first
        .startup_params(proxy.config.checkout_timeout())
        .await?;
    for (name, value) in desired {
        if let Some(slot) = reported
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            slot.1 = value.clone();
        }
    }
    let mut out = BytesMut::new();
    for (name, value) in &reported {
        backend::parameter_status(&mut out, name, value);
    }
    backend::backend_key_data(&mut out, registration.key.pid, registration.key.secret);
    backend::ready_for_query(&mut out, b'I');
    conn.send(&out).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn parameters_from_startup() {
        let got = session_parameters(&pairs(&[
            ("user", "u"),
            ("database", "d"),
            ("application_name", "psql"),
            (
                "options",
                "-c search_path=a --statement-timeout=5 -cwork_mem=4MB",
            ),
            ("bad name;", "x"),
        ]));
        assert_eq!(
            got,
            pairs(&[
                ("application_name", "psql"),
                ("search_path", "a"),
                ("statement_timeout", "5"),
                ("work_mem", "4MB")
            ])
        );
    }
}
