//! Signed approvals (DESIGN §12): the statement an approver signs, signing it
//! with `ssh-keygen -Y sign`, and judging a stored signature in-process.
//!
//! The statement is rebuilt from the gate result's own row (its deployment,
//! that deployment's environment and release, the gate, the decision, the
//! approver) and the ledger's id, so a signature only ever proves the one
//! decision it was made for: copied to another deployment or ledger, or with
//! the decision changed, it no longer verifies.

use crate::error::{Error, Result};
use ssh_key::{HashAlg, PublicKey, SshSig};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// The SSHSIG namespace: a signature made for git or for a file is not an
/// approval, and an approval is not a git signature.
pub const NAMESPACE: &str = "shipctl-approval";
/// The statement's first line; its version changes when its fields do. v2
/// adds `decided`, the database's clock when the decision was admitted; v1
/// statements (without it) still verify, and their age is the row's.
pub const HEADER: &str = "shipctl approval statement v2";
const HEADER_V1: &str = "shipctl approval statement v1";
/// Longest wait for `ssh-keygen` when nobody can answer it (no terminal).
const UNATTENDED: Duration = Duration::from_secs(30);
/// Longest wait when a person may be typing a passphrase or touching a key.
const ATTENDED: Duration = Duration::from_secs(300);
/// Largest armored signature kept (an RSA 16384-bit one is about 5,000 bytes).
pub const MAX_SIGNATURE_BYTES: usize = 8192;

/// What an approver signs: one decision about one deployment of one ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement<'a> {
    pub ledger: &'a str,
    pub deployment: i64,
    pub env: &'a str,
    pub version: &'a str,
    pub tag: &'a str,
    pub gate: &'a str,
    /// `approved` or `rejected`.
    pub decision: &'a str,
    pub approver: &'a str,
    /// When, RFC 3339 UTC to the second (`2026-12-01T09:30:00Z`): the
    /// database's clock as the decision was admitted, which expiry counts
    /// from. `None`: a v1 statement.
    pub decided: Option<&'a str>,
}

/// The fields in the order they are written, with their names (v1: all but
/// the last).
const FIELDS: [&str; 9] = [
    "ledger",
    "deployment",
    "environment",
    "version",
    "tag",
    "gate",
    "decision",
    "approver",
    "decided",
];

impl Statement<'_> {
    fn values(&self) -> Vec<String> {
        let mut out = vec![
            self.ledger.to_string(),
            self.deployment.to_string(),
            self.env.to_string(),
            self.version.to_string(),
            self.tag.to_string(),
            self.gate.to_string(),
            self.decision.to_string(),
            self.approver.to_string(),
        ];
        out.extend(self.decided.map(str::to_string));
        out
    }

    /// The exact bytes signed: the header, then one `name: value` line per
    /// field, each line ending in `\n`. Values are escaped (a backslash, a
    /// control character) so that two different decisions never read alike,
    /// whatever an altered row holds.
    pub fn text(&self) -> String {
        let header = if self.decided.is_some() {
            HEADER
        } else {
            HEADER_V1
        };
        let mut out = format!("{header}\n");
        for (name, value) in FIELDS.iter().zip(self.values()) {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(&escape(&value));
            out.push('\n');
        }
        out
    }
}

/// `\` as `\\`, control characters as `\u{..}`: stable across Rust versions
/// (unlike `escape_debug`), and reversible, so the text says one thing only.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The fields of a statement text, or `None` when it is not one of these formats.
fn fields(text: &str) -> Option<Vec<(&str, &str)>> {
    let mut lines = text.strip_suffix('\n')?.split('\n');
    let count = match lines.next()? {
        HEADER => FIELDS.len(),
        HEADER_V1 => FIELDS.len() - 1,
        _ => return None,
    };
    let out: Vec<(&str, &str)> = lines.map(|l| l.split_once(": ")).collect::<Option<_>>()?;
    let names: Vec<&str> = out.iter().map(|(n, _)| *n).collect();
    (names == FIELDS[..count]).then_some(out)
}

/// The time a stored statement says it was decided (v2), unchecked: it
/// means something only once the signature over it verifies.
pub fn decided_of(text: &str) -> Option<&str> {
    fields(text)?
        .into_iter()
        .find_map(|(name, value)| (name == "decided").then_some(value))
}

/// Why a statement that was validly signed is not this row's: its first field
/// that differs, in words ("signed for deployment 7, not 9").
fn difference(signed: &str, expected: &str) -> String {
    let (Some(a), Some(b)) = (fields(signed), fields(expected)) else {
        return "the statement it signs is not in this version's format".into();
    };
    for ((name, was), (_, is)) in a.iter().zip(b.iter()) {
        if was == is {
            continue;
        }
        return match *name {
            "ledger" => format!("signed for another ledger ({was}), not this one ({is})"),
            "deployment" => format!("signed for deployment {was}, not {is}"),
            "environment" => format!("signed for {was}, not {is}"),
            "version" => format!("signed for release {was}, not {is}"),
            "tag" => format!("signed for tag {was}, not {is}"),
            "gate" => format!("signed for gate {was}, not {is}"),
            "decision" => format!(
                "signed as {}, not {}",
                decision_words(was),
                decision_words(is)
            ),
            _ => format!("signed for {was}, not {is}"),
        };
    }
    "the signature does not verify".into()
}

/// "an approval" / "a rejection".
pub fn decision_words(outcome: &str) -> &'static str {
    if outcome == "rejected" {
        "a rejection"
    } else {
        "an approval"
    }
}

/// How a gate result's signature stands against the approver's declared keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Signed by one of the declared keys, over this very row's statement.
    Verified,
    /// Not signed although the approver has a declared key.
    Unsigned,
    /// Signed, but not validly for this row by a declared key: why.
    Invalid(String),
}

impl Check {
    /// Why it does not count, or `None` when it does.
    pub fn problem(&self) -> Option<String> {
        match self {
            Check::Verified => None,
            Check::Unsigned => Some("it is not signed".into()),
            Check::Invalid(why) => Some(why.clone()),
        }
    }
}

/// Judges a stored signature: does it verify, with one of `keys` (OpenSSH
/// public key lines, checked when the manifests were), over `statement`?
/// `signed` is the statement stored with it, only read to say why not.
pub fn check(
    keys: &[String],
    statement: &str,
    signature: Option<&str>,
    signed: Option<&str>,
) -> Check {
    let Some(armored) = signature else {
        return Check::Unsigned;
    };
    let Ok(sig) = SshSig::from_pem(armored) else {
        return Check::Invalid("its signature is not an SSH signature".into());
    };
    let declared: Vec<PublicKey> = keys
        .iter()
        .filter_map(|k| PublicKey::from_openssh(k).ok())
        .collect();
    let Some(key) = declared.iter().find(|k| k.key_data() == sig.public_key()) else {
        return Check::Invalid(format!(
            "signed with key {}, which is not declared for this approver",
            sig.public_key().fingerprint(HashAlg::Sha256)
        ));
    };
    if sig.namespace() != NAMESPACE {
        return Check::Invalid(format!(
            "signed for {:?}, not as a shipctl approval",
            crate::manifest::words::cut(sig.namespace())
        ));
    }
    if key.verify(NAMESPACE, statement.as_bytes(), &sig).is_ok() {
        return Check::Verified;
    }
    match signed {
        Some(s) if s != statement && key.verify(NAMESPACE, s.as_bytes(), &sig).is_ok() => {
            Check::Invalid(difference(s, statement))
        }
        _ => Check::Invalid("the signature does not verify".into()),
    }
}

/// A manifest's key line, parsed and checked: `Ok` its stored form (the
/// algorithm and the key, without the comment); `Err` the message and hint.
pub fn parse_key(line: &str) -> std::result::Result<String, (String, String)> {
    let paste = "paste the whole line of the person's public key file (such as \
                 ~/.ssh/id_ed25519.pub), e.g. \"ssh-ed25519 AAAAC3Nza... alice@laptop\"";
    let trimmed = line.trim();
    if trimmed.contains("PRIVATE KEY") {
        // Never echoed back: it is a secret.
        return Err((
            "this is a private key: never put it in a manifest".into(),
            format!("remove it now and {paste}; if it was committed, replace that key"),
        ));
    }
    let algorithm = trimmed.split_whitespace().next().unwrap_or_default();
    if ["ecdsa-", "sk-ecdsa-", "ssh-dss"]
        .iter()
        .any(|p| algorithm.starts_with(p))
    {
        return Err((
            format!(
                "{} keys are not supported",
                crate::manifest::words::cut(algorithm)
            ),
            "use an ed25519 key (ssh-keygen -t ed25519) or an RSA key".into(),
        ));
    }
    let key = PublicKey::from_openssh(trimmed).map_err(|e| {
        (
            format!(
                "{:?} is not an SSH public key ({e})",
                crate::manifest::words::cut(trimmed)
            ),
            paste.to_string(),
        )
    })?;
    match key.key_data() {
        ssh_key::public::KeyData::Ed25519(_) | ssh_key::public::KeyData::SkEd25519(_) => {}
        ssh_key::public::KeyData::Rsa(rsa) => {
            let bits = rsa.n.as_positive_bytes().map_or(0, |b| b.len() * 8);
            if bits < 2048 {
                return Err((
                    format!("an RSA key of {bits} bits is too weak to sign approvals"),
                    "use an ed25519 key (ssh-keygen -t ed25519) or RSA of 2048 bits or more".into(),
                ));
            }
        }
        other => {
            return Err((
                format!("{} keys are not supported", other.algorithm()),
                "use an ed25519 key (ssh-keygen -t ed25519) or an RSA key".into(),
            ));
        }
    }
    let mut bare = key.clone();
    bare.set_comment("");
    bare.to_openssh()
        .map(|s| s.trim_end().to_string())
        .map_err(|e| (format!("cannot encode the key: {e}"), paste.to_string()))
}

/// The SHA256 fingerprint of a key line, as `ssh-keygen -l` prints it.
pub fn fingerprint(line: &str) -> Option<String> {
    PublicKey::from_openssh(line)
        .ok()
        .map(|k| k.fingerprint(HashAlg::Sha256).to_string())
}

/// The fingerprint of the key that made an armored signature.
pub fn signer(armored: &str) -> Option<String> {
    SshSig::from_pem(armored)
        .ok()
        .map(|s| s.public_key().fingerprint(HashAlg::Sha256).to_string())
}

/// Signs `statement` with `ssh-keygen -Y sign -f KEY -n shipctl-approval`, as
/// git signs commits: KEY is a private key file, or a public key whose private
/// half is in ssh-agent. A passphrase is asked on the terminal when there is
/// one; without one (CI, scripts) ssh-keygen runs in a session of its own, with
/// no askpass program, so a key it cannot use fails at once instead of waiting.
pub async fn sign(key: &Path, statement: &str) -> Result<String> {
    let shown = key.display();
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let mut cmd = tokio::process::Command::new("ssh-keygen");
    cmd.args(["-Y", "sign", "-n", NAMESPACE, "-f"])
        .arg(key)
        .env_remove("SSH_ASKPASS")
        .env("SSH_ASKPASS_REQUIRE", "never")
        .env_remove("SHIPCTL_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if !interactive {
        // SAFETY: setsid only changes this child's session, between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::input("cannot sign: ssh-keygen was not found on PATH").hint(
                "--sign runs OpenSSH's ssh-keygen (8.1 or newer) to sign, as git does: \
                 install it (e.g. the openssh-client package)",
            )
        } else {
            Error::input(format!("cannot sign: cannot start ssh-keygen: {e}"))
        }
    })?;
    let mut stdin = child.stdin.take();
    let run = async {
        if let Some(s) = stdin.as_mut() {
            // A key ssh-keygen cannot load ends it before it reads: a closed
            // pipe then is its error to tell, not ours.
            let _ = s.write_all(statement.as_bytes()).await;
        }
        drop(stdin);
        child.wait_with_output().await
    };
    let limit = if interactive { ATTENDED } else { UNATTENDED };
    let out = match tokio::time::timeout(limit, run).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(Error::input(format!("cannot sign: ssh-keygen: {e}"))),
        Err(_) => {
            return Err(Error::input(format!(
                "cannot sign with {shown}: ssh-keygen did not answer within {}",
                crate::duration::format(limit)
            ))
            .hint("load the key into ssh-agent (ssh-add) and try again"));
        }
    };
    let said = String::from_utf8_lossy(&out.stderr);
    let why = said
        .lines()
        .map(str::trim)
        .map(|l| l.trim_start_matches("Enter passphrase: "))
        .rfind(|l| !l.is_empty() && !l.starts_with("Signing data"))
        .unwrap_or("")
        .to_string();
    let armored = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() || !armored.contains("BEGIN SSH SIGNATURE") {
        let why = if why.is_empty() {
            format!("ssh-keygen exited with {}", out.status)
        } else {
            crate::manifest::words::bounded(&why)
        };
        let hint = if interactive {
            "check the key's path; a key with a passphrase asks for it here, or load it \
             into ssh-agent first (ssh-add PATH)"
        } else {
            "no terminal to ask a passphrase on: load the key into ssh-agent first \
             (ssh-add PATH) and make SSH_AUTH_SOCK reach it, or use a key without a \
             passphrase kept for signing"
        };
        return Err(Error::input(format!(
            "cannot sign with {shown}: {why}; nothing was recorded"
        ))
        .hint(hint));
    }
    if armored.len() > MAX_SIGNATURE_BYTES {
        return Err(Error::input(format!(
            "cannot sign with {shown}: the signature is {} bytes, more than {MAX_SIGNATURE_BYTES}",
            armored.len()
        ))
        .hint("use an ed25519 key (ssh-keygen -t ed25519)"));
    }
    Ok(armored.trim_end().to_string() + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement() -> Statement<'static> {
        Statement {
            ledger: "7f3c9a",
            deployment: 9,
            env: "prod",
            version: "1.0",
            tag: "v1.0",
            gate: "qa",
            decision: "approved",
            approver: "alice",
            decided: Some("2026-12-01T09:30:00Z"),
        }
    }

    #[test]
    fn the_statement_is_fixed_text() {
        let v2 = statement().text();
        assert_eq!(
            v2,
            "shipctl approval statement v2\nledger: 7f3c9a\ndeployment: 9\nenvironment: prod\n\
             version: 1.0\ntag: v1.0\ngate: qa\ndecision: approved\napprover: alice\n\
             decided: 2026-12-01T09:30:00Z\n"
        );
        assert_eq!(decided_of(&v2), Some("2026-12-01T09:30:00Z"));
        // v1, as the first signed approvals were made: the same, undated.
        let v1 = Statement {
            decided: None,
            ..statement()
        }
        .text();
        assert_eq!(
            v1,
            "shipctl approval statement v1\nledger: 7f3c9a\ndeployment: 9\nenvironment: prod\n\
             version: 1.0\ntag: v1.0\ngate: qa\ndecision: approved\napprover: alice\n"
        );
        assert!(fields(&v1).is_some());
        assert_eq!(decided_of(&v1), None);
        // A v1 header over v2 fields, or the reverse, is neither.
        assert!(fields(&v2.replace(" v2\n", " v1\n")).is_none());
        assert!(fields(&v1.replace(" v1\n", " v2\n")).is_none());
    }

    #[test]
    fn no_two_decisions_read_alike() {
        // A value that smuggles a line in cannot pass for another field.
        let forged = Statement {
            version: "1.0\ntag: v1.0",
            tag: "",
            ..statement()
        };
        assert_ne!(forged.text(), statement().text());
        assert!(forged.text().contains("version: 1.0\\u{a}tag: v1.0\n"));
        let slash = Statement {
            approver: "a\\u{a}",
            ..statement()
        };
        let newline = Statement {
            approver: "a\n",
            ..statement()
        };
        assert_ne!(slash.text(), newline.text());
    }

    #[test]
    fn a_difference_is_said_in_words() {
        let signed = statement().text();
        let cases = [
            (
                Statement {
                    deployment: 7,
                    ..statement()
                },
                "signed for deployment 9, not 7",
            ),
            (
                Statement {
                    ledger: "0000",
                    ..statement()
                },
                "signed for another ledger (7f3c9a), not this one (0000)",
            ),
            (
                Statement {
                    version: "2.0",
                    ..statement()
                },
                "signed for release 1.0, not 2.0",
            ),
            (
                Statement {
                    decision: "rejected",
                    ..statement()
                },
                "signed as an approval, not a rejection",
            ),
            (
                Statement {
                    env: "staging",
                    ..statement()
                },
                "signed for prod, not staging",
            ),
        ];
        for (other, words) in cases {
            assert_eq!(difference(&signed, &other.text()), words);
        }
        assert_eq!(
            difference("hello\n", &signed),
            "the statement it signs is not in this version's format"
        );
    }

    #[test]
    fn keys_are_checked() {
        let ed = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti alice@laptop";
        assert_eq!(
            parse_key(ed),
            Ok(
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti"
                    .to_string()
            )
        );
        let (m, _) = parse_key("ssh-ed25519 AAAAnope").unwrap_err();
        assert!(m.contains("is not an SSH public key"), "{m}");
        let (m, _) = parse_key("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n").unwrap_err();
        assert_eq!(m, "this is a private key: never put it in a manifest");
        let ecdsa = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHwf2HMM5TRXvo2SQJjsNkiDD5KqiiNjrGVv3UUh+mMT5RHxiRtOnlqvjhQtBq0VpmpCV/PwUdhOig4vkbqAcEc=";
        let (m, _) = parse_key(ecdsa).unwrap_err();
        assert_eq!(m, "ecdsa-sha2-nistp256 keys are not supported");
    }

    #[test]
    fn an_unsigned_or_garbled_signature_does_not_verify() {
        let ed = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti";
        let text = statement().text();
        assert_eq!(check(&[ed.into()], &text, None, None), Check::Unsigned);
        assert_eq!(
            check(&[ed.into()], &text, Some("not armored"), None),
            Check::Invalid("its signature is not an SSH signature".into())
        );
    }
}
