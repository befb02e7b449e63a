//! The five operations of a collection. Their own module: resource names
//! (`names`) and the tenant model (`tenant`) both use them, and names
//! must not depend on the model.

use serde::Deserialize;

/// The five operations of a collection, one function each on AWS.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Search,
    Get,
    Add,
    Update,
    Delete,
}

impl Operation {
    pub const ALL: [Operation; 5] = [
        Operation::Search,
        Operation::Get,
        Operation::Add,
        Operation::Update,
        Operation::Delete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Search => "search",
            Operation::Get => "get",
            Operation::Add => "add",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.as_str() == s)
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
