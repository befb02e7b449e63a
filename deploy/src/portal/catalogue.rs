//! The error catalogue a client meets: API Gateway's own responses (the
//! local gateway gives the same, `local/gateway/error.rs`, whose tests
//! check this list against it) and the function's problems
//! (`runtime/src/api.rs`, RFC 9457 bodies).

/// One response API Gateway gives itself: status, body, when.
pub struct GatewayResponse {
    pub status: u16,
    pub body: &'static str,
    pub when: &'static str,
}

/// API Gateway's responses, in the order a request meets them
/// ("Gateway response types for API Gateway", API Gateway developer
/// guide; the statuses and bodies as `FACTS.md` records them).
pub const GATEWAY: &[GatewayResponse] = &[
    GatewayResponse {
        status: 431,
        body: r#"{"message":"Request Header Fields Too Large"}"#,
        when: "The request line and headers exceed 10,240 bytes.",
    },
    GatewayResponse {
        status: 403,
        body: r#"{"message":"Missing Authentication Token"}"#,
        when: "No such path or method on this API (a typo in the path, or an operation not deployed).",
    },
    GatewayResponse {
        status: 413,
        body: r#"{"message":"Request Too Long"}"#,
        when: "The body exceeds 10 MB.",
    },
    GatewayResponse {
        status: 413,
        body: r#"{"message": "Request Too Long"}"#,
        when: "The request, with everything around it, exceeds what the function takes at once (6 MB).",
    },
    GatewayResponse {
        status: 403,
        body: r#"{"message":"Forbidden"}"#,
        when: "The x-api-key header is missing, or the key is unknown, disabled, expired or another API's.",
    },
    GatewayResponse {
        status: 429,
        body: r#"{"message":"Too Many Requests"}"#,
        when: "Over the key's rate or burst (or the API's, or the account's): wait and retry.",
    },
    GatewayResponse {
        status: 429,
        body: r#"{"message":"Limit Exceeded"}"#,
        when: "The key's quota for the period is used up: it resets at the next period (UTC).",
    },
    GatewayResponse {
        status: 400,
        body: r#"{"message":"Bad Request"}"#,
        when: "The request could not be read.",
    },
    GatewayResponse {
        status: 500,
        body: r#"{"message":"Internal server error"}"#,
        when: "The gateway could not count the request against the quota.",
    },
    GatewayResponse {
        status: 502,
        body: r#"{"message":"Internal server error"}"#,
        when: "The function failed or answered something malformed.",
    },
    GatewayResponse {
        status: 504,
        body: r#"{"message":"Endpoint request timed out"}"#,
        when: "The function did not answer within its timeout.",
    },
];

/// One problem the function answers: status, when, an example detail.
pub struct FunctionProblem {
    pub status: u16,
    pub title: &'static str,
    pub when: &'static str,
    pub detail: &'static str,
}

/// The function's problems (`application/problem+json`), by status.
pub const FUNCTION: &[FunctionProblem] = &[
    FunctionProblem {
        status: 400,
        title: "Bad Request",
        when: "A field or query parameter breaks its rules (each listed in errors), the body is not a JSON object, the id or If-Match is malformed, or next is not a cursor of this search.",
        detail: "the body must be a JSON object, found array",
    },
    FunctionProblem {
        status: 404,
        title: "Not Found",
        when: "No item with this id.",
        detail: "no item with id \"01JD7Q5X4ZK3M8N2P6R9T0VWXY\"",
    },
    FunctionProblem {
        status: 405,
        title: "Method Not Allowed",
        when: "The method is not enabled on this path; the Allow header lists those that are.",
        detail: "DELETE is not enabled here; allowed: GET, PUT, PATCH",
    },
    FunctionProblem {
        status: 409,
        title: "Conflict",
        when: "An add names an id that exists, or the item kept changing while a write without If-Match was applied.",
        detail: "the item kept changing while this write was applied; retry",
    },
    FunctionProblem {
        status: 412,
        title: "Precondition Failed",
        when: "The item changed since the ETag sent in If-Match: GET it again.",
        detail: "the item has changed since that ETag was read; GET it again",
    },
    FunctionProblem {
        status: 413,
        title: "Payload Too Large",
        when: "The item would exceed 400 KB once stored.",
        detail: "the item would be 412345 bytes; an item may be at most 409600 bytes",
    },
    FunctionProblem {
        status: 415,
        title: "Unsupported Media Type",
        when: "A body sent without Content-Type application/json (or application/merge-patch+json for PATCH).",
        detail: "the body must be JSON with Content-Type application/json, found text/plain",
    },
    FunctionProblem {
        status: 500,
        title: "Internal Server Error",
        when: "The table failed: retry the request.",
        detail: "the store failed; retry the request",
    },
];
