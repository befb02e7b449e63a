//! The local target: every tenant on one machine, deployed into a data
//! directory and served by `apifactory up` with API Gateway's behaviour.

pub mod alarms;
pub mod gateway;
pub mod keys;
pub mod state;
pub mod target;
pub mod up;
pub mod usage;

pub use state::LocalState;
pub use target::{LocalCode, LocalTarget};
