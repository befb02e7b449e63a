//! Where the AWS target deploys (account, region, partition, and the ARNs
//! they make) and how it reaches AWS (profile, region, endpoint, retries).

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

use super::ROLE_PATH;

/// Where the target deploys: the account, region and partition ARNs name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub region: String,
    pub account: String,
    pub partition: String,
}

impl Env {
    pub fn new(region: &str, account: &str) -> Env {
        let partition = if region.starts_with("cn-") {
            "aws-cn"
        } else if region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        };
        Env {
            region: region.to_owned(),
            account: account.to_owned(),
            partition: partition.to_owned(),
        }
    }

    pub fn table_arn(&self, table: &str) -> String {
        format!(
            "arn:{}:dynamodb:{}:{}:table/{table}",
            self.partition, self.region, self.account
        )
    }

    /// The tenant's table in any region of the account, as its role's
    /// policy names it: IAM is global, so a tenant's one role serves its
    /// functions in whichever region of the account they run, including
    /// both regions while a tenant moves between them (the old stack keeps
    /// working until it is pruned). IAM accepts `*` in an ARN's region
    /// (IAM user guide, "IAM JSON policy elements: Resource").
    pub fn table_arn_any_region(&self, table: &str) -> String {
        format!(
            "arn:{}:dynamodb:*:{}:table/{table}",
            self.partition, self.account
        )
    }

    /// A log group in any region of the account, for the role's policy
    /// (as [`Env::table_arn_any_region`]).
    pub fn log_group_arn_any_region(&self, group: &str) -> String {
        format!(
            "arn:{}:logs:*:{}:log-group:{group}",
            self.partition, self.account
        )
    }

    /// A log group as CloudWatch Logs' TagResource and ListTagsForResource
    /// name it: without the `:*` that DescribeLogGroups' `arn` ends with
    /// (CloudWatch Logs API reference, TagResource, `resourceArn`).
    pub fn log_group_arn(&self, group: &str) -> String {
        format!(
            "arn:{}:logs:{}:{}:log-group:{group}",
            self.partition, self.region, self.account
        )
    }

    pub fn role_arn(&self, role: &str) -> String {
        format!(
            "arn:{}:iam::{}:role{ROLE_PATH}{role}",
            self.partition, self.account
        )
    }

    /// A function, unqualified, as Lambda's TagResource and ListTags take
    /// it (Lambda API reference, TagResource, `Resource`).
    pub fn function_arn(&self, function: &str) -> String {
        format!(
            "arn:{}:lambda:{}:{}:function:{function}",
            self.partition, self.region, self.account
        )
    }

    /// A stage as API Gateway's tagging calls name it (API Gateway
    /// developer guide, "API Gateway Amazon Resource Names (ARNs)":
    /// `arn:partition:apigateway:region::/restapis/api-id/stages/stage-name`).
    pub fn stage_arn(&self, api_id: &str, stage: &str) -> String {
        format!(
            "arn:{}:apigateway:{}::/restapis/{api_id}/stages/{stage}",
            self.partition, self.region
        )
    }

    /// Every stage, method and path of one REST API.
    pub fn execute_api_arn(&self, api_id: &str) -> String {
        format!(
            "arn:{}:execute-api:{}:{}:{api_id}/*",
            self.partition, self.region, self.account
        )
    }
}

/// How to reach AWS: the default chain, overridden by these.
#[derive(Debug, Clone, Default)]
pub struct Connect {
    pub profile: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

impl Connect {
    /// The SDK configuration: aws-config's default chain (which also reads
    /// `AWS_PROFILE`, `AWS_REGION` and `AWS_ENDPOINT_URL`), and the standard
    /// retry mode (throttling and 5xx retried with exponential backoff and
    /// jitter) with more attempts than the default three.
    pub async fn sdk_config(&self) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(retry());
        if let Some(p) = &self.profile {
            loader = loader.profile_name(p);
        }
        if let Some(r) = &self.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(u) = &self.endpoint_url {
            loader = loader.endpoint_url(u);
        }
        loader.load().await
    }
}

pub fn retry() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(8)
        .with_initial_backoff(Duration::from_millis(500))
        .with_max_backoff(Duration::from_secs(20))
}
