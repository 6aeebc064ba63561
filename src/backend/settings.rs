//! The settings a client's session changed on its server (SET, RESET, set_config), read back from the
//! server itself so that shardgate can carry them to the client's other servers: PostgreSQL parsed the
//! statement, so whatever form it took (SET TIME ZONE, SET SESSION CHARACTERISTICS, a set_config in a
//! SELECT), the answer is the setting as the server holds it.

use postgres_protocol::message::backend::Message;

use super::BackendError;
use super::collation::columns;
use super::server::ServerConn;

/// Every setting whose value comes from the session: what SET and set_config left, including what
/// shardgate applied for the client's startup parameters. pg_settings hides `role` and
/// `session_authorization`; a user other than the one that logged in shows as a `role` row.
fn query(login_user: &str) -> String {
    format!(
        "SELECT name, setting FROM pg_settings WHERE source = 'session' \
         UNION ALL SELECT 'role', current_user::text WHERE current_user <> {}",
        crate::protocol::frontend::quote_literal(login_user)
    )
}

impl ServerConn {
    /// The session's settings, by name (a `role` among them when the session changed its user);
    /// None when the server refused the query.
    pub(crate) async fn session_settings(
        &mut self,
        shard: &str,
        login_user: &str,
    ) -> Result<Option<Vec<(String, String)>>, BackendError> {
        let mut out = bytes::BytesMut::new();
        postgres_protocol::message::frontend::query(&query(login_user), &mut out)
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
