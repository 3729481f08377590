"""The keys API through azure-keyvault-keys: keys are created, imported and
rotated in the vault, and every cryptographic result is checked with the
`cryptography` package on this side, so a wrong signature, ciphertext or
public key cannot pass."""
import base64
import hashlib
import time
import uuid

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.keyvault.keys import JsonWebKey, KeyClient, KeyCurveName, KeyOperation
from azure.keyvault.keys.crypto import (CryptographyClient, EncryptionAlgorithm, KeyWrapAlgorithm,
                                        SignatureAlgorithm)
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from conftest import remember


def unique(prefix="k"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def as_int(b: bytes) -> int:
    return int.from_bytes(b, "big")


def public_key(jwk: JsonWebKey):
    """The `cryptography` public key for a JWK the vault returned."""
    if jwk.kty in ("RSA", "RSA-HSM"):
        return rsa.RSAPublicNumbers(as_int(jwk.e), as_int(jwk.n)).public_key()
    curve = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1(),
             "P-256K": ec.SECP256K1()}[jwk.crv]
    return ec.EllipticCurvePublicNumbers(as_int(jwk.x), as_int(jwk.y), curve).public_key()


@pytest.fixture(scope="module")
def keys(server):
    return KeyClient(server.dev["vault_url"], server.credential(), connection_verify=server.dev["ca_cert"])


def remote(server, key_id):
    """A CryptographyClient that must go to the vault for every operation
    (given only an id, without 'get' rights to the key it cannot work locally;
    here it has them, so it may verify and encrypt locally: see local_only)."""
    return CryptographyClient(key_id, server.credential(), connection_verify=server.dev["ca_cert"])


def rest(server, method, path, body=None):
    """A raw call, for operations the SDK would do locally."""
    return requests.request(method, f"{server.dev['vault_url']}{path}", params={"api-version": "7.6"},
                            json=body, headers={"Authorization": f"Bearer {server.token()}"},
                            verify=server.dev["ca_cert"])


def test_create_rsa_and_ec_keys_with_their_public_halves(keys, server):
    name = unique("rsa")
    key = keys.create_rsa_key(name, size=3072, tags={"app": "billing"})
    assert key.key_type == "RSA" and key.name == name
    assert key.id == f"{server.dev['vault_url']}/keys/{name}/{key.properties.version}"
    assert sorted(key.key_operations) == sorted(["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"])
    assert public_key(key.key).key_size == 3072
    assert key.key.d is None and key.key.p is None, "a private member never leaves the vault"
    assert key.properties.tags == {"app": "billing"}
    assert key.properties.recovery_level == "CustomizedRecoverable+Purgeable"

    for curve, size in [(KeyCurveName.p_256, 256), (KeyCurveName.p_384, 384), (KeyCurveName.p_521, 521),
                        (KeyCurveName.p_256_k, 256)]:
        ec_key = keys.create_ec_key(unique("ec"), curve=curve)
        assert ec_key.key.crv == curve and ec_key.key_type == "EC"
        assert public_key(ec_key.key).curve.key_size == size
        assert sorted(ec_key.key_operations) == ["sign", "verify"]

    got = keys.get_key(name)
    assert got.id == key.id and got.key.n == key.key.n


def test_rsa_operations_check_out_locally(keys, server):
    key = keys.create_rsa_key(unique("ops"), size=2048)
    pub = public_key(key.key)
    crypto = remote(server, key.id)
    # Encrypted here with the public key, decrypted by the vault.
    for alg, pad in [
        (EncryptionAlgorithm.rsa_oaep, padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None)),
        (EncryptionAlgorithm.rsa_oaep_256, padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)),
        (EncryptionAlgorithm.rsa1_5, padding.PKCS1v15()),
    ]:
        plaintext = remember(f"plain-{uuid.uuid4().hex}").encode()
        ciphertext = pub.encrypt(plaintext, pad)
        assert crypto.decrypt(alg, ciphertext).plaintext == plaintext
        # And the vault's own encryption round-trips.
        r = rest(server, "POST", f"/keys/{key.name}/{key.properties.version}/encrypt",
                 {"alg": alg, "value": b64(plaintext)})
        assert r.status_code == 200, r.text
        assert r.json()["kid"] == key.id
        assert crypto.decrypt(alg, unb64(r.json()["value"])).plaintext == plaintext

    cek = remember(uuid.uuid4().hex).encode()
    wrapped = crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, cek)
    assert crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped.encrypted_key).key == cek

    # Signatures made by the vault verify here, with the public key it returned.
    for alg, h, pad in [
        (SignatureAlgorithm.rs256, hashes.SHA256(), padding.PKCS1v15()),
        (SignatureAlgorithm.rs512, hashes.SHA512(), padding.PKCS1v15()),
        (SignatureAlgorithm.ps384, hashes.SHA384(),
         padding.PSS(padding.MGF1(hashes.SHA384()), hashes.SHA384().digest_size)),
    ]:
        digest = hashlib.new(h.name, b"the message").digest()
        signature = crypto.sign(alg, digest).signature
        pub.verify(signature, b"the message", pad, h)  # raises if wrong
        r = rest(server, "POST", f"/keys/{key.name}/{key.properties.version}/verify",
                 {"alg": alg, "digest": b64(digest), "value": b64(signature)})
        assert r.json() == {"value": True}
        r = rest(server, "POST", f"/keys/{key.name}/{key.properties.version}/verify",
                 {"alg": alg, "digest": b64(hashlib.new(h.name, b"other").digest()), "value": b64(signature)})
        assert r.json() == {"value": False}


def test_ec_signatures_check_out_locally(keys, server):
    for curve, alg, h in [(KeyCurveName.p_256, SignatureAlgorithm.es256, hashes.SHA256()),
                          (KeyCurveName.p_384, SignatureAlgorithm.es384, hashes.SHA384()),
                          (KeyCurveName.p_521, SignatureAlgorithm.es512, hashes.SHA512()),
                          (KeyCurveName.p_256_k, SignatureAlgorithm.es256_k, hashes.SHA256())]:
        key = keys.create_ec_key(unique("sig"), curve=curve)
        digest = hashlib.new(h.name, b"payload").digest()
        signature = remote(server, key.id).sign(alg, digest).signature
        half = len(signature) // 2  # JOSE form: r || s
        der = encode_dss_signature(as_int(signature[:half]), as_int(signature[half:]))
        public_key(key.key).verify(der, b"payload", ec.ECDSA(h))
    # An EC key does not encrypt: its default key_ops say so, and when they
    # allow it anyway the key type still refuses.
    r = rest(server, "POST", f"/keys/{key.name}//encrypt", {"alg": "RSA-OAEP", "value": b64(b"x")})
    assert r.status_code == 403 and "key_ops are [sign, verify]" in r.json()["error"]["message"]
    odd = keys.create_ec_key(unique("odd"), key_operations=["sign", "encrypt"])
    r = rest(server, "POST", f"/keys/{odd.name}//encrypt", {"alg": "RSA-OAEP", "value": b64(b"x")})
    assert r.status_code == 400 and "EC keys" in r.json()["error"]["message"]


def test_imported_keys_sign_as_their_owner_expects(keys, server):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    n = private.private_numbers()
    to_b = lambda i: i.to_bytes((i.bit_length() + 7) // 8, "big")
    jwk = JsonWebKey(kty="RSA", n=to_b(n.public_numbers.n), e=to_b(n.public_numbers.e), d=to_b(n.d),
                     p=to_b(n.p), q=to_b(n.q), dp=to_b(n.dmp1), dq=to_b(n.dmq1), qi=to_b(n.iqmp),
                     key_ops=["sign", "verify"])
    remember(b64(to_b(n.d)))
    name = unique("imp")
    imported = keys.import_key(name, jwk)
    assert imported.key.n == jwk.n and imported.key.d is None
    assert sorted(imported.key_operations) == ["sign", "verify"]
    digest = hashlib.sha256(b"hello").digest()
    signature = remote(server, imported.id).sign(SignatureAlgorithm.rs256, digest).signature
    private.public_key().verify(signature, b"hello", padding.PKCS1v15(), hashes.SHA256())
    # key_ops limits what the key may do.
    r = rest(server, "POST", f"/keys/{name}//encrypt", {"alg": "RSA-OAEP", "value": b64(b"x")})
    assert r.status_code == 403 and "not permitted" in r.json()["error"]["message"]

    ec_private = ec.generate_private_key(ec.SECP256R1())
    numbers = ec_private.private_numbers()
    ec_jwk = JsonWebKey(kty="EC", crv="P-256", x=numbers.public_numbers.x.to_bytes(32, "big"),
                        y=numbers.public_numbers.y.to_bytes(32, "big"), d=numbers.private_value.to_bytes(32, "big"))
    remember(b64(numbers.private_value.to_bytes(32, "big")))
    ec_key = keys.import_key(unique("impec"), ec_jwk)
    digest = hashlib.sha256(b"ec").digest()
    sig = remote(server, ec_key.id).sign(SignatureAlgorithm.es256, digest).signature
    ec_private.public_key().verify(encode_dss_signature(as_int(sig[:32]), as_int(sig[32:])), b"ec",
                                   ec.ECDSA(hashes.SHA256()))

    # A JWK whose public half does not match its private half is refused.
    bad = JsonWebKey(kty="EC", crv="P-256", x=ec_jwk.x, y=ec_jwk.y, d=(numbers.private_value ^ 1).to_bytes(32, "big"))
    with pytest.raises(HttpResponseError) as e:
        keys.import_key(unique("bad"), bad)
    assert e.value.status_code == 400


def test_versions_rotation_and_update(keys, server):
    name = unique("rot")
    first = keys.create_ec_key(name, curve=KeyCurveName.p_384, tags={"env": "test"})
    second = keys.rotate_key(name)
    assert second.properties.version != first.properties.version
    assert second.key.crv == "P-384" and second.key.x != first.key.x
    assert second.properties.tags == {"env": "test"}
    versions = {v.version for v in keys.list_properties_of_key_versions(name)}
    assert versions == {first.properties.version, second.properties.version}
    assert keys.get_key(name).properties.version == second.properties.version
    assert keys.get_key(name, first.properties.version).key.x == first.key.x

    updated = keys.update_key_properties(name, first.properties.version, enabled=False,
                                         key_operations=[KeyOperation.verify], tags={"env": "prod"})
    assert updated.properties.enabled is False and updated.key_operations == ["verify"]
    assert keys.get_key(name, first.properties.version).properties.tags == {"env": "prod"}
    # A disabled key can be read but does nothing.
    r = rest(server, "POST", f"/keys/{name}/{first.properties.version}/sign",
             {"alg": "ES384", "value": b64(hashlib.sha384(b"x").digest())})
    assert r.status_code == 403 and r.json()["error"]["innererror"]["code"] == "KeyDisabled"
    # The latest version was untouched.
    assert keys.get_key(name).properties.enabled is True
    assert name in {k.name for k in keys.list_properties_of_keys()}


def test_expired_keys_only_undo(keys, server):
    name = unique("exp")
    past = time.time() - 3600
    import datetime
    key = keys.create_rsa_key(name, size=2048, expires_on=datetime.datetime.fromtimestamp(past, datetime.timezone.utc))
    pub = public_key(key.key)
    digest = hashlib.sha256(b"old").digest()
    r = rest(server, "POST", f"/keys/{name}//sign", {"alg": "RS256", "value": b64(digest)})
    assert r.status_code == 403 and r.json()["error"]["innererror"]["code"] == "KeyExpired"
    r = rest(server, "POST", f"/keys/{name}//encrypt", {"alg": "RSA-OAEP", "value": b64(b"x")})
    assert r.status_code == 403
    # Old ciphertext can still be read.
    ciphertext = pub.encrypt(b"archived", padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None))
    r = rest(server, "POST", f"/keys/{name}//decrypt", {"alg": "RSA-OAEP", "value": b64(ciphertext)})
    assert r.status_code == 200 and unb64(r.json()["value"]) == b"archived"


def test_bad_requests_change_nothing(keys, server):
    name = unique("bad")
    for body in [{"kty": "oct"}, {"kty": "RSA-HSM"}, {"kty": "RSA", "key_size": 1024},
                 {"kty": "EC", "crv": "P-999"}, {"kty": "RSA", "key_ops": ["fly"]},
                 {"kty": "RSA", "public_exponent": 3}]:
        r = rest(server, "POST", f"/keys/{name}/create", body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["code"] == "BadParameter"
    with pytest.raises(ResourceNotFoundError) as e:
        keys.get_key(name)
    assert e.value.error.code == "KeyNotFound"
    key = keys.create_rsa_key(name, size=2048)
    for alg, digest in [("RS256", b"short"), ("ES256", hashlib.sha256(b"x").digest()), ("XX1", b"")]:
        r = rest(server, "POST", f"/keys/{name}//sign", {"alg": alg, "value": b64(digest)})
        assert r.status_code == 400, (alg, r.text)
    r = rest(server, "POST", f"/keys/{name}//decrypt", {"alg": "RSA-OAEP", "value": b64(b"\x01" * 256)})
    assert r.status_code == 400
    assert keys.get_key(name).properties.version == key.properties.version
    assert len(list(keys.list_properties_of_key_versions(name))) == 1


def test_delete_recover_purge_backup_restore(keys, server):
    name = unique("life")
    key = keys.create_rsa_key(name, size=2048)
    deleted = keys.begin_delete_key(name).result()
    assert deleted.recovery_id == f"{server.dev['vault_url']}/deletedkeys/{name}"
    assert deleted.key.n == key.key.n
    assert name in {k.name for k in keys.list_deleted_keys()}
    with pytest.raises(ResourceExistsError):
        keys.create_rsa_key(name)
    keys.begin_recover_deleted_key(name).result()
    assert keys.get_key(name).key.n == key.key.n

    blob = keys.backup_key(name)
    assert key.key.n not in blob
    with pytest.raises(ResourceExistsError):
        keys.restore_key_backup(blob)
    keys.begin_delete_key(name).result()
    keys.purge_deleted_key(name)
    with pytest.raises(ResourceNotFoundError):
        keys.get_deleted_key(name)
    restored = keys.restore_key_backup(blob)
    assert restored.name == name and restored.key.n == key.key.n
    # The restored key still decrypts what the original encrypted.
    ciphertext = public_key(key.key).encrypt(b"kept", padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None))
    assert remote(server, restored.id).decrypt(EncryptionAlgorithm.rsa_oaep_256, ciphertext).plaintext == b"kept"
    # A key blob is not a secret blob.
    r = requests.post(f"{server.dev['vault_url']}/secrets/restore", params={"api-version": "7.6"},
                      json={"value": b64(blob)}, headers={"Authorization": f"Bearer {server.token()}"},
                      verify=server.dev["ca_cert"])
    assert r.status_code == 400 and "holds a key" in r.json()["error"]["message"]


def test_cli_signs_verifies_and_wraps(server):
    from test_identity import cli, cli_json
    name = unique("cli")
    created = cli_json(server, "key", "create", "--name", name, "--kty", "RSA", "--size", "2048",
                       "--op", "sign", "--op", "verify", "--op", "wrapKey", "--op", "unwrapKey")
    assert created["key"]["kty"] == "RSA" and created["key"]["key_ops"] == ["sign", "verify", "wrapKey", "unwrapKey"]
    digest = b64(hashlib.sha256(b"cli").digest())
    signed = cli_json(server, "key", "crypto", "sign", "--name", name, "--alg", "RS256", "--value", digest)
    assert signed["kid"] == created["key"]["kid"]
    ok = cli(server, "key", "verify", "--name", name, "--alg", "RS256", "--digest", digest,
             "--signature", signed["value"])
    assert ok.returncode == 0 and ok.stdout.strip() == "valid"
    other = b64(hashlib.sha256(b"other").digest())
    bad = cli(server, "key", "verify", "--name", name, "--alg", "RS256", "--digest", other,
              "--signature", signed["value"])
    assert bad.returncode == 1 and bad.stdout.strip() == "invalid"
    cek = b64(b"\x07" * 32)
    wrapped = cli_json(server, "key", "crypto", "wrapkey", "--name", name, "--alg", "RSA-OAEP", "--value", cek)
    unwrapped = cli_json(server, "key", "crypto", "unwrapkey", "--name", name, "--alg", "RSA-OAEP",
                         "--value", wrapped["value"])
    assert unwrapped["value"] == cek
    # key_ops without encrypt: refused with Azure's error, one clear line.
    refused = cli(server, "key", "crypto", "encrypt", "--name", name, "--alg", "RSA-OAEP", "--value", cek)
    assert refused.returncode == 1 and "not permitted" in refused.stderr
    listed = cli_json(server, "key", "list")
    assert any(k["kid"].endswith(f"/keys/{name}") for k in listed)
