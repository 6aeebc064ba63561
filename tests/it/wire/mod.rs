//! The wire issue: shardgate as a transaction-pooling proxy in front of one server.

mod basics;
