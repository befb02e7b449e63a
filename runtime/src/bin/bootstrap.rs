//! The Lambda function every tenant runs: `provided.al2023`, one binary in
//! one zip, deployed once per operation.
//!
//! It reads its tenant file from the deployment package
//! (`$LAMBDA_TASK_ROOT/tenant.toml`) and its table and operation from the
//! environment (`APIFACTORY_TABLE`, `APIFACTORY_OPERATION`), then serves
//! API Gateway proxy events (v1) through the same `Api` the local gateway
//! uses. Logs are JSON lines for CloudWatch.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use runtime::dynamo::DynamoStore;
use runtime::{Api, Operation, Tenant};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("APIFACTORY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .without_time() // CloudWatch stamps every line
        .init();

    let api = match init().await {
        Ok(api) => Arc::new(api),
        Err(message) => {
            tracing::error!(error = %message, "init failed");
            report_init_error(&message);
            return Err(message.into());
        }
    };
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayProxyRequest>| {
            let api = api.clone();
            async move { Ok::<ApiGatewayProxyResponse, Error>(api.answer(&event.payload).await) }
        },
    ))
    .await
}

async fn init() -> Result<Api<DynamoStore>, String> {
    let root = PathBuf::from(std::env::var("LAMBDA_TASK_ROOT").unwrap_or_else(|_| ".".into()));
    let tenant = Tenant::load_package(&root.join("tenant.toml")).map_err(|e| e.to_string())?;
    let table = std::env::var("APIFACTORY_TABLE")
        .unwrap_or_else(|_| tenant.collection.table_name(&tenant.id));
    let only = match std::env::var("APIFACTORY_OPERATION") {
        Ok(op) => Some(Operation::parse(&op).ok_or_else(|| {
            format!(
                "APIFACTORY_OPERATION must be one of search, get, add, update, delete, found {op:?}"
            )
        })?),
        Err(_) => None,
    };
    // The SDK's configuration and client (and the machine's root
    // certificates their HTTPS connector loads) are made by the first
    // invocation that reaches the table, not before the first poll: see
    // `DynamoStore::lazy`.
    let store = DynamoStore::lazy(table, &tenant.collection, || async {
        aws_sdk_dynamodb::Client::new(&aws_config::load_from_env().await)
    });
    let mut api = Api::new(Arc::new(tenant), store).only(only);
    if let Ok(secret) = std::env::var("APIFACTORY_CURSOR_SECRET") {
        api = api.cursor_secret(secret.as_bytes());
    }
    Ok(api)
}

/// Tells Lambda why the function could not start (`POST /runtime/init/error`),
/// so the reason shows in the invocation error instead of a bare exit.
fn report_init_error(message: &str) {
    let Ok(endpoint) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        return;
    };
    let body = serde_json::json!({ "errorMessage": message, "errorType": "Runtime.InitError" })
        .to_string();
    let request = format!(
        "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: {endpoint}\r\nLambda-Runtime-Function-Error-Type: Runtime.InitError\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if let Ok(mut stream) = TcpStream::connect(&endpoint) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = stream.write_all(request.as_bytes());
        let mut sink = [0u8; 256];
        let _ = stream.read(&mut sink);
    }
}
