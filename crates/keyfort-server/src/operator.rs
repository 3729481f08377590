//! `keyfort operator init`: prepares a production node before its first
//! start. It creates the root key file if there is none, then provisions a
//! tenant, a vault (purge protection on by default) and an administrator
//! service principal, and returns the principal's secret to show once.
//! Run it while the server is stopped: a running node caches what it has read.

use crate::bootstrap::{self, Provisioned, VaultPlan};
use crate::config::Config;
use crate::http::Site;
use crate::keyfile;
use crate::serve::{self, BoxError};

pub struct InitRequest {
    pub tenant_name: String,
    pub vault: VaultPlan,
}

pub struct InitOutput {
    pub provisioned: Provisioned,
    pub vault_url: String,
    pub authority: String,
    pub audience: String,
    pub root_key_created: bool,
}

pub async fn init(config: &Config, req: InitRequest) -> Result<InitOutput, BoxError> {
    let root_key_created = !config.seal.key_file.exists();
    if root_key_created {
        keyfile::create(&config.seal.key_file).map_err(|e| {
            format!(
                "cannot create the root key file {}: {e}",
                config.seal.key_file.display()
            )
        })?;
    }
    let setup = serve::setup_from_config(config)?;
    let site: Site = setup.site.clone();
    let (state, _) = serve::open(setup).await?;
    let provisioned = bootstrap::provision(&state.kf, &req.tenant_name, req.vault).await?;
    Ok(InitOutput {
        vault_url: site.vault_url(&provisioned.vault.name),
        authority: site.issuer_base.clone(),
        audience: site.data_audience(),
        provisioned,
        root_key_created,
    })
}
