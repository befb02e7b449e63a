//! What a tenant file points to, checked by `plan` and `apply` before the
//! first write: the domain's certificate (exists, in the deploy region and
//! account, ISSUED, covers the domain) and hosted zone (exists, public,
//! holds the domain). Every run goes through the fault proxy, without
//! faults, for its count of calls by operation.

use std::collections::BTreeMap;
use std::process::Output;

use apifactory_tests::fault_proxy::{FaultConfig, FaultProxy, OperationCount, is_mutating};
use apifactory_tests::{moto_url, sdk_config};
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecordSet, RrType,
};

use apifactory_tests::aws::{converge, observe_and_plan, scope};
use apifactory_tests::fleet::{Fleet, certificate, target, text, zone};

/// The account moto acts in, as the AWS target sees it.
async fn account() -> String {
    target().await.env.account.clone()
}

async fn proxy() -> FaultProxy {
    FaultProxy::start(&moto_url(), FaultConfig::with_rate(0.0)).await
}

/// The mutating calls the proxy saw, by `service:Operation`.
fn writes(proxy: &FaultProxy) -> BTreeMap<String, OperationCount> {
    proxy
        .stats()
        .operations()
        .into_iter()
        .filter(|(key, _)| is_mutating(key.split_once(':').map_or(key.as_str(), |(_, op)| op)))
        .collect()
}

/// The calls of one `service:Operation`.
fn calls(proxy: &FaultProxy, operation: &str) -> u64 {
    proxy
        .stats()
        .operations()
        .get(operation)
        .map_or(0, |c| c.calls)
}

fn failed_with(out: &Output, lines: &[String]) {
    let err = text(&out.stderr);
    assert!(!out.status.success(), "the run failed: {err}");
    for line in lines {
        assert!(err.contains(line.as_str()), "{line}\nnot in:\n{err}");
    }
    assert!(
        err.contains(&format!(
            "{} problem(s) with what the tenant files point to; nothing was changed",
            lines.len()
        )),
        "{err}"
    );
}

/// An apply nobody confirms runs pipelined: each tenant whose domain it
/// would make stops at its own problems, before its first write, and says
/// so, each problem at its file, line and key.
fn stopped_with(out: &Output, lines: &[String]) {
    let err = text(&out.stderr);
    assert!(!out.status.success(), "the run failed: {err}");
    for line in lines {
        assert!(err.contains(line.as_str()), "{line}\nnot in:\n{err}");
    }
    assert!(
        err.contains("not applied: ")
            && err.contains("problem(s) with what the tenant files point to; nothing was changed"),
        "{err}"
    );
}

/// The shipped `bookshop` as a new user would deploy it: its certificate
/// and hosted zone are the example's, not the account's. moto would take
/// both (CreateDomainName accepts any certificate ARN), so without the
/// check the apply makes the tenant's table, role, functions and API and
/// then fails at the alias record with NoSuchHostedZone.
#[tokio::test]
async fn the_shipped_bookshop_on_a_fresh_account_fails_plan_at_its_lines_and_apply_writes_nothing()
{
    let fleet = Fleet::verbatim(&["bookshop"]);
    let file = fleet.path("bookshop").display().to_string();
    let account = account().await;
    let proxy = proxy().await;

    let expected = [
        format!(
            "{file}:31:19: `domain.certificate_arn`: expected an ACM certificate of account \
             {account}, the account deploying (API Gateway takes only its own account's \
             certificates), found one of account 444455556666: \
             arn:aws:acm:us-east-1:444455556666:certificate/0c1d2e3f-4a5b-6c7d-8e9f-a0b1c2d3e4f5"
        ),
        format!(
            "{file}:33:18: `domain.hosted_zone_id`: expected a public hosted zone that holds \
             catalogue.pageturner.example, found Z04471233QGYVXCD9ET6H, which does not exist in \
             account {account}"
        ),
    ];
    let plan = fleet
        .command("plan", &[], proxy.url(), "off")
        .output()
        .await;
    failed_with(&plan, &expected);
    let apply = fleet
        .command("apply", &[], proxy.url(), "off")
        .output()
        .await;
    stopped_with(&apply, &expected);

    assert_eq!(writes(&proxy), BTreeMap::new(), "no mutating call");
    // The zone was read, once per run; the certificate of another account
    // was not (the deploy account's ACM cannot describe it).
    assert_eq!(calls(&proxy, "route53:GetHostedZone"), 2);
    assert_eq!(calls(&proxy, "acm:DescribeCertificate"), 0);
}

/// A certificate in another region, one that does not cover the domain,
/// and a private zone: each its own message at its own line, all in one
/// run, and nothing written.
#[tokio::test]
async fn a_certificate_elsewhere_or_too_narrow_and_a_private_zone_each_fail_plan() {
    let fleet = Fleet::new(&["acme", "bookshop", "events"]).await;
    let proxy = proxy().await;
    let domain = |original: &str| fleet.tenant(original).domain.unwrap();

    // acme: a certificate for its domain, in eu-west-1 (the deploy region
    // is us-east-1).
    let acme = domain("acme");
    let elsewhere = certificate("eu-west-1", &acme.name, &[]).await;
    fleet.edit("acme", &acme.certificate_arn, &elsewhere);

    // events: a certificate of the deploy region for another name.
    let events = domain("events");
    let narrow = certificate("us-east-1", "other.gigbox.example.org", &[]).await;
    fleet.edit("events", &events.certificate_arn, &narrow);

    // bookshop: a private zone of the domain's parent.
    let bookshop = domain("bookshop");
    let parent = bookshop.name.split_once('.').unwrap().1;
    let private = zone(parent, true).await;
    fleet.edit(
        "bookshop",
        bookshop.hosted_zone_id.as_deref().unwrap(),
        &private,
    );

    let path = |original: &str| fleet.path(original).display().to_string();
    let expected = [
        format!(
            "{}:31:19: `domain.certificate_arn`: expected an ACM certificate in us-east-1, the \
             deploy region (a regional custom domain takes its certificate from its API's \
             region), found one in eu-west-1: {elsewhere}",
            path("acme")
        ),
        format!(
            "{}:33:18: `domain.hosted_zone_id`: expected a public hosted zone that holds {}, \
             found {private}, the private zone {parent} (it answers only inside its VPCs)",
            path("bookshop"),
            bookshop.name
        ),
        format!(
            "{}:32:19: `domain.certificate_arn`: expected a certificate that covers {}, found \
             {narrow} for other.gigbox.example.org",
            path("events"),
            events.name
        ),
    ];
    let plan = fleet
        .command("plan", &[], proxy.url(), "off")
        .output()
        .await;
    failed_with(&plan, &expected);
    let apply = fleet
        .command("apply", &[], proxy.url(), "off")
        .output()
        .await;
    stopped_with(&apply, &expected);
    assert_eq!(writes(&proxy), BTreeMap::new(), "no mutating call");
}

/// Certificates and zones that fit pass, and each is read once per run
/// however many tenants name it.
#[tokio::test]
async fn a_good_setup_passes_and_each_reference_is_read_once() {
    let fleet = Fleet::new(&["bookshop", "fleet"]).await;
    let bookshop = fleet.tenant("bookshop").domain.unwrap();
    let haulier = fleet.tenant("fleet").domain.unwrap();
    // One certificate for both domains (ACM takes up to 10 names).
    let shared = certificate("us-east-1", &bookshop.name, &[&haulier.name]).await;
    fleet.edit("bookshop", &bookshop.certificate_arn, &shared);
    fleet.edit("fleet", &haulier.certificate_arn, &shared);

    let proxy = proxy().await;
    let plan = fleet
        .command("plan", &[], proxy.url(), "off")
        .output()
        .await;
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    let out = text(&plan.stdout);
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("+ domain") && l.ends_with(&bookshop.name)),
        "{out}"
    );
    assert_eq!(calls(&proxy, "acm:DescribeCertificate"), 1);
    assert_eq!(calls(&proxy, "route53:GetHostedZone"), 1);
    assert_eq!(writes(&proxy), BTreeMap::new(), "plan reads only");
}

/// ListHostedZones lists private zones too. An alias record of the domain
/// in a private zone (split-horizon DNS someone set up) is not the record
/// apifactory manages: observe must not report that zone as the domain's,
/// or a tenant without `hosted_zone_id` plans to delete that record on
/// every run.
#[tokio::test]
async fn a_private_zone_holding_the_domain_is_not_the_domains_zone() {
    let fleet = Fleet::new(&["acme"]).await;
    let target = target().await;
    let d = fleet.desired(&[]);
    let opts = scope(fleet.scope());
    converge(&target, &d, &opts).await;

    let config = sdk_config().await;
    let name = fleet.tenant("acme").domain.unwrap().name;
    let domain = aws_sdk_apigateway::Client::new(&config)
        .get_domain_name()
        .domain_name(&name)
        .send()
        .await
        .unwrap();
    let private = zone(name.split_once('.').unwrap().1, true).await;
    let record = ResourceRecordSet::builder()
        .name(&name)
        .r#type(RrType::A)
        .alias_target(
            AliasTarget::builder()
                .hosted_zone_id(domain.regional_hosted_zone_id().unwrap())
                .dns_name(domain.regional_domain_name().unwrap())
                .evaluate_target_health(false)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    aws_sdk_route53::Client::new(&config)
        .change_resource_record_sets()
        .hosted_zone_id(&private)
        .change_batch(
            ChangeBatch::builder()
                .changes(
                    Change::builder()
                        .action(ChangeAction::Upsert)
                        .resource_record_set(record)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let p = observe_and_plan(&target, &d, &opts).await;
    assert!(p.is_empty(), "{p}");
}
