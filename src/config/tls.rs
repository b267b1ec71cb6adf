//! `tls_cert` and `tls_key` of `[daemon]`: the PEM files read, checked and
//! turned into the rustls server config the TCP listener serves
//! ([`TlsIdentity`]).
//!
//! The files are read here, at load: at start, at every reload and by
//! `tickd check`, on the thread that loads the config (never on the
//! loop). So a reload reads them again, and a new certificate (renewed by
//! certbot, say) reaches every connection accepted after the reload; a
//! file that cannot be read or used fails the load, which at a reload
//! means the reload is rejected and the certificate in force stays.
//!
//! Rules, and why:
//! - both keys or neither: a certificate without its key (or the reverse)
//!   is a half-done setup, refused with the place of the one given;
//! - the key file may not be readable by others (mode `o+r`): a key anyone
//!   on the host can read protects nothing. Readable by its group is
//!   allowed with a warning, since `root:ssl-cert 0640` is a common layout
//!   (the group should be one only the daemon is in);
//! - the certificate file holds the chain, leaf first; the key file one
//!   private key (PKCS#8, PKCS#1 or SEC1), which must match the leaf;
//! - after a privilege drop (`daemon.user`) the daemon may no longer read
//!   a root-owned key: a reload that meets "permission denied" on the very
//!   paths read before keeps the identity read then, with a warning (the
//!   same rule as `auth_token_file`), instead of failing every reload. To
//!   renew certificates without a restart, make the files readable by the
//!   daemon's user.
//!
//! The provider is rustls's `ring` one (no C toolchain beyond ring's own
//! assembly, and the one redis and ureq already use); protocol versions are
//! rustls's safe defaults (TLS 1.2 and 1.3). No ALPN is offered: HTTP
//! clients then speak HTTP/1.1, and JSON-RPC clients need none.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use super::error::Report;
use super::raw::RawDaemon;
use super::values::{self, at};

/// The certificate chain and key the TCP listener serves, loaded from
/// `tls_cert` and `tls_key`.
#[derive(Clone)]
pub struct TlsIdentity {
    /// `tls_cert`, absolute.
    pub cert_path: PathBuf,
    /// `tls_key`, absolute.
    pub key_path: PathBuf,
    /// The chain as read (DER), leaf first.
    chain: Vec<CertificateDer<'static>>,
    /// The key as read (DER): compared, never shown.
    key: Arc<[u8]>,
    /// What new connections are served with.
    pub server: Arc<ServerConfig>,
}

impl PartialEq for TlsIdentity {
    fn eq(&self, other: &Self) -> bool {
        self.cert_path == other.cert_path
            && self.key_path == other.key_path
            && self.chain == other.chain
            && self.key == other.key
    }
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// Loads and checks the pair of files, with a warning about the key's
    /// mode if it has one; the error says which file and what is wrong
    /// with it.
    pub fn load(
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<(TlsIdentity, Option<String>), Failure> {
        let chain = read_chain(cert_path)?;
        let (key_der, warning) = read_key(key_path)?;
        let key = PrivateKeyDer::try_from(key_der.clone()).map_err(|e| Failure {
            file: Which::Key,
            denied: false,
            message: format!("{}: {e}", key_path.display()),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(chain.clone(), key))
            .map_err(|e| Failure {
                file: Which::Key,
                denied: false,
                message: format!(
                    "{} and {} do not make a usable certificate: {e}",
                    cert_path.display(),
                    key_path.display()
                ),
            })?;
        let identity = TlsIdentity {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            chain,
            key: key_der.into(),
            server: Arc::new(server),
        };
        Ok((identity, warning))
    }
}

/// Which of the two files a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// `tls_cert`.
    Cert,
    /// `tls_key`.
    Key,
}

/// Why a pair of files could not be loaded.
#[derive(Debug)]
pub struct Failure {
    /// The file at fault.
    pub file: Which,
    /// Reading it was denied (see the module doc: the identity read
    /// before may be kept).
    pub denied: bool,
    /// What is wrong, naming the file.
    pub message: String,
}

fn io_failure(file: Which, path: &Path, e: &io::Error) -> Failure {
    Failure {
        file,
        denied: e.kind() == io::ErrorKind::PermissionDenied,
        message: format!("cannot read {}: {e}", path.display()),
    }
}

/// The certificate chain of `path`: one or more PEM certificates.
fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, Failure> {
    let bytes = std::fs::read(path).map_err(|e| io_failure(Which::Cert, path, &e))?;
    let bad = |message: String| Failure {
        file: Which::Cert,
        denied: false,
        message,
    };
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            bad(format!(
                "{}: not a PEM certificate file: {e}",
                path.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(bad(format!(
            "{} holds no certificate (expected PEM blocks \"-----BEGIN CERTIFICATE-----\")",
            path.display()
        )));
    }
    Ok(chain)
}

/// The private key of `path` (DER, as its PEM block said), and a warning
/// if its group may read it; refused if others may.
fn read_key(path: &Path) -> Result<(Vec<u8>, Option<String>), Failure> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| io_failure(Which::Key, path, &e))?;
    let mode = meta.permissions().mode() & 0o777;
    let shown = path.display();
    let bad = |message: String| Failure {
        file: Which::Key,
        denied: false,
        message,
    };
    if mode & 0o004 != 0 {
        return Err(bad(format!(
            "{shown} is readable by others (mode {mode:04o}); run chmod 600 on it"
        )));
    }
    let warning = (mode & 0o040 != 0).then(|| {
        format!(
            "{shown} is readable by its group (mode {mode:04o}); \
             fine if only the daemon is in that group, else run chmod 600 on it"
        )
    });
    let bytes = std::fs::read(path).map_err(|e| io_failure(Which::Key, path, &e))?;
    let key = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        bad(format!(
            "{shown}: no usable private key ({e}); expected a PEM block \
             \"-----BEGIN PRIVATE KEY-----\" (or RSA / EC PRIVATE KEY)"
        ))
    })?;
    Ok((key.secret_der().to_vec(), warning))
}

/// The identity last loaded in this process, by its paths.
static LAST: Mutex<Option<TlsIdentity>> = Mutex::new(None);

/// Reads `tls_cert` / `tls_key` of `[daemon]` (the paths made absolute by
/// `absolute`): None when neither is set; errors and warnings go to `r`
/// at the key concerned.
pub(crate) fn validate(
    r: &mut Report<'_>,
    d: &RawDaemon,
    absolute: impl Fn(&Path) -> PathBuf,
) -> Option<TlsIdentity> {
    let cert = values::optional_path(r, d.tls_cert.as_ref(), "daemon.tls_cert");
    let key = values::optional_path(r, d.tls_key.as_ref(), "daemon.tls_key");
    let (cert, key, cert_at, key_at) = match (cert, key, &d.tls_cert, &d.tls_key) {
        (Some(c), Some(k), Some(cv), Some(kv)) => (absolute(&c), absolute(&k), at(cv), at(kv)),
        (Some(_), None, Some(cv), _) => {
            r.error(
                at(cv),
                "daemon.tls_cert",
                "set tls_key too (TLS needs both)",
            );
            return None;
        }
        (None, Some(_), _, Some(kv)) => {
            r.error(
                at(kv),
                "daemon.tls_key",
                "set tls_cert too (TLS needs both)",
            );
            return None;
        }
        _ => return None,
    };
    let place = |f: Which| match f {
        Which::Cert => (cert_at, "daemon.tls_cert"),
        Which::Key => (key_at, "daemon.tls_key"),
    };
    match TlsIdentity::load(&cert, &key) {
        Ok((identity, warning)) => {
            if let Some(message) = warning {
                r.warn(key_at, "daemon.tls_key", message);
            }
            *LAST.lock() = Some(identity.clone());
            Some(identity)
        }
        Err(f) if f.denied => {
            let kept = LAST
                .lock()
                .clone()
                .filter(|l| l.cert_path == cert && l.key_path == key);
            let (at, name) = place(f.file);
            match kept {
                Some(identity) => {
                    let message = format!(
                        "{}; keeping the certificate read before (to renew it without a \
                         restart, make the files readable by the daemon's user)",
                        f.message
                    );
                    r.warn(at, name, message);
                    Some(identity)
                }
                None => {
                    r.error(at, name, f.message);
                    None
                }
            }
        }
        Err(f) => {
            let (at, name) = place(f.file);
            r.error(at, name, f.message);
            None
        }
    }
}
