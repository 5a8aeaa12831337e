//! Development PKI: a CA, a receiver server certificate and seed client certificates in Gardener's
//! convention (`slo-gateway certs`, the demo, and the tests).
//!
//! Gardener's seed client certificates carry Subject O = `gardener.cloud:system:seeds` and
//! CN = `gardener.cloud:system:seed:<seed-name>`.
//!
//! Every CA gets a name of its own (the given name plus a suffix from the time and a counter) and
//! every certificate subject and authority key identifiers. A bundle with an old and a new CA (a
//! CA rotation's overlap) then verifies: OpenSSL finds the issuer by name and key identifier,
//! and with two CAs of one name and no key identifiers it may try the wrong one and fail.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

pub use common::tls::{GARDENER_SEEDS_ORG, GARDENER_SEED_CN_PREFIX};

/// Why certificates could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen failed.
    #[error("generating certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// Writing a file failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A certificate and its key, PEM-encoded.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Certificate PEM.
    pub cert_pem: String,
    /// PKCS#8 private key PEM.
    pub key_pem: String,
}

/// Subject and SANs of a client certificate.
#[derive(Debug, Clone, Default)]
pub struct ClientSubject {
    /// Subject CN.
    pub common_name: String,
    /// Subject O entries.
    pub organizations: Vec<String>,
    /// DNS SANs.
    pub dns_names: Vec<String>,
    /// URI SANs.
    pub uris: Vec<String>,
    /// Further CN attributes after `common_name` (only to test that an ambiguous subject is
    /// refused; a seed certificate has exactly one CN).
    pub extra_common_names: Vec<String>,
}

impl ClientSubject {
    /// Gardener's subject for seed `seed`.
    pub fn gardener_seed(seed: &str) -> Self {
        Self {
            common_name: format!("{GARDENER_SEED_CN_PREFIX}{seed}"),
            organizations: vec![GARDENER_SEEDS_ORG.into()],
            ..Self::default()
        }
    }
}

/// A certificate authority that issues the other certificates.
pub struct CertificateAuthority {
    cert: Certificate,
    key: KeyPair,
}

impl CertificateAuthority {
    /// A new self-signed CA named `common_name` plus a unique suffix (see the module docs).
    pub fn new(common_name: &str) -> Result<Self, CertError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(&format!("{common_name} {}", unique_suffix()), &[]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // The subject key identifier comes with `IsCa::Ca`; self-signed, the authority's is the
        // same key.
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self { cert, key })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA private key, PEM.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn issue_server(&self, names: &[&str]) -> Result<Issued, CertError> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name = dn("slo-gateway-receiver", &[]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A client certificate with `subject`.
    pub fn issue_client(&self, subject: &ClientSubject) -> Result<Issued, CertError> {
        let mut params = CertificateParams::default();
        let orgs: Vec<&str> = subject.organizations.iter().map(String::as_str).collect();
        params.distinguished_name = dn(&subject.common_name, &orgs);
        for cn in &subject.extra_common_names {
            // rcgen keeps one value per attribute type; the CN's OID (2.5.4.3) as a custom type
            // adds a second CN attribute.
            params
                .distinguished_name
                .push(DnType::CustomDnType(vec![2, 5, 4, 3]), cn.as_str());
        }
        for name in &subject.dns_names {
            params
                .subject_alt_names
                .push(SanType::DnsName(name.as_str().try_into()?));
        }
        for uri in &subject.uris {
            params
                .subject_alt_names
                .push(SanType::URI(uri.as_str().try_into()?));
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    /// A client certificate for seed `seed` in Gardener's convention.
    pub fn issue_seed(&self, seed: &str) -> Result<Issued, CertError> {
        self.issue_client(&ClientSubject::gardener_seed(seed))
    }

    fn sign(&self, mut params: CertificateParams) -> Result<Issued, CertError> {
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        // A subject key identifier (with basic constraints CA:false) and the CA's as the
        // authority key identifier: what picks the right CA of a bundle with two.
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("CertificateAuthority")
            .finish_non_exhaustive()
    }
}

/// `<unix seconds>-<hex>`: the time and, mixed into the hex, its nanoseconds, the process id and
/// a counter, so that two CAs made in one process or by two processes at once differ too.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mix = u64::from(now.subsec_nanos())
        ^ (u64::from(std::process::id()) << 32)
        ^ count.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    format!("{}-{mix:016x}", now.as_secs())
}

fn dn(common_name: &str, organizations: &[&str]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for org in organizations {
        dn.push(DnType::OrganizationName, *org);
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Paths of a written development PKI.
#[derive(Debug, Clone)]
pub struct DevPki {
    /// `ca.pem`.
    pub ca: PathBuf,
    /// `server.pem`.
    pub server_cert: PathBuf,
    /// `server-key.pem`.
    pub server_key: PathBuf,
    /// Per seed: (name, `seed-<name>.pem`, `seed-<name>-key.pem`).
    pub seeds: Vec<(String, PathBuf, PathBuf)>,
}

/// Writes a CA, a server certificate for `localhost`/`127.0.0.1` and one Gardener-convention
/// client certificate per seed into `out`.
pub fn write_dev_pki(out: &Path, seeds: &[String]) -> Result<DevPki, CertError> {
    let write = |name: &str, contents: &str| -> Result<PathBuf, CertError> {
        let path = out.join(name);
        std::fs::write(&path, contents).map_err(|source| CertError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    };
    std::fs::create_dir_all(out).map_err(|source| CertError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    let ca = CertificateAuthority::new("slo-gateway dev CA")?;
    let server = ca.issue_server(&["localhost", "127.0.0.1"])?;
    let mut pki = DevPki {
        ca: write("ca.pem", &ca.cert_pem())?,
        server_cert: write("server.pem", &server.cert_pem)?,
        server_key: write("server-key.pem", &server.key_pem)?,
        seeds: Vec::new(),
    };
    write("ca-key.pem", &ca.key_pem())?;
    for seed in seeds {
        let issued = ca.issue_seed(seed)?;
        let cert = write(&format!("seed-{seed}.pem"), &issued.cert_pem)?;
        let key = write(&format!("seed-{seed}-key.pem"), &issued.key_pem)?;
        pki.seeds.push((seed.clone(), cert, key));
    }
    Ok(pki)
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::extensions::ParsedExtension;
    use x509_parser::pem::parse_x509_pem;

    /// The DER of a PEM certificate.
    fn der(pem: &str) -> Vec<u8> {
        parse_x509_pem(pem.as_bytes()).unwrap().1.contents
    }

    /// Subject, issuer, subject key identifier and authority key identifier of `pem`.
    fn names_and_ids(pem: &str) -> (String, String, Option<Vec<u8>>, Option<Vec<u8>>) {
        let der = der(pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let mut ski = None;
        let mut aki = None;
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => ski = Some(id.0.to_vec()),
                ParsedExtension::AuthorityKeyIdentifier(id) => {
                    aki = id.key_identifier.as_ref().map(|k| k.0.to_vec());
                }
                _ => {}
            }
        }
        (
            cert.subject().to_string(),
            cert.issuer().to_string(),
            ski,
            aki,
        )
    }

    #[test]
    fn every_ca_has_its_own_name_and_every_certificate_key_identifiers() {
        let old = CertificateAuthority::new("slo-gateway dev CA").unwrap();
        let new = CertificateAuthority::new("slo-gateway dev CA").unwrap();
        let (old_name, old_issuer, old_ski, old_aki) = names_and_ids(&old.cert_pem());
        let (new_name, _, new_ski, _) = names_and_ids(&new.cert_pem());
        assert_ne!(old_name, new_name);
        assert!(old_name.starts_with("CN=slo-gateway dev CA "), "{old_name}");
        assert_eq!(old_issuer, old_name, "self-signed");
        let old_ski = old_ski.expect("CA subject key identifier");
        assert_ne!(Some(old_ski.clone()), new_ski);
        assert_eq!(
            old_aki,
            Some(old_ski.clone()),
            "self-signed: AKI is its own SKI"
        );

        for leaf in [
            old.issue_seed("aws-eu1").unwrap(),
            old.issue_server(&["localhost", "127.0.0.1"]).unwrap(),
        ] {
            let (_, issuer, ski, aki) = names_and_ids(&leaf.cert_pem);
            assert_eq!(issuer, old_name);
            assert!(ski.is_some(), "leaf subject key identifier");
            assert_eq!(aki, Some(old_ski.clone()), "leaf AKI is its CA's SKI");
        }
    }

    /// What the outsider's OpenSSL client did: a bundle of the old and the new CA verifies a
    /// certificate of either. Needs the `openssl` CLI (`.ci/run` installs it); fails without it.
    #[test]
    fn openssl_verifies_leaves_of_either_ca_against_an_old_and_new_bundle() {
        let dir = std::env::temp_dir().join(format!("slo-gateway-certs-{}", unique_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let old = CertificateAuthority::new("slo-gateway dev CA").unwrap();
        let new = CertificateAuthority::new("slo-gateway dev CA").unwrap();
        let bundle = dir.join("bundle.pem");
        std::fs::write(&bundle, old.cert_pem() + &new.cert_pem()).unwrap();
        for (which, ca) in [("old", &old), ("new", &new)] {
            for (kind, leaf, purpose) in [
                ("seed", ca.issue_seed("aws-eu1").unwrap(), "sslclient"),
                (
                    "server",
                    ca.issue_server(&["localhost"]).unwrap(),
                    "sslserver",
                ),
            ] {
                let file = dir.join(format!("{which}-{kind}.pem"));
                std::fs::write(&file, &leaf.cert_pem).unwrap();
                let out = std::process::Command::new("openssl")
                    .arg("verify")
                    .arg("-purpose")
                    .arg(purpose)
                    .arg("-CAfile")
                    .arg(&bundle)
                    .arg(&file)
                    .output()
                    .expect("the openssl CLI (apt-get install openssl)");
                assert!(
                    out.status.success(),
                    "{which} {kind}: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
