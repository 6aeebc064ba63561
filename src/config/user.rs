//! Users that may log in to shardgate and how each proves who it is.

use serde::Deserialize;

use crate::frontend::scram::ScramSecret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum AuthMethod {
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    #[serde(rename = "md5")]
    Md5,
    #[serde(rename = "trust")]
    Trust,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// Plain text, or a PostgreSQL SCRAM verifier (`SCRAM-SHA-256$...`) for scram-sha-256.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default = "default_auth")]
    pub auth: AuthMethod,
    /// May use the admin console.
    #[serde(default)]
    pub admin: bool,
}

fn default_auth() -> AuthMethod {
    AuthMethod::ScramSha256
}

impl UserConfig {
    pub(crate) fn check(&self) -> Result<(), String> {
        match (&self.auth, &self.password) {
            (AuthMethod::Trust, _) => Ok(()),
            (_, None) => Err(format!(
                "user {:?} needs a password for {:?}",
                self.name, self.auth
            )),
            (AuthMethod::Md5, Some(p)) if p.starts_with("SCRAM-SHA-256$") => Err(format!(
                "user {:?}: md5 needs the plain password, not a SCRAM verifier",
                self.name
            )),
            (AuthMethod::ScramSha256, Some(p)) if p.starts_with("SCRAM-SHA-256$") => {
                ScramSecret::parse_verifier(p)
                    .map(|_| ())
                    .ok_or_else(|| format!("user {:?}: bad SCRAM verifier", self.name))
            }
            _ => Ok(()),
        }
    }
}

/// A user with the secret its method needs, derived once at load.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub admin: bool,
    pub(crate) secret: Secret,
}

#[derive(Debug, Clone)]
pub(crate) enum Secret {
    Trust,
    /// `md5(password || user)` as lowercase hex, the form PostgreSQL stores.
    Md5(String),
    Scram(ScramSecret),
}

impl User {
    pub(crate) fn from_config(c: &UserConfig) -> User {
        let password = c.password.clone().unwrap_or_default();
        let secret = match c.auth {
            AuthMethod::Trust => Secret::Trust,
            AuthMethod::Md5 => Secret::Md5(md5_hex(&[password.as_bytes(), c.name.as_bytes()])),
            AuthMethod::ScramSha256 => Secret::Scram(
                ScramSecret::parse_verifier(&password)
                    .unwrap_or_else(|| ScramSecret::derive(password.as_bytes())),
            ),
        };
        User {
            name: c.name.clone(),
            admin: c.admin,
            secret,
        }
    }
}

pub(crate) fn md5_hex(parts: &[&[u8]]) -> String {
    use md5::Digest;
    let mut h = md5::Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
