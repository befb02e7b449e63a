//! The function's deployment package exactly as the AWS target builds it
//! (`apifactory::aws::package`: `bootstrap` and `tenant.toml`, deflated,
//! byte-for-byte reproducible), written to a file for the benchmark to
//! weigh.
//!
//!   bench-package BOOTSTRAP TENANT_FILE OUT_ZIP

use std::path::Path;

use apifactory::aws::package::Package;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, tenant, out] = args.as_slice() else {
        anyhow::bail!("usage: bench-package BOOTSTRAP TENANT_FILE OUT_ZIP");
    };
    let package = Package::from_artifact(Path::new(bootstrap))?;
    let source = std::fs::read_to_string(tenant)?;
    let zip = package.zip(&source)?;
    std::fs::write(out, &zip)?;
    println!("{}", zip.len());
    Ok(())
}
