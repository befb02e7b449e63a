//! The AWS target, through the real CLI or the library, against this run's
//! moto behind the realism layer.
mod adopt;
mod alarms;
mod apply;
mod cells;
mod console;
mod data;
mod drift;
mod dynamo;
mod faults;
mod keys;
mod live;
mod openapi;
mod portal;
mod quotas;
mod realism;
mod references;
mod schema;
mod stamps;
mod usage;
