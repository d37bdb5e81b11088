//! Throwaway Google service accounts for the Vertex AI tests: an RSA key made with openssl
//! per test (none is committed), written as the JSON key file Google issues.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

/// A throwaway service account: its key file (naming `token_uri`) and its public key.
pub struct Account {
    pub key_file: PathBuf,
    pub public_pem: Vec<u8>,
    pub private_pem: String,
}

pub fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
    out.stdout
}

pub fn account(dir: &Path, name: &str, token_uri: &str) -> Account {
    std::fs::create_dir_all(dir).unwrap();
    let private_file = dir.join(format!("{name}.pem"));
    let private_pem = String::from_utf8(openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
    ]))
    .unwrap();
    std::fs::write(&private_file, &private_pem).unwrap();
    let public_pem = openssl(&["pkey", "-in", private_file.to_str().unwrap(), "-pubout"]);
    let key_file = dir.join(format!("{name}.json"));
    let file = json!({
        "type": "service_account",
        "project_id": "my-project",
        "private_key_id": format!("{name}-key-1"),
        "private_key": private_pem,
        "client_email": format!("{name}@my-project.iam.gserviceaccount.com"),
        "client_id": "1234567890",
        "token_uri": token_uri,
    });
    std::fs::write(&key_file, file.to_string()).unwrap();
    Account {
        key_file,
        public_pem,
        private_pem,
    }
}
