//! The server side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it (53.3.1): no channel
//! binding is offered, so the GS2 header is `n,,` or `y,,`. Pure: messages in, messages out.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// What PostgreSQL stores for a SCRAM password: iteration count, salt, StoredKey and ServerKey.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ScramSecret {
    iterations: u32,
    salt: Vec<u8>,
    stored_key: [u8; 32],
    server_key: [u8; 32],
}

impl std::fmt::Debug for ScramSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScramSecret(..)")
    }
}

impl ScramSecret {
    /// Derives a secret from a plain password with a fresh salt.
    pub(crate) fn derive(password: &[u8]) -> ScramSecret {
        let verifier = postgres_protocol::password::scram_sha_256(password);
        ScramSecret::parse_verifier(&verifier).expect("postgres-protocol writes valid verifiers")
    }

    /// Parses `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
    pub(crate) fn parse_verifier(v: &str) -> Option<ScramSecret> {
        let rest = v.strip_prefix("SCRAM-SHA-256$")?;
        let (iter_salt, keys) = rest.split_once('$')?;
        let (iterations, salt) = iter_salt.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        Some(ScramSecret {
            iterations: iterations.parse().ok()?,
            salt: STANDARD.decode(salt).ok()?,
            stored_key: STANDARD.decode(stored).ok()?.try_into().ok()?,
            server_key: STANDARD.decode(server).ok()?.try_into().ok()?,
        })
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ScramError {
    #[error("malformed SCRAM message")]
    Malformed,
    #[error("channel binding is not supported")]
    ChannelBinding,
    #[error("password authentication failed")]
    BadProof,
}

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(msg);
    m.finalize().into_bytes().into()
}

/// One exchange, between the server-first and the client-final message.
pub(crate) struct ScramExchange {
    secret: ScramSecret,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    gs2_header: String,
}

impl ScramExchange {
    /// Takes the client-first-message and answers with the server-first-message.
    pub(crate) fn start(
        secret: ScramSecret,
        client_first: &[u8],
        server_nonce: &str,
    ) -> Result<Self, ScramError> {
        let text = std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed)?;
        let (gs2_header, bare) = match text.as_bytes().first() {
            Some(b'n') | Some(b'y') => {
                let mut parts = text.splitn(3, ',');
                let (Some(cb), Some(authzid), Some(bare)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(ScramError::Malformed);
                };
                (format!("{cb},{authzid},"), bare)
            }
            Some(b'p') => return Err(ScramError::ChannelBinding),
            _ => return Err(ScramError::Malformed),
        };
        let client_nonce = bare
            .split(',')
            .find_map(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed)?;
        if client_nonce.is_empty() {
            return Err(ScramError::Malformed);
        }
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            STANDARD.encode(&secret.salt),
            secret.iterations
        );
        Ok(ScramExchange {
            secret,
            client_first_bare: bare.to_owned(),
            server_first,
            nonce,
            gs2_header,
        })
    }

    pub(crate) fn server_first(&self) -> &[u8] {
        self.server_first.as_bytes()
    }

    /// Checks the client-final-message's proof; on success returns the server-final-message.
    pub(crate) fn finish(self, client_final: &[u8]) -> Result<Vec<u8>, ScramError> {
        let text = std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed)?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or(ScramError::Malformed)?;
        let mut attrs = without_proof.split(',');
        let binding = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(ScramError::Malformed)?;
        let nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed)?;
        if binding != STANDARD.encode(&self.gs2_header) || nonce != self.nonce {
            return Err(ScramError::Malformed);
        }
        let proof = STANDARD.decode(proof).map_err(|_| ScramError::Malformed)?;
        if proof.len() != 32 {
            return Err(ScramError::Malformed);
        }
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let signature = hmac(&self.secret.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(signature).map(|(p, s)| p ^ s).collect();
        let stored: [u8; 32] = Sha256::digest(&client_key).into();
        // Compare without an early exit so timing says nothing about how much matched.
        let diff = stored
            .iter()
            .zip(self.secret.stored_key)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(ScramError::BadProof);
        }
        let server_signature = hmac(&self.secret.server_key, auth_message.as_bytes());
        Ok(format!("v={}", STANDARD.encode(server_signature)).into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

    /// Runs postgres-protocol's client against our server side.
    fn check(server_password: &str, client_password: &str) -> Result<(), ScramError> {
        let secret = ScramSecret::derive(server_password.as_bytes());
        let mut client =
            ScramSha256::new(client_password.as_bytes(), ChannelBinding::unsupported());
        let ex = ScramExchange::start(secret, client.message(), "servernonce")?;
        client
            .update(ex.server_first())
            .map_err(|_| ScramError::Malformed)?;
        let server_final = ex.finish(client.message())?;
        client
            .finish(&server_final)
            .map_err(|_| ScramError::Malformed)
    }

    #[test]
    fn exchanges() {
        assert_eq!(check("secret", "secret"), Ok(()));
        assert_eq!(check("secret", "wrong"), Err(ScramError::BadProof));
        assert_eq!(check("", ""), Ok(()));
    }

    #[test]
    fn verifier_roundtrip() {
        let v = postgres_protocol::password::scram_sha_256(b"pw");
        assert!(ScramSecret::parse_verifier(&v).is_some());
        assert!(ScramSecret::parse_verifier("SCRAM-SHA-256$x").is_none());
        assert!(ScramSecret::parse_verifier("md5abc").is_none());
    }

    #[test]
    fn rejects_channel_binding_and_garbage() {
        let s = ScramSecret::derive(b"x");
        assert_eq!(
            ScramExchange::start(s.clone(), b"p=tls-server-end-point,,n=,r=a", "b").err(),
            Some(ScramError::ChannelBinding)
        );
        assert_eq!(
            ScramExchange::start(s.clone(), b"garbage", "b").err(),
            Some(ScramError::Malformed)
        );
        assert_eq!(
            ScramExchange::start(s, b"n,,n=,r=", "b").err(),
            Some(ScramError::Malformed)
        );
    }
}
