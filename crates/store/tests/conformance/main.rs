//! The store's tests, one test binary: the conformance suite against each backend,
//! plus what only that backend has.

mod postgres;
mod sqlite;
