//! The integration: a function that crashes, runs too long or answers
//! something API Gateway cannot use, and the responses the gateway gives.

use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::encodings::Body as LambdaBody;

use super::*;
use crate::local::gateway::invoke::{invoke, to_http};

#[tokio::test]
async fn function_failures_map_to_502_and_504() {
    let ok = invoke(
        Box::pin(async { ApiGatewayProxyResponse::default() }),
        Duration::from_secs(1),
    )
    .await;
    assert!(ok.is_ok());
    let slow = invoke(
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            ApiGatewayProxyResponse::default()
        }),
        Duration::from_millis(20),
    )
    .await;
    assert_eq!(slow, Err(Failure::Timeout));
    let crashed = invoke(
        Box::pin(async {
            if Instant::now().elapsed() < Duration::from_secs(3600) {
                panic!("the function crashed");
            }
            ApiGatewayProxyResponse::default()
        }),
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(crashed, Err(Failure::Crashed));

    let response = |status: i64, body: Option<LambdaBody>, base64: bool| {
        let mut r = ApiGatewayProxyResponse::default();
        r.status_code = status;
        r.body = body;
        r.is_base64_encoded = base64;
        r
    };
    for status in [0, 42, 101, 600, -1, i64::MAX] {
        assert!(to_http(response(status, None, false)).is_none(), "{status}");
    }
    assert!(to_http(response(200, Some(LambdaBody::Text("!!".into())), true)).is_none());
    let (r, bytes) = to_http(response(200, Some(LambdaBody::Text("aGk=".into())), true)).unwrap();
    assert_eq!((r.status(), bytes), (StatusCode::OK, 2));
    let (r, bytes) = to_http(response(
        201,
        Some(LambdaBody::Binary(vec![0, 1, 2])),
        false,
    ))
    .unwrap();
    assert_eq!((r.status(), bytes), (StatusCode::CREATED, 3));
    let (_, bytes) = to_http(response(204, None, false)).unwrap();
    assert_eq!(bytes, 0);

    let mut r = response(200, Some(LambdaBody::Text("hello".into())), false);
    r.headers.insert("a", HeaderValue::from_static("1"));
    r.headers.insert("b", HeaderValue::from_static("2"));
    r.headers
        .insert("content-length", HeaderValue::from_static("99"));
    r.multi_value_headers
        .append("a", HeaderValue::from_static("1"));
    r.multi_value_headers
        .append("a", HeaderValue::from_static("3"));
    let (r, bytes) = to_http(r).unwrap();
    assert_eq!(bytes, 5);
    let a: Vec<_> = r.headers().get_all("a").iter().collect();
    assert_eq!(a, ["1", "3"]);
    assert_eq!(r.headers().get("b").unwrap(), "2");
    assert!(r.headers().get("content-length").is_none());

    for (error, status) in [
        (GatewayError::MissingAuthenticationToken, 403),
        (GatewayError::Forbidden, 403),
        (GatewayError::TooManyRequests, 429),
        (GatewayError::LimitExceeded, 429),
        (GatewayError::RequestTooLong, 413),
        (GatewayError::BadGateway, 502),
        (GatewayError::Timeout, 504),
    ] {
        let r = error.response(&HeaderValue::from_static("rid"));
        assert_eq!(r.status().as_u16(), status);
        assert!(serde_json::from_str::<Value>(error.body()).unwrap()["message"].is_string());
    }
    assert_eq!(
        GatewayError::Timeout.body(),
        r#"{"message":"Endpoint request timed out"}"#
    );
    assert_eq!(
        GatewayError::BadGateway.body(),
        r#"{"message":"Internal server error"}"#
    );
}
