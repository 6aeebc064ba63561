//! The wire issue: shardgate as a transaction-pooling proxy in front of one server.

mod basics;
mod psql;
mod leak;
mod prepared;
mod pgbench;
mod cancel;
mod auth;
mod bad_input;
mod session_state;
mod shutdown;
