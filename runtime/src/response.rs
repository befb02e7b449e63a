//! Building a proxy response: what a success and a problem share, below
//! both the API (`api`) and its errors (`problem`).

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::encodings::Body;
use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};

pub fn response(
    status: StatusCode,
    headers: HeaderMap,
    body: Option<String>,
) -> ApiGatewayProxyResponse {
    let mut r = ApiGatewayProxyResponse::default();
    r.status_code = i64::from(status.as_u16());
    r.headers = headers;
    r.body = body.map(Body::Text);
    r
}

pub fn json_response(
    status: StatusCode,
    mut headers: HeaderMap,
    body: &impl serde::Serialize,
) -> ApiGatewayProxyResponse {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Serializing a JSON value or a stored item cannot fail: the keys are
    // strings and the numbers finite.
    let text = serde_json::to_string(body).unwrap_or_default();
    response(status, headers, Some(text))
}
