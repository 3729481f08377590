//! The dev-mode PKI: a local certificate authority and a server certificate
//! it signs, both with ECDSA P-256 keys (rcgen over aws-lc-rs).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::CryptoError;

/// PEM-encoded certificates and keys. The private keys zeroize on drop.
pub struct DevPki {
    pub ca_cert_pem: String,
    pub ca_key_pem: Zeroizing<String>,
    pub server_cert_pem: String,
    pub server_key_pem: Zeroizing<String>,
}

fn pki_err(e: rcgen::Error) -> CryptoError {
    CryptoError::Pki(e.to_string())
}

/// Creates a CA valid for ten years and a server certificate it signs, valid
/// for two years, whose subject alternative names are `names` (DNS names,
/// wildcards, or IP addresses).
pub fn generate_dev_pki(names: &[String]) -> Result<DevPki, CryptoError> {
    let now = OffsetDateTime::now_utc();

    let ca_key = KeyPair::generate().map_err(pki_err)?;
    let mut ca_params = CertificateParams::default();
    let mut ca_dn = DistinguishedName::new();
    ca_dn.push(DnType::CommonName, "Keyfort development CA");
    ca_dn.push(DnType::OrganizationName, "Keyfort dev mode");
    ca_params.distinguished_name = ca_dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = now - Duration::days(1);
    ca_params.not_after = now + Duration::days(3650);
    let ca_cert = ca_params.self_signed(&ca_key).map_err(pki_err)?;
    let ca_key_pem = Zeroizing::new(ca_key.serialize_pem());
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().map_err(pki_err)?;
    let mut params = CertificateParams::new(names.to_vec()).map_err(pki_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        names.first().map(String::as_str).unwrap_or("localhost"),
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(730);
    let server_cert = params.signed_by(&server_key, &issuer).map_err(pki_err)?;

    Ok(DevPki {
        ca_cert_pem: ca_cert.pem(),
        ca_key_pem,
        server_cert_pem: server_cert.pem(),
        server_key_pem: Zeroizing::new(server_key.serialize_pem()),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn generates_ca_and_leaf() {
        let names = vec![
            "*.vault.localhost".to_string(),
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ];
        let pki = super::generate_dev_pki(&names).unwrap();
        assert!(pki.ca_cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(
            pki.server_cert_pem
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        assert!(pki.server_key_pem.contains("PRIVATE KEY"));
        assert_ne!(pki.ca_cert_pem, pki.server_cert_pem);
    }
}
