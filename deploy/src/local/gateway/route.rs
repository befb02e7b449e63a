//! Routing: which tenant's method a request is for, from its host and
//! path, or none (403 `Missing Authentication Token`); and the pure helpers
//! it uses: host and path parsing, percent decoding, query strings. None of
//! them allocates unless it must, and none panics on any input.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::query_map::QueryMap;
use http::header::HOST;
use http::{Method, request::Parts};
use runtime::Operation;

use super::live::{Live, TenantRt};

/// A request matched to a tenant's method.
pub(super) struct Routed<'a> {
    pub(super) tenant: Arc<TenantRt>,
    /// The path under the stage or base path, raw.
    pub(super) rest: &'a str,
    /// The raw id segment of an item route.
    pub(super) id: Option<&'a str>,
    pub(super) op: Operation,
}

/// Matches a request to a tenant's method, or `None` (403 Missing
/// Authentication Token).
pub(super) fn resolve<'a>(
    live: &Live,
    host: &str,
    path: &'a str,
    parts: &Parts,
) -> Option<Routed<'a>> {
    let (tenant, rest) = tenant_and_rest(live, host, path)?;
    let id = split_rest(rest, &tenant.collection)?;
    let op = operation(&parts.method, id.is_some())?;
    tenant.operations[op as usize].then(|| Routed {
        tenant: Arc::clone(tenant),
        rest,
        id,
        op,
    })
}

/// The tenant whose developer portal a `GET` or `HEAD` of `/{stage}/docs`
/// (on any of the routing forms) asks for, when it has one. Asked only of
/// requests [`resolve`] found no method for, so it costs the API's own
/// routes nothing.
pub(super) fn docs(live: &Live, host: &str, path: &str, method: &Method) -> Option<Arc<TenantRt>> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let (tenant, rest) = tenant_and_rest(live, host, path)?;
    (rest == crate::portal::PATH && tenant.docs.is_some()).then(|| Arc::clone(tenant))
}

/// The tenant a request is for, by its path (`/restapis/...`), its custom
/// domain (and base path) or `{tenant}.localhost` with its stage; and the
/// path under the stage or base path.
fn tenant_and_rest<'l, 'a>(
    live: &'l Live,
    host: &str,
    path: &'a str,
) -> Option<(&'l Arc<TenantRt>, &'a str)> {
    Some(if let Some((tenant, stage, rest)) = path_style(path) {
        let t = live.tenants.get(tenant)?;
        (t.stage == stage).then_some((t, rest))?
    } else {
        let name = lowercase(host_name(host));
        if let Some(t) = live.domains.get(name.as_ref()) {
            let rest = match t.base_path.as_deref() {
                None | Some("") => path,
                Some(base) => strip_base(path, base)?,
            };
            (t, rest)
        } else {
            let tenant = localhost_tenant(&name)?;
            let t = live.tenants.get(tenant)?;
            let (stage, rest) = stage_and_rest(path)?;
            (t.stage == stage).then_some((t, rest))?
        }
    })
}

/// The host a request was sent to: its `Host` header, or the authority of
/// an absolute-form request target.
pub(super) fn host(parts: &Parts) -> &str {
    parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or("")
}

/// The host name of a `Host` header: without the port, the brackets of an
/// IPv6 literal kept, a trailing dot dropped.
pub(super) fn host_name(host: &str) -> &str {
    let name = if host.starts_with('[') {
        host.find(']').map_or(host, |i| &host[..=i])
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    name.strip_suffix('.').unwrap_or(name)
}

/// ASCII lowercase, borrowed when already lowercase.
pub(super) fn lowercase(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// `/restapis/{tenant}/{stage}/_user_request_{rest}`: the tenant, the
/// stage and the rest (empty or starting with `/` when well formed).
pub(super) fn path_style(path: &str) -> Option<(&str, &str, &str)> {
    let after = path.strip_prefix("/restapis/")?;
    let (tenant, after) = after.split_once('/')?;
    let (stage, after) = after.split_once('/')?;
    let rest = after.strip_prefix("_user_request_")?;
    Some((tenant, stage, rest))
}

/// The tenant label of `{tenant}.localhost` or
/// `{tenant}.execute-api.localhost` (host name already without port and
/// lowercased).
pub(super) fn localhost_tenant(name: &str) -> Option<&str> {
    let label = name.strip_suffix(".localhost")?;
    let label = label.strip_suffix(".execute-api").unwrap_or(label);
    (!label.is_empty() && !label.contains('.')).then_some(label)
}

/// `/{stage}{rest}`: the stage and the rest (empty or starting with `/`).
pub(super) fn stage_and_rest(path: &str) -> Option<(&str, &str)> {
    let p = path.strip_prefix('/')?;
    Some(match p.find('/') {
        Some(i) => (&p[..i], &p[i..]),
        None => (p, ""),
    })
}

/// The path under a base path mapping: `/{base}` followed by the end or
/// by `/`. Base paths are case-sensitive, as on API Gateway.
pub(super) fn strip_base<'a>(path: &'a str, base: &str) -> Option<&'a str> {
    let rest = path.strip_prefix('/')?.strip_prefix(base)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// Matches the rest of a path against the collection: `None` when it is
/// neither `/{collection}` nor `/{collection}/{id}` (one non-empty
/// segment), `Some(None)` for the collection, `Some(Some(raw id))` for an
/// item.
pub(super) fn split_rest<'a>(rest: &'a str, collection: &str) -> Option<Option<&'a str>> {
    let r = rest.strip_prefix('/')?;
    match r.split_once('/') {
        None => (r == collection).then_some(None),
        Some((c, id)) => {
            (c == collection && !id.is_empty() && !id.contains('/')).then_some(Some(id))
        }
    }
}

/// The operation a method asks for on the collection or on an item.
pub(super) fn operation(method: &Method, item: bool) -> Option<Operation> {
    Some(match (item, method) {
        (false, &Method::GET) => Operation::Search,
        (false, &Method::POST) => Operation::Add,
        (true, &Method::GET) => Operation::Get,
        (true, &Method::PUT | &Method::PATCH) => Operation::Update,
        (true, &Method::DELETE) => Operation::Delete,
        _ => return None,
    })
}

pub(super) use runtime::api::percent_decode;

/// `queryStringParameters` (the last value of each name) and
/// `multiValueQueryStringParameters` (every value), names and values
/// percent-decoded. Empty names are skipped.
pub(super) fn query(raw: Option<&str>) -> (QueryMap, QueryMap) {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return (QueryMap::default(), QueryMap::default());
    };
    let mut multi: HashMap<String, Vec<String>> = HashMap::new();
    for pair in raw.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(name);
        if name.is_empty() {
            continue;
        }
        multi
            .entry(name.into_owned())
            .or_default()
            .push(percent_decode(value).into_owned());
    }
    if multi.is_empty() {
        return (QueryMap::default(), QueryMap::default());
    }
    let single: HashMap<String, String> = multi
        .iter()
        .map(|(k, v)| (k.clone(), v.last().cloned().unwrap_or_default()))
        .collect();
    (QueryMap::from(single), QueryMap::from(multi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_their_port_and_trailing_dot() {
        assert_eq!(host_name("acme.localhost:8080"), "acme.localhost");
        assert_eq!(host_name("api.acme.example.com."), "api.acme.example.com");
        assert_eq!(host_name("[::1]:3000"), "[::1]");
        assert_eq!(host_name("[::1"), "[::1");
        assert_eq!(host_name("a:b:c"), "a:b:c");
        assert_eq!(host_name(""), "");
        assert_eq!(host_name(":"), "");
        assert_eq!(host_name("é:ü"), "é:ü");
        assert_eq!(localhost_tenant("acme.localhost"), Some("acme"));
        assert_eq!(localhost_tenant("acme.execute-api.localhost"), Some("acme"));
        assert_eq!(localhost_tenant(".localhost"), None);
        assert_eq!(localhost_tenant("localhost"), None);
        assert_eq!(localhost_tenant("a.b.localhost"), None);
    }

    #[test]
    fn paths_split_into_stage_tenant_and_rest() {
        assert_eq!(
            path_style("/restapis/acme/prod/_user_request_/accounts/1"),
            Some(("acme", "prod", "/accounts/1"))
        );
        assert_eq!(
            path_style("/restapis/acme/prod/_user_request_"),
            Some(("acme", "prod", ""))
        );
        assert_eq!(path_style("/restapis/acme/prod"), None);
        assert_eq!(path_style("/restapis/acme/prod/other/x"), None);
        assert_eq!(
            stage_and_rest("/prod/accounts"),
            Some(("prod", "/accounts"))
        );
        assert_eq!(stage_and_rest("/prod"), Some(("prod", "")));
        assert_eq!(stage_and_rest("prod"), None);
        assert_eq!(strip_base("/books-api/books", "books-api"), Some("/books"));
        assert_eq!(strip_base("/books-api", "books-api"), Some(""));
        assert_eq!(strip_base("/books-apix/books", "books-api"), None);
        assert_eq!(strip_base("/Books-api/books", "books-api"), None);
        assert_eq!(split_rest("/accounts", "accounts"), Some(None));
        assert_eq!(
            split_rest("/accounts/a%20b", "accounts"),
            Some(Some("a%20b"))
        );
        assert_eq!(split_rest("/accounts/", "accounts"), None);
        assert_eq!(split_rest("/accounts/a/b", "accounts"), None);
        assert_eq!(split_rest("/other", "accounts"), None);
        assert_eq!(split_rest("", "accounts"), None);
        assert_eq!(split_rest("accounts", "accounts"), None);
        assert_eq!(operation(&Method::PATCH, true), Some(Operation::Update));
        assert_eq!(operation(&Method::PATCH, false), None);
        assert_eq!(operation(&Method::HEAD, true), None);
    }

    #[test]
    fn percent_decoding_never_panics_and_keeps_plus() {
        assert_eq!(percent_decode("a+b%20c"), "a+b c");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%41"), "A");
        assert_eq!(percent_decode("x%41"), "xA");
        assert_eq!(percent_decode("%zz%4g"), "%zz%4g");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
        assert_eq!(percent_decode("é%C3%A9"), "éé");
        assert!(matches!(percent_decode("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn query_strings_keep_every_value_and_the_last_as_single() {
        let (single, multi) = query(Some("a=1&a=2&b=x+y&c&%62=3&=z&&d=%zz"));
        assert_eq!(single.first("a"), Some("2"));
        assert_eq!(multi.all("a"), Some(vec!["1", "2"]));
        assert_eq!(multi.all("b"), Some(vec!["x+y", "3"]));
        assert_eq!(single.first("b"), Some("3"));
        assert_eq!(single.first("c"), Some(""));
        assert_eq!(single.first("d"), Some("%zz"));
        assert_eq!(multi.all(""), None);
        let (single, multi) = query(None);
        assert!(single.is_empty() && multi.is_empty());
        let (single, multi) = query(Some("&&"));
        assert!(single.is_empty() && multi.is_empty());
    }
}
