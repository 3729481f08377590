"""The certificates API through azure-keyvault-certificates. Every certificate
the vault issues is parsed and checked with the `cryptography` package here,
and its private key is read back the way Azure users do: through the
certificate's secret."""
import base64
import datetime
import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.keyvault.certificates import (CertificateClient, CertificateContentType, CertificatePolicy,
                                         KeyType, WellKnownIssuerNames)
from azure.keyvault.keys import KeyClient
from azure.keyvault.secrets import SecretClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import remember


def unique(prefix="c"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def certs(server):
    return CertificateClient(server.dev["vault_url"], server.credential(), connection_verify=server.dev["ca_cert"])


@pytest.fixture(scope="module")
def secrets(server):
    return SecretClient(server.dev["vault_url"], server.credential(), connection_verify=server.dev["ca_cert"])


def public_der(key):
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_self_signed_default_policy_with_its_secret_and_key(certs, secrets, server):
    name = unique("self")
    cert = certs.begin_create_certificate(name, CertificatePolicy.get_default(), tags={"app": "web"}).result()
    parsed = x509.load_der_x509_certificate(bytes(cert.cer))
    assert parsed.subject.rfc4514_string() == "CN=DefaultPolicy"
    assert parsed.issuer == parsed.subject, "self-signed"
    parsed.verify_directly_issued_by(parsed)  # its own signature checks out
    assert cert.properties.x509_thumbprint == parsed.fingerprint(hashes.SHA1())
    assert cert.properties.tags == {"app": "web"}
    assert cert.policy.issuer_name == "Self" and cert.policy.content_type == CertificateContentType.pkcs12
    assert cert.key_id == f"{server.dev['vault_url']}/keys/{name}/{cert.properties.version}"
    assert cert.secret_id == f"{server.dev['vault_url']}/secrets/{name}/{cert.properties.version}"
    months = (parsed.not_valid_after_utc - parsed.not_valid_before_utc).days
    assert 360 <= months <= 366, "12 months by default"
    assert cert.properties.expires_on == parsed.not_valid_after_utc

    # The private key comes back through the certificate's secret, as a PFX without a password.
    secret = secrets.get_secret(name)
    assert secret.properties.content_type == "application/x-pkcs12"
    assert secret.properties.managed is True and secret.properties.key_id == cert.key_id
    key, leaf, _ = pkcs12.load_key_and_certificates(base64.b64decode(secret.value), None)
    remember(secret.value)
    assert leaf.fingerprint(hashes.SHA256()) == parsed.fingerprint(hashes.SHA256())
    assert public_der(key.public_key()) == public_der(parsed.public_key())

    # And the public key through the certificate's key.
    kv_key = KeyClient(server.dev["vault_url"], server.credential(), connection_verify=server.dev["ca_cert"]).get_key(name)
    assert int.from_bytes(kv_key.key.n, "big") == parsed.public_key().public_numbers().n
    assert kv_key.properties.managed is True

    assert name in {c.name for c in certs.list_properties_of_certificates()}
    op = certs.get_certificate_operation(name)
    assert op.status == "completed" and op.target.endswith(f"/certificates/{name}")


def test_ec_pem_policy_with_sans_and_usages(certs, secrets):
    name = unique("pem")
    policy = CertificatePolicy(
        issuer_name=WellKnownIssuerNames.self, subject="CN=api.example.com, O=Contoso",
        san_dns_names=["api.example.com", "www.example.com"], key_type=KeyType.ec, key_curve_name="P-384",
        content_type=CertificateContentType.pem, validity_in_months=3,
        enhanced_key_usage=["1.3.6.1.5.5.7.3.1"], key_usage=["digitalSignature"])
    cert = certs.begin_create_certificate(name, policy).result()
    parsed = x509.load_der_x509_certificate(bytes(cert.cer))
    assert parsed.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "api.example.com"
    assert parsed.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Contoso"
    sans = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["api.example.com", "www.example.com"]
    eku = parsed.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert isinstance(parsed.public_key(), ec.EllipticCurvePublicKey) and parsed.public_key().curve.name == "secp384r1"
    assert 85 <= (parsed.not_valid_after_utc - parsed.not_valid_before_utc).days <= 93

    pem = secrets.get_secret(name).value
    remember(pem)
    assert "PRIVATE KEY-----" in pem and "BEGIN CERTIFICATE-----" in pem
    key = serialization.load_pem_private_key(pem.encode(), None)
    assert public_der(key.public_key()) == public_der(parsed.public_key())

    got = certs.get_certificate_policy(name)
    assert got.san_dns_names == ["api.example.com", "www.example.com"] and got.key_curve_name == "P-384"


def self_signed_locally(cn):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=90)).sign(key, hashes.SHA256()))
    return key, cert


def test_import_pfx_with_password_and_pem(certs, secrets):
    key, cert = self_signed_locally("imported.example.com")
    pfx = pkcs12.serialize_key_and_certificates(
        b"imp", key, cert, None, serialization.BestAvailableEncryption(b"pfx-password-1"))
    name = unique("imp")
    imported = certs.import_certificate(name, pfx, password="pfx-password-1")
    assert bytes(imported.cer) == cert.public_bytes(serialization.Encoding.DER)
    assert imported.policy.issuer_name == "Unknown"
    back, leaf, _ = pkcs12.load_key_and_certificates(base64.b64decode(secrets.get_secret(name).value), None)
    assert back.private_numbers() == key.private_numbers()

    with pytest.raises(HttpResponseError) as e:
        certs.import_certificate(unique("imp"), pfx, password="wrong")
    assert e.value.status_code == 400

    pem_key, pem_cert = self_signed_locally("pem.example.com")
    pem = (pem_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
           + pem_cert.public_bytes(serialization.Encoding.PEM))
    remember(pem_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()).decode().splitlines()[1])
    pem_name = unique("imppem")
    policy = CertificatePolicy(issuer_name="Unknown", content_type=CertificateContentType.pem)
    got = certs.import_certificate(pem_name, pem, policy=policy)
    assert bytes(got.cer) == pem_cert.public_bytes(serialization.Encoding.DER)
    assert got.policy.content_type == CertificateContentType.pem


def test_signing_request_merged_with_what_a_ca_signed(certs):
    name = unique("csr")
    policy = CertificatePolicy(issuer_name=WellKnownIssuerNames.unknown, subject="CN=internal.example.com",
                               san_dns_names=["internal.example.com"])
    op = certs.begin_create_certificate(name, policy).result()
    assert op.status.lower() == "inprogress" and op.csr
    csr = x509.load_der_x509_csr(bytes(op.csr))
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=internal.example.com"
    with pytest.raises(ResourceNotFoundError):
        certs.get_certificate(name)

    ca_key, ca_cert = self_signed_locally("Test CA")
    now = datetime.datetime.now(datetime.timezone.utc)
    signed = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca_cert.subject)
              .public_key(csr.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
              .sign(ca_key, hashes.SHA256()))
    # A certificate for another key is refused.
    _, stranger = self_signed_locally("stranger")
    with pytest.raises(HttpResponseError) as e:
        certs.merge_certificate(name, [stranger.public_bytes(serialization.Encoding.DER)])
    assert e.value.status_code == 400
    merged = certs.merge_certificate(name, [signed.public_bytes(serialization.Encoding.DER),
                                            ca_cert.public_bytes(serialization.Encoding.DER)])
    assert bytes(merged.cer) == signed.public_bytes(serialization.Encoding.DER)
    assert certs.get_certificate_operation(name).status == "completed"
    assert certs.get_certificate(name).properties.version == merged.properties.version


def test_cancelled_request_cannot_be_merged(certs):
    name = unique("cancel")
    policy = CertificatePolicy(issuer_name=WellKnownIssuerNames.unknown, subject="CN=x")
    certs.begin_create_certificate(name, policy).result()
    cancelled = certs.cancel_certificate_operation(name)
    assert cancelled.cancellation_requested and cancelled.status == "cancelled"
    _, other = self_signed_locally("x")
    with pytest.raises(HttpResponseError):
        certs.merge_certificate(name, [other.public_bytes(serialization.Encoding.DER)])
    certs.delete_certificate_operation(name)
    with pytest.raises(ResourceNotFoundError):
        certs.get_certificate_operation(name)


def test_versions_update_policy_lifecycle_and_backup(certs):
    name = unique("life")
    first = certs.begin_create_certificate(name, CertificatePolicy.get_default()).result()
    second = certs.begin_create_certificate(name, CertificatePolicy.get_default()).result()
    assert first.properties.version != second.properties.version
    versions = {v.version for v in certs.list_properties_of_certificate_versions(name)}
    assert versions == {first.properties.version, second.properties.version}

    updated = certs.update_certificate_properties(name, first.properties.version, enabled=False, tags={"t": "1"})
    assert updated.properties.enabled is False and updated.properties.tags == {"t": "1"}
    assert certs.get_certificate(name).properties.enabled is True, "the latest is another version"

    policy = certs.update_certificate_policy(name, CertificatePolicy(
        issuer_name="Self", subject="CN=renewed", content_type=CertificateContentType.pem, validity_in_months=6))
    assert policy.subject == "CN=renewed" and policy.content_type == CertificateContentType.pem
    assert certs.get_certificate_policy(name).validity_in_months == 6

    with pytest.raises(HttpResponseError) as e:
        certs.begin_create_certificate(unique("bad"), CertificatePolicy(
            issuer_name="DigiCert", subject="CN=x")).result()
    assert e.value.status_code == 400 and "not supported" in e.value.message

    blob = certs.backup_certificate(name)
    deleted = certs.begin_delete_certificate(name).result()
    assert deleted.recovery_id.endswith(f"/deletedcertificates/{name}")
    with pytest.raises(ResourceExistsError):
        certs.begin_create_certificate(name, CertificatePolicy.get_default()).result()
    certs.begin_recover_deleted_certificate(name).result()
    certs.begin_delete_certificate(name).result()
    certs.purge_deleted_certificate(name)
    restored = certs.restore_certificate_backup(blob)
    assert restored.name == name and bytes(restored.cer) == bytes(second.cer)


def test_cli_creates_merges_and_imports(server, tmp_path):
    from test_identity import cli, cli_json
    name = unique("cli")
    made = cli_json(server, "certificate", "create", "--name", name, "--subject", "CN=cli.example.com",
                    "--dns", "cli.example.com", "--kty", "EC", "--curve", "P-256", "--content-type", "pem")
    parsed = x509.load_der_x509_certificate(base64.b64decode(made["cer"]))
    assert parsed.subject.rfc4514_string() == "CN=cli.example.com"
    assert made["policy"]["secret_props"]["contentType"] == "application/x-pem-file"
    assert any(c["id"].endswith(f"/certificates/{name}") for c in cli_json(server, "certificate", "list"))

    # A signing request, signed by a local CA and merged from a PEM file.
    csr_name = unique("clicsr")
    op = cli_json(server, "certificate", "create", "--name", csr_name, "--subject", "CN=ca-signed",
                  "--issuer", "Unknown")
    assert op["status"] == "inProgress"
    csr = x509.load_der_x509_csr(base64.b64decode(op["csr"]))
    ca_key, ca_cert = self_signed_locally("CLI CA")
    now = datetime.datetime.now(datetime.timezone.utc)
    signed = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca_cert.subject)
              .public_key(csr.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
              .sign(ca_key, hashes.SHA256()))
    chain = tmp_path / "chain.pem"
    chain.write_bytes(signed.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM))
    merged = cli_json(server, "certificate", "merge", "--name", csr_name, "--file", str(chain))
    assert base64.b64decode(merged["cer"]) == signed.public_bytes(serialization.Encoding.DER)

    # A PFX with a password, read from standard input.
    key, cert = self_signed_locally("pfx.example.com")
    pfx = tmp_path / "c.pfx"
    pfx.write_bytes(pkcs12.serialize_key_and_certificates(
        b"c", key, cert, None, serialization.BestAvailableEncryption(b"cli-pfx-pass")))
    imported = cli_json(server, "certificate", "import", "--name", unique("clipfx"), "--file", str(pfx),
                        "--password-stdin", stdin="cli-pfx-pass")
    assert base64.b64decode(imported["cer"]) == cert.public_bytes(serialization.Encoding.DER)
    wrong = cli(server, "certificate", "import", "--name", unique("clipfx"), "--file", str(pfx),
                "--password-stdin", stdin="nope")
    assert wrong.returncode == 1 and "password" in wrong.stderr


def test_a_certificates_key_signs_and_its_name_is_its_own(certs, secrets, server):
    import hashlib
    from azure.keyvault.keys.crypto import CryptographyClient, SignatureAlgorithm
    from cryptography.hazmat.primitives.asymmetric import padding
    name = unique("signer")
    cert = certs.begin_create_certificate(name, CertificatePolicy.get_default()).result()
    digest = hashlib.sha256(b"signed by a certificate's key").digest()
    crypto = CryptographyClient(cert.key_id, server.credential(), connection_verify=server.dev["ca_cert"])
    signature = crypto.sign(SignatureAlgorithm.rs256, digest).signature
    parsed = x509.load_der_x509_certificate(bytes(cert.cer))
    parsed.public_key().verify(signature, b"signed by a certificate's key", padding.PKCS1v15(), hashes.SHA256())

    # The certificate's secret and key are its own: no plain secret or key may take the name,
    # and no certificate the name of a plain secret.
    with pytest.raises(ResourceExistsError):
        secrets.set_secret(name, remember(f"shadow-{uuid.uuid4().hex}"))
    keys = KeyClient(server.dev["vault_url"], server.credential(), connection_verify=server.dev["ca_cert"])
    with pytest.raises(ResourceExistsError):
        keys.create_rsa_key(name)
    plain = unique("plain")
    secrets.set_secret(plain, remember(f"plain-{uuid.uuid4().hex}"))
    with pytest.raises(ResourceExistsError):
        certs.begin_create_certificate(plain, CertificatePolicy.get_default()).result()


def test_review_fixes_hold(certs, secrets, server):
    import concurrent.futures
    import requests as rq
    # Non-exportable keys are refused rather than quietly exported.
    with pytest.raises(HttpResponseError) as e:
        certs.begin_create_certificate(unique("noexp"), CertificatePolicy(
            issuer_name="Self", subject="CN=x", exportable=False, key_type=KeyType.rsa)).result()
    assert e.value.status_code == 400 and "exportable" in e.value.message

    # outContentType converts a certificate's secret.
    name = unique("conv")
    certs.begin_create_certificate(name, CertificatePolicy.get_default()).result()
    r = rq.get(f"{server.dev['vault_url']}/secrets/{name}",
               params={"api-version": "7.6", "outContentType": "application/x-pem-file"},
               headers={"Authorization": f"Bearer {server.token()}"}, verify=server.dev["ca_cert"])
    assert r.status_code == 200 and r.json()["contentType"] == "application/x-pem-file"
    remember(r.json()["value"])
    assert "PRIVATE KEY-----" in r.json()["value"]

    # A policy PATCH merges member by member.
    patched = certs.update_certificate_policy(name, CertificatePolicy(validity_in_months=24))
    assert patched.validity_in_months == 24 and patched.subject == "CN=DefaultPolicy"

    # Concurrent merges of one request make one version.
    csr_name = unique("race")
    op = certs.begin_create_certificate(csr_name, CertificatePolicy(
        issuer_name="Unknown", subject="CN=race")).result()
    csr = x509.load_der_x509_csr(bytes(op.csr))
    ca_key, ca_cert = self_signed_locally("Race CA")
    now = datetime.datetime.now(datetime.timezone.utc)
    signed = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca_cert.subject)
              .public_key(csr.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
              .sign(ca_key, hashes.SHA256())).public_bytes(serialization.Encoding.DER)

    def merge():
        try:
            certs.merge_certificate(csr_name, [signed])
            return "ok"
        except HttpResponseError as err:
            return err.status_code
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(lambda _: merge(), range(4)))
    assert outcomes.count("ok") == 1, outcomes
    assert len(list(certs.list_properties_of_certificate_versions(csr_name))) == 1

    # A pending request goes with its certificate when that is purged.
    pending = unique("gone")
    certs.begin_create_certificate(pending, CertificatePolicy.get_default()).result()
    certs.begin_create_certificate(pending, CertificatePolicy(issuer_name="Unknown", subject="CN=renew")).result()
    certs.begin_delete_certificate(pending).result()
    with pytest.raises(ResourceExistsError):
        certs.begin_create_certificate(pending, CertificatePolicy(issuer_name="Unknown", subject="CN=x")).result()
    certs.purge_deleted_certificate(pending)
    with pytest.raises(ResourceNotFoundError):
        certs.get_certificate_operation(pending)


def test_listings_show_a_certificates_secret_and_key_as_managed(certs, secrets, server):
    import requests as rq
    prefix = unique("mix")
    certs.begin_create_certificate(f"{prefix}-b", CertificatePolicy.get_default()).result()
    for n in ("a", "c", "d"):
        secrets.set_secret(f"{prefix}-{n}", remember(f"mix-{uuid.uuid4().hex}"))
    listed = {p.name: p for p in secrets.list_properties_of_secrets() if p.name.startswith(prefix)}
    assert sorted(listed) == [f"{prefix}-{n}" for n in "abcd"]
    assert listed[f"{prefix}-b"].managed is True and listed[f"{prefix}-b"].content_type == "application/x-pkcs12"
    assert not listed[f"{prefix}-a"].managed
    # Pages of one merge both sources in name order, each name once.
    names, url = [], f"{server.dev['vault_url']}/secrets?api-version=7.6&maxresults=2"
    headers = {"Authorization": f"Bearer {server.token()}"}
    while url:
        page = rq.get(url, headers=headers, verify=server.dev["ca_cert"]).json()
        assert len(page["value"]) <= 2
        names += [i["id"].rsplit("/", 1)[1] for i in page["value"]]
        url = page.get("nextLink")
    assert names == sorted(names, key=str.lower) and len(names) == len(set(names))
    assert [n for n in names if n.startswith(prefix)] == [f"{prefix}-{n}" for n in "abcd"]
    keys = KeyClient(server.dev["vault_url"], server.credential(), connection_verify=server.dev["ca_cert"])
    managed = [k for k in keys.list_properties_of_keys() if k.name == f"{prefix}-b"]
    assert len(managed) == 1 and managed[0].managed is True
