//! Seed identity as a pure function of the client certificate.
//!
//! The TLS layer has already verified the chain against `tls.client_ca_file`; this only reads the
//! name. Gardener's convention: Subject O `gardener.cloud:system:seeds` and CN
//! `gardener.cloud:system:seed:<seed-name>`. Other PKIs can put the name in a DNS or URI SAN.

use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::config::{IdentityConfig, IdentitySource};
use common::tls::{GARDENER_SEEDS_ORG, GARDENER_SEED_CN_PREFIX};

/// A seed name taken from a verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeedIdentity(pub String);

impl std::fmt::Display for SeedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why no identity could be read (answered with 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// No client certificate on the connection.
    #[error("no client certificate")]
    NoCertificate,
    /// The certificate is not parseable X.509.
    #[error("client certificate is not valid X.509: {0}")]
    Unparseable(String),
    /// Gardener convention: organisation missing.
    #[error("client certificate subject lacks O={GARDENER_SEEDS_ORG}")]
    NotASeed,
    /// Gardener convention: CN not `gardener.cloud:system:seed:<name>`.
    #[error("client certificate CN {0:?} is not gardener.cloud:system:seed:<name>")]
    BadCommonName(String),
    /// SAN mode: no matching SAN.
    #[error("client certificate has no {0} SAN naming a seed")]
    NoSan(&'static str),
    /// The name is empty or has characters a seed name cannot have.
    #[error("seed name {0:?} is not a valid seed name")]
    InvalidName(String),
    /// The certificate could speak for more than one seed (two CNs, two matching SANs).
    #[error("client certificate identity is ambiguous: {0}")]
    Ambiguous(String),
}

/// The seed a verified client certificate (DER, leaf) speaks for.
pub fn identity_from_cert(
    leaf_der: &[u8],
    config: &IdentityConfig,
) -> Result<SeedIdentity, IdentityError> {
    let (_, cert) = X509Certificate::from_der(leaf_der)
        .map_err(|e| IdentityError::Unparseable(e.to_string()))?;
    let name = match config.source {
        IdentitySource::Gardener => gardener_name(&cert)?,
        IdentitySource::SanDns => {
            san_name(&cert, "DNS", config.san_suffix.as_deref(), |n| match n {
                GeneralName::DNSName(d) => Some(*d),
                _ => None,
            })?
        }
        IdentitySource::SanUri => {
            san_name(&cert, "URI", config.san_prefix.as_deref(), |n| match n {
                GeneralName::URI(u) => Some(*u),
                _ => None,
            })?
        }
    };
    if !is_valid_seed_name(&name) {
        return Err(IdentityError::InvalidName(name));
    }
    Ok(SeedIdentity(name))
}

fn gardener_name(cert: &X509Certificate<'_>) -> Result<String, IdentityError> {
    let subject = cert.subject();
    let is_seed = subject
        .iter_organization()
        .any(|o| o.as_str().is_ok_and(|o| o == GARDENER_SEEDS_ORG));
    if !is_seed {
        return Err(IdentityError::NotASeed);
    }
    let common_names: Vec<&str> = subject
        .iter_common_name()
        .map(|cn| cn.as_str().unwrap_or("<not a string>"))
        .collect();
    // A second CN could be read as another seed by another tool: never pick one.
    if common_names.len() > 1 {
        return Err(IdentityError::Ambiguous(format!(
            "{} CNs in the subject: {common_names:?}",
            common_names.len()
        )));
    }
    let cn = common_names.first().copied().unwrap_or_default();
    cn.strip_prefix(GARDENER_SEED_CN_PREFIX)
        .map(str::to_string)
        .ok_or_else(|| IdentityError::BadCommonName(cn.to_string()))
}

/// The seed named by the SANs of the wanted kind, with `affix` removed (a suffix for DNS, a
/// prefix for URI; without one every SAN of the kind names a seed). Two different names are
/// ambiguous.
fn san_name<'c>(
    cert: &'c X509Certificate<'c>,
    kind: &'static str,
    affix: Option<&str>,
    pick: impl for<'n> Fn(&'n GeneralName<'c>) -> Option<&'c str>,
) -> Result<String, IdentityError> {
    let sans = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| ext.value.general_names.clone())
        .unwrap_or_default();
    let mut names: Vec<&str> = sans
        .iter()
        .filter_map(pick)
        .filter_map(|name| match (kind, affix) {
            (_, None) => Some(name),
            ("DNS", Some(suffix)) => name.strip_suffix(suffix),
            (_, Some(prefix)) => name.strip_prefix(prefix),
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    match names.as_slice() {
        [] => Err(IdentityError::NoSan(kind)),
        [name] => Ok((*name).to_string()),
        _ => Err(IdentityError::Ambiguous(format!(
            "{} {kind} SANs name different seeds: {names:?}",
            names.len()
        ))),
    }
}

/// When the certificate expires, seconds since the Unix epoch (`None` if it does not parse).
pub fn certificate_not_after(leaf_der: &[u8]) -> Option<i64> {
    let (_, cert) = X509Certificate::from_der(leaf_der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// Seed names are Kubernetes object names (DNS-1123 labels/subdomains); allow that set, which
/// also keeps them safe as a label value in every tool downstream.
fn is_valid_seed_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use certs::{CertificateAuthority, ClientSubject};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;

    fn der(subject: &ClientSubject) -> Vec<u8> {
        let ca = CertificateAuthority::new("test CA").unwrap();
        let issued = ca.issue_client(subject).unwrap();
        CertificateDer::from_pem_slice(issued.cert_pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    fn config(source: IdentitySource) -> IdentityConfig {
        IdentityConfig {
            source,
            ..IdentityConfig::default()
        }
    }

    #[test]
    fn gardener_convention() {
        let cfg = config(IdentitySource::Gardener);
        let seed = der(&ClientSubject::gardener_seed("aws-eu1"));
        assert_eq!(identity_from_cert(&seed, &cfg).unwrap().0, "aws-eu1");

        let not_seed = der(&ClientSubject {
            common_name: "gardener.cloud:system:seed:aws-eu1".into(),
            organizations: vec!["system:masters".into()],
            ..Default::default()
        });
        assert_eq!(
            identity_from_cert(&not_seed, &cfg),
            Err(IdentityError::NotASeed)
        );

        let bad_cn = der(&ClientSubject {
            common_name: "admin".into(),
            organizations: vec![GARDENER_SEEDS_ORG.into()],
            ..Default::default()
        });
        assert!(matches!(
            identity_from_cert(&bad_cn, &cfg),
            Err(IdentityError::BadCommonName(_))
        ));

        let two_cns = der(&ClientSubject {
            extra_common_names: vec!["gardener.cloud:system:seed:gcp-2".into()],
            ..ClientSubject::gardener_seed("aws-eu1")
        });
        assert!(matches!(
            identity_from_cert(&two_cns, &cfg),
            Err(IdentityError::Ambiguous(m)) if m.contains("2 CNs") && m.contains("gcp-2")
        ));
        assert!(certificate_not_after(&seed).is_some_and(|t| t > 1_700_000_000));

        let evil = der(&ClientSubject::gardener_seed("Bad\"Name"));
        assert!(matches!(
            identity_from_cert(&evil, &cfg),
            Err(IdentityError::InvalidName(_))
        ));
        assert!(matches!(
            identity_from_cert(b"junk", &cfg),
            Err(IdentityError::Unparseable(_))
        ));
    }

    #[test]
    fn san_modes() {
        let cert = der(&ClientSubject {
            common_name: "whatever".into(),
            dns_names: vec!["other.example.com".into(), "gcp-1.seeds.example.com".into()],
            uris: vec!["spiffe://gardener/seed/azure-2".into()],
            ..Default::default()
        });
        let mut cfg = config(IdentitySource::SanDns);
        cfg.san_suffix = Some(".seeds.example.com".into());
        assert_eq!(identity_from_cert(&cert, &cfg).unwrap().0, "gcp-1");
        let mut cfg = config(IdentitySource::SanUri);
        cfg.san_prefix = Some("spiffe://gardener/seed/".into());
        assert_eq!(identity_from_cert(&cert, &cfg).unwrap().0, "azure-2");
        let two = der(&ClientSubject {
            common_name: "whatever".into(),
            dns_names: vec!["a.seeds.example.com".into(), "b.seeds.example.com".into()],
            ..Default::default()
        });
        let mut cfg = config(IdentitySource::SanDns);
        cfg.san_suffix = Some(".seeds.example.com".into());
        assert!(matches!(
            identity_from_cert(&two, &cfg),
            Err(IdentityError::Ambiguous(m)) if m.contains("\"a\"") && m.contains("\"b\"")
        ));
        let no_san = der(&ClientSubject::gardener_seed("x"));
        assert_eq!(
            identity_from_cert(&no_san, &config(IdentitySource::SanDns)),
            Err(IdentityError::NoSan("DNS"))
        );
    }
}
