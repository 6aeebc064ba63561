//! SQLSTATE codes shardgate sends (PostgreSQL docs, Appendix A "PostgreSQL Error Codes").

pub(crate) const PROTOCOL_VIOLATION: &str = "08P01";
pub(crate) const CONNECTION_FAILURE: &str = "08006";
pub(crate) const CONNECTION_EXCEPTION: &str = "08000";
pub(crate) const INVALID_PASSWORD: &str = "28P01";
pub(crate) const INVALID_AUTHORIZATION: &str = "28000";
pub(crate) const INVALID_CATALOG_NAME: &str = "3D000";
pub(crate) const TOO_MANY_CONNECTIONS: &str = "53300";
pub(crate) const FEATURE_NOT_SUPPORTED: &str = "0A000";
pub(crate) const ADMIN_SHUTDOWN: &str = "57P01";
pub(crate) const IDLE_SESSION_TIMEOUT: &str = "57P05";
pub(crate) const INVALID_PARAMETER_VALUE: &str = "22023";
pub(crate) const INVALID_TEXT_REPRESENTATION: &str = "22P02";
pub(crate) const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";
pub(crate) const UNDEFINED_PARAMETER: &str = "42P02";
pub(crate) const BAD_COPY_FILE_FORMAT: &str = "22P04";
pub(crate) const ACTIVE_SQL_TRANSACTION: &str = "25001";
pub(crate) const IN_FAILED_SQL_TRANSACTION: &str = "25P02";
pub(crate) const INVALID_SQL_STATEMENT_NAME: &str = "26000";
pub(crate) const QUERY_CANCELED: &str = "57014";
pub(crate) const RAISE_EXCEPTION: &str = "P0001";
pub(crate) const STATEMENT_TOO_COMPLEX: &str = "54001";
pub(crate) const INVALID_COLUMN_REFERENCE: &str = "42P10";
