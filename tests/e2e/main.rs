//! End-to-end tests of the whole system, compiled into one test binary.
mod aws;
mod aws_dynamo;
mod aws_faults;
mod aws_keys;
mod aws_openapi;
mod aws_references;
mod aws_live;
mod bootstrap;
mod cli;
mod crash;
mod fleet;
mod hostile;
mod key_values;
mod keys;
mod schemathesis;
mod store_conformance;
mod up;
