//! Deterministic names of everything a tenant owns, and the shapes of the
//! identifiers a tenant file may use. One place, so the deploy targets, the
//! runtime and the validator can never disagree.

use crate::operation::Operation;

/// Tenant ids end up inside AWS names with a 64-character limit (Lambda
/// function and IAM role names); 32 leaves room for the rest.
pub const TENANT_ID_MAX: usize = 32;

/// Prefix of every resource name, and the value of the `managed-by` tag.
pub const PREFIX: &str = "apifactory";

pub fn table(tenant: &str) -> String {
    format!("{PREFIX}-{tenant}")
}

/// DynamoDB's rule for table names ("Naming rules and data types"): 3 to
/// 255 characters of a-z, A-Z, 0-9, `_`, `-` and `.`.
pub fn is_table_name(s: &str) -> bool {
    (3..=255).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

pub fn function(tenant: &str, op: Operation) -> String {
    format!("{PREFIX}-{tenant}-{op}")
}

pub fn role(tenant: &str) -> String {
    format!("{PREFIX}-{tenant}-functions")
}

pub fn log_group(tenant: &str, op: Operation) -> String {
    format!("/aws/lambda/{}", function(tenant, op))
}

/// Where API Gateway writes the access log of the tenant's stage.
pub fn access_log_group(tenant: &str) -> String {
    format!("/aws/apigateway/{PREFIX}-{tenant}")
}

pub fn rest_api(tenant: &str) -> String {
    format!("{PREFIX}-{tenant}")
}

pub fn usage_plan(tenant: &str) -> String {
    format!("{PREFIX}-{tenant}")
}

pub fn api_key(tenant: &str, client: &str) -> String {
    format!("{PREFIX}-{tenant}-{client}")
}

/// The name of a secondary index on a field.
pub fn index(field: &str) -> String {
    format!("by_{field}")
}

fn lower_alnum_dash(s: &str, max: usize, first_digit_ok: bool) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_lowercase() || (first_digit_ok && first.is_ascii_digit()))
        && s.len() <= max
        && !s.ends_with('-')
        && !s.contains("--")
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

pub fn is_tenant_id(s: &str) -> bool {
    lower_alnum_dash(s, TENANT_ID_MAX, false)
}

pub fn is_collection(s: &str) -> bool {
    lower_alnum_dash(s, 63, false)
}

pub fn is_client_name(s: &str) -> bool {
    lower_alnum_dash(s, 63, true)
}

/// Alarm names in a tenant file.
pub fn is_alarm_name(s: &str) -> bool {
    lower_alnum_dash(s, 64, false)
}

/// The CloudWatch alarm of a tenant's rule: `apifactory-<tenant>-<name>`.
pub fn alarm(tenant: &str, name: &str) -> String {
    format!("{PREFIX}-{tenant}-{name}")
}

/// `arn:<partition>:sns:<region>:<12-digit account>:<topic>`, the topic 1
/// to 256 letters, digits, - and _ (and `.fifo` at the end).
pub fn is_sns_topic_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    let [arn, partition, service, region, account, topic] = parts[..] else {
        return false;
    };
    let topic_name = topic.strip_suffix(".fifo").unwrap_or(topic);
    arn == "arn"
        && matches!(partition, "aws" | "aws-cn" | "aws-us-gov")
        && service == "sns"
        && !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && account.len() == 12
        && account.chars().all(|c| c.is_ascii_digit())
        && !topic_name.is_empty()
        && topic.len() <= 256
        && topic_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// API Gateway stage names: letters, digits, hyphens and underscores.
pub fn is_stage(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Field and key attribute names: they are JSON keys, DynamoDB attribute
/// names and query parameters. Names starting with `_` are the runtime's.
pub fn is_field_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub fn is_domain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').count() >= 2
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

/// `arn:aws:acm:<region>:<12-digit account>:certificate/<id>` (any AWS
/// partition).
pub fn is_certificate_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "acm"
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && parts[5].strip_prefix("certificate/").is_some_and(|id| {
            !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// An AWS region's shape: two or more lowercase words and a number
/// (`eu-west-1`, `us-gov-west-1`, `ap-southeast-5`). New regions keep this
/// shape, so the list of regions is not needed.
pub fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && s.len() <= 32
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok_and(|n| n > 0)
}

/// A profile name a config file section `[profile NAME]` can hold.
pub fn is_profile_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub fn is_hosted_zone_id(s: &str) -> bool {
    s.starts_with('Z')
        && (2..=32).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// Item ids a client may choose: they appear in URLs and DynamoDB keys, so
/// no separators, no control characters, no spaces.
pub fn is_item_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
        && s != "."
        && s != ".."
}

/// The attribute holding an item's revision in its table.
pub const REV_ATTRIBUTE: &str = "_rev";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(is_tenant_id("acme"));
        assert!(is_tenant_id("acme-2"));
        for bad in ["", "Acme", "2acme", "acme-", "a--b", "a_b", &"a".repeat(33)] {
            assert!(!is_tenant_id(bad), "{bad}");
        }
        assert!(is_domain("api.acme.example.com"));
        assert!(!is_domain("localhost"));
        assert!(!is_domain("-a.example.com"));
        assert!(is_certificate_arn(
            "arn:aws:acm:us-east-1:111122223333:certificate/1234abcd-12ab-34cd-56ef-1234567890ab"
        ));
        assert!(!is_certificate_arn(
            "arn:aws:acm:us-east-1:1111:certificate/x"
        ));
        assert!(is_item_id("01JD0000000000000000000000"));
        for bad in ["", "a/b", "..", "a b", "a\u{0}b", "é"] {
            assert!(!is_item_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn names_fit_aws_limits() {
        let long = "a".repeat(TENANT_ID_MAX);
        assert!(function(&long, Operation::Delete).len() <= 64);
        assert!(role(&long).len() <= 64);
    }
}
