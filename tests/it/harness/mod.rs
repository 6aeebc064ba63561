//! Test harness: throwaway PostgreSQL clusters and shardgate instances.

pub mod cluster;
pub mod proxy;

pub use cluster::{Cluster, bin, shared};
#[allow(unused_imports)]
use cluster::free_port;
pub use proxy::{TestProxy, client, connect_as};
