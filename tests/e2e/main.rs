//! End-to-end tests of the whole system, compiled into one test binary.
mod aws;
mod aws_faults;
mod aws_keys;
mod aws_realism;
mod bootstrap;
mod cli;
mod crash;
mod fleet;
mod hostile;
mod keys;
mod schemathesis;
mod store_conformance;
mod up;
