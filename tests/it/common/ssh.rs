//! SSH keys for signed approvals (DESIGN §12): made by `ssh-keygen` in a temp
//! directory during the test, as a person makes theirs.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Key {
    /// The private key file; its public half is beside it, `.pub`.
    pub path: PathBuf,
    /// The public key line, as `ssh-keygen` wrote it (with its comment).
    pub public: String,
}

impl Key {
    pub fn arg(&self) -> &str {
        self.path.to_str().expect("a UTF-8 temp path")
    }

    pub fn public_path(&self) -> PathBuf {
        self.path.with_extension("pub")
    }
}

/// `ssh-keygen -t KIND` (ed25519 or rsa) into `dir/NAME`, with `passphrase`
/// ("" for none).
pub fn keygen(dir: &Path, name: &str, kind: &str, passphrase: &str) -> Key {
    let path = dir.join(name);
    let mut args = vec!["-q", "-t", kind, "-N", passphrase, "-C"];
    let comment = format!("{name}@test");
    args.push(&comment);
    if kind == "rsa" {
        args.extend(["-b", "3072"]);
    }
    let out = Command::new("ssh-keygen")
        .args(&args)
        .arg("-f")
        .arg(&path)
        .output()
        .expect("ssh-keygen (openssh-client) is installed");
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = std::fs::read_to_string(path.with_extension("pub"))
        .expect("the public key")
        .trim()
        .to_string();
    Key { path, public }
}
