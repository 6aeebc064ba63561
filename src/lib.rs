//! shardgate: a PostgreSQL sharding proxy.
//!
//! # Codemap
//! - `protocol/`: the wire codec. Pure: no tokio, no I/O. Framing, the startup packet, the backend
//!   messages shardgate builds, the frontend messages it inspects.
//! - `config/`: `shardgate.yaml` (listen address, users, pools, timeouts, TLS), validated at load.
//! - `sharding/`: the shard map (`shardmap.yaml`): tables and strategies, validation with file:line
//!   (`load`, `lines`), PostgreSQL's partition hash (`hash`), buckets, `plan_add` (plan-add-shard). Pure.
//! - `router/`: SQL + shard map -> `Plan` (parse cache `Router`), Plan + Bind params -> `Route`. Pure.
//! - `execute/`: what needs more than one server: `fanout` (one statement on several shards) and
//!   `combine` (their replies as one; pure), `scatter` (merged reads), `copy_in` (COPY FROM STDIN split
//!   by key; `copy_split` cuts the data into rows, pure), `directory` (lookup tables in PostgreSQL,
//!   cached).
//! - `backend/`: server connections (connect, authenticate, `align` a client's settings), a pool per
//!   shard, `prepared` (the statements a server holds, least recently used closed first) and
//!   `settings` (a session's settings read back from its server).
//! - `frontend/`: client side. `login` (TLS, startup, auth), `session/` (the relay under transaction
//!   pooling; `route` carries out the router's decision, `held_begin` the BEGIN held until a statement
//!   picks the shard, `copy` a client's COPY into a sharded table), `pending` (what a server still owes and which batch it is in, pure),
//!   `statements` (prepared statement renaming), `classify` (statements that create session state,
//!   pure), `cancel` (cancel keys).
//! - `proxy`: shared state, accept loop, graceful shutdown.
//! - `migrate/`: `shardgate migrate`. `files` (the migrations directory), `plan` (what runs where, or the
//!   drift that stops it; pure), `run` (tokio-postgres to every shard, one transaction per migration).
//! - `lsm/`: the embedded storage engine; std only, knows nothing of PostgreSQL or tokio.
//!
//! # Invariants
//! - A server connection goes back to its pool only after it answered every Sync and Query it got and
//!   is idle outside a transaction, the implicit one of an unsynced extended-protocol batch included;
//!   in any doubt it is closed (`Pooled` closes on drop).
//! - A client's settings are its own: set (and checked) on a server before anything of the client's
//!   runs there; what a server was given is recorded (`applied`) and reset for the next client.
//! - Every error that reaches a client goes through `frontend::error::SessionError::to_client`.
//! - A cancel reaches only the server the cancelling client holds (`frontend::cancel`).
//! - Only the router decides where a statement goes; execution never parses SQL. A transaction stays on
//!   the server (and map version) it started with; the shard map is the only thing swapped live.

pub(crate) mod admin;
pub mod backend;
pub mod config;
pub(crate) mod execute;
pub(crate) mod frontend;
pub mod lsm;
pub mod migrate;
pub(crate) mod protocol;
pub mod proxy;
pub mod router;
pub mod sharding;

pub use config::Config;
pub use proxy::{Running, start};
pub use sharding::ShardMap;
