//! The OpenAPI document of a tenant's API (placeholder).
use runtime::Tenant;

pub struct Integration;
impl Integration {
    pub fn aws(_region: &str, _account: &str) -> Self {
        Integration
    }
}
pub fn render(_t: &Tenant, _i: &Integration) -> anyhow::Result<String> {
    anyhow::bail!("not yet")
}
