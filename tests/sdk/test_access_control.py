"""The data-plane RBAC API through KeyVaultAccessControlClient, against a vault URL."""
import base64
import json
import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.administration import (
    KeyVaultAccessControlClient, KeyVaultDataAction, KeyVaultPermission, KeyVaultRoleScope,
)

SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"


def oid_of(server):
    payload = server.token().split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["oid"]


@pytest.fixture(scope="module")
def acl(server):
    return KeyVaultAccessControlClient(server.dev["vault_url"], server.credential(),
                                       connection_verify=server.dev["ca_cert"])


def test_builtin_role_definitions(acl):
    defs = {d.role_name: d for d in acl.list_role_definitions(KeyVaultRoleScope.GLOBAL)}
    assert "Key Vault Secrets User" in defs and "Key Vault Administrator" in defs and "Owner" in defs
    user = defs["Key Vault Secrets User"]
    assert user.name == SECRETS_USER
    assert user.role_type == "AKVBuiltInRole"
    assert "Microsoft.KeyVault/vaults/secrets/getSecret/action" in user.permissions[0].data_actions
    got = acl.get_role_definition(KeyVaultRoleScope.GLOBAL, SECRETS_USER)
    assert got.role_name == "Key Vault Secrets User"
    with pytest.raises(ResourceNotFoundError):
        acl.get_role_definition(KeyVaultRoleScope.GLOBAL, str(uuid.uuid4()))


def test_assignment_lifecycle_at_object_scope(acl, server):
    me = oid_of(server)
    user = acl.get_role_definition("/", SECRETS_USER)
    name = uuid.uuid4()
    created = acl.create_role_assignment("/secrets/db-password", user.id, me, name=name)
    assert created.name == str(name)
    assert created.properties.scope == "/secrets/db-password"
    assert created.properties.principal_id == me
    assert created.properties.role_definition_id.endswith(SECRETS_USER)

    got = acl.get_role_assignment("/", name)
    assert got.properties.role_definition_id == created.properties.role_definition_id
    at_object = {a.name for a in acl.list_role_assignments("/secrets/db-password")}
    assert str(name) in at_object
    assert str(name) in {a.name for a in acl.list_role_assignments(KeyVaultRoleScope.GLOBAL)}
    assert str(name) not in {a.name for a in acl.list_role_assignments("/secrets/other")}

    # The same assignment twice is a conflict.
    with pytest.raises(HttpResponseError) as e:
        acl.create_role_assignment("/secrets/db-password", user.id, me)
    assert e.value.status_code == 409

    acl.delete_role_assignment("/", name)
    with pytest.raises(ResourceNotFoundError):
        acl.get_role_assignment("/", name)


def test_object_scope_accepts_only_read_roles(acl, server):
    me = oid_of(server)
    officer = acl.get_role_definition("/", SECRETS_OFFICER)
    with pytest.raises(HttpResponseError) as e:
        acl.create_role_assignment("/secrets/db-password", officer.id, me)
    assert e.value.status_code == 400
    assert "single object" in e.value.message
    # Nor just in time: an eligibility on one object takes only read roles too.
    from test_identity import cli
    r = cli(server, "pim", "eligible", "create", "--role", "Key Vault Administrator", "--assignee", me,
            "--secret", "db-password")
    assert r.returncode == 1 and "single object" in r.stderr, r.stderr
    # At the vault scope it is fine.
    a = acl.create_role_assignment("/", officer.id, me)
    # An assignment is deleted at its own scope (or above), not through one object's scope.
    with pytest.raises(HttpResponseError) as e:
        acl.delete_role_assignment("/secrets/db-password", a.name)
    assert e.value.status_code == 400 and "delete it at its own scope" in e.value.message
    assert acl.get_role_assignment("/", a.name).name == a.name
    acl.delete_role_assignment("/", a.name)


def test_unknown_principal_and_role_are_refused(acl, server):
    with pytest.raises(HttpResponseError) as e:
        acl.create_role_assignment("/", acl.get_role_definition("/", SECRETS_USER).id, str(uuid.uuid4()))
    assert e.value.status_code == 400
    with pytest.raises(HttpResponseError) as e:
        acl.create_role_assignment("/", str(uuid.uuid4()), oid_of(server))
    assert e.value.status_code == 400


def test_custom_role_definition(acl, server):
    name = uuid.uuid4()
    role = acl.set_role_definition(
        KeyVaultRoleScope.GLOBAL, name=name, role_name=f"secret-reader-{name.hex[:6]}",
        description="reads secrets",
        permissions=[KeyVaultPermission(data_actions=["Microsoft.KeyVault/vaults/secrets/getSecret/action"])],
    )
    assert role.role_type == "CustomRole"
    assert role.permissions[0].data_actions == ["Microsoft.KeyVault/vaults/secrets/getSecret/action"]
    assert role.name == str(name)
    assert str(name) in {d.name for d in acl.list_role_definitions("/")}

    # A custom read-only role may go on one object; while assigned it cannot be deleted.
    a = acl.create_role_assignment("/secrets/x", role.id, oid_of(server))
    with pytest.raises(HttpResponseError) as e:
        acl.delete_role_definition("/", name)
    assert e.value.status_code == 409
    acl.delete_role_assignment("/", a.name)
    acl.delete_role_definition("/", name)
    with pytest.raises(ResourceNotFoundError):
        acl.get_role_definition("/", name)

    # Built-in roles cannot be changed.
    with pytest.raises(HttpResponseError) as e:
        acl.set_role_definition("/", name=SECRETS_USER, role_name="mine")
    assert e.value.status_code == 403
