//! The price table (`deploy/prices.toml`, built in; `--prices FILE` reads
//! another) and what a key's figures cost by it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Counts;

/// The built-in table.
pub const BUILT_IN: &str = include_str!("../../prices.toml");

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    pub region: String,
    pub currency: String,
    /// When the figures were read from the sources.
    pub read: String,
    pub api_gateway: ApiGateway,
    pub lambda: Lambda,
    pub dynamodb: DynamoDb,
    pub logs: Logs,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiGateway {
    pub source: String,
    pub rest_tiers: Vec<Tier>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// The tier ends after this many million requests in the month (the
    /// last tier has none).
    pub up_to_million: Option<f64>,
    pub per_million: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Lambda {
    pub source: String,
    pub requests_per_million: f64,
    pub gb_second_x86_64: f64,
    pub gb_second_arm64: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DynamoDb {
    pub source: String,
    pub write_per_million: f64,
    pub read_per_million: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Logs {
    pub source: String,
    pub ingestion_per_gb: f64,
}

/// What a key's figures cost, by service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Cost {
    pub api_gateway: f64,
    pub lambda_requests: f64,
    pub lambda_compute: f64,
    pub dynamodb: f64,
    pub logs: f64,
    pub total: f64,
}

impl Cost {
    pub fn add(&mut self, o: &Cost) {
        self.api_gateway += o.api_gateway;
        self.lambda_requests += o.lambda_requests;
        self.lambda_compute += o.lambda_compute;
        self.dynamodb += o.dynamodb;
        self.logs += o.logs;
        self.total += o.total;
    }
}

/// The requests API Gateway bills: every request but those it refused
/// for the key, a throttle or the quota.
pub fn billed_requests(c: &Counts) -> u64 {
    c.requests
        .saturating_sub(c.forbidden + c.throttled + c.quota_refused)
}

impl Prices {
    pub fn built_in() -> Prices {
        Prices::parse(Path::new("deploy/prices.toml"), BUILT_IN)
            .unwrap_or_else(|e| unreachable!("the built-in price table is checked by a test: {e}"))
    }

    /// Reads a table; an error names the file, the line and the key.
    pub fn parse(path: &Path, text: &str) -> anyhow::Result<Prices> {
        let prices: Prices = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            anyhow::anyhow!(
                "{}{}: {}",
                path.display(),
                line.map(|l| format!(":{l}")).unwrap_or_default(),
                e.message()
            )
        })?;
        let tiers = &prices.api_gateway.rest_tiers;
        let ordered = tiers
            .windows(2)
            .all(|w| match (w[0].up_to_million, w[1].up_to_million) {
                (Some(a), Some(b)) => a < b,
                (Some(_), None) => true,
                (None, _) => false,
            });
        if tiers.is_empty() || !ordered || tiers.last().is_some_and(|t| t.up_to_million.is_some()) {
            anyhow::bail!(
                "{}: api_gateway.rest_tiers: expected tiers in rising order of up_to_million, the last without one",
                path.display()
            );
        }
        Ok(prices)
    }

    /// What `requests` REST API requests in one month cost, tier by tier.
    pub fn api_gateway_month(&self, requests: u64) -> f64 {
        let mut left = requests as f64 / 1e6;
        let mut floor = 0.0;
        let mut cost = 0.0;
        for tier in &self.api_gateway.rest_tiers {
            let room = tier.up_to_million.map_or(f64::INFINITY, |top| top - floor);
            let here = left.min(room);
            cost += here * tier.per_million;
            left -= here;
            floor = tier.up_to_million.unwrap_or(floor);
            if left <= 0.0 {
                break;
            }
        }
        cost
    }

    /// What a key's figures cost, API Gateway at `gateway_rate` per billed
    /// request (the month's tiered cost spread over its requests).
    pub fn cost(&self, c: &Counts, arch: &str, gateway_rate: f64) -> Cost {
        let gb_second = if arch == "arm64" {
            self.lambda.gb_second_arm64
        } else {
            self.lambda.gb_second_x86_64
        };
        let gb_seconds = c.billed_mb_ms as f64 / 1024.0 / 1000.0;
        let mut cost = Cost {
            api_gateway: billed_requests(c) as f64 * gateway_rate,
            lambda_requests: c.invocations as f64 / 1e6 * self.lambda.requests_per_million,
            lambda_compute: gb_seconds * gb_second,
            dynamodb: c.read_units / 1e6 * self.dynamodb.read_per_million
                + c.write_units / 1e6 * self.dynamodb.write_per_million,
            logs: c.log_bytes as f64 / (1u64 << 30) as f64 * self.logs.ingestion_per_gb,
            total: 0.0,
        };
        cost.total = cost.api_gateway
            + cost.lambda_requests
            + cost.lambda_compute
            + cost.dynamodb
            + cost.logs;
        cost
    }

    /// The price of one request in a month of `requests` (the first
    /// tier's when there are none).
    pub fn gateway_rate(&self, requests: u64) -> f64 {
        if requests == 0 {
            self.api_gateway.rest_tiers[0].per_million / 1e6
        } else {
            self.api_gateway_month(requests) / requests as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_table_reads_and_tiers_add_up() {
        let p = Prices::built_in();
        assert_eq!(p.region, "us-east-1");
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
        assert!(close(p.api_gateway_month(1_000_000), 3.5));
        // 333 M at 3.50, then 167 M at 2.80.
        assert!(close(
            p.api_gateway_month(500_000_000),
            333.0 * 3.5 + 167.0 * 2.8
        ));
        assert!(close(p.gateway_rate(0), 3.5e-6));
    }

    #[test]
    fn a_keys_cost_is_the_sum_of_its_services() {
        let p = Prices::built_in();
        let c = Counts {
            requests: 1_000_010,
            throttled: 4,
            quota_refused: 3,
            forbidden: 3,
            invocations: 1_000_000,
            // 1 M invocations of 100 ms at 1024 MB: 100,000 GB-s.
            billed_mb_ms: 1_000_000 * 100 * 1024,
            read_units: 2_000_000.0,
            write_units: 1_000_000.0,
            log_bytes: 1 << 30,
            ..Counts::default()
        };
        let cost = p.cost(&c, "arm64", p.gateway_rate(0));
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
        assert!(close(cost.api_gateway, 3.5), "refusals are not billed");
        assert!(close(cost.lambda_requests, 0.2));
        assert!(close(cost.lambda_compute, 100_000.0 * 0.0000133334));
        assert!(close(cost.dynamodb, 0.25 + 0.625));
        assert!(close(cost.logs, 0.5));
        assert!(close(cost.total, 3.5 + 0.2 + 1.33334 + 0.875 + 0.5));
    }

    #[test]
    fn a_bad_table_names_file_line_and_key() {
        let text = BUILT_IN.replace("read_per_million = 0.125", "read_per_million = \"cheap\"");
        let e = Prices::parse(Path::new("p.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.toml:"), "{e}");
        assert!(e.contains("invalid type"), "{e}");
        let line = BUILT_IN
            .lines()
            .position(|l| l.starts_with("read_per_million"))
            .unwrap()
            + 1;
        assert!(e.starts_with(&format!("p.toml:{line}:")), "{e}");
    }
}
