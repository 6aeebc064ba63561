//! Sharding against real PostgreSQL: hash compatibility, routing end to end, map reloads.

mod cli;
mod copy;
mod fuzz;
mod hash;
mod pipeline;
mod reload;
mod routing;
mod row_limit;
mod scatter;
