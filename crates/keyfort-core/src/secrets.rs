//! Secrets: versioned values with Azure Key Vault's attribute semantics.
//! The lifecycle (versions, soft delete, recovery, purge, backup) is the one
//! every object shares ([`crate::objects`]); this module adds what is
//! particular to secrets: the value and its limits, the content type, and
//! that a disabled secret does not reveal its value.

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::barrier::Barrier;
use crate::clock::Clock;
use crate::model::{SecretMeta, Tags, Vault};
pub use crate::objects::{AttributeChanges, MAX_BACKUP_VERSIONS, MAX_TAGS, Page};
use crate::objects::{ObjectKind, ObjectMeta, ObjectView, Objects, check_tags};
use crate::{Error, Result};

/// Azure's data actions for secrets, one per kind of operation.
pub mod actions {
    pub const GET: &str = "Microsoft.KeyVault/vaults/secrets/getSecret/action";
    pub const SET: &str = "Microsoft.KeyVault/vaults/secrets/setSecret/action";
    pub const READ_METADATA: &str = "Microsoft.KeyVault/vaults/secrets/readMetadata/action";
    pub const UPDATE: &str = "Microsoft.KeyVault/vaults/secrets/update/action";
    pub const DELETE: &str = "Microsoft.KeyVault/vaults/secrets/delete";
    pub const BACKUP: &str = "Microsoft.KeyVault/vaults/secrets/backup/action";
    pub const RESTORE: &str = "Microsoft.KeyVault/vaults/secrets/restore/action";
    pub const RECOVER: &str = "Microsoft.KeyVault/vaults/secrets/recover/action";
    pub const PURGE: &str = "Microsoft.KeyVault/vaults/secrets/purge/action";
    /// Every secrets data action the API exposes.
    pub const ALL: &[&str] = &[
        GET,
        SET,
        READ_METADATA,
        UPDATE,
        DELETE,
        BACKUP,
        RESTORE,
        RECOVER,
        PURGE,
    ];
}

/// Azure's limit on a secret value.
pub const MAX_VALUE_BYTES: usize = 25 * 1024;
pub const MAX_CONTENT_TYPE: usize = 255;

pub struct SetSecret {
    pub value: Zeroizing<String>,
    pub content_type: Option<String>,
    pub tags: Option<Tags>,
    pub attributes: AttributeChanges,
}

#[derive(Default)]
pub struct UpdateSecret {
    pub content_type: Option<String>,
    pub tags: Option<Tags>,
    pub attributes: AttributeChanges,
}

/// Secrets as a kind of vault object.
pub struct SecretKind;

impl ObjectKind for SecretKind {
    type Meta = SecretMeta;
    type Value = Zeroizing<String>;
    const NOUN: &'static str = "secret";
    const TITLE: &'static str = "Secret";
    const COLLECTION: &'static str = "secrets";
    const NOT_FOUND: &'static str = "SecretNotFound";
}

impl ObjectMeta for SecretMeta {
    fn version(&self) -> &str {
        &self.version
    }
    fn attributes(&self) -> &crate::model::Attributes {
        &self.attributes
    }
    fn attributes_mut(&mut self) -> &mut crate::model::Attributes {
        &mut self.attributes
    }
}

/// What the API shows of a secret version.
pub type SecretView = ObjectView<SecretMeta, Zeroizing<String>>;

/// The secrets of every vault. The shared lifecycle (list, delete, recover,
/// purge, backup, ...) is reached through `Deref`.
pub struct Secrets {
    objects: Objects<SecretKind>,
}

impl std::ops::Deref for Secrets {
    type Target = Objects<SecretKind>;
    fn deref(&self) -> &Self::Target {
        &self.objects
    }
}

fn check_metadata(
    content_type: Option<&String>,
    tags: Option<&Tags>,
    changes: &AttributeChanges,
) -> Result<()> {
    if let Some(ct) = content_type
        && ct.chars().count() > MAX_CONTENT_TYPE
    {
        return Err(Error::bad(format!(
            "contentType is longer than {MAX_CONTENT_TYPE} characters."
        )));
    }
    check_tags("secret", tags)?;
    changes.validate()
}

impl Secrets {
    pub fn new(barrier: Arc<Barrier>, clock: Arc<dyn Clock>) -> Self {
        Secrets {
            objects: Objects::new(barrier, clock),
        }
    }

    /// Creates a new version and makes it the latest.
    pub async fn set(&self, vault: &Vault, name: &str, req: SetSecret) -> Result<SecretView> {
        Objects::<SecretKind>::check_name(name)?;
        if req.value.len() > MAX_VALUE_BYTES {
            return Err(Error::bad(format!(
                "The secret value is {} bytes; the maximum is {MAX_VALUE_BYTES} bytes (25 KB).",
                req.value.len()
            )));
        }
        check_metadata(
            req.content_type.as_ref(),
            req.tags.as_ref(),
            &req.attributes,
        )?;
        let meta = |now, version| {
            Ok(SecretMeta {
                version,
                attributes: req.attributes.new_attributes(now)?,
                content_type: req.content_type.clone(),
                tags: req.tags.clone(),
            })
        };
        self.objects
            .add_version(vault, name, meta, req.value.clone())
            .await
    }

    /// A version's value and metadata. `version` None means the latest.
    /// A disabled version refuses to reveal its value.
    pub async fn get(
        &self,
        vault: &Vault,
        name: &str,
        version: Option<&str>,
    ) -> Result<SecretView> {
        let view = self.objects.read(vault, name, version).await?;
        if !view.meta.attributes.enabled {
            return Err(Error::Forbidden {
                message: "Operation get is not allowed on a disabled secret.".into(),
                inner: Some("SecretDisabled"),
            });
        }
        // nbf and exp are advisory for secrets, as in Azure: a value staged
        // ahead of a rotation, or past its expiry, can still be read.
        Ok(view)
    }

    /// Changes a version's attributes, content type or tags; never its value.
    pub async fn update(
        &self,
        vault: &Vault,
        name: &str,
        version: Option<&str>,
        req: UpdateSecret,
    ) -> Result<SecretView> {
        check_metadata(
            req.content_type.as_ref(),
            req.tags.as_ref(),
            &req.attributes,
        )?;
        let edit = |meta: &mut SecretMeta| {
            if req.content_type.is_some() {
                meta.content_type = req.content_type.clone();
            }
            if req.tags.is_some() {
                meta.tags = req.tags.clone();
            }
            Ok(())
        };
        self.objects
            .update(vault, name, version, &req.attributes, edit)
            .await
    }
}
