//! The one generic, table-driven CRUD function every tenant runs.
//!
//! Everything it does comes from the tenant file: the collection and its
//! fields, which operations are enabled, the key. `Api::handle` turns an
//! API Gateway proxy event (v1) into a response; the Lambda `bootstrap` and
//! the local gateway are two front doors to it.

pub mod api;
pub mod capacity;
#[cfg(feature = "dynamodb")]
pub mod dynamo;
pub mod field;
pub mod names;
pub mod operation;
pub mod problem;
mod response;
pub mod schema;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod store;
pub mod tenant;
mod tenant_error;

pub use api::Api;
pub use store::{Expect, Filter, Item, Page, Search, Store, StoreError};
pub use tenant::{Operation, Tenant};
pub use tenant_error::{TenantError, TenantErrors};
