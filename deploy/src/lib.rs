//! The factory: from tenant files to running APIs.
//!
//! `desired(tenants) -> Desired` (pure), `target.observe() -> Observed`
//! (reads only), `plan(&Desired, &Observed) -> Plan` (pure), then
//! `apply(&Plan, target)`: one idempotent attempt per action, tenants in
//! parallel. The local target and the AWS target share all of it.

pub mod apply;
pub mod artifact;
pub mod aws;
pub mod cells;
pub mod console;
pub mod data;
pub mod definitions;
pub mod demo;
pub mod desired;
pub mod drift;
pub mod engine;
pub mod keys;
pub mod local;
pub mod openapi;
pub mod payload;
pub mod pipeline;
pub mod plan;
pub mod portal;
pub mod quotas;
pub mod resource;
pub mod scaffold;
pub mod schema_change;
pub mod spec;
pub mod target;
pub mod tenants;
pub mod usage;
