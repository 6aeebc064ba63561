//! The settings a client's session changed on its server (SET, RESET, set_config), read back from the
//! server itself so that shardgate can carry them to the client's other servers: PostgreSQL parsed the
//! statement, so whatever form it took (SET TIME ZONE, SET SESSION CHARACTERISTICS, a set_config in a
//! SELECT), the answer is the setting as the server holds it.

use super::BackendError;
use super::server::ServerConn;

/// Every setting whose value comes from the session: what SET and set_config left, including what
/// shardgate applied for the client's startup parameters; then a row with no name and the current
/// user. Qualified throughout, so that nothing the client put on its search_path answers instead.
/// Transaction characteristics are left out: they belong to one transaction, and set_config of them
/// fails once it has begun.
const SESSION_SETTINGS: &str = "SELECT name, setting FROM pg_catalog.pg_settings \
    WHERE source OPERATOR(pg_catalog.=) 'session' \
    AND name OPERATOR(pg_catalog.!~~) 'transaction\\_%' \
    UNION ALL SELECT NULL, CAST(current_user AS pg_catalog.text)";

/// What a session changed, read back from its server.
pub(crate) struct SessionSettings {
    pub settings: Vec<(String, String)>,
    /// The user statements run as (SET ROLE, SET SESSION AUTHORIZATION and set_config of `role`
    /// change it; pg_settings does not show them).
    pub current_user: String,
}

impl ServerConn {
    /// The session's settings and current user; None when the server refused the query.
    pub(crate) async fn session_settings(
        &mut self,
        shard: &str,
    ) -> Result<Option<SessionSettings>, BackendError> {
        let Ok(rows) = self.query_rows(shard, SESSION_SETTINGS).await? else {
            return Ok(None);
        };
        let (mut settings, mut current_user) = (Vec::new(), None);
        for row in rows {
            match <[Option<String>; 2]>::try_from(row) {
                Ok([Some(name), Some(value)]) => settings.push((name, value)),
                Ok([None, Some(user)]) => current_user = Some(user),
                _ => return Ok(None),
            }
        }
        Ok(current_user.map(|current_user| SessionSettings {
            settings,
            current_user,
        }))
    }
}
