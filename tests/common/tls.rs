//! A test certificate authority made with the `openssl` command, and server certificates it
//! issues for `localhost` and 127.0.0.1: what an operator's private CA does for the client
//! listener's TLS.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA in its own directory: `ca.pem` is what clients trust.
pub struct TestCa {
    pub dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "cheapai-tls-{name}-{}-{}",
            std::process::id(),
            super::free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=cheapai test CA",
            ],
        );
        std::fs::write(
            dir.join("leaf.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        Self { dir }
    }

    /// What clients trust.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Issues a server certificate with common name `cn` into `tls.crt` and `tls.key`
    /// (replacing the ones there); returns their paths.
    pub fn issue(&self, cn: &str) -> (PathBuf, PathBuf) {
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "next.key",
                "-out",
                "next.csr",
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                "next.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "next.crt",
                "-days",
                "2",
                "-extfile",
                "leaf.cnf",
            ],
        );
        // renamed into place, as a certificate manager does: never a half-written file
        let (cert, key) = (self.dir.join("tls.crt"), self.dir.join("tls.key"));
        std::fs::rename(self.dir.join("next.key"), &key).unwrap();
        std::fs::rename(self.dir.join("next.crt"), &cert).unwrap();
        (cert, key)
    }

    /// `[server]` lines serving the current `tls.crt` / `tls.key`.
    pub fn server_lines(&self) -> String {
        format!(
            "tls = {{ cert_file = \"{}\", key_file = \"{}\" }}\n",
            self.dir.join("tls.crt").display(),
            self.dir.join("tls.key").display()
        )
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
