//! HTTPS out of the box: on first start, a local CA and a server certificate
//! for 127.0.0.1, ::1 and localhost in `{data-dir}/tls/`. Clients trust
//! `{data-dir}/tls/ca.pem` (MSAL and azure-identity refuse plain http).

use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::keys::kek::create_private;

/// Paths of the generated TLS material.
#[derive(Debug, Clone)]
pub struct LocalCa {
    /// What clients trust.
    pub ca_cert: PathBuf,
    /// Served chain (server certificate).
    pub server_cert: PathBuf,
    /// Server private key (0600).
    pub server_key: PathBuf,
}

/// Create the local CA and server certificate if missing; return their paths.
pub fn ensure_local_ca(data_dir: &Path) -> anyhow::Result<LocalCa> {
    let dir = data_dir.join("tls");
    std::fs::create_dir_all(&dir)?;
    let paths = LocalCa {
        ca_cert: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server-key.pem"),
    };
    if paths.ca_cert.exists() && paths.server_cert.exists() && paths.server_key.exists() {
        return Ok(paths);
    }
    // Start over as a whole: a partial set (crash mid-way) is replaced.
    for p in [&paths.ca_cert, &paths.server_cert, &paths.server_key] {
        let _ = std::fs::remove_file(p);
    }
    let now = OffsetDateTime::now_utc();

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = name("Clavis local CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now - Duration::hours(1);
    ca.not_after = now + Duration::days(3650);
    let ca_cert = ca.self_signed(&ca_key)?;

    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(vec!["localhost".to_owned()])?;
    server.distinguished_name = name("Clavis server");
    server
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse()?));
    server
        .subject_alt_names
        .push(SanType::IpAddress("::1".parse()?));
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.not_before = now - Duration::hours(1);
    server.not_after = now + Duration::days(825);
    let server_cert = server.signed_by(&server_key, &ca_cert, &ca_key)?;

    // The CA key is not kept: it signed the one server certificate and
    // dies with this process, so it cannot be stolen to sign others. To
    // renew, delete `{data-dir}/tls/` and restart (clients trust the new ca.pem).
    write_private(&paths.server_key, &server_key.serialize_pem())?;
    std::fs::write(&paths.server_cert, server_cert.pem())?;
    std::fs::write(&paths.ca_cert, ca_cert.pem())?;
    tracing::info!(
        ca = %paths.ca_cert.display(),
        "created a local CA and server certificate: clients must trust this ca.pem (a data directory restored from a backup or copied without its tls/ gets a new CA this way; copy the old tls/ in before the first start to keep the old one)"
    );
    Ok(paths)
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "Clavis");
    dn
}

fn write_private(path: &Path, pem: &str) -> std::io::Result<()> {
    let mut f = create_private(path)?;
    f.write_all(pem.as_bytes())?;
    f.sync_all()
}

/// The TLS versions served: 1.3 and 1.2. (rustls implements nothing older,
/// so a TLS 1.0/1.1 client is refused at the handshake either way; this
/// makes the floor explicit.)
pub static PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A rustls server configuration from PEM files: TLS 1.2+ only, HTTP/2 and
/// HTTP/1.1 offered by ALPN.
pub async fn rustls_config(
    cert: &Path,
    key: &Path,
) -> anyhow::Result<std::sync::Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let failed = |e: &dyn std::fmt::Display| {
        anyhow::anyhow!(
            "cannot load TLS certificate {} / key {}: {e}",
            cert.display(),
            key.display()
        )
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| failed(&e))?;
    if chain.is_empty() {
        return Err(failed(&"no certificate in the file"));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| failed(&e))?;
    let mut config = rustls::ServerConfig::builder_with_protocol_versions(PROTOCOL_VERSIONS)
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| failed(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(std::sync::Arc::new(config))
}
