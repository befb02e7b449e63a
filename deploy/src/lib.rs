//! The factory: from tenant files to running APIs.

pub mod artifact;
pub mod demo;
pub mod openapi;
