//! The X.509 side of Key Vault certificates: self-signed certificates and
//! PKCS#10 requests made from a policy, reading a certificate's properties,
//! and a certificate's secret in its two content types, PEM
//! (`application/x-pem-file`) and PKCS#12 (`application/x-pkcs12`).
//!
//! Certificates and requests are built and signed by rcgen over aws-lc-rs,
//! read by x509-parser, and PFX files read and written by p12-keystore
//! (PBES2 with AES-256-CBC and an HMAC-SHA-256 MAC when writing; PBES2, 3DES
//! and RC2-40 when reading). Before p12-keystore reads a PFX, `pfx_limits`
//! walks it with the RustCrypto ASN.1 types and refuses files that would be
//! costly to read; to see inside password-encrypted safes it decrypts them
//! with the same RustCrypto primitives p12-keystore uses. Nothing
//! cryptographic is written here.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{self, EcdsaKeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use p12_keystore::{KeyStore, KeyStoreEntry, Pkcs12Archive, PrivateKeyChain};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber, SignatureAlgorithm,
};
use rustls_pki_types::PrivatePkcs8KeyDer;
use time::{Date, Month, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::asn1_rs::{Any, FromDer, Tag};
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::Oid;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::{SubjectPublicKeyInfo, X509Name};
use zeroize::{Zeroize, Zeroizing};

use crate::CryptoError;
use crate::keys::{Curve, KeyKind, KeyMaterial};

/// What a certificate policy asks for: the subject, its alternative names,
/// usages and validity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertRequest {
    /// An X.500 distinguished name as Key Vault takes it, e.g.
    /// `CN=app.example.com, O=Contoso, OU=IT, L=Redmond, ST=WA, C=US`.
    /// Attributes are separated by `,` or `;`; values may be quoted (`"..."`)
    /// or use RFC 4514 backslash escapes. The most specific RDN comes first
    /// (RFC 4514 order), so `C` is encoded first and `CN` last. May be empty
    /// only when there is at least one subject alternative name.
    pub subject: String,
    pub dns_names: Vec<String>,
    pub emails: Vec<String>,
    /// User principal names (the Microsoft UPN otherName).
    pub upns: Vec<String>,
    pub uris: Vec<String>,
    pub ip_addresses: Vec<String>,
    /// Extended key usage OIDs in dotted form, e.g. `1.3.6.1.5.5.7.3.1`.
    pub ekus: Vec<String>,
    /// Key Vault `KeyUsageType` names, e.g. `digitalSignature`. They are
    /// written into the key usage extension as given; `keyCertSign` does
    /// not make a CA: certificates and requests are always for an end
    /// entity, with no basicConstraints.
    pub key_usage: Vec<String>,
    /// 1 to 1200 (self-signed certificates only; a CSR has no validity).
    pub validity_months: u32,
    /// notBefore, Unix seconds.
    pub not_before: i64,
}

/// What Key Vault reports about a certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertInfo {
    pub not_before: i64,
    pub not_after: i64,
    /// The subject as `CN=app.example.com, O=Contoso, C=US`: RFC 4514
    /// order (the last encoded RDN first) and escaping, with Key Vault's
    /// keywords (`E` for emailAddress, `ST`, `SERIALNUMBER`, ...) and
    /// dotted OIDs for other attribute types.
    pub subject: String,
    /// The issuer, in the same form as `subject`.
    pub issuer: String,
    /// SHA-1 of the DER certificate (the `x5t`).
    pub thumbprint_sha1: Vec<u8>,
    pub dns_names: Vec<String>,
    pub emails: Vec<String>,
    pub upns: Vec<String>,
    pub uris: Vec<String>,
    pub ip_addresses: Vec<String>,
    /// Extended key usage OIDs, dotted.
    pub ekus: Vec<String>,
    /// Key usages as Key Vault `KeyUsageType` names.
    pub key_usage: Vec<String>,
}

/// Microsoft's user principal name otherName (szOID_NT_PRINCIPAL_NAME).
const UPN_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 311, 20, 2, 3];
const MAX_VALIDITY_MONTHS: u32 = 1200;

fn bad(message: impl Into<String>) -> CryptoError {
    CryptoError::BadInput(message.into())
}

/// A caller-supplied value, shortened so an error message stays short.
fn shown(value: &str) -> String {
    let short: String = value.chars().take(64).collect();
    format!("{short:?}")
}

// ---------------------------------------------------------------------------
// Distinguished names

#[derive(Clone, Copy, PartialEq, Eq)]
enum ValueKind {
    Utf8,
    Printable,
    Ia5,
    Country,
}

struct AttributeDef {
    /// The keyword written by `inspect`.
    keyword: &'static str,
    /// Every keyword accepted (upper case), the canonical one included.
    aliases: &'static [&'static str],
    oid: &'static [u64],
    kind: ValueKind,
}

static ATTRIBUTES: &[AttributeDef] = &[
    AttributeDef {
        keyword: "CN",
        aliases: &["CN", "COMMONNAME"],
        oid: &[2, 5, 4, 3],
        kind: ValueKind::Utf8,
    },
    AttributeDef {
        keyword: "SN",
        aliases: &["SN", "SURNAME"],
        oid: &[2, 5, 4, 4],
        kind: ValueKind::Utf8,
    },
    AttributeDef {
        keyword: "SERIALNUMBER",
        aliases: &["SERIALNUMBER"],
        oid: &[2, 5, 4, 5],
        kind: ValueKind::Printable,
    },
    AttributeDef {
        keyword: "C",
        aliases: &["C", "COUNTRYNAME"],
        oid: &[2, 5, 4, 6],
        kind: ValueKind::Country,
    },
    AttributeDef {
        keyword: "L",
        aliases: &["L", "LOCALITYNAME"],
        oid: &[2, 5, 4, 7],
        kind: ValueKind::Utf8,
    },
    AttributeDef {
        keyword: "ST",
        aliases: &["ST", "S", "STATEORPROVINCENAME"],
        oid: &[2, 5, 4, 8],
        kind: ValueKind::Utf8,
    },
    AttributeDef {
        keyword: "STREET",
        aliases: &["STREET", "STREETADDRESS"],
        oid: &[2, 5, 4, 9],
        kind: ValueKind::Utf8,
    },
    AttributeDef {
        keyword: "O",
        aliases: &["O", "ORGANIZATIONNAME"],
        oid: &[2, 5, 4, 10],
        kind: ValueKind::Utf8,
    },
    AttributeDef {
        keyword: "OU",
        aliases: &["OU", "ORGANIZATIONALUNITNAME"],
        oid: &[2, 5, 4, 11],
        kind: ValueKind::Utf8,
    },
    AttributeDef {
        keyword: "T",
        aliases: &["T", "TITLE"],
        oid: &[2, 5, 4, 12],
        kind: ValueKind::Utf8,
    },
    AttributeDef {
        keyword: "POSTALCODE",
        aliases: &["POSTALCODE"],
        oid: &[2, 5, 4, 17],
        kind: ValueKind::Utf8,
    },
    AttributeDef {
        keyword: "G",
        aliases: &["G", "GN", "GIVENNAME"],
        oid: &[2, 5, 4, 42],
        kind: ValueKind::Utf8,
    },
    AttributeDef {
        keyword: "I",
        aliases: &["I", "INITIALS"],
        oid: &[2, 5, 4, 43],
        kind: ValueKind::Utf8,
    },
    AttributeDef {
        keyword: "DC",
        aliases: &["DC", "DOMAINCOMPONENT"],
        oid: &[0, 9, 2342, 19_200_300, 100, 1, 25],
        kind: ValueKind::Ia5,
    },
    AttributeDef {
        keyword: "UID",
        aliases: &["UID", "USERID"],
        oid: &[0, 9, 2342, 19_200_300, 100, 1, 1],
        kind: ValueKind::Utf8,
    },
    AttributeDef {
        keyword: "E",
        aliases: &["E", "EMAIL", "EMAILADDRESS"],
        oid: &[1, 2, 840, 113_549, 1, 9, 1],
        kind: ValueKind::Ia5,
    },
];

/// Parses a Key Vault subject into rcgen's form. Each attribute becomes its
/// own RDN. As in RFC 4514 (and .NET's `X500DistinguishedName`, which Key
/// Vault follows), the string names the most specific RDN first, so
/// `CN=app, O=Contoso, C=US` is encoded C, O, CN, as OpenSSL's
/// `-subj /C=US/O=Contoso/CN=app` is.
fn parse_subject(subject: &str) -> Result<DistinguishedName, CryptoError> {
    let mut dn = DistinguishedName::new();
    for (oid, kind, keyword, value) in parse_dn_attributes(subject)?.into_iter().rev() {
        let ty = DnType::from_oid(&oid);
        if dn.get(&ty).is_some() {
            return Err(CryptoError::Unsupported(format!(
                "the subject names {keyword} more than once; each attribute type may appear once"
            )));
        }
        let value = match kind {
            ValueKind::Utf8 => DnValue::Utf8String(value),
            ValueKind::Country => {
                if value.len() != 2 || !value.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err(bad(format!(
                        "the subject's C must be a two-letter country code, not {}",
                        shown(&value)
                    )));
                }
                DnValue::PrintableString(value.try_into().map_err(|_| bad("bad country"))?)
            }
            ValueKind::Printable => {
                DnValue::PrintableString(value.as_str().try_into().map_err(|_| {
                    bad(format!(
                        "the subject's {keyword} may hold only letters, digits, spaces and '()+,-./:=?, not {}",
                        shown(&value)
                    ))
                })?)
            }
            ValueKind::Ia5 => DnValue::Ia5String(value.as_str().try_into().map_err(|_| {
                bad(format!(
                    "the subject's {keyword} must be ASCII, not {}",
                    shown(&value)
                ))
            })?),
        };
        dn.push(ty, value);
    }
    Ok(dn)
}

type DnAttribute = (Vec<u64>, ValueKind, String, String);

/// Splits `KEY=value, KEY=value` (or `;`-separated) into attributes:
/// (OID, value kind, keyword as written, value).
fn parse_dn_attributes(subject: &str) -> Result<Vec<DnAttribute>, CryptoError> {
    let input = subject.as_bytes();
    let mut pos = 0;
    let mut attributes = Vec::new();
    let skip_spaces = |pos: &mut usize| {
        while *pos < input.len() && input[*pos].is_ascii_whitespace() {
            *pos += 1;
        }
    };
    skip_spaces(&mut pos);
    if pos == input.len() {
        return Ok(attributes);
    }
    loop {
        // The attribute type, up to '='.
        skip_spaces(&mut pos);
        let start = pos;
        while pos < input.len() && !matches!(input[pos], b'=' | b',' | b';' | b'+') {
            pos += 1;
        }
        if pos == input.len() || input[pos] != b'=' {
            let near = &subject[start..pos];
            return Err(bad(if near.trim().is_empty() {
                format!(
                    "the subject {} has an empty attribute; write it as CN=name, O=organization, ...",
                    shown(subject)
                )
            } else {
                format!(
                    "the subject {} is not a distinguished name: {} has no '=value'",
                    shown(subject),
                    shown(near.trim())
                )
            }));
        }
        let keyword = subject[start..pos].trim();
        pos += 1;
        let (oid, kind) = attribute_type(keyword)?;

        // The value, up to an unescaped separator.
        skip_spaces(&mut pos);
        let mut value: Vec<u8> = Vec::new();
        if pos < input.len() && input[pos] == b'"' {
            pos += 1;
            loop {
                match input.get(pos) {
                    None => {
                        return Err(bad(format!(
                            "the subject's {keyword} value has no closing quote"
                        )));
                    }
                    Some(b'"') => {
                        pos += 1;
                        break;
                    }
                    Some(b'\\') => {
                        pos = unescape(subject, pos, &mut value)?;
                    }
                    Some(&b) => {
                        value.push(b);
                        pos += 1;
                    }
                }
            }
            skip_spaces(&mut pos);
            if pos < input.len() && !matches!(input[pos], b',' | b';') {
                return Err(bad(format!(
                    "the subject has text after the quoted {keyword} value; separate attributes with ','"
                )));
            }
        } else if pos < input.len() && input[pos] == b'#' {
            return Err(CryptoError::Unsupported(format!(
                "the subject's {keyword} is a #hex BER value, which is not supported; write the text"
            )));
        } else {
            // Unescaped trailing spaces are not part of the value.
            let mut significant = 0;
            while pos < input.len() && !matches!(input[pos], b',' | b';') {
                match input[pos] {
                    b'\\' => {
                        pos = unescape(subject, pos, &mut value)?;
                        significant = value.len();
                    }
                    b'+' => {
                        return Err(CryptoError::Unsupported(format!(
                            "the subject's {keyword} value has an unescaped '+': multi-valued RDNs are not supported (write \\+ for a plus sign)"
                        )));
                    }
                    b => {
                        value.push(b);
                        pos += 1;
                        if !b.is_ascii_whitespace() {
                            significant = value.len();
                        }
                    }
                }
            }
            value.truncate(significant);
        }
        let value = String::from_utf8(value)
            .map_err(|_| bad(format!("the subject's {keyword} value is not UTF-8")))?;
        if value.is_empty() {
            return Err(bad(format!("the subject's {keyword} value is empty")));
        }
        if value.chars().any(char::is_control) {
            return Err(bad(format!(
                "the subject's {keyword} value holds control characters"
            )));
        }
        attributes.push((oid, kind, keyword.to_string(), value));

        skip_spaces(&mut pos);
        if pos == input.len() {
            return Ok(attributes);
        }
        // A separator: ',' or ';'.
        pos += 1;
        skip_spaces(&mut pos);
        if pos == input.len() {
            return Err(bad(format!(
                "the subject {} ends with a separator",
                shown(subject)
            )));
        }
    }
}

/// Reads the escape at `pos` (a backslash) into `value`; returns the
/// position after it. `\,` and friends stand for the character, `\XX` for
/// one byte of UTF-8.
fn unescape(subject: &str, pos: usize, value: &mut Vec<u8>) -> Result<usize, CryptoError> {
    let input = subject.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    match (input.get(pos + 1), input.get(pos + 2)) {
        (Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
            value.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
            Ok(pos + 3)
        }
        (Some(&c), _) if !c.is_ascii_alphanumeric() || c == b' ' => {
            value.push(c);
            Ok(pos + 2)
        }
        _ => Err(bad(format!(
            "the subject {} has a bad escape; use \\, \\; \\+ \\\" \\\\ or \\XX",
            shown(subject)
        ))),
    }
}

/// The OID and value kind for an attribute keyword or dotted OID.
fn attribute_type(keyword: &str) -> Result<(Vec<u64>, ValueKind), CryptoError> {
    if keyword.is_empty() {
        return Err(bad("the subject has an attribute with no type before '='"));
    }
    let upper = keyword.to_ascii_uppercase();
    if let Some(def) = ATTRIBUTES
        .iter()
        .find(|d| d.aliases.contains(&upper.as_str()))
    {
        return Ok((def.oid.to_vec(), def.kind));
    }
    let dotted = upper.strip_prefix("OID.").unwrap_or(&upper);
    if let Some(oid) = parse_oid(dotted) {
        let kind = ATTRIBUTES
            .iter()
            .find(|d| d.oid == oid.as_slice())
            .map_or(ValueKind::Utf8, |d| d.kind);
        return Ok((oid, kind));
    }
    Err(bad(format!(
        "unknown attribute type {} in the subject; use CN, O, OU, L, ST, C, E, DC, STREET, \
         SERIALNUMBER, T, G, SN, I, POSTALCODE, UID or a dotted OID",
        shown(keyword)
    )))
}

/// A dotted OID such as `1.3.6.1.5.5.7.3.1`.
fn parse_oid(text: &str) -> Option<Vec<u64>> {
    let arcs = text
        .split('.')
        .map(|arc| {
            let well_formed = !arc.is_empty()
                && arc.bytes().all(|b| b.is_ascii_digit())
                && (arc == "0" || !arc.starts_with('0'));
            well_formed.then(|| arc.parse::<u64>().ok()).flatten()
        })
        .collect::<Option<Vec<u64>>>()?;
    let valid = arcs.len() >= 2 && arcs[0] <= 2 && (arcs[0] == 2 || arcs[1] <= 39);
    valid.then_some(arcs)
}

fn oid_is(oid: &Oid<'_>, arcs: &[u64]) -> bool {
    oid.iter().is_some_and(|it| it.eq(arcs.iter().copied()))
}

/// A name as Key Vault shows it: `CN=app, O=Contoso, C=US`, the RDNs in
/// the reverse of their encoded order (RFC 4514).
fn format_name(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter_rdn().collect();
    for (i, rdn) in rdns.into_iter().rev().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        for (j, attribute) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = attribute.attr_type();
            match ATTRIBUTES.iter().find(|d| oid_is(oid, d.oid)) {
                Some(def) => out.push_str(def.keyword),
                None => out.push_str(&oid.to_id_string()),
            }
            out.push('=');
            out.push_str(&format_value(attribute.attr_value()));
        }
    }
    out
}

fn format_value(value: &Any<'_>) -> String {
    let data = value.as_bytes();
    let text = match value.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString => std::str::from_utf8(data).ok().map(str::to_owned),
        // T.61 in practice holds Latin-1.
        Tag::T61String => Some(data.iter().map(|&b| b as char).collect()),
        Tag::BmpString if data.len().is_multiple_of(2) => char::decode_utf16(
            data.chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]])),
        )
        .collect::<Result<String, _>>()
        .ok(),
        Tag::UniversalString if data.len().is_multiple_of(4) => data
            .chunks_exact(4)
            .map(|quad| char::from_u32(u32::from_be_bytes([quad[0], quad[1], quad[2], quad[3]])))
            .collect::<Option<String>>(),
        _ => None,
    };
    match text {
        Some(text) => escape_value(&text),
        None => {
            let mut hex = String::from("#");
            for b in data {
                let _ = write!(hex, "{b:02x}");
            }
            hex
        }
    }
}

/// RFC 4514 escaping of an attribute value.
fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\{b:02x}");
                }
            }
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Building certificates and requests

/// Key Vault's KeyUsageType names, in bit order.
const KEY_USAGES: [(&str, KeyUsagePurpose); 9] = [
    ("digitalSignature", KeyUsagePurpose::DigitalSignature),
    ("nonRepudiation", KeyUsagePurpose::ContentCommitment),
    ("keyEncipherment", KeyUsagePurpose::KeyEncipherment),
    ("dataEncipherment", KeyUsagePurpose::DataEncipherment),
    ("keyAgreement", KeyUsagePurpose::KeyAgreement),
    ("keyCertSign", KeyUsagePurpose::KeyCertSign),
    ("cRLSign", KeyUsagePurpose::CrlSign),
    ("encipherOnly", KeyUsagePurpose::EncipherOnly),
    ("decipherOnly", KeyUsagePurpose::DecipherOnly),
];

fn key_usage(name: &str) -> Result<KeyUsagePurpose, CryptoError> {
    if name.eq_ignore_ascii_case("contentCommitment") {
        return Ok(KeyUsagePurpose::ContentCommitment);
    }
    KEY_USAGES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, usage)| *usage)
        .ok_or_else(|| {
            let names: Vec<&str> = KEY_USAGES.iter().map(|(n, _)| *n).collect();
            bad(format!(
                "unknown key usage {}; use {}",
                shown(name),
                names.join(", ")
            ))
        })
}

fn extended_key_usage(oid: &str) -> Result<ExtendedKeyUsagePurpose, CryptoError> {
    let arcs = parse_oid(oid.trim()).ok_or_else(|| {
        bad(format!(
            "the extended key usage {} is not a dotted OID such as 1.3.6.1.5.5.7.3.1",
            shown(oid)
        ))
    })?;
    Ok(match arcs.as_slice() {
        [2, 5, 29, 37, 0] => ExtendedKeyUsagePurpose::Any,
        [1, 3, 6, 1, 5, 5, 7, 3, 1] => ExtendedKeyUsagePurpose::ServerAuth,
        [1, 3, 6, 1, 5, 5, 7, 3, 2] => ExtendedKeyUsagePurpose::ClientAuth,
        [1, 3, 6, 1, 5, 5, 7, 3, 3] => ExtendedKeyUsagePurpose::CodeSigning,
        [1, 3, 6, 1, 5, 5, 7, 3, 4] => ExtendedKeyUsagePurpose::EmailProtection,
        [1, 3, 6, 1, 5, 5, 7, 3, 8] => ExtendedKeyUsagePurpose::TimeStamping,
        [1, 3, 6, 1, 5, 5, 7, 3, 9] => ExtendedKeyUsagePurpose::OcspSigning,
        _ => ExtendedKeyUsagePurpose::Other(arcs),
    })
}

fn dns_name(name: &str) -> Result<SanType, CryptoError> {
    let refuse = || {
        bad(format!(
            "the DNS name {} is not valid (ASCII labels of letters, digits, '-' and '_', \
             a leading '*.' for a wildcard; internationalized names in punycode)",
            shown(name)
        ))
    };
    if name.is_empty() || name.len() > 253 {
        return Err(refuse());
    }
    for (i, label) in name.split('.').enumerate() {
        let ok = (i == 0 && label == "*")
            || (!label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        if !ok {
            return Err(refuse());
        }
    }
    Ok(SanType::DnsName(name.try_into().map_err(|_| refuse())?))
}

fn email(address: &str) -> Result<SanType, CryptoError> {
    let refuse = || {
        bad(format!(
            "the email {} is not a valid address",
            shown(address)
        ))
    };
    let (local, domain) = address.rsplit_once('@').ok_or_else(refuse)?;
    if local.is_empty()
        || domain.is_empty()
        || address
            .bytes()
            .any(|b| !b.is_ascii_graphic() || b == b'<' || b == b'>')
    {
        return Err(refuse());
    }
    Ok(SanType::Rfc822Name(
        address.try_into().map_err(|_| refuse())?,
    ))
}

fn uri(text: &str) -> Result<SanType, CryptoError> {
    let refuse = || {
        bad(format!(
            "the URI {} is not an absolute ASCII URI",
            shown(text)
        ))
    };
    let (scheme, rest) = text.split_once(':').ok_or_else(refuse)?;
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok || rest.is_empty() || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(refuse());
    }
    Ok(SanType::URI(text.try_into().map_err(|_| refuse())?))
}

fn upn(name: &str) -> Result<SanType, CryptoError> {
    if name.trim().is_empty() || name.chars().any(char::is_control) {
        return Err(bad(format!(
            "the user principal name {} is not valid",
            shown(name)
        )));
    }
    Ok(SanType::OtherName((UPN_OID.to_vec(), name.into())))
}

fn ip_address(text: &str) -> Result<SanType, CryptoError> {
    text.trim()
        .parse::<IpAddr>()
        .map(SanType::IpAddress)
        .map_err(|_| bad(format!("{} is not an IP address", shown(text))))
}

/// The parameters common to a certificate and a request: always for an
/// end entity (no basicConstraints), with the requested key usages.
fn params_for(req: &CertRequest) -> Result<CertificateParams, CryptoError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = parse_subject(&req.subject)?;

    let mut sans = Vec::new();
    for name in &req.dns_names {
        sans.push(dns_name(name)?);
    }
    for address in &req.emails {
        sans.push(email(address)?);
    }
    for name in &req.upns {
        sans.push(upn(name)?);
    }
    for text in &req.uris {
        sans.push(uri(text)?);
    }
    for text in &req.ip_addresses {
        sans.push(ip_address(text)?);
    }
    if params.distinguished_name.iter().next().is_none() && sans.is_empty() {
        return Err(bad(
            "a certificate needs a subject or at least one subject alternative name",
        ));
    }
    params.subject_alt_names = sans;

    for name in &req.key_usage {
        let usage = key_usage(name)?;
        if !params.key_usages.contains(&usage) {
            params.key_usages.push(usage);
        }
    }
    for oid in &req.ekus {
        let purpose = extended_key_usage(oid)?;
        if !params.extended_key_usages.contains(&purpose) {
            params.extended_key_usages.push(purpose);
        }
    }
    // Always an end entity: no basicConstraints, whatever the key usage
    // says. The az CLI's default policy (and the portal's) lists keyCertSign
    // and cRLSign for ordinary TLS certificates; the bits are kept as asked,
    // but deriving CA:TRUE from them would turn every such certificate into
    // an unconstrained CA whose key could issue certificates for any name.
    params.is_ca = IsCa::NoCa;
    Ok(params)
}

/// `start` plus `months` calendar months; the day is clamped to the end of
/// a shorter month (31 January + 1 month = 28 or 29 February).
fn add_months(start: OffsetDateTime, months: u32) -> Option<OffsetDateTime> {
    let index =
        i64::from(start.year()) * 12 + i64::from(u8::from(start.month())) - 1 + i64::from(months);
    let year = i32::try_from(index.div_euclid(12)).ok()?;
    let month = Month::try_from(u8::try_from(index.rem_euclid(12) + 1).ok()?).ok()?;
    let day = start.day().min(month.length(year));
    Some(start.replace_date(Date::from_calendar_date(year, month, day).ok()?))
}

/// rcgen's signature algorithm for a key: SHA-256 with RSA, and ECDSA with
/// the hash that matches the curve.
fn signature_algorithm(kind: KeyKind) -> Result<&'static SignatureAlgorithm, CryptoError> {
    match kind {
        KeyKind::Rsa => Ok(&rcgen::PKCS_RSA_SHA256),
        KeyKind::Ec(Curve::P256) => Ok(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyKind::Ec(Curve::P384) => Ok(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyKind::Ec(Curve::P521) => Ok(&rcgen::PKCS_ECDSA_P521_SHA512),
        KeyKind::Ec(Curve::P256K) => Err(CryptoError::Unsupported(
            "certificates and requests for P-256K (secp256k1) keys are not supported: \
             the X.509 signer (rcgen) has no secp256k1 signature algorithm"
                .into(),
        )),
    }
}

/// Runs `f` with an rcgen key pair for `key`, wiping rcgen's copy of the
/// private key afterwards.
fn with_signer<T>(
    key: &KeyMaterial,
    f: impl FnOnce(&KeyPair) -> Result<T, rcgen::Error>,
) -> Result<T, CryptoError> {
    let algorithm = signature_algorithm(key.kind())?;
    let pkcs8 = PrivatePkcs8KeyDer::from(key.to_der());
    let mut pair = KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, algorithm)
        .map_err(|_| CryptoError::InvalidKey("the key cannot sign certificates"))?;
    let result = f(&pair);
    pair.zeroize();
    result.map_err(|e| CryptoError::Pki(e.to_string()))
}

/// A self-signed certificate (DER) for `key`, as Key Vault makes for the
/// issuer `Self`: a random 128-bit serial, notBefore `req.not_before`,
/// notAfter `req.validity_months` calendar months later. It is an
/// end-entity certificate (no basicConstraints) even when the key usage
/// includes `keyCertSign`.
pub fn self_signed(key: &KeyMaterial, req: &CertRequest) -> Result<Vec<u8>, CryptoError> {
    signature_algorithm(key.kind())?;
    if !(1..=MAX_VALIDITY_MONTHS).contains(&req.validity_months) {
        return Err(bad(format!(
            "validity_months must be 1 to {MAX_VALIDITY_MONTHS}, not {}",
            req.validity_months
        )));
    }
    let mut params = params_for(req)?;
    let not_before = OffsetDateTime::from_unix_timestamp(req.not_before)
        .map_err(|_| bad("not_before is out of range"))?;
    let not_after = add_months(not_before, req.validity_months)
        .filter(|t| t.year() <= 9999 && not_before.year() >= 1)
        .ok_or_else(|| bad("not_before plus the validity is out of range"))?;
    params.not_before = not_before;
    params.not_after = not_after;
    // A positive 16-byte serial (RFC 5280 allows up to 20 octets).
    let mut serial = crate::random::bytes(16);
    serial[0] = (serial[0] & 0x7f) | 0x40;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    with_signer(key, |pair| {
        params
            .self_signed(pair)
            .map(|cert| cert.der().as_ref().to_vec())
    })
}

/// A PKCS#10 certificate signing request (DER) for `key`, for a certificate
/// whose issuer is `Unknown`. `validity_months` and `not_before` are not
/// part of a request and are ignored. The request asks for the policy's
/// key usages and extended key usages and never for basicConstraints, so
/// it does not ask for a CA certificate.
pub fn csr(key: &KeyMaterial, req: &CertRequest) -> Result<Vec<u8>, CryptoError> {
    signature_algorithm(key.kind())?;
    let params = params_for(req)?;
    with_signer(key, |pair| {
        params
            .serialize_request(pair)
            .map(|csr| csr.der().as_ref().to_vec())
    })
}

// ---------------------------------------------------------------------------
// Reading certificates

fn parse_certificate(der: &[u8]) -> Result<X509Certificate<'_>, CryptoError> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(bad("the certificate has trailing data after its DER")),
        Err(_) => Err(bad("not a DER X.509 certificate")),
    }
}

/// A certificate's properties as Key Vault reports them.
pub fn inspect(der: &[u8]) -> Result<CertInfo, CryptoError> {
    let cert = parse_certificate(der)?;
    let validity = cert.validity();
    let mut info = CertInfo {
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        subject: format_name(cert.subject()),
        issuer: format_name(cert.issuer()),
        thumbprint_sha1: digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der)
            .as_ref()
            .to_vec(),
        ..CertInfo::default()
    };
    let sans = cert
        .subject_alternative_name()
        .map_err(|_| bad("the certificate's subject alternative names cannot be read"))?;
    for name in sans.iter().flat_map(|ext| ext.value.general_names.iter()) {
        match name {
            GeneralName::DNSName(name) => info.dns_names.push((*name).to_owned()),
            GeneralName::RFC822Name(address) => info.emails.push((*address).to_owned()),
            GeneralName::URI(text) => info.uris.push((*text).to_owned()),
            GeneralName::IPAddress(octets) => {
                if let Ok(v4) = <[u8; 4]>::try_from(*octets) {
                    info.ip_addresses.push(Ipv4Addr::from(v4).to_string());
                } else if let Ok(v6) = <[u8; 16]>::try_from(*octets) {
                    info.ip_addresses.push(Ipv6Addr::from(v6).to_string());
                }
            }
            GeneralName::OtherName(oid, value) if oid_is(oid, UPN_OID) => {
                if let Some(name) = other_name_utf8(value) {
                    info.upns.push(name);
                }
            }
            _ => {}
        }
    }
    let usage = cert
        .key_usage()
        .map_err(|_| bad("the certificate's key usage cannot be read"))?;
    if let Some(usage) = usage {
        let u = usage.value;
        let flags = [
            u.digital_signature(),
            u.non_repudiation(),
            u.key_encipherment(),
            u.data_encipherment(),
            u.key_agreement(),
            u.key_cert_sign(),
            u.crl_sign(),
            u.encipher_only(),
            u.decipher_only(),
        ];
        for ((name, _), set) in KEY_USAGES.iter().zip(flags) {
            if set {
                info.key_usage.push((*name).to_owned());
            }
        }
    }
    let ekus = cert
        .extended_key_usage()
        .map_err(|_| bad("the certificate's extended key usage cannot be read"))?;
    if let Some(ekus) = ekus {
        let e = ekus.value;
        let known = [
            (e.any, "2.5.29.37.0"),
            (e.server_auth, "1.3.6.1.5.5.7.3.1"),
            (e.client_auth, "1.3.6.1.5.5.7.3.2"),
            (e.code_signing, "1.3.6.1.5.5.7.3.3"),
            (e.email_protection, "1.3.6.1.5.5.7.3.4"),
            (e.time_stamping, "1.3.6.1.5.5.7.3.8"),
            (e.ocsp_signing, "1.3.6.1.5.5.7.3.9"),
        ];
        for (set, oid) in known {
            if set {
                info.ekus.push(oid.to_owned());
            }
        }
        info.ekus.extend(e.other.iter().map(Oid::to_id_string));
    }
    Ok(info)
}

/// The UTF8String of an otherName value (`[0] EXPLICIT UTF8String`).
fn other_name_utf8(value: &[u8]) -> Option<String> {
    let (_, outer) = Any::from_der(value).ok()?;
    let inner = if outer.tag() == Tag::Utf8String {
        outer
    } else {
        Any::from_der(outer.as_bytes()).ok()?.1
    };
    (inner.tag() == Tag::Utf8String)
        .then(|| {
            std::str::from_utf8(inner.as_bytes())
                .ok()
                .map(str::to_owned)
        })
        .flatten()
}

/// Whether two SubjectPublicKeyInfos hold the same key: the same RSA
/// modulus and exponent, or the same curve and point.
fn same_public_key(a: &SubjectPublicKeyInfo<'_>, b: &SubjectPublicKeyInfo<'_>) -> bool {
    if a.algorithm.algorithm != b.algorithm.algorithm {
        return false;
    }
    match (a.parsed(), b.parsed()) {
        (Ok(PublicKey::RSA(x)), Ok(PublicKey::RSA(y))) => {
            strip_zeros(x.modulus) == strip_zeros(y.modulus)
                && strip_zeros(x.exponent) == strip_zeros(y.exponent)
        }
        (Ok(PublicKey::EC(x)), Ok(PublicKey::EC(y))) => {
            let curve = |spki: &SubjectPublicKeyInfo<'_>| {
                spki.algorithm
                    .parameters
                    .as_ref()
                    .map(|p| (p.tag(), p.as_bytes().to_vec()))
            };
            curve(a) == curve(b) && x.data() == y.data()
        }
        _ => false,
    }
}

fn strip_zeros(be: &[u8]) -> &[u8] {
    let start = be.iter().position(|b| *b != 0).unwrap_or(be.len());
    &be[start..]
}

fn matches_key(cert: &X509Certificate<'_>, key_spki_der: &[u8]) -> bool {
    match SubjectPublicKeyInfo::from_der(key_spki_der) {
        Ok((_, spki)) => same_public_key(cert.public_key(), &spki),
        Err(_) => false,
    }
}

/// Whether the certificate's SubjectPublicKeyInfo is `key`'s public half.
pub fn public_key_matches(cert_der: &[u8], key: &KeyMaterial) -> Result<bool, CryptoError> {
    let cert = parse_certificate(cert_der)?;
    Ok(matches_key(&cert, &key.public_key_spki_der()?))
}

/// The most certificates a PEM or PFX may hold (a leaf and its issuers;
/// real chains have two to four).
const MAX_CHAIN: usize = 16;

/// Puts the certificate of `key` first, then its issuers as far as they are
/// present, then any other certificates in their original order. Exact
/// duplicates are dropped. More than [`MAX_CHAIN`] certificates are refused.
/// Each certificate is parsed once.
fn order_chain(
    key: &KeyMaterial,
    certs: Vec<Vec<u8>>,
    source: &str,
) -> Result<Vec<Vec<u8>>, CryptoError> {
    if certs.len() > MAX_CHAIN {
        return Err(bad(format!(
            "the {source} holds {} certificates; at most {MAX_CHAIN} are accepted",
            certs.len()
        )));
    }
    let mut unique: Vec<Vec<u8>> = Vec::with_capacity(certs.len());
    for cert in certs {
        if !unique.contains(&cert) {
            unique.push(cert);
        }
    }
    if unique.is_empty() {
        return Err(bad(format!("the {source} holds no certificate")));
    }
    let spki = key.public_key_spki_der()?;
    // Indices into `unique`, in chain order.
    let order = {
        let parsed = unique
            .iter()
            .map(|der| {
                parse_certificate(der)
                    .map_err(|_| bad(format!("a certificate in the {source} is not valid X.509")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let leaf = parsed
            .iter()
            .position(|c| matches_key(c, &spki))
            .ok_or_else(|| {
                bad(format!(
                    "no certificate in the {source} matches its private key"
                ))
            })?;
        let mut used = vec![false; parsed.len()];
        used[leaf] = true;
        let mut order = vec![leaf];
        let mut last = leaf;
        loop {
            let issuer = parsed[last].issuer().as_raw();
            if issuer == parsed[last].subject().as_raw() {
                break;
            }
            let next =
                (0..parsed.len()).find(|&i| !used[i] && parsed[i].subject().as_raw() == issuer);
            match next {
                Some(i) => {
                    used[i] = true;
                    order.push(i);
                    last = i;
                }
                None => break,
            }
        }
        order.extend((0..parsed.len()).filter(|&i| !used[i]));
        order
    };
    let mut slots: Vec<Option<Vec<u8>>> = unique.into_iter().map(Some).collect();
    Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
}

// ---------------------------------------------------------------------------
// PEM

/// The length of one PEM block of `der_len` bytes, lines of 64 characters.
fn pem_len(label: &str, der_len: usize) -> usize {
    let body = der_len.div_ceil(3) * 4;
    let lines = body.div_ceil(64);
    2 * (label.len() + 16) + body + lines
}

fn push_pem(out: &mut String, label: &str, der: &[u8]) {
    let mut body = Zeroizing::new(String::with_capacity(der.len().div_ceil(3) * 4));
    STANDARD.encode_string(der, &mut body);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    let mut rest = body.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
}

/// The PEM form of a certificate's secret: the PKCS#8 private key, then the
/// certificates, leaf first.
pub fn to_pem(key: &KeyMaterial, chain: &[Vec<u8>]) -> Zeroizing<String> {
    // Sized up front so that the buffer never moves, leaving no stray copy.
    let capacity = pem_len("PRIVATE KEY", key.to_der().len())
        + chain
            .iter()
            .map(|c| pem_len("CERTIFICATE", c.len()))
            .sum::<usize>();
    let mut out = Zeroizing::new(String::with_capacity(capacity));
    push_pem(&mut out, "PRIVATE KEY", key.to_der());
    for cert in chain {
        push_pem(&mut out, "CERTIFICATE", cert);
    }
    out
}

struct PemBlock {
    label: String,
    encrypted: bool,
    der: Zeroizing<Vec<u8>>,
}

/// The blocks of a PEM text; text outside them (such as OpenSSL's "Bag
/// Attributes") is ignored.
fn pem_blocks(text: &str) -> Result<Vec<PemBlock>, CryptoError> {
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(label) = line
            .trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        // The body's lines, borrowed; joined below into a buffer sized to
        // them, so that the base64 of a key is never copied and a text of
        // many blocks costs no more than its length.
        let mut body_lines: Vec<&str> = Vec::new();
        let mut encrypted = false;
        let mut closed = false;
        for line in lines.by_ref() {
            let line = line.trim();
            if line == end {
                closed = true;
                break;
            }
            if line.starts_with("-----") {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                // An RFC 1421 header, as in legacy encrypted OpenSSL keys.
                if name.eq_ignore_ascii_case("Proc-Type") && value.contains("ENCRYPTED") {
                    encrypted = true;
                }
                continue;
            }
            body_lines.push(line);
        }
        if !closed {
            return Err(bad(format!(
                "the PEM block {} has no matching END line",
                shown(label)
            )));
        }
        let mut body = Zeroizing::new(String::with_capacity(
            body_lines.iter().map(|line| line.len()).sum(),
        ));
        for line in body_lines {
            body.push_str(line);
        }
        let mut der = Zeroizing::new(Vec::with_capacity(body.len() / 4 * 3 + 3));
        STANDARD
            .decode_vec(body.as_bytes(), &mut der)
            .map_err(|_| {
                bad(format!(
                    "the PEM block {} is not valid base64",
                    shown(label)
                ))
            })?;
        blocks.push(PemBlock {
            label: label.to_string(),
            encrypted,
            der,
        });
    }
    Ok(blocks)
}

fn refuse_encrypted() -> CryptoError {
    bad(
        "the private key in the PEM is encrypted; only unencrypted keys can be imported \
         (decrypt it first, e.g. with `openssl pkey`)",
    )
}

/// A PKCS#1 `RSAPrivateKey`.
fn rsa_from_pkcs1(der: &[u8]) -> Result<KeyMaterial, CryptoError> {
    let pair = RsaKeyPair::from_der(der).map_err(|_| {
        bad("the RSA PRIVATE KEY block is not a PKCS#1 RSA key of 2048 to 8192 bits")
    })?;
    KeyMaterial::from_pkcs8(pair.as_der()?.as_ref())
}

/// A SEC 1 `ECPrivateKey` on one of our curves.
fn ec_from_sec1(der: &[u8]) -> Result<KeyMaterial, CryptoError> {
    for algorithm in [
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
        &signature::ECDSA_P256K1_SHA256_FIXED_SIGNING,
    ] {
        if let Ok(pair) = EcdsaKeyPair::from_private_key_der(algorithm, der) {
            return KeyMaterial::from_pkcs8(pair.to_pkcs8v1()?.as_ref());
        }
    }
    Err(bad(
        "the EC PRIVATE KEY block is not a SEC 1 key on P-256, P-384, P-521 or P-256K",
    ))
}

/// Reads a certificate's PEM: one unencrypted private key (`PRIVATE KEY`,
/// `RSA PRIVATE KEY` or `EC PRIVATE KEY`) and its certificates, at most 16.
/// The chain comes back with the key's certificate first, then its issuers.
pub fn from_pem(text: &str) -> Result<(KeyMaterial, Vec<Vec<u8>>), CryptoError> {
    let mut key = None;
    let mut certs = Vec::new();
    for block in pem_blocks(text)? {
        let parsed = match block.label.as_str() {
            "PRIVATE KEY" => KeyMaterial::from_pkcs8(&block.der)?,
            "RSA PRIVATE KEY" | "EC PRIVATE KEY" if block.encrypted => {
                return Err(refuse_encrypted());
            }
            "RSA PRIVATE KEY" => rsa_from_pkcs1(&block.der)?,
            "EC PRIVATE KEY" => ec_from_sec1(&block.der)?,
            "ENCRYPTED PRIVATE KEY" => return Err(refuse_encrypted()),
            "CERTIFICATE" | "X509 CERTIFICATE" => {
                if certs.len() == MAX_CHAIN {
                    return Err(bad(format!(
                        "the PEM holds more than {MAX_CHAIN} certificates; at most {MAX_CHAIN} are accepted"
                    )));
                }
                certs.push(block.der.to_vec());
                continue;
            }
            _ => continue,
        };
        if key.replace(parsed).is_some() {
            return Err(bad("the PEM holds more than one private key"));
        }
    }
    let key = key.ok_or_else(|| bad("the PEM holds no private key"))?;
    let chain = order_chain(&key, certs, "PEM")?;
    Ok((key, chain))
}

// ---------------------------------------------------------------------------
// PKCS#12

/// The friendly name of the key in a PFX: the leaf's common name, or its
/// thumbprint when that cannot be a BMPString.
fn friendly_name(leaf: &X509Certificate<'_>, thumbprint: &[u8]) -> String {
    let cn = leaf
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty() && cn.chars().all(|c| u32::from(c) <= 0xffff));
    match cn {
        Some(cn) => cn.to_owned(),
        None => thumbprint.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        }),
    }
}

/// A PFX with no password, as Key Vault returns a certificate's secret of
/// content type `application/x-pkcs12`: the key and certificates encrypted
/// with PBES2 (PBKDF2-SHA-256, AES-256-CBC) under the empty password, and an
/// HMAC-SHA-256 MAC. `chain` starts with the key's certificate.
pub fn to_pkcs12(key: &KeyMaterial, chain: &[Vec<u8>]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let leaf_der = chain
        .first()
        .ok_or_else(|| bad("a PFX needs at least the key's certificate"))?;
    let leaf = parse_certificate(leaf_der)?;
    if !matches_key(&leaf, &key.public_key_spki_der()?) {
        return Err(bad(
            "the first certificate of the chain is not the private key's certificate",
        ));
    }
    let thumbprint = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, leaf_der);
    let mut certs = Vec::with_capacity(chain.len());
    for der in chain {
        parse_certificate(der)?;
        certs.push(
            p12_keystore::Certificate::from_der(der)
                .map_err(|_| bad("a certificate of the chain is not valid X.509"))?,
        );
    }
    let private_key = p12_keystore::PrivateKey::from_der(key.to_der())
        .map_err(|_| CryptoError::InvalidKey("not a PKCS#8 private key"))?;
    let mut store = KeyStore::new();
    store.add_entry(
        &friendly_name(&leaf, thumbprint.as_ref()),
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(
            thumbprint.as_ref(),
            private_key,
            certs,
        )),
    );
    let pfx = store
        .writer("")
        .write()
        .map_err(|e| CryptoError::Pki(format!("writing the PFX failed: {e}")))?;
    Ok(Zeroizing::new(pfx))
}

/// Reads a PFX: its one private key and the certificates, the key's
/// certificate first, then its issuers. `password` is `""` for a PFX
/// without one.
///
/// The file is first walked by `pfx_limits::check`, which refuses (with
/// [`CryptoError::BadInput`]) anything that would make reading it expensive:
/// more than 256 KiB, more than 8 safes or 32 bags, more than one private
/// key, a key derivation of more than 600,000 iterations (the MAC's
/// included) or several adding up to more than 1,800,000, scrypt, or a
/// structure it cannot classify (nested SafeContents, secret or unknown
/// bags). Only then does p12-keystore verify the MAC and decrypt it. More
/// than 16 certificates are refused as well.
pub fn from_pkcs12(der: &[u8], password: &str) -> Result<(KeyMaterial, Vec<Vec<u8>>), CryptoError> {
    use p12_keystore::error::Error as P12Error;
    pfx_limits::check(der, password)?;
    let archive = Pkcs12Archive::from_pkcs12(der, password).map_err(|e| match e {
        P12Error::UnsupportedEncryptionScheme
        | P12Error::UnsupportedMacAlgorithm
        | P12Error::UnsupportedContentType
        | P12Error::UnsupportedCertificateType => pfx_limits::unsupported(),
        _ => pfx_limits::wrong_password(),
    })?;
    let mut keys = archive.keys.into_iter();
    let key = match (keys.next(), keys.next()) {
        (Some(bag), None) => KeyMaterial::from_pkcs8(bag.key.as_der())?,
        (None, _) => return Err(bad("the PFX holds no private key")),
        (Some(_), Some(_)) => return Err(bad("the PFX holds more than one private key")),
    };
    let certs = archive
        .certs
        .iter()
        .map(|bag| bag.cert.as_der().to_vec())
        .collect();
    let chain = order_chain(&key, certs, "PFX")?;
    Ok((key, chain))
}

/// The walk over a PFX that runs before p12-keystore reads it, so that a
/// file cannot make the server derive keys for minutes or allocate
/// gigabytes. p12-keystore alone accepts up to 1,000,000 iterations per
/// key derivation, scrypt up to 1 GiB, and any number of safes and bags.
///
/// The walk decodes with the same ASN.1 types p12-keystore uses (`pkcs12`,
/// `cms`, `pkcs5`), so both see the same structure, and refuses whatever it
/// cannot classify rather than letting it through. The bags of a
/// password-encrypted safe are only visible once it is decrypted, so the
/// walk decrypts those safes itself (PBES2 through `pkcs5`; the legacy
/// PKCS#12 PBEs through `pkcs12`'s KDF with SHA-1 and 3DES or RC2-40 in CBC
/// mode, as p12-keystore does) after checking their parameters; the key
/// bags it only inspects, never decrypts.
mod pfx_limits {
    use cbc::cipher::block_padding::Pkcs7;
    use cbc::cipher::{BlockCipherDecrypt, BlockModeDecrypt, KeyInit, KeyIvInit};
    use des::TdesEde3;
    use pkcs5::der::asn1::{ContextSpecific, ObjectIdentifier, OctetString};
    use pkcs5::der::{Any, Decode, Encode};
    use pkcs5::pbes2;
    use pkcs12::cms::cert::x509::spki::AlgorithmIdentifierOwned;
    use pkcs12::cms::content_info::{CmsVersion, ContentInfo};
    use pkcs12::cms::encrypted_data::EncryptedData;
    use pkcs12::kdf::{self, Pkcs12KeyType};
    use pkcs12::pbe_params::{EncryptedPrivateKeyInfo, Pkcs12PbeParams};
    use pkcs12::pfx::{Pfx, Version};
    use pkcs12::safe_bag::SafeContents;
    use pkcs12::{AuthenticatedSafe, CertBag};
    use rc2::Rc2;
    use sha1::Sha1;
    use zeroize::{Zeroize, Zeroizing};

    use super::bad;
    use crate::CryptoError;

    /// The largest PFX accepted (a certificate's PFX is a few KiB).
    pub(super) const MAX_BYTES: usize = 256 * 1024;
    /// ContentInfos (safes) in the AuthenticatedSafe.
    pub(super) const MAX_SAFES: usize = 8;
    /// SafeBags in all the safes together, encrypted ones included.
    pub(super) const MAX_BAGS: usize = 32;
    /// Iterations of any one key derivation: a PBKDF2 or the PKCS#12 KDF of
    /// a legacy PBE or of the MAC. 600,000 is OWASP's figure for
    /// PBKDF2-HMAC-SHA-256; tools write 2,048 (OpenSSL) to 10,000 (Java).
    pub(super) const MAX_ITERATIONS: u32 = 600_000;
    /// Iterations of all the key derivations of a file together: a MAC, a
    /// certificate safe and a key bag each at the maximum.
    pub(super) const MAX_TOTAL_ITERATIONS: u64 = 3 * MAX_ITERATIONS as u64;

    const DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
    const ENCRYPTED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
    const PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");
    const PBE_SHA1_3DES: ObjectIdentifier = pkcs12::PKCS_12_PBE_WITH_SHAAND3_KEY_TRIPLE_DES_CBC;
    const PBE_SHA1_RC2_40: ObjectIdentifier = pkcs12::PKCS_12_PBEWITH_SHAAND40_BIT_RC2_CBC;

    pub(super) fn wrong_password() -> CryptoError {
        bad("the PFX password is wrong or the file is damaged")
    }

    pub(super) fn unsupported() -> CryptoError {
        CryptoError::Unsupported(
            "the PFX uses an encryption, MAC or content type that is not supported \
             (PBES2 with PBKDF2 and AES, 3DES and RC2-40 are)"
                .into(),
        )
    }

    fn not_a_pfx() -> CryptoError {
        bad("the data is not a PFX (a DER PKCS#12 file) or is damaged")
    }

    /// A checked password-based encryption scheme.
    enum Pbe {
        Pbes2(pbes2::Parameters),
        /// A PKCS#12 PBE (RFC 7292 appendix C): SHA-1 KDF, then 3DES (24-byte
        /// key) or RC2-40 (5-byte key) in CBC mode.
        Pkcs12 {
            triple_des: bool,
            salt: Box<[u8]>,
            iterations: i32,
        },
    }

    struct Walk<'p> {
        password: &'p str,
        bags: usize,
        keys: usize,
        iterations: u64,
    }

    /// Refuses a PFX that is too large, too complex or too costly to read,
    /// or that it cannot classify. Decrypts the password-encrypted safes to
    /// look inside them, so a wrong password fails here.
    pub(super) fn check(der: &[u8], password: &str) -> Result<(), CryptoError> {
        if der.len() > MAX_BYTES {
            return Err(bad(format!(
                "the PFX is {} bytes; at most {MAX_BYTES} (256 KiB) are accepted",
                der.len()
            )));
        }
        let pfx = Pfx::from_der(der).map_err(|_| not_a_pfx())?;
        if pfx.version != Version::V3 {
            return Err(not_a_pfx());
        }
        let mut walk = Walk {
            password,
            bags: 0,
            keys: 0,
            iterations: 0,
        };
        if let Some(mac) = &pfx.mac_data {
            walk.spend("MAC", i64::from(mac.iterations))?;
        }
        if pfx.auth_safe.content_type != DATA {
            // Public-key integrity mode (SignedData).
            return Err(unsupported());
        }
        let safes = {
            let contents = octets(&pfx.auth_safe.content).map_err(|_| not_a_pfx())?;
            AuthenticatedSafe::from_der(&contents).map_err(|_| not_a_pfx())?
        };
        if safes.len() > MAX_SAFES {
            return Err(bad(format!(
                "the PFX holds {} safes (ContentInfos); at most {MAX_SAFES} are accepted",
                safes.len()
            )));
        }
        // Everything visible is checked before anything is decrypted, so a
        // refused file costs no key derivation at all.
        let mut encrypted = Vec::new();
        for safe in &safes {
            if let Some(pending) = walk.safe(safe)? {
                encrypted.push(pending);
            }
        }
        for (scheme, ciphertext) in encrypted {
            let contents = walk.decrypt(&scheme, ciphertext.as_bytes())?;
            walk.bags(&contents)?;
        }
        Ok(())
    }

    /// The contents of an `OCTET STRING` held in an `ANY`.
    fn octets(any: &Any) -> Result<Zeroizing<Box<[u8]>>, CryptoError> {
        let der = Zeroizing::new(any.to_der().map_err(|_| wrong_password())?);
        let octets = OctetString::from_der(&der).map_err(|_| wrong_password())?;
        Ok(Zeroizing::new(octets.into_bytes()))
    }

    impl Walk<'_> {
        /// Accounts for one key derivation of `iterations`.
        fn spend(&mut self, what: &str, iterations: i64) -> Result<(), CryptoError> {
            if iterations < 1 {
                return Err(bad(format!(
                    "the PFX's {what} has an iteration count of {iterations}; it must be at least 1"
                )));
            }
            if iterations > i64::from(MAX_ITERATIONS) {
                return Err(bad(format!(
                    "the PFX's {what} uses {iterations} key derivation iterations; \
                     at most {MAX_ITERATIONS} are accepted"
                )));
            }
            self.iterations += iterations.unsigned_abs();
            if self.iterations > MAX_TOTAL_ITERATIONS {
                return Err(bad(format!(
                    "the PFX's key derivations add up to more than {MAX_TOTAL_ITERATIONS} \
                     iterations, the most accepted for one file"
                )));
            }
            Ok(())
        }

        /// Checks an encryption algorithm before anything is derived with it.
        fn scheme(
            &mut self,
            alg: &AlgorithmIdentifierOwned,
            what: &str,
        ) -> Result<Pbe, CryptoError> {
            let params = || -> Result<Zeroizing<Vec<u8>>, CryptoError> {
                let any = alg.parameters.as_ref().ok_or_else(wrong_password)?;
                Ok(Zeroizing::new(any.to_der().map_err(|_| wrong_password())?))
            };
            if alg.oid == PBES2 {
                let params = pbes2::Parameters::from_der(&params()?).map_err(|_| unsupported())?;
                match &params.kdf {
                    pbes2::Kdf::Pbkdf2(pbkdf2) => {
                        self.spend(what, i64::from(pbkdf2.iteration_count))?;
                    }
                    pbes2::Kdf::Scrypt(_) => {
                        return Err(bad("scrypt-protected PFX files are not supported; \
                             export the file with PBKDF2 (as OpenSSL and Windows do)"));
                    }
                    _ => return Err(unsupported()),
                }
                Ok(Pbe::Pbes2(params))
            } else if alg.oid == PBE_SHA1_3DES || alg.oid == PBE_SHA1_RC2_40 {
                let params = Pkcs12PbeParams::from_der(&params()?).map_err(|_| wrong_password())?;
                self.spend(what, i64::from(params.iterations))?;
                Ok(Pbe::Pkcs12 {
                    triple_des: alg.oid == PBE_SHA1_3DES,
                    salt: params.salt.into_bytes(),
                    iterations: params.iterations,
                })
            } else {
                Err(unsupported())
            }
        }

        /// One ContentInfo of the AuthenticatedSafe: plain SafeContents,
        /// whose bags are checked now, or password-encrypted ones, whose
        /// scheme is checked now and which come back to be decrypted.
        fn safe(&mut self, safe: &ContentInfo) -> Result<Option<(Pbe, OctetString)>, CryptoError> {
            if safe.content_type == DATA {
                let contents = octets(&safe.content)?;
                return self.bags(&contents).map(|()| None);
            }
            if safe.content_type != ENCRYPTED_DATA {
                // EnvelopedData (public-key privacy mode) or anything else.
                return Err(unsupported());
            }
            let der = Zeroizing::new(safe.content.to_der().map_err(|_| wrong_password())?);
            let encrypted = EncryptedData::from_der(&der).map_err(|_| wrong_password())?;
            if encrypted.version != CmsVersion::V0 {
                return Err(wrong_password());
            }
            let info = encrypted.enc_content_info;
            let scheme = self.scheme(&info.content_enc_alg, "encrypted safe")?;
            let ciphertext = info.encrypted_content.ok_or_else(wrong_password)?;
            Ok(Some((scheme, ciphertext)))
        }

        fn decrypt(
            &self,
            scheme: &Pbe,
            ciphertext: &[u8],
        ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
            let mut buffer = Zeroizing::new(ciphertext.to_vec());
            let len = match scheme {
                Pbe::Pbes2(params) => params
                    .decrypt_in_place(self.password.as_bytes(), &mut buffer)
                    .map_err(|_| wrong_password())?
                    .len(),
                Pbe::Pkcs12 {
                    triple_des: true,
                    salt,
                    iterations,
                } => pkcs12_pbe_decrypt::<TdesEde3>(
                    self.password,
                    salt,
                    *iterations,
                    24,
                    &mut buffer,
                )?,
                Pbe::Pkcs12 {
                    triple_des: false,
                    salt,
                    iterations,
                } => pkcs12_pbe_decrypt::<Rc2>(self.password, salt, *iterations, 5, &mut buffer)?,
            };
            buffer.truncate(len);
            Ok(buffer)
        }

        /// The bags of one SafeContents.
        fn bags(&mut self, contents: &[u8]) -> Result<(), CryptoError> {
            let bags = SafeContents::from_der(contents).map_err(|_| wrong_password())?;
            self.bags += bags.len();
            if self.bags > MAX_BAGS {
                let mut bags = bags;
                bags.iter_mut().for_each(|bag| bag.bag_value.zeroize());
                return Err(bad(format!(
                    "the PFX holds more than {MAX_BAGS} bags; at most {MAX_BAGS} are accepted"
                )));
            }
            let mut result = Ok(());
            for mut bag in bags {
                if result.is_ok() {
                    result = self.bag(bag.bag_id, &bag.bag_value);
                }
                // A keyBag holds a private key in the clear.
                bag.bag_value.zeroize();
            }
            result
        }

        /// One SafeBag; `value` is its `[0] EXPLICIT` value.
        fn bag(&mut self, id: ObjectIdentifier, value: &[u8]) -> Result<(), CryptoError> {
            match id {
                pkcs12::PKCS_12_KEY_BAG_OID => self.key(),
                pkcs12::PKCS_12_PKCS8_KEY_BAG_OID => {
                    self.key()?;
                    let info = ContextSpecific::<EncryptedPrivateKeyInfo>::from_der(value)
                        .map_err(|_| wrong_password())?;
                    self.scheme(&info.value.encryption_algorithm, "private key")
                        .map(drop)
                }
                pkcs12::PKCS_12_CERT_BAG_OID => {
                    let bag = ContextSpecific::<CertBag>::from_der(value)
                        .map_err(|_| wrong_password())?;
                    if bag.value.cert_id == pkcs12::PKCS_12_X509_CERT_OID {
                        Ok(())
                    } else {
                        Err(unsupported())
                    }
                }
                // Read by no one, and nothing in it is decrypted.
                pkcs12::PKCS_12_CRL_BAG_OID => Ok(()),
                pkcs12::PKCS_12_SECRET_BAG_OID => Err(bad(
                    "the PFX holds a secret bag (a secret key or password), which a \
                     certificate's PFX does not; it is not supported",
                )),
                pkcs12::PKCS_12_SAFE_CONTENTS_BAG_OID => Err(bad(
                    "the PFX nests SafeContents inside a bag, which is not supported",
                )),
                other => Err(bad(format!(
                    "the PFX holds a bag of unknown type {other}, which is not supported"
                ))),
            }
        }

        fn key(&mut self) -> Result<(), CryptoError> {
            self.keys += 1;
            if self.keys > 1 {
                return Err(bad("the PFX holds more than one private key"));
            }
            Ok(())
        }
    }

    /// Decrypts `buffer` in place with a PKCS#12 PBE (as p12-keystore does):
    /// key and IV from the PKCS#12 KDF with SHA-1, then CBC with PKCS#7
    /// padding. Returns the plaintext's length.
    fn pkcs12_pbe_decrypt<C: BlockCipherDecrypt + KeyInit>(
        password: &str,
        salt: &[u8],
        iterations: i32,
        key_len: usize,
        buffer: &mut [u8],
    ) -> Result<usize, CryptoError> {
        let derive = |kind, len| {
            kdf::derive_key_utf8::<Sha1>(password, salt, kind, iterations, len)
                .map(Zeroizing::new)
                .map_err(|_| wrong_password())
        };
        let key = derive(Pkcs12KeyType::EncryptionKey, key_len)?;
        let iv = derive(Pkcs12KeyType::Iv, 8)?;
        let cipher =
            cbc::Decryptor::<C>::new_from_slices(&key, &iv).map_err(|_| wrong_password())?;
        cipher
            .decrypt_padded::<Pkcs7>(buffer)
            .map(<[u8]>::len)
            .map_err(|_| wrong_password())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use aws_lc_rs::signature::{UnparsedPublicKey, VerificationAlgorithm};
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::extensions::ParsedExtension;

    use super::*;

    const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    fn rsa() -> &'static KeyMaterial {
        static KEY: OnceLock<KeyMaterial> = OnceLock::new();
        KEY.get_or_init(|| KeyMaterial::generate_rsa(2048, None).unwrap())
    }

    fn request(subject: &str) -> CertRequest {
        CertRequest {
            subject: subject.into(),
            dns_names: vec!["app.example.com".into(), "*.app.example.com".into()],
            emails: vec!["admin@example.com".into()],
            upns: vec!["svc@contoso.onmicrosoft.com".into()],
            uris: vec!["https://app.example.com/id".into()],
            ip_addresses: vec!["10.0.0.1".into(), "::1".into()],
            ekus: vec![
                "1.3.6.1.5.5.7.3.1".into(),
                "1.3.6.1.5.5.7.3.2".into(),
                "1.2.3.4.5".into(),
            ],
            key_usage: vec!["digitalSignature".into(), "keyEncipherment".into()],
            validity_months: 12,
            not_before: NOW,
        }
    }

    /// Verifies `signature` over `message` with an SPKI, for the signature
    /// algorithms this module uses.
    fn verify(
        spki: &SubjectPublicKeyInfo<'_>,
        algorithm: &Oid<'_>,
        message: &[u8],
        signature: &[u8],
    ) {
        let alg: &'static dyn VerificationAlgorithm = match algorithm.to_id_string().as_str() {
            "1.2.840.113549.1.1.11" => &signature::RSA_PKCS1_2048_8192_SHA256,
            "1.2.840.10045.4.3.2" => &signature::ECDSA_P256_SHA256_ASN1,
            "1.2.840.10045.4.3.3" => &signature::ECDSA_P384_SHA384_ASN1,
            "1.2.840.10045.4.3.4" => &signature::ECDSA_P521_SHA512_ASN1,
            other => panic!("unexpected signature algorithm {other}"),
        };
        UnparsedPublicKey::new(alg, spki.subject_public_key.data.as_ref())
            .verify(message, signature)
            .expect("the signature verifies");
    }

    fn verify_self_signed(der: &[u8]) {
        let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
        verify(
            cert.public_key(),
            &cert.signature_algorithm.algorithm,
            cert.tbs_certificate.as_ref(),
            cert.signature_value.data.as_ref(),
        );
    }

    fn signature_oid(der: &[u8]) -> String {
        let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
        cert.signature_algorithm.algorithm.to_id_string()
    }

    #[test]
    fn certs_self_signed_rsa() {
        let key = rsa();
        let req = request("CN=app.example.com, O=Contoso, OU=IT, L=Redmond, ST=WA, C=US");
        let der = self_signed(key, &req).unwrap();
        verify_self_signed(&der);
        assert_eq!(signature_oid(&der), "1.2.840.113549.1.1.11");
        assert!(public_key_matches(&der, key).unwrap());

        let info = inspect(&der).unwrap();
        assert_eq!(
            info.subject,
            "CN=app.example.com, O=Contoso, OU=IT, L=Redmond, ST=WA, C=US"
        );
        assert_eq!(info.issuer, info.subject);
        assert_eq!(info.not_before, NOW);
        assert_eq!(info.not_after, 1_798_761_600); // 2027-01-01
        assert_eq!(info.dns_names, ["app.example.com", "*.app.example.com"]);
        assert_eq!(info.emails, ["admin@example.com"]);
        assert_eq!(info.upns, ["svc@contoso.onmicrosoft.com"]);
        assert_eq!(info.uris, ["https://app.example.com/id"]);
        assert_eq!(info.ip_addresses, ["10.0.0.1", "::1"]);
        assert_eq!(info.key_usage, ["digitalSignature", "keyEncipherment"]);
        assert_eq!(
            info.ekus,
            ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2", "1.2.3.4.5"]
        );
        assert_eq!(
            info.thumbprint_sha1,
            digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &der).as_ref()
        );

        // Country is a PrintableString, the rest UTF8String; the serial is
        // positive and random; no basic constraints on a leaf.
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let tags: Vec<Tag> = cert
            .subject()
            .iter_attributes()
            .map(|a| a.attr_value().tag())
            .collect();
        assert_eq!(tags[0], Tag::PrintableString, "C is encoded first");
        assert_eq!(tags[5], Tag::Utf8String, "CN is encoded last");
        assert_eq!(cert.raw_serial().len(), 16);
        assert!(cert.basic_constraints().unwrap().is_none());
        let again = self_signed(key, &req).unwrap();
        let (_, other) = x509_parser::parse_x509_certificate(&again).unwrap();
        assert_ne!(cert.raw_serial(), other.raw_serial());
    }

    #[test]
    fn certs_self_signed_ec() {
        for (curve, oid) in [
            (Curve::P256, "1.2.840.10045.4.3.2"),
            (Curve::P384, "1.2.840.10045.4.3.3"),
            (Curve::P521, "1.2.840.10045.4.3.4"),
        ] {
            let key = KeyMaterial::generate_ec(curve).unwrap();
            let mut req = request("CN=ec.example.com");
            req.validity_months = 1;
            req.key_usage = vec!["digitalSignature".into(), "keyAgreement".into()];
            let der = self_signed(&key, &req).unwrap();
            verify_self_signed(&der);
            assert_eq!(signature_oid(&der), oid, "{curve:?}");
            assert!(public_key_matches(&der, &key).unwrap());
            assert!(!public_key_matches(&der, rsa()).unwrap());
            let info = inspect(&der).unwrap();
            assert_eq!(info.subject, "CN=ec.example.com");
            assert_eq!(info.not_after - info.not_before, 31 * 86_400);
            assert_eq!(info.key_usage, ["digitalSignature", "keyAgreement"]);
        }
        let k1 = KeyMaterial::generate_ec(Curve::P256K).unwrap();
        let err = self_signed(&k1, &request("CN=k1")).unwrap_err();
        assert!(matches!(err, CryptoError::Unsupported(_)), "{err}");
        assert!(err.to_string().contains("P-256K"), "{err}");
        assert!(matches!(
            csr(&k1, &request("CN=k1")),
            Err(CryptoError::Unsupported(_))
        ));
    }

    #[test]
    fn certs_public_key_matches() {
        let key = rsa();
        let other = KeyMaterial::generate_ec(Curve::P256).unwrap();
        let other2 = KeyMaterial::generate_ec(Curve::P256).unwrap();
        let der = self_signed(&other, &request("CN=x")).unwrap();
        assert!(public_key_matches(&der, &other).unwrap());
        assert!(!public_key_matches(&der, &other2).unwrap());
        assert!(!public_key_matches(&der, key).unwrap());
        assert!(public_key_matches(b"garbage", key).is_err());
        let p384 = KeyMaterial::generate_ec(Curve::P384).unwrap();
        assert!(!public_key_matches(&der, &p384).unwrap());
    }

    #[test]
    fn certs_validity_is_in_calendar_months() {
        let start = OffsetDateTime::from_unix_timestamp(1_769_817_600).unwrap(); // 2026-01-31
        let end = add_months(start, 1).unwrap();
        assert_eq!(
            (end.year(), end.month(), end.day()),
            (2026, Month::February, 28)
        );
        let end = add_months(start, 25).unwrap();
        assert_eq!(
            (end.year(), end.month(), end.day()),
            (2028, Month::February, 29)
        );
        let end = add_months(start, 1200).unwrap();
        assert_eq!(
            (end.year(), end.month(), end.day()),
            (2126, Month::January, 31)
        );

        let mut req = request("CN=long");
        req.validity_months = 1200;
        let der = self_signed(rsa(), &req).unwrap();
        let info = inspect(&der).unwrap();
        assert_eq!(
            info.not_after,
            add_months(OffsetDateTime::from_unix_timestamp(NOW).unwrap(), 1200)
                .unwrap()
                .unix_timestamp()
        );
        for months in [0, 1201] {
            req.validity_months = months;
            let err = self_signed(rsa(), &req).unwrap_err();
            assert!(err.to_string().contains("validity_months"), "{err}");
        }
    }

    #[test]
    fn certs_subject_parsing() {
        let parse = |s: &str| {
            parse_dn_attributes(s).map(|attrs| {
                attrs
                    .into_iter()
                    .map(|(_, _, k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(parse("CN=a;O=b ; OU = c").unwrap(), ["CN=a", "O=b", "OU=c"]);
        assert_eq!(
            parse(r#"CN="Contoso, Ltd", O=A\, B\+C, L=x\20"#).unwrap(),
            ["CN=Contoso, Ltd", "O=A, B+C", "L=x "]
        );
        assert_eq!(parse(r"CN=caf\C3\A9").unwrap(), ["CN=café"]);
        assert_eq!(parse("  ").unwrap(), Vec::<String>::new());
        assert_eq!(
            parse("oid.2.5.4.3=x, 2.5.4.10=y").unwrap(),
            ["oid.2.5.4.3=x", "2.5.4.10=y"]
        );

        // Round trip through a certificate and inspect's formatting.
        let subject = r#"CN=Contoso\, Ltd, O=a+b\+c, E=pki@contoso.com, DC=contoso, SERIALNUMBER=42, 1.2.3.4=custom"#;
        let err = parse_subject(subject).unwrap_err();
        assert!(err.to_string().contains('+'), "{err}");
        let subject = r#"CN=Contoso\, Ltd, O=a\+c, E=pki@contoso.com, DC=contoso, SERIALNUMBER=42, 1.2.3.4=custom, S=Wash"#;
        let der = self_signed(rsa(), &request(subject)).unwrap();
        let info = inspect(&der).unwrap();
        assert_eq!(
            info.subject,
            r"CN=Contoso\, Ltd, O=a\+c, E=pki@contoso.com, DC=contoso, SERIALNUMBER=42, 1.2.3.4=custom, ST=Wash"
        );
        let again = self_signed(rsa(), &request(&info.subject)).unwrap();
        assert_eq!(inspect(&again).unwrap().subject, info.subject);
    }

    #[test]
    fn certs_bad_subjects_and_names() {
        let err = |req: &CertRequest| self_signed(rsa(), req).unwrap_err().to_string();
        for (subject, expected) in [
            ("app.example.com", "has no '=value'"),
            ("CN=", "empty"),
            ("CN=a,, O=b", "empty attribute"),
            ("CN=a,", "ends with a separator"),
            ("XX=a", "unknown attribute type"),
            ("CN=a, CN=b", "more than once"),
            ("C=USA", "two-letter"),
            ("CN=\"open", "closing quote"),
            ("CN=#0403", "#hex"),
            ("CN=a\\q", "bad escape"),
            ("E=caf\u{e9}@x", "ASCII"),
        ] {
            let message = err(&request(subject));
            assert!(message.contains(expected), "{subject}: {message}");
        }
        let mut req = request("CN=x");
        req.dns_names = vec!["bad name".into()];
        assert!(err(&req).contains("DNS name"));
        let mut req = request("CN=x");
        req.ip_addresses = vec!["300.1.1.1".into()];
        assert!(err(&req).contains("IP address"));
        let mut req = request("CN=x");
        req.ekus = vec!["serverAuth".into()];
        assert!(err(&req).contains("dotted OID"));
        let mut req = request("CN=x");
        req.key_usage = vec!["signEverything".into()];
        assert!(err(&req).contains("unknown key usage"));
        let mut req = request("CN=x");
        req.emails = vec!["no-at-sign".into()];
        assert!(err(&req).contains("email"));
        let mut req = request("CN=x");
        req.uris = vec!["not a uri".into()];
        assert!(err(&req).contains("URI"));

        // An empty subject needs alternative names; it then gets them critical.
        let mut req = request("");
        let der = self_signed(rsa(), &req).unwrap();
        assert_eq!(inspect(&der).unwrap().subject, "");
        req.dns_names.clear();
        req.emails.clear();
        req.upns.clear();
        req.uris.clear();
        req.ip_addresses.clear();
        assert!(err(&req).contains("subject or at least one"));
        // Everything these errors say is about the request, never the key.
        assert!(matches!(
            self_signed(rsa(), &request("XX=a")),
            Err(CryptoError::BadInput(_))
        ));
    }

    /// The CA flag (basicConstraints cA) of a certificate or of a
    /// request's requested extensions, if it has basicConstraints at all.
    fn basic_constraints_ca(
        extensions: &[x509_parser::extensions::X509Extension<'_>],
    ) -> Option<bool> {
        extensions
            .iter()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::BasicConstraints(bc) => Some(bc.ca),
                _ => None,
            })
    }

    #[test]
    fn certs_key_cert_sign_does_not_make_a_ca() {
        // The az CLI's default policy: keyCertSign and cRLSign on an
        // ordinary TLS certificate.
        let mut req = request("CN=app.example.com");
        req.key_usage = vec![
            "digitalSignature".into(),
            "keyEncipherment".into(),
            "keyCertSign".into(),
            "cRLSign".into(),
            "nonRepudiation".into(),
        ];
        let der = self_signed(rsa(), &req).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert!(cert.basic_constraints().unwrap().is_none());
        assert_eq!(basic_constraints_ca(cert.extensions()), None);
        assert!(!cert.is_ca());
        // The requested key usage bits are kept.
        assert_eq!(
            inspect(&der).unwrap().key_usage,
            [
                "digitalSignature",
                "nonRepudiation",
                "keyEncipherment",
                "keyCertSign",
                "cRLSign"
            ]
        );

        // Nor does a request ask for a CA.
        let der = csr(rsa(), &req).unwrap();
        let (_, parsed) = X509CertificationRequest::from_der(&der).unwrap();
        let mut key_cert_sign = false;
        for ext in parsed.requested_extensions().unwrap() {
            match ext {
                ParsedExtension::BasicConstraints(bc) => {
                    panic!("the request asks for basicConstraints (CA: {})", bc.ca)
                }
                ParsedExtension::KeyUsage(usage) => key_cert_sign = usage.key_cert_sign(),
                _ => {}
            }
        }
        assert!(key_cert_sign, "the request keeps keyCertSign");
    }

    #[test]
    fn certs_csr() {
        let key = KeyMaterial::generate_ec(Curve::P384).unwrap();
        let der = csr(&key, &request("CN=app.example.com, O=Contoso")).unwrap();
        let (rest, parsed) = X509CertificationRequest::from_der(&der).unwrap();
        assert!(rest.is_empty());
        let info = &parsed.certification_request_info;
        assert_eq!(format_name(&info.subject), "CN=app.example.com, O=Contoso");
        verify(
            &info.subject_pki,
            &parsed.signature_algorithm.algorithm,
            info.raw,
            parsed.signature_value.data.as_ref(),
        );
        let spki = key.public_key_spki_der().unwrap();
        let (_, key_spki) = SubjectPublicKeyInfo::from_der(&spki).unwrap();
        assert!(same_public_key(&info.subject_pki, &key_spki));
        let mut dns = Vec::new();
        let mut has_eku = false;
        for ext in parsed.requested_extensions().unwrap() {
            match ext {
                ParsedExtension::SubjectAlternativeName(san) => {
                    for name in &san.general_names {
                        if let GeneralName::DNSName(d) = name {
                            dns.push(d.to_string());
                        }
                    }
                }
                ParsedExtension::ExtendedKeyUsage(eku) => has_eku = eku.server_auth,
                _ => {}
            }
        }
        assert_eq!(dns, ["app.example.com", "*.app.example.com"]);
        assert!(has_eku);

        let der = csr(rsa(), &request("CN=rsa")).unwrap();
        let (_, parsed) = X509CertificationRequest::from_der(&der).unwrap();
        verify(
            &parsed.certification_request_info.subject_pki,
            &parsed.signature_algorithm.algorithm,
            parsed.certification_request_info.raw,
            parsed.signature_value.data.as_ref(),
        );
        // A request has no validity, so a zero one is fine.
        let mut req = request("CN=x");
        req.validity_months = 0;
        assert!(csr(rsa(), &req).is_ok());
        assert!(csr(rsa(), &request("CN=a;CN=b")).is_err());
    }

    /// A two-level chain: a CA and a leaf it signed, with the leaf's key.
    fn chain_with_ca() -> (KeyMaterial, Vec<Vec<u8>>) {
        let ca_key = KeyMaterial::generate_ec(Curve::P256).unwrap();
        let mut ca_req = request("CN=Test CA");
        ca_req.key_usage = vec!["keyCertSign".into()];
        let mut ca_params = params_for(&ca_req).unwrap();
        // params_for never makes a CA; this test CA is one explicitly.
        assert_eq!(ca_params.is_ca, IsCa::NoCa);
        ca_params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let leaf_key = KeyMaterial::generate_ec(Curve::P384).unwrap();
        let leaf_params = params_for(&request("CN=leaf.example.com")).unwrap();
        let ca_pair = KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(ca_key.to_der()),
            &rcgen::PKCS_ECDSA_P256_SHA256,
        )
        .unwrap();
        let leaf_pair = KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(leaf_key.to_der()),
            &rcgen::PKCS_ECDSA_P384_SHA384,
        )
        .unwrap();
        let ca_cert = ca_params.self_signed(&ca_pair).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_pair);
        let leaf = leaf_params.signed_by(&leaf_pair, &issuer).unwrap();
        (leaf_key, vec![leaf.der().to_vec(), ca_cert.der().to_vec()])
    }

    #[test]
    fn certs_pem_round_trip() {
        let key = rsa();
        let cert = self_signed(key, &request("CN=pem")).unwrap();
        let pem = to_pem(key, std::slice::from_ref(&cert));
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(pem.contains("-----END PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\n"));
        assert!(pem.ends_with("-----END CERTIFICATE-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        // Sized exactly, so the buffer never grew and left a stray copy.
        assert_eq!(pem.len(), pem.capacity());
        let (back, chain) = from_pem(&pem).unwrap();
        assert_eq!(back.to_der(), key.to_der());
        assert_eq!(chain, std::slice::from_ref(&cert));

        // Certificates before the key, CRLF line ends, other blocks and text
        // around them; the leaf comes back first, then its issuer.
        let (leaf_key, chain) = chain_with_ca();
        let pem = to_pem(&leaf_key, &chain);
        let key_end = pem.find("-----BEGIN CERTIFICATE-----").unwrap();
        let reordered = format!(
            "Bag Attributes\n{}-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{}",
            &pem[key_end..],
            &pem[..key_end]
        )
        .replace('\n', "\r\n");
        let cert_blocks: Vec<&str> = pem[key_end..]
            .split_inclusive("-----END CERTIFICATE-----\n")
            .collect();
        let swapped = format!("{}{}{}", cert_blocks[1], &pem[..key_end], cert_blocks[0]);
        for text in [reordered, swapped] {
            let (back, got) = from_pem(&text).unwrap();
            assert_eq!(back.kind(), KeyKind::Ec(Curve::P384));
            assert_eq!(back.to_der(), leaf_key.to_der());
            assert_eq!(got, chain);
        }
    }

    #[test]
    fn certs_pem_legacy_key_formats() {
        // PKCS#1 and SEC 1 keys, as `openssl genrsa -traditional` and
        // `openssl ecparam -genkey` write them.
        // PKCS#8 is SEQUENCE { version, AlgorithmIdentifier, OCTET STRING
        // holding the PKCS#1 RSAPrivateKey }.
        let (_, pkcs8) = Any::from_der(rsa().to_der()).unwrap();
        let (rest, _version) = Any::from_der(pkcs8.as_bytes()).unwrap();
        let (rest, _algorithm) = Any::from_der(rest).unwrap();
        let (_, octets) = Any::from_der(rest).unwrap();
        let pkcs1 = octets.as_bytes();
        let cert = self_signed(rsa(), &request("CN=pkcs1")).unwrap();
        let mut text = String::new();
        push_pem(&mut text, "RSA PRIVATE KEY", pkcs1);
        push_pem(&mut text, "CERTIFICATE", &cert);
        let (key, chain) = from_pem(&text).unwrap();
        assert_eq!(key.kind(), KeyKind::Rsa);
        assert_eq!(key.public_jwk().n, rsa().public_jwk().n);
        assert_eq!(chain, [cert]);

        for curve in [Curve::P256, Curve::P521] {
            let ec = KeyMaterial::generate_ec(curve).unwrap();
            let cert = self_signed(&ec, &request("CN=sec1")).unwrap();
            let alg = match curve {
                Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                _ => &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
            };
            let pair = EcdsaKeyPair::from_pkcs8(alg, ec.to_der()).unwrap();
            let sec1 = pair.private_key().as_der().unwrap();
            let mut text = String::new();
            push_pem(&mut text, "EC PRIVATE KEY", sec1.as_ref());
            push_pem(&mut text, "CERTIFICATE", &cert);
            let (key, _) = from_pem(&text).unwrap();
            assert_eq!(key.kind(), KeyKind::Ec(curve));
            assert_eq!(key.public_jwk().x, ec.public_jwk().x);
        }
    }

    #[test]
    fn certs_pem_refusals() {
        let cert = self_signed(rsa(), &request("CN=pem")).unwrap();
        let cert_pem = {
            let mut s = String::new();
            push_pem(&mut s, "CERTIFICATE", &cert);
            s
        };
        let err = |text: &str| from_pem(text).unwrap_err().to_string();

        let encrypted = format!(
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n{cert_pem}"
        );
        assert!(err(&encrypted).contains("encrypted"));
        let legacy = format!(
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,0123456789ABCDEF0123456789ABCDEF\n\nAAAA\n-----END RSA PRIVATE KEY-----\n{cert_pem}"
        );
        assert!(err(&legacy).contains("encrypted"));

        assert!(err(&cert_pem).contains("no private key"));
        let other = KeyMaterial::generate_ec(Curve::P256).unwrap();
        let mismatched = to_pem(&other, std::slice::from_ref(&cert));
        assert!(err(&mismatched).contains("matches its private key"));
        let key_only = to_pem(rsa(), &[]);
        assert!(err(&key_only).contains("no certificate"));
        let two_keys = format!(
            "{}{}",
            &*to_pem(rsa(), &[]),
            &*to_pem(rsa(), std::slice::from_ref(&cert))
        );
        assert!(err(&two_keys).contains("more than one private key"));
        assert!(err("-----BEGIN CERTIFICATE-----\nAAAA\n").contains("END"));
        assert!(
            err("-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n")
                .contains("base64")
        );
        let junk_key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(err(junk_key).contains("PKCS#8"));

        // At most 16 certificates (duplicates counted).
        let sixteen = to_pem(rsa(), &vec![cert.clone(); 16]);
        assert_eq!(from_pem(&sixteen).unwrap().1, std::slice::from_ref(&cert));
        let seventeen = to_pem(rsa(), &vec![cert.clone(); 17]);
        let message = err(&seventeen);
        assert!(message.contains("more than 16 certificates"), "{message}");
        assert!(matches!(
            from_pem(&seventeen),
            Err(CryptoError::BadInput(_))
        ));

        // No error or Debug output carries the key.
        let pem = to_pem(rsa(), &[cert]);
        let key_line = pem.lines().nth(3).unwrap();
        for message in [
            err(&mismatched),
            err(&two_keys),
            format!("{:?}", from_pem(&pem).unwrap()),
        ] {
            assert!(!message.contains(key_line), "{message}");
        }
    }

    #[test]
    fn certs_pkcs12_round_trip() {
        let key = rsa();
        let cert = self_signed(key, &request("CN=pfx.example.com")).unwrap();
        let pfx = to_pkcs12(key, std::slice::from_ref(&cert)).unwrap();
        let (back, chain) = from_pkcs12(&pfx, "").unwrap();
        assert_eq!(back.to_der(), key.to_der());
        assert_eq!(chain, std::slice::from_ref(&cert));

        let (leaf_key, full) = chain_with_ca();
        let pfx = to_pkcs12(&leaf_key, &full).unwrap();
        let (back, chain) = from_pkcs12(&pfx, "").unwrap();
        assert_eq!(back.to_der(), leaf_key.to_der());
        assert_eq!(chain, full);

        // A password-protected PFX (as a client would upload) reads with its
        // password, and a wrong one is refused plainly.
        let mut store = KeyStore::new();
        store.add_entry(
            "k",
            KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(
                b"id".as_slice(),
                p12_keystore::PrivateKey::from_der(key.to_der()).unwrap(),
                [p12_keystore::Certificate::from_der(&cert).unwrap()],
            )),
        );
        let protected = store
            .writer("s3cret")
            .encryption_algorithm(p12_keystore::EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
            .mac_algorithm(p12_keystore::MacAlgorithm::HmacSha1)
            .write()
            .unwrap();
        let (back, chain) = from_pkcs12(&protected, "s3cret").unwrap();
        assert_eq!(back.to_der(), key.to_der());
        assert_eq!(chain, std::slice::from_ref(&cert));
        for (data, password) in [
            (&protected[..], "wrong"),
            (&protected[..], ""),
            (&pfx[..], "x"),
        ] {
            let err = from_pkcs12(data, password).unwrap_err();
            assert!(matches!(err, CryptoError::BadInput(_)));
            assert_eq!(
                err.to_string(),
                "bad input: the PFX password is wrong or the file is damaged"
            );
        }
        assert!(from_pkcs12(b"not a pfx", "").is_err());

        // The chain must start with the key's certificate.
        let err = to_pkcs12(&leaf_key, &[cert]).unwrap_err();
        assert!(err.to_string().contains("first certificate"), "{err}");
        assert!(to_pkcs12(&leaf_key, &[]).is_err());
    }

    // -----------------------------------------------------------------------
    // PFX limits. Files are built by hand with the same ASN.1 types
    // p12-keystore reads them with.

    mod pfx {
        use std::time::{Duration, Instant};

        use p12_keystore::{Certificate, PrivateKey};
        use pkcs5::der::asn1::{ObjectIdentifier, OctetString};
        use pkcs5::der::{Any as DerAny, Decode as _, Encode as _};
        use pkcs5::pbes2;
        use pkcs12::cms::cert::x509::spki::AlgorithmIdentifierOwned;
        use pkcs12::cms::content_info::{CmsVersion, ContentInfo};
        use pkcs12::cms::encrypted_data::EncryptedData;
        use pkcs12::cms::enveloped_data::EncryptedContentInfo;
        use pkcs12::pbe_params::{EncryptedPrivateKeyInfo, Pkcs12PbeParams};
        use pkcs12::pfx::{Pfx, Version};
        use pkcs12::safe_bag::SafeBag;
        use pkcs12::{CertBag, DigestInfo, MacData};

        use super::super::pfx_limits::{
            MAX_BAGS, MAX_BYTES, MAX_ITERATIONS, MAX_SAFES, MAX_TOTAL_ITERATIONS,
        };
        use super::*;

        const DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
        const ENCRYPTED_DATA: ObjectIdentifier =
            ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
        const ENVELOPED_DATA: ObjectIdentifier =
            ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.3");
        const PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");
        const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

        fn any(der: &[u8]) -> DerAny {
            DerAny::from_der(der).unwrap()
        }

        fn pbkdf2(iterations: u32) -> pbes2::Parameters {
            pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(iterations, &[7; 16], [9; 16])
                .unwrap()
        }

        fn scrypt(log_n: u8) -> pbes2::Parameters {
            let params = pkcs5::scrypt::Params::new(log_n, 8, 1).unwrap();
            pbes2::Parameters::generate_scrypt_aes256cbc(params, &[7; 16], [9; 16]).unwrap()
        }

        fn pbes2_alg(params: &pbes2::Parameters) -> AlgorithmIdentifierOwned {
            AlgorithmIdentifierOwned {
                oid: PBES2,
                parameters: Some(any(&params.to_der().unwrap())),
            }
        }

        /// A legacy PKCS#12 PBE: 3DES or RC2-40.
        fn pkcs12_pbe(triple_des: bool, iterations: i32) -> AlgorithmIdentifierOwned {
            let params = Pkcs12PbeParams {
                salt: OctetString::new(vec![1; 8]).unwrap(),
                iterations,
            };
            AlgorithmIdentifierOwned {
                oid: if triple_des {
                    pkcs12::PKCS_12_PBE_WITH_SHAAND3_KEY_TRIPLE_DES_CBC
                } else {
                    pkcs12::PKCS_12_PBEWITH_SHAAND40_BIT_RC2_CBC
                },
                parameters: Some(any(&params.to_der().unwrap())),
            }
        }

        fn bag(bag_id: ObjectIdentifier, value: Vec<u8>) -> SafeBag {
            SafeBag {
                bag_id,
                bag_value: value,
                bag_attributes: None,
            }
        }

        fn shrouded_key(alg: AlgorithmIdentifierOwned, ciphertext: Vec<u8>) -> SafeBag {
            let info = EncryptedPrivateKeyInfo {
                encryption_algorithm: alg,
                encrypted_data: OctetString::new(ciphertext).unwrap(),
            };
            bag(pkcs12::PKCS_12_PKCS8_KEY_BAG_OID, info.to_der().unwrap())
        }

        /// The key's bag, really encrypted with `params` under `password`.
        fn key_bag(key: &KeyMaterial, params: &pbes2::Parameters, password: &str) -> SafeBag {
            let ciphertext = params.encrypt(password, key.to_der()).unwrap();
            shrouded_key(pbes2_alg(params), ciphertext)
        }

        fn cert_bag(der: &[u8]) -> SafeBag {
            let cert = CertBag {
                cert_id: pkcs12::PKCS_12_X509_CERT_OID,
                cert_value: OctetString::new(der.to_vec()).unwrap(),
            };
            bag(pkcs12::PKCS_12_CERT_BAG_OID, cert.to_der().unwrap())
        }

        fn crl_bag() -> SafeBag {
            let value = OctetString::new(vec![0; 4]).unwrap().to_der().unwrap();
            bag(pkcs12::PKCS_12_CRL_BAG_OID, value)
        }

        fn data_safe(bags: Vec<SafeBag>) -> ContentInfo {
            let contents = OctetString::new(bags.to_der().unwrap()).unwrap();
            ContentInfo {
                content_type: DATA,
                content: any(&contents.to_der().unwrap()),
            }
        }

        fn encrypted_safe(alg: AlgorithmIdentifierOwned, ciphertext: Vec<u8>) -> ContentInfo {
            let data = EncryptedData {
                version: CmsVersion::V0,
                enc_content_info: EncryptedContentInfo {
                    content_type: DATA,
                    content_enc_alg: alg,
                    encrypted_content: Some(OctetString::new(ciphertext).unwrap()),
                },
                unprotected_attrs: None,
            };
            ContentInfo {
                content_type: ENCRYPTED_DATA,
                content: any(&data.to_der().unwrap()),
            }
        }

        /// `bags` in a safe really encrypted with PBES2 (1,000 iterations).
        fn pbes2_safe(bags: Vec<SafeBag>, password: &str) -> ContentInfo {
            let params = pbkdf2(1000);
            let ciphertext = params.encrypt(password, &bags.to_der().unwrap()).unwrap();
            encrypted_safe(pbes2_alg(&params), ciphertext)
        }

        /// A MAC that is never verified: the walk refuses the file first.
        fn mac(iterations: i32) -> MacData {
            MacData {
                mac: DigestInfo {
                    algorithm: AlgorithmIdentifierOwned {
                        oid: SHA256,
                        parameters: None,
                    },
                    digest: OctetString::new(vec![0; 32]).unwrap(),
                },
                mac_salt: OctetString::new(vec![2; 8]).unwrap(),
                iterations,
            }
        }

        fn pfx_of(safes: Vec<ContentInfo>, mac_data: Option<MacData>) -> Vec<u8> {
            let auth_safe = OctetString::new(safes.to_der().unwrap()).unwrap();
            Pfx {
                version: Version::V3,
                auth_safe: ContentInfo {
                    content_type: DATA,
                    content: any(&auth_safe.to_der().unwrap()),
                },
                mac_data,
            }
            .to_der()
            .unwrap()
        }

        fn cert() -> &'static Vec<u8> {
            static CERT: OnceLock<Vec<u8>> = OnceLock::new();
            CERT.get_or_init(|| self_signed(rsa(), &request("CN=pfx.example.com")).unwrap())
        }

        /// Refused with BadInput, at once (no key derivation ran), and the
        /// message never shows the password.
        #[track_caller]
        fn refused(pfx: &[u8], password: &str) -> String {
            let started = Instant::now();
            let err = from_pkcs12(pfx, password).unwrap_err();
            let elapsed = started.elapsed();
            assert!(
                elapsed < Duration::from_secs(1),
                "refused in {elapsed:?}: {err}"
            );
            assert!(matches!(err, CryptoError::BadInput(_)), "{err}");
            let message = err.to_string();
            assert!(
                password.is_empty() || !message.contains(password),
                "{message}"
            );
            message
        }

        #[test]
        fn certs_pkcs12_hand_built_files_import() {
            // The builders above make files that import, so the refusals
            // below are about the limits, not about broken files.
            let key = rsa();
            let pfx = pfx_of(
                vec![
                    pbes2_safe(vec![cert_bag(cert())], "pw"),
                    data_safe(vec![key_bag(key, &pbkdf2(1000), "pw")]),
                ],
                None,
            );
            let (back, chain) = from_pkcs12(&pfx, "pw").unwrap();
            assert_eq!(back.to_der(), key.to_der());
            assert_eq!(chain, [cert().clone()]);

            // At the limits: 8 safes (six of them empty) and 32 bags (the
            // key, the certificate and 30 CRL bags).
            let mut safes = vec![
                data_safe(vec![key_bag(key, &pbkdf2(1000), "pw")]),
                pbes2_safe(vec![cert_bag(cert())], "pw"),
            ];
            safes.extend((2..MAX_SAFES).map(|_| data_safe(Vec::new())));
            safes[2] = data_safe((2..MAX_BAGS).map(|_| crl_bag()).collect());
            let (back, _) = from_pkcs12(&pfx_of(safes, None), "pw").unwrap();
            assert_eq!(back.to_der(), key.to_der());
        }

        #[test]
        fn certs_pkcs12_refuses_costly_iterations() {
            let junk = || vec![0u8; 1232];
            let certs = || data_safe(vec![cert_bag(cert())]);
            for iterations in [1_000_001, 1_000_000, MAX_ITERATIONS + 1] {
                // The key bag's PBKDF2 (p12-keystore alone runs up to
                // 1,000,000)...
                let key = shrouded_key(pbes2_alg(&pbkdf2(iterations)), junk());
                let message = refused(
                    &pfx_of(vec![data_safe(vec![key.clone()]), certs()], None),
                    "",
                );
                assert!(
                    message.contains(&format!("{iterations} key derivation iterations")),
                    "{message}"
                );
                assert!(message.contains("at most 600000"), "{message}");
                // ...also when it hides in an encrypted safe...
                let hidden = pbes2_safe(vec![key, cert_bag(cert())], "pw");
                let message = refused(&pfx_of(vec![hidden], None), "pw");
                assert!(message.contains(&iterations.to_string()), "{message}");
                // ...the encrypted safe's own...
                let safe = encrypted_safe(pbes2_alg(&pbkdf2(iterations)), junk());
                let message = refused(&pfx_of(vec![safe], None), "");
                assert!(message.contains("encrypted safe"), "{message}");
                // ...the legacy PBEs' PKCS#12 KDF...
                let count = i32::try_from(iterations).unwrap();
                for triple_des in [true, false] {
                    let key = shrouded_key(pkcs12_pbe(triple_des, count), junk());
                    let message = refused(&pfx_of(vec![data_safe(vec![key]), certs()], None), "");
                    assert!(message.contains("private key"), "{message}");
                    let safe = encrypted_safe(pkcs12_pbe(triple_des, count), junk());
                    refused(&pfx_of(vec![safe], None), "");
                }
                // ...and the MAC's.
                let good = vec![certs(), data_safe(vec![key_bag(rsa(), &pbkdf2(1000), "")])];
                let message = refused(&pfx_of(good, Some(mac(count))), "");
                assert!(message.contains("MAC"), "{message}");
            }
            // Zero or negative counts are refused too.
            for count in [0, -5] {
                let key = shrouded_key(pkcs12_pbe(true, count), junk());
                refused(&pfx_of(vec![data_safe(vec![key])], Some(mac(1))), "");
                refused(&pfx_of(vec![certs()], Some(mac(count))), "");
            }

            // Several derivations at the maximum: a MAC, a key and a safe
            // pass (1,800,000), one more safe is refused before anything is
            // decrypted.
            let max = i32::try_from(MAX_ITERATIONS).unwrap();
            let safes = vec![
                data_safe(vec![shrouded_key(
                    pbes2_alg(&pbkdf2(MAX_ITERATIONS)),
                    junk(),
                )]),
                encrypted_safe(pkcs12_pbe(false, max), junk()),
                encrypted_safe(pbes2_alg(&pbkdf2(1)), junk()),
            ];
            let message = refused(&pfx_of(safes, Some(mac(max))), "");
            assert!(
                message.contains(&format!("add up to more than {MAX_TOTAL_ITERATIONS}")),
                "{message}"
            );
        }

        #[test]
        fn certs_pkcs12_refuses_scrypt() {
            // A genuine scrypt-protected key bag (cheap parameters), which
            // p12-keystore alone would read...
            let cheap = scrypt(10);
            let key = key_bag(rsa(), &cheap, "pw");
            let pfx = pfx_of(vec![data_safe(vec![key, cert_bag(cert())])], None);
            let archive = Pkcs12Archive::from_pkcs12(&pfx, "pw").unwrap();
            assert_eq!(archive.keys[0].key.as_der(), rsa().to_der());
            // ...is refused.
            let message = refused(&pfx, "pw");
            assert!(
                message.contains("scrypt-protected PFX files are not supported"),
                "{message}"
            );

            // N = 2^20, r = 8 (1 GiB per derivation): refused without
            // deriving anything, on the key, on a safe, or hidden in one.
            let huge = scrypt(20);
            let key = shrouded_key(pbes2_alg(&huge), vec![0; 1232]);
            for safes in [
                vec![data_safe(vec![key.clone(), cert_bag(cert())])],
                vec![encrypted_safe(pbes2_alg(&huge), vec![0; 1232])],
                vec![pbes2_safe(vec![key, cert_bag(cert())], "pw")],
            ] {
                let message = refused(&pfx_of(safes, None), "pw");
                assert!(message.contains("scrypt"), "{message}");
            }
        }

        #[test]
        fn certs_pkcs12_refuses_too_many_bags_and_safes() {
            // 40 bags, as p12-keystore writes them: the key in a plain safe,
            // 39 certificates in an encrypted one; the walk decrypts it to
            // count them.
            let mut store = KeyStore::new();
            let certs = vec![Certificate::from_der(cert()).unwrap(); 39];
            store.add_entry(
                "k",
                KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(
                    b"id".as_slice(),
                    PrivateKey::from_der(rsa().to_der()).unwrap(),
                    certs,
                )),
            );
            let forty = store.writer("").write().unwrap();
            let message = refused(&forty, "");
            assert!(
                message.contains(&format!("more than {MAX_BAGS} bags")),
                "{message}"
            );

            // In plain safes, spread over several.
            let safes = vec![
                data_safe(vec![key_bag(rsa(), &pbkdf2(1000), "")]),
                data_safe((0..20).map(|_| crl_bag()).collect()),
                data_safe((0..20).map(|_| cert_bag(cert())).collect()),
            ];
            refused(&pfx_of(safes, None), "");

            // Nine safes.
            let safes = (0..=MAX_SAFES).map(|_| data_safe(Vec::new())).collect();
            let message = refused(&pfx_of(safes, None), "");
            assert!(message.contains("9 safes"), "{message}");

            // A second private key is refused before either is decrypted.
            let costly = || shrouded_key(pbes2_alg(&pbkdf2(MAX_ITERATIONS)), vec![0; 1232]);
            let safes = vec![data_safe(vec![costly(), costly(), cert_bag(cert())])];
            let message = refused(&pfx_of(safes, None), "");
            assert!(message.contains("more than one private key"), "{message}");

            // 17 certificates (bags allow it, the chain does not); 16 pass.
            for (count, ok) in [(16, true), (17, false)] {
                let mut bags = vec![key_bag(rsa(), &pbkdf2(1000), "")];
                bags.extend((0..count).map(|_| cert_bag(cert())));
                let pfx = pfx_of(vec![data_safe(bags)], None);
                if ok {
                    assert_eq!(from_pkcs12(&pfx, "").unwrap().1, [cert().clone()]);
                } else {
                    let message = refused(&pfx, "");
                    assert!(message.contains("17 certificates; at most 16"), "{message}");
                }
            }
        }

        #[test]
        fn certs_pkcs12_refuses_what_it_cannot_classify() {
            let large = vec![0x30; MAX_BYTES + 1];
            assert!(refused(&large, "").contains("256 KiB"));
            assert!(refused(b"not a pfx", "").contains("not a PFX"));

            let key = || key_bag(rsa(), &pbkdf2(1000), "");
            let nested = bag(
                pkcs12::PKCS_12_SAFE_CONTENTS_BAG_OID,
                vec![cert_bag(cert())].to_der().unwrap(),
            );
            let secret = bag(
                pkcs12::PKCS_12_SECRET_BAG_OID,
                OctetString::new(vec![1; 16]).unwrap().to_der().unwrap(),
            );
            let unknown = bag(
                ObjectIdentifier::new_unwrap("1.2.3.4.5"),
                OctetString::new(vec![1; 16]).unwrap().to_der().unwrap(),
            );
            for (odd, expected) in [
                (nested, "nests SafeContents"),
                (secret, "secret bag"),
                (unknown, "unknown type 1.2.3.4.5"),
            ] {
                // In a plain safe and hidden in an encrypted one.
                for safe in [
                    data_safe(vec![key(), cert_bag(cert()), odd.clone()]),
                    pbes2_safe(vec![key(), cert_bag(cert()), odd.clone()], ""),
                ] {
                    let message = refused(&pfx_of(vec![safe], None), "");
                    assert!(message.contains(expected), "{message}");
                }
            }

            // A safe encrypted to a public key (EnvelopedData) is not
            // supported.
            let enveloped = ContentInfo {
                content_type: ENVELOPED_DATA,
                content: any(&OctetString::new(vec![0; 8]).unwrap().to_der().unwrap()),
            };
            let err = from_pkcs12(&pfx_of(vec![enveloped], None), "").unwrap_err();
            assert!(matches!(err, CryptoError::Unsupported(_)), "{err}");
        }

        #[test]
        fn certs_pkcs12_openssl_vectors() {
            for vector in [OPENSSL_DEFAULT, OPENSSL_LEGACY] {
                let compact: String = vector.split_whitespace().collect();
                let pfx = STANDARD.decode(compact).unwrap();
                let (key, chain) = from_pkcs12(&pfx, "s3cret").unwrap();
                assert_eq!(key.kind(), KeyKind::Ec(Curve::P256));
                assert_eq!(chain.len(), 1);
                assert!(public_key_matches(&chain[0], &key).unwrap());
                assert_eq!(
                    inspect(&chain[0]).unwrap().subject,
                    "CN=interop.example.com"
                );
                let err = from_pkcs12(&pfx, "wrong").unwrap_err();
                assert_eq!(
                    err.to_string(),
                    "bad input: the PFX password is wrong or the file is damaged"
                );
            }
        }

        /// `openssl pkcs12 -export` (OpenSSL 3.0): PBES2 (PBKDF2-SHA-256, AES-256-CBC,
        /// 2048 iterations) and an HMAC-SHA-256 MAC; a P-256 key, CN=interop.example.com, password `s3cret`.
        const OPENSSL_DEFAULT: &str = "\
        MIIEHAIBAzCCA9IGCSqGSIb3DQEHAaCCA8MEggO/MIIDuzCCAnIGCSqGSIb3DQEHBqCCAmMwggJf\
        AgEAMIICWAYJKoZIhvcNAQcBMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAhWHqFExqjQ\
        3AICCAAwDAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEELfujjgK0CG9ePAZvfKB6uaAggHw447f\
        MYj370c9IQiMB8V5fj59C5l7Z982AjaoN0W9060y1PW3shFH/e3JMnJ5pP+VH2COdhTqBs0ddBcP\
        fLipZvOHbQpR+a4t7gAUddOHvb6+9/Rz1YYjPhkvHhSHZic4X8/vpgpTLxsdTWZng7ya7GFIUjzX\
        Jpl7FOhQv/ofRht7vBBIVy/c8jxhosviLorzFf/OL5w3JswQ01PSFHiYpmC7Mrwv9kcmeHgKvHd+\
        AiGy6r+eswx+GcVUULccwrZQLdBkprwFFqEKbamTB54gasa/X/UZygPzxa4t9h1Z2PthtAiOPPQk\
        kMyuGaszTzl3FeW5oYc4AQlgl6PShLYzc74Iy2f4m5tY6E+YpXNXtBe253qzhoTLOZHbVFiMD873\
        1LQZ+8xeE5JLU8sJvUhewTexSpILIWVnDDNu4Ih7M3G+Bp0x84GKmIHe199bBeesQEmVmy42mfy6\
        ggUHIVJPD5ykGdDaQ+BIZ+BjWn7iMbUaJ1vQ66yXon+lruI5bi5iAzvBNBF3f3pLyPpuh8pWqJss\
        if7lowQgMvyf5bCmZc00xW5omltjZbVkCphpkeDtv3LtDsWcCN8Nn04Er1gwuqFcX/cVbgNN/DTD\
        Ndl5kA9vKhfI3C+08riLU3b+hPxyvGGuaMkcacStaD69tvExyTCCAUEGCSqGSIb3DQEHAaCCATIE\
        ggEuMIIBKjCCASYGCyqGSIb3DQEMCgECoIHvMIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEF\
        DDAcBAg7SJSBTqWiyQICCAAwDAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEB51F6jxEJsaN4fa\
        nyYQoPQEgZCs632b9c/8bxkzeKBtTYtDg5fYAVQy7zfOatCFRdEcfEGKO3EFGwHhRXVgLzCjZN5k\
        5yhOVUmFokMjIi1jib4vUZ672wnlV33oqOytnDDqNyukdMLZYPYnOPPI8inencXrUPoHAHazgxc1\
        4BdbVh7Aot+gWnAQ/VSyLYAsdszBnGJ9De57yZtVwdwgKdl9xgExJTAjBgkqhkiG9w0BCRUxFgQU\
        v3MAbxMkeQphdEstVSwMYH5o2/4wQTAxMA0GCWCGSAFlAwQCAQUABCCMwqq0V8X08gdIBWkoeNdA\
        pVaycgCr8nseTaQ2oNql+wQImVQ0KqyPU1oCAggA";

        /// `openssl pkcs12 -export -legacy`: the certificate safe under
        /// pbeWithSHA1And40BitRC2-CBC, the key under pbeWithSHA1And3-KeyTripleDES-CBC,
        /// an HMAC-SHA-1 MAC, 2048 iterations; a P-256 key, CN=interop.example.com, password `s3cret`.
        const OPENSSL_LEGACY: &str = "\
        MIIDkgIBAzCCA1gGCSqGSIb3DQEHAaCCA0kEggNFMIIDQTCCAjcGCSqGSIb3DQEHBqCCAigwggIk\
        AgEAMIICHQYJKoZIhvcNAQcBMBwGCiqGSIb3DQEMAQYwDgQILV3EbgG3ji8CAggAgIIB8Ew/CZTy\
        jZ3o4s3ZrLwsenxE+bip9HF44/JJAKZxBUTtydaT47MKpr3aDO2GVQyCia3mh0ptCeUVmJlwFhER\
        U3ksyCx32/q+J8moJpnxWLKldmTH130C/yenVsw6vvrXeCk9TSCjUWf/XLWUV3HIKD75SamljqPa\
        rU4C2gUUbOL/74GWPVyeebRz1zRDsB+a726+O8hqNuQO4E+1oa/aMpKjcNrvJY+LHVSjXG5sv18+\
        HFtAJvr+VJZ+BGlkrs2WdasOggzM1Tg3ktssMjtY2q/ucIlI5xAAp35nLb1wkH/hQplYs+RrhpgR\
        hDmfZhF3qU82iOrQryPzSbvL6yNjwlljiLyozuIo8Z6VBnwUUPxdFcELqGpXQlEhAZRb0xh1kAVl\
        jo9/Tv1u+qi2f6leCj84dvjBZz9z3NvON41yQKCfNmuIyzb9L1ETovWKUgLllpLPxFL3swIadu10\
        15wWOuqkFewCjgyVZJ+6Cu4vR0Es+9a2a+7Wpr+rhyU9SpVIeaVdGuNA42wAtZ0tEjSLqjjCBFUg\
        keVLD7UPndPC3S72zP2v36gk759yyJdZa0tuyapOEENTKpBjtwy6uIwmOwKl6xeWA2urIEorji4h\
        LO0Wyo6lJg4wLVIQV7AfQBO+wDwqOOxEV3/bwr1pD7jREwEwggECBgkqhkiG9w0BBwGggfQEgfEw\
        ge4wgesGCyqGSIb3DQEMCgECoIG0MIGxMBwGCiqGSIb3DQEMAQMwDgQIGK/CZ/ahw+YCAggABIGQ\
        ONqZRBawO1jaATTA0jKmCeNvT/wsgMVS4ZvrcmXO4gpXqprYEsxXhb+QfwfwxkxAaymUEeEJ8rdk\
        nPGemyNADjkuCGjGWsWJgDbyasCpNTW5RbZEFgAkN1F9dEG/GHImhggaDgX7vl4EXsnCTm7/EZpD\
        goEXb6unv++nhiEVHPmQe5v/24U9jcYyfmk1/jE0MSUwIwYJKoZIhvcNAQkVMRYEFL9zAG8TJHkK\
        YXRLLVUsDGB+aNv+MDEwITAJBgUrDgMCGgUABBR4bnsM3zbsqs+lrjq2J7lJIxlrNQQIZL4TR5CI\
        IgQCAggA";
    }

    #[test]
    fn certs_from_pkcs8_detects_the_kind() {
        assert_eq!(
            KeyMaterial::from_pkcs8(rsa().to_der()).unwrap().kind(),
            KeyKind::Rsa
        );
        for curve in [Curve::P256, Curve::P384, Curve::P521, Curve::P256K] {
            let key = KeyMaterial::generate_ec(curve).unwrap();
            let back = KeyMaterial::from_pkcs8(key.to_der()).unwrap();
            assert_eq!(back.kind(), KeyKind::Ec(curve));
            assert_eq!(back.public_jwk().x, key.public_jwk().x);
        }
        assert!(matches!(
            KeyMaterial::from_pkcs8(b"\x30\x03\x02\x01\x00"),
            Err(CryptoError::BadInput(_))
        ));
    }
}

/// Interoperability with OpenSSL and Python's `cryptography`, run by hand:
/// `KEYFORT_INTEROP_DIR=/tmp/x cargo test -p keyfort-crypto certs_interop -- --ignored --nocapture`.
/// It writes `out-*.pfx` / `out-*.pem` for other tools to open, and reads
/// every `in-*.pfx` (password in the matching `in-*.pass`, if any) and
/// `in-*.pem` that other tools wrote there.
#[cfg(test)]
mod interop {
    use super::*;

    #[test]
    #[ignore = "needs files from OpenSSL; run by hand"]
    fn certs_interop() {
        let Ok(dir) = std::env::var("KEYFORT_INTEROP_DIR") else {
            return;
        };
        let dir = std::path::Path::new(&dir);
        let request = |subject: &str| CertRequest {
            subject: subject.into(),
            dns_names: vec!["app.example.com".into()],
            key_usage: vec!["digitalSignature".into(), "keyEncipherment".into()],
            ekus: vec!["1.3.6.1.5.5.7.3.1".into()],
            validity_months: 12,
            not_before: 1_767_225_600,
            ..CertRequest::default()
        };
        for (name, key) in [
            ("rsa", KeyMaterial::generate_rsa(2048, None).unwrap()),
            ("p256", KeyMaterial::generate_ec(Curve::P256).unwrap()),
            ("p384", KeyMaterial::generate_ec(Curve::P384).unwrap()),
            ("p521", KeyMaterial::generate_ec(Curve::P521).unwrap()),
        ] {
            let cert = self_signed(
                &key,
                &request(&format!("CN={name}.example.com, O=Contoso, C=US")),
            )
            .unwrap();
            let chain = [cert];
            std::fs::write(
                dir.join(format!("out-{name}.pfx")),
                &*to_pkcs12(&key, &chain).unwrap(),
            )
            .unwrap();
            std::fs::write(dir.join(format!("out-{name}.pem")), &*to_pem(&key, &chain)).unwrap();
            std::fs::write(dir.join(format!("out-{name}.cer")), &chain[0]).unwrap();
            std::fs::write(
                dir.join(format!("out-{name}.csr")),
                csr(&key, &request("CN=csr.example.com")).unwrap(),
            )
            .unwrap();
        }
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("in-"))
            .collect();
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let result = if name.ends_with(".pfx") || name.ends_with(".p12") {
                let password =
                    std::fs::read_to_string(path.with_extension("pass")).unwrap_or_default();
                from_pkcs12(
                    &std::fs::read(&path).unwrap(),
                    password.trim_end_matches('\n'),
                )
            } else if name.ends_with(".pem") {
                from_pem(&std::fs::read_to_string(&path).unwrap())
            } else {
                continue;
            };
            match result {
                Ok((key, chain)) => {
                    let info = inspect(&chain[0]).unwrap();
                    println!(
                        "{name}: OK {:?}, {} certificate(s), leaf {:?}",
                        key.kind(),
                        chain.len(),
                        info.subject
                    );
                    assert!(public_key_matches(&chain[0], &key).unwrap());
                    let stem = name
                        .trim_start_matches("in-")
                        .split('.')
                        .next()
                        .unwrap()
                        .to_string();
                    std::fs::write(
                        dir.join(format!("re-{stem}.pfx")),
                        &*to_pkcs12(&key, &chain).unwrap(),
                    )
                    .unwrap();
                }
                Err(e) => println!("{name}: ERROR {e}"),
            }
        }
    }
}
