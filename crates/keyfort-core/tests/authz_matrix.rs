//! The authorization matrix: every built-in role against every secrets data
//! action, assigned at the vault scope and at one secret's scope. The expected
//! outcome is written out by hand from Azure's role definitions, not computed
//! by the code under test.

use std::collections::HashSet;
use std::sync::Arc;

use keyfort_core::Keyfort;
use keyfort_core::authz::scope_of;
use keyfort_core::barrier::Barrier;
use keyfort_core::clock::SystemClock;
use keyfort_core::identity::{Caller, IssuerSettings};
use keyfort_core::secrets::actions as a;
use keyfort_core::vaults::NewVault;
use keyfort_crypto::SealingKey;
use keyfort_store::sqlite::SqliteStore;

/// What each built-in role may do with secrets, from its definition.
fn expected(role: &str) -> HashSet<&'static str> {
    let all: HashSet<&str> = a::ALL.iter().copied().collect();
    match role {
        "Key Vault Administrator" | "Key Vault Secrets Officer" => all,
        "Key Vault Secrets User" | "Key Vault Certificate User" => {
            [a::GET, a::READ_METADATA].into()
        }
        "Key Vault Reader" => [a::READ_METADATA].into(),
        _ => HashSet::new(),
    }
}

/// Roles that may be assigned at a single object's scope (all data actions read).
fn object_assignable(role: &str) -> bool {
    matches!(
        role,
        "Key Vault Secrets User" | "Key Vault Certificate User" | "Key Vault Reader"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_builtin_role_against_every_secrets_action() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("db")).unwrap());
    let barrier = Arc::new(Barrier::new(store, SealingKey::generate()));
    let issuer = IssuerSettings {
        base: "https://localhost:1".into(),
        audiences: vec![],
        token_lifetime: 3600,
    };
    let kf = Keyfort::open(barrier, Arc::new(SystemClock), issuer)
        .await
        .unwrap();
    let tenant = kf.identity.create_tenant("t").await.unwrap();
    let vault = kf
        .vaults
        .create(NewVault {
            name: "matrix".into(),
            tenant_id: tenant.id.clone(),
            subscription_id: tenant.subscription_id.clone(),
            resource_group: "rg".into(),
            location: "local".into(),
            retention_days: 7,
            purge_protection: false,
            tags: Default::default(),
        })
        .await
        .unwrap();
    let roles: Vec<_> = kf.authz.builtin_roles().to_vec();
    assert!(
        roles.len() >= 17,
        "13 Key Vault roles and the general management roles"
    );
    let mut checked = 0;
    for role in &roles {
        for at_object in [false, true] {
            let (principal, _) = kf
                .identity
                .create_service_principal(&tenant.id, &role.name)
                .await
                .unwrap();
            let caller = Caller {
                tenant_id: tenant.id.clone(),
                object_id: principal.object_id.clone(),
                app_id: principal.app_id.clone(),
                username: None,
                mfa: false,
            };
            let scope = scope_of(&vault, at_object.then_some(("secrets", "target")));
            let assigned = kf
                .authz
                .assign(&tenant.id, &principal.object_id, &role.id, &scope, 0)
                .await;
            if at_object && !object_assignable(&role.name) {
                assert!(
                    assigned.is_err(),
                    "{} must not be assignable to one secret",
                    role.name
                );
            } else {
                assert!(
                    assigned.is_ok(),
                    "assigning {} failed: {:?}",
                    role.name,
                    assigned.as_ref().err()
                );
            }
            let want = if assigned.is_ok() {
                expected(&role.name)
            } else {
                HashSet::new()
            };
            for action in a::ALL {
                // On the secret the assignment names...
                let on_target = kf
                    .authz
                    .authorize(&caller, &vault, action, Some(("secrets", "Target")))
                    .await
                    .is_ok();
                assert_eq!(
                    on_target,
                    want.contains(action),
                    "{} / {action} on its secret (object scope: {at_object})",
                    role.name
                );
                // ...and on another secret, which an object-scoped assignment does not cover.
                let on_other = kf
                    .authz
                    .authorize(&caller, &vault, action, Some(("secrets", "other")))
                    .await
                    .is_ok();
                assert_eq!(
                    on_other,
                    !at_object && want.contains(action),
                    "{} / {action} on another secret",
                    role.name
                );
                checked += 2;
            }
            // Vault-level operations (list, restore) need a vault-scope grant.
            let list = kf
                .authz
                .authorize(&caller, &vault, a::READ_METADATA, None)
                .await
                .is_ok();
            assert_eq!(
                list,
                !at_object && want.contains(a::READ_METADATA),
                "{} lists the vault",
                role.name
            );
        }
    }
    assert!(checked >= 17 * 2 * 9 * 2);
}
