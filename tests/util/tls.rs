//! TLS helpers for the tests (tests/tls.rs): a test PKI made with the
//! `openssl` CLI (a CA and server certificates for 127.0.0.1, localhost
//! and tickd.example.internal), a rustls JSON-RPC client, and `curl` over
//! https.

use super::WAIT;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// A directory of test CAs and certificates.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        Pki {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run openssl (scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A CA: `NAME.pem` and `NAME.key`.
    pub fn ca(&self, name: &str) -> PathBuf {
        let (pem, key) = (format!("{name}.pem"), format!("{name}.key"));
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            &format!("/CN=tickd test CA {name}"),
        ]);
        self.path(&pem)
    }

    /// A server certificate signed by CA `ca` for 127.0.0.1, localhost and
    /// tickd.example.internal: `NAME.pem`, and `NAME.key` (mode 0600).
    pub fn leaf(&self, ca: &str, name: &str, serial: u32) -> (PathBuf, PathBuf) {
        let ext = format!("{name}.ext");
        std::fs::write(
            self.path(&ext),
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:tickd.example.internal\n\
             basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write ext");
        let (csr, key, pem) = (
            format!("{name}.csr"),
            format!("{name}.key"),
            format!("{name}.pem"),
        );
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN=tickd test {name}"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-set_serial",
            &serial.to_string(),
            "-days",
            "2",
            "-out",
            &pem,
            "-extfile",
            &ext,
        ]);
        set_mode(&self.path(&key), 0o600);
        (self.path(&pem), self.path(&key))
    }
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The DER of the first certificate of a PEM file.
pub fn der_of(pem: &Path) -> Vec<u8> {
    let bytes = std::fs::read(pem).expect("read pem");
    let cert = CertificateDer::pem_slice_iter(&bytes)
        .next()
        .expect("a certificate")
        .expect("valid PEM");
    cert.as_ref().to_vec()
}

/// The daemon keys that turn TLS on with this pair.
pub fn tls_keys(cert: &Path, key: &Path) -> String {
    format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        key.display()
    )
}

/// A client config trusting the CA of `ca_pem` only.
pub fn trusting(ca_pem: &Path) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    let bytes = std::fs::read(ca_pem).expect("read CA");
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        roots.add(cert.expect("CA PEM")).expect("add CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A JSON-RPC client over TLS.
pub struct TlsClient {
    reader: BufReader<StreamOwned<ClientConnection, TcpStream>>,
    next_id: u64,
}

impl TlsClient {
    /// Connects and completes the handshake, or says why it failed.
    pub fn try_connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> Result<TlsClient, String> {
        let mut sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(WAIT)).expect("timeout");
        let name = ServerName::try_from("127.0.0.1").expect("name");
        let mut conn = ClientConnection::new(Arc::clone(config), name).expect("client");
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
        }
        Ok(TlsClient {
            reader: BufReader::new(StreamOwned::new(conn, sock)),
            next_id: 1,
        })
    }

    pub fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> TlsClient {
        Self::try_connect(addr, config).unwrap_or_else(|e| panic!("TLS connect: {e}"))
    }

    /// The DER of the certificate the daemon presented.
    pub fn peer_cert(&self) -> Vec<u8> {
        let certs = self
            .reader
            .get_ref()
            .conn
            .peer_certificates()
            .expect("certs");
        certs[0].as_ref().to_vec()
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let s = self.reader.get_mut();
        s.write_all(bytes).expect("write");
        s.flush().expect("flush");
    }

    pub fn read_json(&mut self) -> Value {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad JSON {line:?}: {e}"))
    }

    pub fn ok(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let line = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_raw(format!("{line}\n").as_bytes());
        let answer = self.read_json();
        assert_eq!(answer["id"], json!(id), "{answer}");
        assert!(answer.get("error").is_none(), "{method}: {answer}");
        answer["result"].clone()
    }
}

/// `curl` over https, trusting `ca`; its output (`-i`: the head too).
pub fn curl(args: &[&str], ca: &Path) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "20", "--cacert"])
        .arg(ca)
        .args(args)
        .output()
        .expect("run curl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}
