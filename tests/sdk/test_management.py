"""The vault management API through azure-mgmt-keyvault (KeyVaultManagementClient)."""
import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient
from azure.mgmt.keyvault import KeyVaultManagementClient
from azure.mgmt.keyvault.models import (
    Sku, VaultCheckNameAvailabilityParameters, VaultCreateOrUpdateParameters, VaultPatchParameters,
    VaultPatchProperties, VaultProperties,
)

from conftest import remember


def mgmt(server):
    d = server.dev
    return KeyVaultManagementClient(
        server.credential(), d["subscription_id"], base_url=d["management_url"],
        credential_scopes=[d["management_audience"] + "/.default"], connection_verify=d["ca_cert"],
    )


def new_name():
    return f"v{uuid.uuid4().hex[:12]}"


def params(server, location="westeurope", **props):
    props.setdefault("sku", Sku(family="A", name="standard"))
    return VaultCreateOrUpdateParameters(
        location=location, tags={"app": "billing", "env": "test"},
        properties=VaultProperties(tenant_id=server.dev["tenant_id"], **props),
    )


def test_vault_lifecycle(server):
    m = mgmt(server)
    name = new_name()
    assert m.vaults.check_name_availability(VaultCheckNameAvailabilityParameters(name=name)).name_available

    v = m.vaults.begin_create_or_update("rg-app", name, params(server)).result()
    assert v.name == name and v.location == "westeurope"
    assert v.id == f"/subscriptions/{server.dev['subscription_id']}/resourceGroups/rg-app/providers/Microsoft.KeyVault/vaults/{name}"
    assert v.properties.vault_uri == f"https://{name}.vault.localhost:{server.port}/"
    assert v.properties.enable_rbac_authorization is True
    assert v.properties.enable_soft_delete is True
    assert v.properties.soft_delete_retention_in_days == 90
    assert v.properties.enable_purge_protection is True, "purge protection defaults on for new vaults"
    assert v.tags == {"app": "billing", "env": "test"}

    taken = m.vaults.check_name_availability(VaultCheckNameAvailabilityParameters(name=name))
    assert not taken.name_available and taken.reason == "AlreadyExists"
    bad = m.vaults.check_name_availability(VaultCheckNameAvailabilityParameters(name="a_b"))
    assert not bad.name_available and bad.reason == "AccountNameInvalid"

    assert m.vaults.get("rg-app", name).properties.tenant_id == server.dev["tenant_id"]
    assert name in {x.name for x in m.vaults.list_by_resource_group("rg-app")}
    assert name in {x.name for x in m.vaults.list_by_subscription()}
    assert name not in {x.name for x in m.vaults.list_by_resource_group("other-rg")}

    updated = m.vaults.update("rg-app", name, VaultPatchParameters(tags={"env": "prod"}))
    assert updated.tags == {"env": "prod"}

    # The new vault is a real data-plane boundary: it answers at its own host,
    # and its creator (Owner, no data role) cannot read or write secrets there.
    client = SecretClient(f"https://{name}.vault.localhost:{server.port}", server.credential(),
                          connection_verify=server.dev["ca_cert"])
    with pytest.raises(HttpResponseError) as e:
        client.set_secret("x", remember(f"v-{uuid.uuid4().hex}"))
    assert e.value.status_code == 403

    # Soft delete: gone from the lists, listed as deleted, recovered whole.
    m.vaults.delete("rg-app", name)
    with pytest.raises(ResourceNotFoundError):
        m.vaults.get("rg-app", name)
    assert name in {d.name for d in m.vaults.list_deleted()}
    with pytest.raises(ResourceNotFoundError):
        m.vaults.get_deleted(name, "eastus")  # addressed by location and name, as in ARM
    deleted = m.vaults.get_deleted(name, "westeurope")
    assert deleted.properties.purge_protection_enabled is True
    assert deleted.properties.scheduled_purge_date > deleted.properties.deletion_date
    with pytest.raises(HttpResponseError):
        m.vaults.begin_create_or_update("rg-app", name, params(server)).result()  # name reserved
    with pytest.raises(HttpResponseError) as e:
        m.vaults.begin_purge_deleted(name, "westeurope").result()
    assert e.value.status_code == 403, "purge protection refuses purge before retention ends"

    with pytest.raises(HttpResponseError) as e:
        m.vaults.begin_create_or_update("rg-other", name, params(server, create_mode="recover")).result()
    assert e.value.status_code == 400 and "rg-app" in str(e.value), "recovered only into its own resource group"
    recovered = m.vaults.begin_create_or_update("rg-app", name, params(server, create_mode="recover")).result()
    assert recovered.name == name
    assert m.vaults.get("rg-app", name).tags == {"env": "prod"}


def test_purge_without_protection_and_settings_rules(server):
    m = mgmt(server)
    name = new_name()
    v = m.vaults.begin_create_or_update(
        "rg-tmp", name, params(server, soft_delete_retention_in_days=7, enable_purge_protection=False)).result()
    assert v.properties.soft_delete_retention_in_days == 7
    assert not v.properties.enable_purge_protection

    # Retention is fixed at creation; purge protection can be turned on, never off.
    with pytest.raises(HttpResponseError) as e:
        m.vaults.update("rg-tmp", name, VaultPatchParameters(properties=VaultPatchProperties(soft_delete_retention_in_days=30)))
    assert e.value.status_code == 400
    m.vaults.delete("rg-tmp", name)
    m.vaults.begin_purge_deleted(name, "westeurope").result()
    assert name not in {d.name for d in m.vaults.list_deleted()}
    assert m.vaults.check_name_availability(VaultCheckNameAvailabilityParameters(name=name)).name_available


def test_refused_settings(server):
    m = mgmt(server)
    for props, word in [
        ({"enable_rbac_authorization": False}, "RBAC"),
        ({"soft_delete_retention_in_days": 3}, "between 7 and 90"),
        ({"enable_soft_delete": False}, "Soft delete"),
        ({"enabled_for_deployment": True}, "enabledForDeployment"),
        ({"sku": Sku(family="A", name="premium")}, "HSM"),
    ]:
        with pytest.raises(HttpResponseError) as e:
            m.vaults.begin_create_or_update("rg-bad", new_name(), params(server, **props)).result()
        assert e.value.status_code == 400 and word in e.value.message
    with pytest.raises(HttpResponseError) as e:
        m.vaults.begin_create_or_update("rg-bad", new_name(), params(server, location="x" * 300)).result()
    assert e.value.status_code == 400 and "location" in e.value.message
    name = new_name()
    m.vaults.begin_create_or_update("rg-bad", name, params(server)).result()
    # publicNetworkAccess is case-insensitive, as in ARM, and echoed in its canonical form.
    v = m.vaults.update("rg-bad", name, VaultPatchParameters(properties=VaultPatchProperties(public_network_access="disabled")))
    assert v.properties.public_network_access == "Disabled"
    with pytest.raises(HttpResponseError) as e:
        m.vaults.update("rg-bad", name, VaultPatchParameters(properties=VaultPatchProperties(enable_purge_protection=False)))
    assert e.value.status_code == 400 and "cannot be turned off" in e.value.message


def test_management_needs_a_management_token_and_the_right_subscription(server):
    import requests
    d = server.dev
    url = f"{d['management_url']}/subscriptions/{d['subscription_id']}/providers/Microsoft.KeyVault/vaults"
    r = requests.get(url, params={"api-version": "2026-05-15"}, verify=d["ca_cert"])
    assert r.status_code == 401
    # A data-plane token is not a management token.
    r = requests.get(url, params={"api-version": "2026-05-15"}, verify=d["ca_cert"],
                     headers={"Authorization": f"Bearer {server.token()}"})
    assert r.status_code == 401
    mtoken = server.credential().get_token(d["management_audience"] + "/.default").token
    other = url.replace(d["subscription_id"], str(uuid.uuid4()))
    r = requests.get(other, params={"api-version": "2026-05-15"}, verify=d["ca_cert"],
                     headers={"Authorization": f"Bearer {mtoken}"})
    assert r.status_code == 401
    r = requests.get(url, params={"api-version": "1999-01-01"}, verify=d["ca_cert"],
                     headers={"Authorization": f"Bearer {mtoken}"})
    assert r.status_code == 400
