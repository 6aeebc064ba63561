//! Runs routes that need more than one server: fan-out of one statement to several shards, and
//! combining their replies. Never parses SQL: the router decided what runs where.

pub(crate) mod combine;
pub(crate) mod copy_in;
mod copy_split;
pub(crate) mod directory;
pub(crate) mod fanout;
pub(crate) mod having;
pub(crate) mod rows;
pub(crate) mod scatter;
pub(crate) mod value;
