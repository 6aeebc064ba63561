//! Integration tests against real PostgreSQL. One cluster starts per test run (`harness`); each test gets
//! its own database and its own in-process shardgate on 127.0.0.1:0.

mod drivers;
mod harness;
mod migrate;
mod ops;
mod sharding;
mod wire;
