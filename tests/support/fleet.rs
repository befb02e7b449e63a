//! What the AWS end-to-end tests share: copies of the repository's tenant
//! files under unique ids (so tests share moto and never collide), the
//! function artifact, an AWS target on moto, and the CLI run on a fleet.
//!
//! The target and the CLI reach moto through the realism layer
//! ([`crate::realistic_endpoint`]), so every AWS test meets what
//! AWS does and moto does not; the tests' own checks read moto directly.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::{bin_path, realistic_endpoint, repo_root, sdk_config, sdk_config_at, unique_name};
use apifactory::aws::{AwsTarget, Pace, Package};
use apifactory::desired::{Desired, desired};
use runtime::Tenant;

/// The repository's five tenants.
pub const ORIGINALS: [&str; 5] = ["acme", "bookshop", "clinic", "events", "fleet"];

/// The debug `bootstrap` carries ~150 MB of debug info; stripped, it still
/// runs the same code and zips to a size moto takes in a blink. Made once
/// per test process, next to the binary.
pub fn artifact() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let bootstrap = bin_path("bootstrap");
        let stripped = bootstrap.with_file_name("bootstrap.stripped");
        let partial =
            bootstrap.with_file_name(format!("bootstrap.stripped.{}", std::process::id()));
        let status = std::process::Command::new("strip")
            .arg("-o")
            .arg(&partial)
            .arg(&bootstrap)
            .status()
            .expect("strip (binutils) runs");
        assert!(status.success(), "strip {}", bootstrap.display());
        std::fs::rename(&partial, &stripped).unwrap();
        stripped
    })
}

pub fn package() -> Package {
    static PACKAGE: OnceLock<Package> = OnceLock::new();
    PACKAGE
        .get_or_init(|| Package::from_artifact(artifact()).expect("the artifact packages"))
        .clone()
}

/// An AWS target on moto through the realism layer, unpaced, with the
/// stripped bootstrap.
pub async fn target() -> Arc<AwsTarget> {
    target_at(realistic_endpoint()).await
}

/// An AWS target through `endpoint` (a fault proxy), unpaced, with the
/// stripped bootstrap and the SDK's standard retries.
pub async fn target_at(endpoint: &str) -> Arc<AwsTarget> {
    Arc::new(
        AwsTarget::new(&sdk_config_at(endpoint).await, Pace::Off, Some(package()))
            .await
            .expect("the AWS target connects to moto"),
    )
}

/// A table's description; it must exist.
pub async fn describe_table(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> aws_sdk_dynamodb::types::TableDescription {
    ddb.describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeTable {table}: {e:?}"))
        .table
        .unwrap_or_else(|| panic!("DescribeTable {table}: no description"))
}

/// A table's point-in-time recovery status, as DynamoDB spells it.
pub async fn point_in_time_recovery(ddb: &aws_sdk_dynamodb::Client, table: &str) -> Option<String> {
    let backups = ddb
        .describe_continuous_backups()
        .table_name(table)
        .send()
        .await
        .unwrap();
    backups
        .continuous_backups_description()
        .and_then(|c| c.point_in_time_recovery_description())
        .and_then(|p| p.point_in_time_recovery_status())
        .map(|s| s.as_str().to_owned())
}

/// A public hosted zone whose id starts with `Z` as AWS's do (the tenant
/// file requires it); moto draws ids from A-Z0-9, so draw until one does.
pub async fn hosted_zone(name: &str) -> String {
    zone(name, false).await
}

/// A hosted zone, public or private, whose id starts with `Z`.
pub async fn zone(name: &str, private: bool) -> String {
    use aws_sdk_route53::types::{HostedZoneConfig, Vpc, VpcRegion};
    let r53 = aws_sdk_route53::Client::new(&sdk_config().await);
    for attempt in 0..500 {
        let mut create = r53
            .create_hosted_zone()
            .name(format!("{name}."))
            .caller_reference(format!("{name}-{private}-{attempt}"));
        if private {
            create = create
                .hosted_zone_config(HostedZoneConfig::builder().private_zone(true).build())
                .vpc(
                    Vpc::builder()
                        .vpc_id("vpc-0123456789abcdef0")
                        .vpc_region(VpcRegion::UsEast1)
                        .build(),
                );
        }
        let zone = create.send().await.unwrap();
        let id = zone
            .hosted_zone()
            .unwrap()
            .id()
            .trim_start_matches("/hostedzone/")
            .to_owned();
        if id.starts_with('Z') {
            return id;
        }
        r53.delete_hosted_zone().id(&id).send().await.unwrap();
    }
    panic!("no hosted zone id starting with Z in 500 tries");
}

/// An ISSUED ACM certificate for `domain` (and `more` names) in `region`
/// of moto's account (tests/run starts moto with
/// MOTO_ACM_VALIDATION_WAIT=0, so a requested certificate reads as ISSUED).
pub async fn certificate(region: &str, domain: &str, more: &[&str]) -> String {
    let config = aws_sdk_acm::config::Builder::from(&sdk_config().await)
        .region(aws_sdk_acm::config::Region::new(region.to_owned()))
        .build();
    aws_sdk_acm::Client::from_conf(config)
        .request_certificate()
        .domain_name(domain)
        .set_subject_alternative_names(
            (!more.is_empty()).then(|| more.iter().map(|m| m.to_string()).collect()),
        )
        .send()
        .await
        .unwrap()
        .certificate_arn()
        .expect("RequestCertificate names the certificate")
        .to_owned()
}

/// Copies of tenant files under unique ids, with unique domains, each with
/// a certificate for it in moto (and a hosted zone where the file names
/// one).
pub struct Fleet {
    pub dir: tempfile::TempDir,
    /// The copy's id of each original.
    pub ids: BTreeMap<&'static str, String>,
    /// The `--artifact` the CLI deploys.
    pub artifact: &'static Path,
}

impl Fleet {
    pub async fn new(originals: &[&'static str]) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let mut ids = BTreeMap::new();
        for original in originals {
            let id = unique_name(original);
            let path = repo_root().join(format!("tenants/{original}.toml"));
            let mut text = std::fs::read_to_string(&path).unwrap();
            let t = Tenant::load(&path).unwrap();
            if let Some(d) = &t.domain {
                let (first, rest) = d.name.split_once('.').unwrap();
                let domain = format!("{first}.{id}.{rest}");
                text = text.replace(&format!("\"{}\"", d.name), &format!("\"{domain}\""));
                let made = certificate("us-east-1", &domain, &[]).await;
                text = text.replace(&d.certificate_arn, &made);
                if let Some(zone) = &d.hosted_zone_id {
                    let made = hosted_zone(&format!("{id}.{rest}")).await;
                    text = text.replace(zone, &made);
                }
            }
            std::fs::write(dir.path().join(format!("{id}.toml")), text).unwrap();
            ids.insert(*original, id);
        }
        Fleet {
            dir,
            ids,
            artifact: artifact(),
        }
    }

    /// Copies of tenant files as they ship, only under unique ids: what a
    /// new user deploys to a fresh account.
    pub fn verbatim(originals: &[&'static str]) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let mut ids = BTreeMap::new();
        for original in originals {
            let id = unique_name(original);
            let path = repo_root().join(format!("tenants/{original}.toml"));
            std::fs::copy(&path, dir.path().join(format!("{id}.toml"))).unwrap();
            ids.insert(*original, id);
        }
        Fleet {
            dir,
            ids,
            artifact: artifact(),
        }
    }

    /// Replaces text in a copy's file.
    pub fn edit(&self, original: &str, from: &str, to: &str) {
        let path = self.path(original);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{} holds {from:?}", path.display());
        std::fs::write(&path, text.replace(from, to)).unwrap();
    }

    /// The CLI deploys this artifact instead of the stripped bootstrap.
    pub fn with_artifact(mut self, artifact: &'static Path) -> Fleet {
        self.artifact = artifact;
        self
    }

    pub fn id(&self, original: &str) -> &str {
        &self.ids[original]
    }

    /// The copies' ids, in the originals' order.
    pub fn all_ids(&self) -> Vec<String> {
        self.ids.values().cloned().collect()
    }

    /// The copies' ids as `--tenant` takes them.
    pub fn list(&self) -> String {
        self.all_ids().join(",")
    }

    pub fn scope(&self) -> BTreeSet<String> {
        self.ids.values().cloned().collect()
    }

    pub fn path(&self, original: &str) -> PathBuf {
        self.dir.path().join(format!("{}.toml", self.id(original)))
    }

    pub fn tenants(&self) -> Vec<Tenant> {
        runtime::tenant::load_dir(self.dir.path()).unwrap()
    }

    pub fn tenant(&self, original: &str) -> Tenant {
        Tenant::load(&self.path(original)).unwrap()
    }

    pub fn source(&self, original: &str) -> String {
        let text = std::fs::read_to_string(self.path(original)).unwrap();
        apifactory::tenants::package_source(&text).unwrap()
    }

    /// The desired state of these copies, leaving out `without`.
    pub fn desired(&self, without: &[&str]) -> Desired {
        let skip: Vec<&str> = without.iter().map(|o| self.id(o)).collect();
        let tenants: Vec<Tenant> = self
            .tenants()
            .into_iter()
            .filter(|t| !skip.contains(&t.id.as_str()))
            .collect();
        let sources = tenants
            .iter()
            .map(|t| {
                let text = std::fs::read_to_string(&t.path).unwrap();
                (
                    t.id.clone(),
                    apifactory::tenants::package_source(&text).unwrap(),
                )
            })
            .collect();
        desired(&tenants, &sources, &package())
    }

    /// `apifactory <verb> --target aws` on these tenants, through
    /// `endpoint`, at `pace`.
    pub fn command(&self, verb: &str, extra: &[&str], endpoint: &str, pace: &str) -> Command {
        let mut c = tokio::process::Command::new(bin_path("apifactory"));
        c.arg(verb)
            .args(["--target", "aws", "--tenant", &self.list()])
            .args(extra)
            .arg("--tenants")
            .arg(self.dir.path())
            .arg("--artifact")
            .arg(self.artifact)
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("APIFACTORY_PACE", pace)
            .current_dir(repo_root())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        Command(c)
    }
}

pub struct Command(pub tokio::process::Command);

impl Command {
    /// Runs to the end (at most 120 s).
    pub async fn output(mut self) -> Output {
        tokio::time::timeout(Duration::from_secs(120), self.0.output())
            .await
            .expect("apifactory finishes within 120 s")
            .expect("apifactory runs")
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
