//! End-to-end tests of the whole system, compiled into one test binary and
//! laid out by target: `aws` (the AWS target on moto, through the realism
//! layer), `local` (the CLI and `apifactory up` on this machine) and
//! `runtime` (the Lambda function and its stores on their own). What more
//! than one file uses lives in the `apifactory_tests` library
//! (`tests/support`).
mod aws;
mod browser;
mod local;
mod runtime;
