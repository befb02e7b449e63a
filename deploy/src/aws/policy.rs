//! The IAM documents of a tenant's function role: trust for Lambda only,
//! and an inline policy with only the item actions each enabled operation's
//! code uses, on this tenant's table (and its indexes for search), plus
//! writing to its own log groups. Nothing with `*` on resources it does not
//! own.
//!
//! The inline policy reads back: one statement per operation (its `Sid` is
//! the operation), so observing the role recovers the table, the indexes
//! and the operations the planner compares.

use runtime::Operation;
/// IAM returns policy documents URL-encoded: the same `%XX` decoding the
/// runtime applies to item ids (tests read policies back with it too).
pub use runtime::api::percent_decode;
use serde_json::{Value, json};

use super::Env;

/// The role's inline policy name.
pub const POLICY_NAME: &str = "apifactory-items-and-logs";

pub fn trust() -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": crate::desired::ROLE_TRUSTS },
            "Action": "sts:AssumeRole"
        }]
    })
    .to_string()
}

/// Who a trust policy lets assume the role: each principal of its `Allow`
/// statements, a service by name and any other as `<type>:<value>`
/// (`AWS:arn:...`, `Federated:...`, `*`), sorted. A document that does
/// not parse trusts no one the plan knows of: `["unreadable"]`.
pub fn trusted(text: &str) -> Vec<String> {
    let Ok(doc) = serde_json::from_str::<Value>(&percent_decode(text)) else {
        return vec!["unreadable".to_owned()];
    };
    let many = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    };
    let statements = match &doc["Statement"] {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    let mut who: Vec<String> = Vec::new();
    for s in statements.iter().filter(|s| s["Effect"] == "Allow") {
        match &s["Principal"] {
            Value::String(p) => who.push(p.clone()),
            Value::Object(m) => {
                for (kind, v) in m {
                    for p in many(v) {
                        who.push(if kind == "Service" {
                            p
                        } else {
                            format!("{kind}:{p}")
                        });
                    }
                }
            }
            _ => {}
        }
    }
    who.sort();
    who.dedup();
    who
}

/// The DynamoDB item actions the runtime's store uses for an operation (a
/// failed conditional update or delete reads the item to tell a missing item
/// from a stale revision).
pub fn item_actions(op: Operation) -> &'static [&'static str] {
    match op {
        Operation::Search => &["dynamodb:Query", "dynamodb:Scan"],
        Operation::Get => &["dynamodb:GetItem"],
        Operation::Add => &["dynamodb:PutItem"],
        Operation::Update => &["dynamodb:GetItem", "dynamodb:PutItem"],
        Operation::Delete => &["dynamodb:DeleteItem", "dynamodb:GetItem"],
    }
}

fn sid(op: Operation) -> String {
    let s = op.as_str();
    s[..1].to_ascii_uppercase() + &s[1..]
}

/// What the role's policy grants, in the planner's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub table: String,
    /// Index names, for search.
    pub indexes: Vec<String>,
    pub operations: Vec<Operation>,
    /// The log groups it may write to.
    pub log_groups: Vec<String>,
}

pub fn document(env: &Env, grant: &Grant) -> String {
    let table_arn = env.table_arn_any_region(&grant.table);
    let mut statements: Vec<Value> = grant
        .operations
        .iter()
        .map(|op| {
            let mut resources = vec![json!(table_arn)];
            if *op == Operation::Search {
                resources.extend(
                    grant
                        .indexes
                        .iter()
                        .map(|i| json!(format!("{table_arn}/index/{i}"))),
                );
            }
            json!({
                "Sid": sid(*op),
                "Effect": "Allow",
                "Action": item_actions(*op),
                "Resource": resources,
            })
        })
        .collect();
    if !grant.log_groups.is_empty() {
        statements.push(json!({
            "Sid": "Logs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": grant
                .log_groups
                .iter()
                .map(|g| format!("{}:*", env.log_group_arn_any_region(g)))
                .collect::<Vec<_>>(),
        }));
    }
    json!({ "Version": "2012-10-17", "Statement": statements }).to_string()
}

/// Reads a policy document back (IAM returns it URL-encoded).
pub fn parse(text: &str) -> Option<Grant> {
    let decoded = percent_decode(text);
    let doc: Value = serde_json::from_str(&decoded).ok()?;
    let mut grant = Grant {
        table: String::new(),
        indexes: Vec::new(),
        operations: Vec::new(),
        log_groups: Vec::new(),
    };
    let statements = match &doc["Statement"] {
        Value::Array(a) => a.clone(),
        one @ Value::Object(_) => vec![one.clone()],
        _ => return None,
    };
    for s in statements {
        let resources: Vec<String> = match &s["Resource"] {
            Value::String(r) => vec![r.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let sid = s["Sid"].as_str().unwrap_or_default();
        if sid == "Logs" {
            grant.log_groups = resources
                .iter()
                .filter_map(|r| r.split_once(":log-group:"))
                .map(|(_, g)| g.trim_end_matches(":*").to_owned())
                .collect();
            continue;
        }
        let Some(op) = Operation::parse(&sid.to_ascii_lowercase()) else {
            continue;
        };
        grant.operations.push(op);
        for r in &resources {
            let Some((head, rest)) = r.split_once(":table/") else {
                continue;
            };
            // A policy written before roles served every region of the
            // account names one region: it reads as another table, so the
            // plan writes the policy again (`document`).
            let table = |t: &str| match head.split(':').nth(3) {
                Some("*") => t.to_owned(),
                region => format!("{t} (in {} only)", region.unwrap_or("no region")),
            };
            match rest.split_once("/index/") {
                Some((t, index)) => {
                    grant.table = table(t);
                    if !grant.indexes.iter().any(|i| i == index) {
                        grant.indexes.push(index.to_owned());
                    }
                }
                None => grant.table = table(rest),
            }
        }
    }
    grant.operations.sort();
    Some(grant)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env::new("eu-west-1", "111122223333")
    }

    fn grant(ops: &[Operation]) -> Grant {
        Grant {
            table: "apifactory-acme".into(),
            indexes: vec!["by_email".into(), "by_plan".into()],
            operations: ops.to_vec(),
            log_groups: vec!["/aws/lambda/apifactory-acme-get".into()],
        }
    }

    #[test]
    fn the_trust_policy_reads_back_as_who_it_trusts() {
        assert_eq!(trusted(&trust()), ["lambda.amazonaws.com"]);
        let encoded = "%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%5B%22lambda.amazonaws.com%22%2C%22ec2.amazonaws.com%22%5D%2C%22AWS%22%3A%22arn%3Aaws%3Aiam%3A%3A1%3Aroot%22%7D%7D%5D%7D";
        assert_eq!(
            trusted(encoded),
            [
                "AWS:arn:aws:iam::1:root",
                "ec2.amazonaws.com",
                "lambda.amazonaws.com"
            ]
        );
        assert_eq!(trusted("nonsense"), ["unreadable"]);
    }

    #[test]
    fn the_policy_names_only_the_tenants_table_indexes_and_log_groups() {
        let doc: Value = serde_json::from_str(&document(&env(), &grant(&Operation::ALL))).unwrap();
        let mut actions = Vec::new();
        for s in doc["Statement"].as_array().unwrap() {
            assert_eq!(s["Effect"], "Allow");
            for r in s["Resource"].as_array().unwrap() {
                let r = r.as_str().unwrap();
                assert!(
                    r == "arn:aws:dynamodb:*:111122223333:table/apifactory-acme"
                        || r.starts_with(
                            "arn:aws:dynamodb:*:111122223333:table/apifactory-acme/index/by_"
                        )
                        || r == "arn:aws:logs:*:111122223333:log-group:/aws/lambda/apifactory-acme-get:*",
                    "{r}"
                );
                assert!(!r.contains("index/*") && r != "*");
            }
            actions.extend(
                s["Action"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_owned()),
            );
        }
        actions.sort();
        actions.dedup();
        assert_eq!(
            actions,
            [
                "dynamodb:DeleteItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:Query",
                "dynamodb:Scan",
                "logs:CreateLogStream",
                "logs:PutLogEvents"
            ]
        );
        let trust: Value = serde_json::from_str(&trust()).unwrap();
        assert_eq!(
            trust["Statement"][0]["Principal"],
            json!({"Service": "lambda.amazonaws.com"})
        );
    }

    #[test]
    fn a_disabled_operation_grants_nothing() {
        let text = document(&env(), &grant(&[Operation::Get, Operation::Search]));
        assert!(!text.contains("PutItem") && !text.contains("DeleteItem"));
    }

    #[test]
    fn the_policy_reads_back_also_url_encoded() {
        let g = grant(&[Operation::Search, Operation::Get, Operation::Update]);
        let text = document(&env(), &g);
        assert_eq!(parse(&text), Some(g.clone()));
        let encoded: String = text
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        assert_eq!(parse(&encoded), Some(g));
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn a_policy_naming_one_region_reads_as_another_grant() {
        let g = grant(&[Operation::Get]);
        let one_region =
            document(&env(), &g).replace(":*:111122223333:", ":eu-west-1:111122223333:");
        let read = parse(&one_region).unwrap();
        assert_eq!(read.table, "apifactory-acme (in eu-west-1 only)");
        assert_ne!(read, g, "the plan must write it again");
    }
}
