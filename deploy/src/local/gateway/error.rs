//! The responses API Gateway gives itself rather than the function (its
//! "gateway responses"): status, body and `x-amzn-ErrorType` as API
//! Gateway gives them, one variant per refusal or failure of any stage.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};

use super::REQUEST_ID;

static ERROR_TYPE: HeaderName = HeaderName::from_static("x-amzn-errortype");

/// A response API Gateway itself gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GatewayError {
    MissingAuthenticationToken,
    Forbidden,
    TooManyRequests,
    LimitExceeded,
    RequestTooLong,
    /// Lambda refused the event as too large (see [`super::MAX_INVOCATION_PAYLOAD`]).
    InvocationTooLarge,
    HeadersTooLarge,
    BadRequest,
    Internal,
    BadGateway,
    Timeout,
}

impl GatewayError {
    pub(super) fn status(self) -> StatusCode {
        match self {
            GatewayError::MissingAuthenticationToken | GatewayError::Forbidden => {
                StatusCode::FORBIDDEN
            }
            GatewayError::TooManyRequests | GatewayError::LimitExceeded => {
                StatusCode::TOO_MANY_REQUESTS
            }
            GatewayError::RequestTooLong | GatewayError::InvocationTooLarge => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            GatewayError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            GatewayError::BadRequest => StatusCode::BAD_REQUEST,
            GatewayError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            GatewayError::BadGateway => StatusCode::BAD_GATEWAY,
            GatewayError::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    pub(super) fn body(self) -> &'static str {
        match self {
            GatewayError::MissingAuthenticationToken => {
                r#"{"message":"Missing Authentication Token"}"#
            }
            GatewayError::Forbidden => r#"{"message":"Forbidden"}"#,
            GatewayError::TooManyRequests => r#"{"message":"Too Many Requests"}"#,
            GatewayError::LimitExceeded => r#"{"message":"Limit Exceeded"}"#,
            GatewayError::RequestTooLong => r#"{"message":"Request Too Long"}"#,
            // As a REST API with a Lambda proxy integration answered a
            // 6-10 MB body, measured (koki-develop/lgtm-generator issue 10):
            // not a gateway response (configuring REQUEST_TOO_LARGE did not
            // change it), so its own spacing and error type.
            GatewayError::InvocationTooLarge => r#"{"message": "Request Too Long"}"#,
            GatewayError::HeadersTooLarge => r#"{"message":"Request Header Fields Too Large"}"#,
            GatewayError::BadRequest => r#"{"message":"Bad Request"}"#,
            GatewayError::Internal | GatewayError::BadGateway => {
                r#"{"message":"Internal server error"}"#
            }
            GatewayError::Timeout => r#"{"message":"Endpoint request timed out"}"#,
        }
    }

    pub(super) fn error_type(self) -> &'static str {
        match self {
            GatewayError::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            GatewayError::Forbidden => "ForbiddenException",
            GatewayError::TooManyRequests => "TooManyRequestsException",
            GatewayError::LimitExceeded => "LimitExceededException",
            GatewayError::RequestTooLong => "RequestTooLongException",
            GatewayError::InvocationTooLarge => "BadRequestException",
            GatewayError::HeadersTooLarge => "RequestHeaderFieldsTooLargeException",
            GatewayError::BadRequest => "BadRequestException",
            GatewayError::Internal | GatewayError::BadGateway => "InternalServerErrorException",
            GatewayError::Timeout => "TimeoutException",
        }
    }

    pub(super) fn response(self, request_id: &HeaderValue) -> Response {
        let mut r = Response::new(Body::from(self.body()));
        *r.status_mut() = self.status();
        let h = r.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(
            ERROR_TYPE.clone(),
            HeaderValue::from_static(self.error_type()),
        );
        h.insert(REQUEST_ID.clone(), request_id.clone());
        r
    }
}

#[cfg(test)]
mod tests {
    use super::GatewayError as E;

    /// The developer portal lists every response the gateway gives, with
    /// its status and body as given.
    #[test]
    fn the_portals_error_catalogue_lists_every_gateway_response() {
        let all = [
            E::MissingAuthenticationToken,
            E::Forbidden,
            E::TooManyRequests,
            E::LimitExceeded,
            E::RequestTooLong,
            E::InvocationTooLarge,
            E::HeadersTooLarge,
            E::BadRequest,
            E::Internal,
            E::BadGateway,
            E::Timeout,
        ];
        for e in all {
            let listed = crate::portal::catalogue::GATEWAY
                .iter()
                .any(|g| g.status == e.status().as_u16() && g.body == e.body());
            assert!(listed, "{e:?} is not in the portal's catalogue");
        }
        assert_eq!(crate::portal::catalogue::GATEWAY.len(), all.len());
    }
}
