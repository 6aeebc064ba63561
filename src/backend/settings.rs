//! The settings a client's session changed on its server (SET, RESET, set_config), read back from the
//! server itself so that shardgate can carry them to the client's other servers: PostgreSQL parsed the
//! statement, so whatever form it took (SET TIME ZONE, SET SESSION CHARACTERISTICS, a set_config in a
//! SELECT), the answer is the setting as the server holds it.

use postgres_protocol::message::backend::Message;

use super::BackendError;
use super::collation::columns;
use super::server::ServerConn;

/// Every setting whose value comes from the session: what SET and set_config left, including what
/// shardgate applied for the client's startup parameters.
const SESSION_SETTINGS: &str = "SELECT name, setting FROM pg_settings WHERE source = 'session'";

impl ServerConn {
    /// The session's settings, by name; None when the server refused the query.
    pub(crate) async fn session_settings(
        &mut self,
        shard: &str,
    ) -> Result<Option<Vec<(String, String)>>, BackendError> {
        let mut out = bytes::BytesMut::new();
        postgres_protocol::message::frontend::query(SESSION_SETTINGS, &mut out)
            .map_err(|e| self.io_err(shard, e))?;
        self.send(shard, &out).await?;
        let (mut settings, mut failed) = (Vec::new(), false);
        loop {
            match self.recv(shard).await? {
                Message::DataRow(row) => match columns(&row).as_slice() {
                    [Some(name), Some(value)] => settings.push((
                        String::from_utf8_lossy(name).into_owned(),
                        String::from_utf8_lossy(value).into_owned(),
                    )),
                    _ => failed = true,
                },
                Message::ErrorResponse(_) => failed = true,
                Message::ReadyForQuery(r) => {
                    self.tx_status = r.status();
                    return Ok((!failed).then_some(settings));
                }
                _ => {}
            }
        }
    }
}
