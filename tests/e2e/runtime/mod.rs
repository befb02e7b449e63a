//! The runtime on its own: the Lambda `bootstrap` under a Runtime API, and
//! the stores it runs on.
mod bootstrap;
mod key_values;
mod store_conformance;
