//! The benchmark's floor for a Rust Lambda function: `lambda_runtime`'s
//! hello world (echo the event), built like `bootstrap` (release profile,
//! current-thread tokio). What `bootstrap`'s init, memory and invocation
//! time are compared with, measured in the same run.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
