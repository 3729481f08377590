//! Keyfort's domain, independent of HTTP: vaults and their key hierarchy,
//! secrets and their lifecycle, identity and tokens, authorization, audit
//! records and backups. The HTTP layer maps requests onto [`Keyfort`] and
//! renders what it returns; a unit test can drive all of it without a socket.

pub mod audit;
pub mod authz;
pub mod backup;
pub mod barrier;
pub mod clock;
pub mod error;
pub mod identity;
pub mod model;
pub mod names;
pub mod secrets;
pub mod vaults;

use std::sync::Arc;

pub use error::{Error, Result};

use crate::authz::Authorizer;
use crate::barrier::Barrier;
use crate::clock::Clock;
use crate::identity::{Identity, IssuerSettings};
use crate::secrets::Secrets;
use crate::vaults::Vaults;

/// Everything a running node holds: one handle per service over one store.
pub struct Keyfort {
    pub clock: Arc<dyn Clock>,
    pub barrier: Arc<Barrier>,
    pub vaults: Vaults,
    pub identity: Identity,
    pub authz: Authorizer,
    pub secrets: Secrets,
}

impl Keyfort {
    /// Opens the services over an unsealed barrier.
    pub async fn open(
        barrier: Arc<Barrier>,
        clock: Arc<dyn Clock>,
        issuer: IssuerSettings,
    ) -> Result<Self> {
        let vaults = Vaults::new(barrier.clone(), clock.clone());
        let identity = Identity::open(barrier.clone(), clock.clone(), issuer).await?;
        let authz = Authorizer::new(barrier.clone());
        let secrets = Secrets::new(barrier.clone(), clock.clone());
        Ok(Keyfort {
            clock,
            barrier,
            vaults,
            identity,
            authz,
            secrets,
        })
    }
}
