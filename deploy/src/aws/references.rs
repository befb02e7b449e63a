//! What a tenant file points to outside itself, checked before the first
//! write: a custom domain's ACM certificate and its Route 53 hosted zone.
//!
//! Without this, a file naming a certificate of another region or account,
//! or a zone the account does not have, passes `plan` and fails in the
//! middle of `apply` (at CreateDomainName or ChangeResourceRecordSets),
//! after the tenant's other resources were made. So `plan` and `apply` read
//! each certificate and zone the tenants in scope name (once per run, however
//! many tenants share it) and report every problem of every file at once,
//! each at its file, line and key.
//!
//! What AWS requires, and where it says so:
//! - a regional custom domain's certificate is in the API's region ("Set up
//!   a Regional custom domain name in API Gateway": "This certificate must
//!   be in the same Region as your API") and owned by the account making
//!   the domain (API Gateway: "The certificate provided must be owned by the
//!   account creating the domain", aws-cdk #13512);
//! - it is ISSUED: one still PENDING_VALIDATION fails CreateDomainName until
//!   ACM has validated it (terraform-provider-aws #10447, mach-composer-cli
//!   #138: the first apply fails, a later one passes);
//! - it covers the domain by its DomainName or a SubjectAlternativeName, a
//!   wildcard covering exactly one label (ACM user guide, "Wildcard names");
//! - the alias record goes in a public zone that holds the domain: a
//!   private zone answers only inside its VPCs.

use std::collections::{BTreeMap, BTreeSet};

use runtime::{Tenant, TenantError, TenantErrors};

use super::{AwsTarget, Env, Family, each, fail, is};

const ACM_DESCRIBE: &[Family] = &[Family::AcmDescribeCertificate];
const ROUTE53_GET_ZONE: &[Family] = &[Family::Route53, Family::Route53GetHostedZone];

/// A certificate as ACM describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// `ISSUED`, `PENDING_VALIDATION`, `EXPIRED`, ...
    pub status: String,
    /// Its DomainName and SubjectAlternativeNames, lowercase.
    pub names: Vec<String>,
}

/// A hosted zone as Route 53 describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// Without the final dot.
    pub name: String,
    pub private: bool,
}

/// What the account holds of what the files name, by ARN and zone id;
/// `None` where it holds nothing by that name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub certificates: BTreeMap<String, Option<Certificate>>,
    pub zones: BTreeMap<String, Option<Zone>>,
}

/// Reads what the tenants' domains name and fails with every problem found,
/// each at its file, line and key. Reads only.
pub async fn check(t: &AwsTarget, tenants: &[Tenant]) -> anyhow::Result<()> {
    let found = read(t, tenants).await?;
    let errors = problems(&t.env, tenants, &found);
    if errors.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "{} problem(s) with what the tenant files point to; nothing was changed:\n{}",
        errors.len(),
        TenantErrors(errors)
    )
}

/// Each certificate and zone the tenants name, read once. A certificate
/// whose ARN already shows it cannot fit (another partition, region or
/// account) is not read: the deploy region's ACM cannot see it anyway.
pub async fn read(t: &AwsTarget, tenants: &[Tenant]) -> anyhow::Result<Found> {
    let mut arns = BTreeSet::new();
    let mut zone_ids = BTreeSet::new();
    for d in tenants.iter().filter_map(|t| t.domain.as_ref()) {
        if Arn::parse(&d.certificate_arn).is_some_and(|a| a.mismatch(&t.env).is_none()) {
            arns.insert(d.certificate_arn.clone());
        }
        zone_ids.extend(d.hosted_zone_id.clone());
    }
    let target = t.clone();
    let certificates = each(arns.into_iter().collect(), 8, move |arn: String| {
        let t = target.clone();
        async move {
            let c = certificate(&t, &arn).await?;
            Ok((arn, c))
        }
    });
    let target = t.clone();
    let zones = each(zone_ids.into_iter().collect(), 8, move |id: String| {
        let t = target.clone();
        async move {
            let z = zone(&t, &id).await?;
            Ok((id, z))
        }
    });
    let (certificates, zones) = tokio::try_join!(certificates, zones)?;
    Ok(Found {
        certificates: certificates.into_iter().collect(),
        zones: zones.into_iter().collect(),
    })
}

async fn certificate(t: &AwsTarget, arn: &str) -> anyhow::Result<Option<Certificate>> {
    t.pacer.read(ACM_DESCRIBE).await;
    let described = t
        .acm
        .describe_certificate()
        .certificate_arn(arn)
        .send()
        .await;
    let detail = match described {
        Ok(d) => d.certificate,
        Err(e) if is(&e, &["ResourceNotFoundException", "InvalidArnException"]) => None,
        Err(e) => return Err(fail(&format!("ACM DescribeCertificate {arn}"), e)),
    };
    Ok(detail.map(|c| {
        let names = c
            .domain_name()
            .into_iter()
            .chain(c.subject_alternative_names().iter().map(String::as_str))
            .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        Certificate {
            status: c
                .status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            names,
        }
    }))
}

async fn zone(t: &AwsTarget, id: &str) -> anyhow::Result<Option<Zone>> {
    t.pacer.read(ROUTE53_GET_ZONE).await;
    let got = t.route53.get_hosted_zone().id(id).send().await;
    match got {
        Ok(z) => Ok(z.hosted_zone().map(|z| Zone {
            name: z.name().trim_end_matches('.').to_ascii_lowercase(),
            private: z.config().is_some_and(|c| c.private_zone()),
        })),
        Err(e) if is(&e, &["NoSuchHostedZone", "InvalidInput"]) => Ok(None),
        Err(e) => Err(fail(&format!("Route 53 GetHostedZone {id}"), e)),
    }
}

/// The parts of a certificate ARN that say where it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Arn<'a> {
    partition: &'a str,
    region: &'a str,
    account: &'a str,
}

impl<'a> Arn<'a> {
    /// `arn:<partition>:acm:<region>:<account>:certificate/<id>`.
    fn parse(arn: &'a str) -> Option<Arn<'a>> {
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(partition), Some("acm"), Some(region), Some(account), Some(_)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        Some(Arn {
            partition,
            region,
            account,
        })
    }

    /// What a certificate with this ARN needs to be instead, when it cannot
    /// serve a regional domain deployed to `env`: (expected, found).
    fn mismatch(&self, env: &Env) -> Option<(String, String)> {
        if self.partition != env.partition {
            Some((
                format!(
                    "a certificate of partition {} (the deploy region {}'s)",
                    env.partition, env.region
                ),
                format!("one of partition {}", self.partition),
            ))
        } else if self.region != env.region {
            Some((
                format!(
                    "an ACM certificate in {}, the deploy region (a regional custom domain takes its certificate from its API's region)",
                    env.region
                ),
                format!("one in {}", self.region),
            ))
        } else if self.account != env.account {
            Some((
                format!(
                    "an ACM certificate of account {}, the account deploying (API Gateway takes only its own account's certificates)",
                    env.account
                ),
                format!("one of account {}", self.account),
            ))
        } else {
            None
        }
    }
}

/// Whether a certificate name covers a domain: the same name, or a
/// wildcard `*.parent` covering exactly one label below `parent`.
pub fn covers(name: &str, domain: &str) -> bool {
    let (name, domain) = (name.to_ascii_lowercase(), domain.to_ascii_lowercase());
    match name.strip_prefix("*.") {
        Some(parent) => domain
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
        None => name == domain,
    }
}

/// Whether a domain is inside a zone: the zone's apex or below it.
fn inside(domain: &str, zone: &str) -> bool {
    let (domain, zone) = (domain.to_ascii_lowercase(), zone.to_ascii_lowercase());
    domain == zone || domain.ends_with(&format!(".{zone}"))
}

/// Every problem of every tenant's references, given what the account
/// holds. Pure.
pub fn problems(env: &Env, tenants: &[Tenant], found: &Found) -> Vec<TenantError> {
    let mut errors = Vec::new();
    for t in tenants {
        let Some(d) = &t.domain else { continue };
        let arn = d.certificate_arn.as_str();
        let mut certificate = |expected: String, found: String| {
            errors.push(t.key_error("domain.certificate_arn", expected, found));
        };
        match Arn::parse(arn).map(|a| a.mismatch(env)) {
            None => certificate(
                "an ACM certificate ARN (arn:<partition>:acm:<region>:<account>:certificate/<id>)"
                    .into(),
                format!("{arn:?}"),
            ),
            Some(Some((expected, what))) => certificate(expected, format!("{what}: {arn}")),
            Some(None) => match found.certificates.get(arn).cloned().flatten() {
                None => certificate(
                    format!(
                        "an ACM certificate that covers {} in account {}, region {}",
                        d.name, env.account, env.region
                    ),
                    format!("{arn}, which does not exist there"),
                ),
                Some(c) => {
                    if c.status != "ISSUED" {
                        certificate(
                            "an ISSUED certificate (API Gateway refuses one ACM has not validated; finish its validation in ACM, then plan again)".into(),
                            format!("{arn} with status {}", c.status),
                        );
                    }
                    if !c.names.iter().any(|n| covers(n, &d.name)) {
                        certificate(
                            format!("a certificate that covers {}", d.name),
                            format!("{arn} for {}", c.names.join(", ")),
                        );
                    }
                }
            },
        }

        let Some(id) = &d.hosted_zone_id else {
            continue;
        };
        let expected = format!("a public hosted zone that holds {}", d.name);
        let problem = match found.zones.get(id).cloned().flatten() {
            None => Some(format!(
                "{id}, which does not exist in account {}",
                env.account
            )),
            Some(z) if z.private => Some(format!(
                "{id}, the private zone {} (it answers only inside its VPCs)",
                z.name
            )),
            Some(z) if !inside(&d.name, &z.name) => Some(format!(
                "{id}, the zone of {}, which does not hold {}",
                z.name, d.name
            )),
            Some(_) => None,
        };
        if let Some(what) = problem {
            errors.push(t.key_error("domain.hosted_zone_id", expected, what));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const ACCOUNT: &str = "123456789012";

    fn env() -> Env {
        Env::new("eu-west-1", ACCOUNT)
    }

    fn arn(region: &str, account: &str) -> String {
        format!("arn:aws:acm:{region}:{account}:certificate/0c1d2e3f-4a5b-6c7d-8e9f-a0b1c2d3e4f5")
    }

    /// A tenant file in a temporary directory, with a domain.
    fn tenant(dir: &Path, id: &str, certificate: &str, zone: Option<&str>) -> Tenant {
        let zone = zone
            .map(|z| format!("hosted_zone_id = \"{z}\"\n"))
            .unwrap_or_default();
        let text = format!(
            "[tenant]\ndisplay_name = \"T\"\n\n[collection]\nname = \"things\"\n\n\
             [collection.fields]\nname = {{ type = \"string\" }}\n\n\
             [usage_plan]\nrate = 1\nburst = 1\n\n\
             [domain]\nname = \"api.{id}.example.com\"\ncertificate_arn = \"{certificate}\"\n{zone}"
        );
        let path = dir.join(format!("{id}.toml"));
        std::fs::write(&path, text).unwrap();
        Tenant::load(&path).unwrap()
    }

    fn issued(names: &[&str]) -> Option<Certificate> {
        Some(Certificate {
            status: "ISSUED".into(),
            names: names.iter().map(|n| n.to_string()).collect(),
        })
    }

    fn messages(errors: &[TenantError]) -> Vec<String> {
        errors
            .iter()
            .map(|e| {
                let file = e.path.file_name().unwrap().to_string_lossy().into_owned();
                format!("{file}:{}: {}: {} / {}", e.line, e.key, e.expected, e.found)
            })
            .collect()
    }

    #[test]
    fn wildcards_cover_one_label() {
        assert!(covers("api.acme.example.com", "api.acme.example.com"));
        assert!(covers("*.acme.example.com", "api.acme.example.com"));
        assert!(covers("*.ACME.example.com", "api.acme.example.com"));
        assert!(!covers("*.acme.example.com", "acme.example.com"));
        assert!(!covers("*.acme.example.com", "a.api.acme.example.com"));
        assert!(!covers("*.example.com", "api.acme.example.com"));
        assert!(!covers("acme.example.com", "api.acme.example.com"));
    }

    #[test]
    fn a_good_setup_has_no_problem() {
        let dir = tempfile::tempdir().unwrap();
        let cert = arn("eu-west-1", ACCOUNT);
        let t = tenant(dir.path(), "good", &cert, Some("Z123"));
        let found = Found {
            certificates: [(cert, issued(&["*.good.example.com"]))].into(),
            zones: [(
                "Z123".into(),
                Some(Zone {
                    name: "good.example.com".into(),
                    private: false,
                }),
            )]
            .into(),
        };
        assert_eq!(
            messages(&problems(&env(), &[t], &found)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn each_reference_problem_is_located_and_all_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = arn("us-east-1", ACCOUNT);
        let other_account = arn("eu-west-1", "444455556666");
        let missing = arn("eu-west-1", ACCOUNT).replace("0c1d", "ffff");
        let narrow = arn("eu-west-1", ACCOUNT).replace("0c1d", "aaaa");
        let pending = arn("eu-west-1", ACCOUNT).replace("0c1d", "bbbb");
        let ok = arn("eu-west-1", ACCOUNT);
        let tenants = [
            tenant(dir.path(), "a", &elsewhere, None),
            tenant(dir.path(), "b", &other_account, Some("ZGONE")),
            tenant(dir.path(), "c", &missing, Some("ZPRIVATE")),
            tenant(dir.path(), "d", &narrow, Some("ZOTHER")),
            tenant(dir.path(), "e", &pending, None),
            tenant(
                dir.path(),
                "f",
                &ok.replace("arn:aws:", "arn:aws-cn:"),
                None,
            ),
        ];
        let found = Found {
            certificates: [
                (missing.clone(), None),
                (narrow.clone(), issued(&["api.x.example.com"])),
                (
                    pending.clone(),
                    Some(Certificate {
                        status: "PENDING_VALIDATION".into(),
                        names: vec!["api.e.example.com".into()],
                    }),
                ),
            ]
            .into(),
            zones: [
                ("ZGONE".into(), None),
                (
                    "ZPRIVATE".into(),
                    Some(Zone {
                        name: "c.example.com".into(),
                        private: true,
                    }),
                ),
                (
                    "ZOTHER".into(),
                    Some(Zone {
                        name: "other.example.com".into(),
                        private: false,
                    }),
                ),
            ]
            .into(),
        };
        let got = messages(&problems(&env(), &tenants, &found));
        let want = [
            format!("a.toml:16: domain.certificate_arn: an ACM certificate in eu-west-1, the deploy region (a regional custom domain takes its certificate from its API's region) / one in us-east-1: {elsewhere}"),
            format!("b.toml:16: domain.certificate_arn: an ACM certificate of account {ACCOUNT}, the account deploying (API Gateway takes only its own account's certificates) / one of account 444455556666: {other_account}"),
            format!("b.toml:17: domain.hosted_zone_id: a public hosted zone that holds api.b.example.com / ZGONE, which does not exist in account {ACCOUNT}"),
            format!("c.toml:16: domain.certificate_arn: an ACM certificate that covers api.c.example.com in account {ACCOUNT}, region eu-west-1 / {missing}, which does not exist there"),
            "c.toml:17: domain.hosted_zone_id: a public hosted zone that holds api.c.example.com / ZPRIVATE, the private zone c.example.com (it answers only inside its VPCs)".to_owned(),
            format!("d.toml:16: domain.certificate_arn: a certificate that covers api.d.example.com / {narrow} for api.x.example.com"),
            "d.toml:17: domain.hosted_zone_id: a public hosted zone that holds api.d.example.com / ZOTHER, the zone of other.example.com, which does not hold api.d.example.com".to_owned(),
            format!("e.toml:16: domain.certificate_arn: an ISSUED certificate (API Gateway refuses one ACM has not validated; finish its validation in ACM, then plan again) / {pending} with status PENDING_VALIDATION"),
            format!("f.toml:16: domain.certificate_arn: a certificate of partition aws (the deploy region eu-west-1's) / one of partition aws-cn: {}", ok.replace("arn:aws:", "arn:aws-cn:")),
        ];
        assert_eq!(got, want);
    }
}
