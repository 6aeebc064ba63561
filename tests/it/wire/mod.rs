//! The wire issue: shardgate as a transaction-pooling proxy in front of one server.

mod auth;
mod bad_input;
mod basics;
mod cancel;
mod leak;
mod pgbench;
mod prepared;
mod psql;
mod session_state;
mod shutdown;
