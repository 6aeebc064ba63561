//! Sharding against real PostgreSQL: hash compatibility, routing end to end, map reloads.

mod hash;
mod reload;
mod routing;
