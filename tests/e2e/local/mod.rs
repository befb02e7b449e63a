//! The local target: the CLI as a user runs it, and `apifactory up`
//! serving the tenants over HTTP.
mod cli;
mod console;
mod crash;
mod data;
mod definitions;
mod drift;
mod hostile;
mod kept;
mod keys;
mod portal;
mod schema;
mod schemathesis;
mod up;
mod usage;
