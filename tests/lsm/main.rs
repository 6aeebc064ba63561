//! Integration tests of the storage engine, one module per behaviour.

mod api;
mod backpressure;
mod corruption;
mod crash;
mod group_commit;
mod model;
mod queue;
mod util;
