//! API Gateway's updates are JSON patch operations, with every value a
//! string.

use aws_sdk_apigateway::types::{Op, PatchOperation};

pub fn replace(path: &str, value: &str) -> anyhow::Result<PatchOperation> {
    Ok(PatchOperation::builder()
        .op(Op::Replace)
        .path(path)
        .value(value)
        .build())
}
