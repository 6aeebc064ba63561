//! Test harness: throwaway PostgreSQL clusters and shardgate instances.

pub mod cluster;
pub mod proxy;
pub mod raw;
pub mod sharded;
pub mod sql;
pub mod tools;

#[allow(unused_imports)]
use cluster::free_port;
pub use cluster::{bin, shared};
pub use proxy::{TestProxy, client, connect_as};
#[allow(unused_imports)]
pub use raw::{RawClient, Reply, first_error};
#[allow(unused_imports)]
pub use sql::{active_backend, one, sqlstate, text_rows};
