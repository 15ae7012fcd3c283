//! Tokens the MCP plane signs itself, for `exchange` servers with no token endpoint of
//! their own: sluice vouches for the caller with a short-lived JWT (EdDSA, Ed25519)
//! whose public key any server can fetch at `GET /.well-known/jwks.json`.
//!
//! The key is derived from `SLUICE_SECRET_KEY`, so every replica signs with the same
//! key and a restart does not invalidate tokens in flight; its `kid` is a digest of
//! the public key, so a changed secret key shows as a new `kid`.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};
use sluice_shared::secrets::SecretBox;

/// How long a signed token is good for.
pub const TOKEN_SECONDS: u64 = 300;

pub struct Signer {
    pair: Ed25519KeyPair,
    kid: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.kid)
    }
}

impl Signer {
    /// The plane's signer, from its secret key.
    pub fn new(secrets: &SecretBox) -> Option<Self> {
        let seed = secrets.derive("mcp-token-signing-ed25519");
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed).ok()?;
        let kid = crate::oauth::s256(&URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()))
            .chars()
            .take(16)
            .collect();
        Some(Self { pair, kid })
    }

    /// The JSON Web Key Set of the public key (RFC 7517, RFC 8037).
    pub fn jwks(&self) -> Value {
        json!({"keys": [{
            "kty": "OKP",
            "crv": "Ed25519",
            "alg": "EdDSA",
            "use": "sig",
            "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(self.pair.public_key().as_ref()),
        }]})
    }

    /// A JWT of `claims`, with `iat`, `exp` and `jti` added.
    pub fn sign(&self, mut claims: Value) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if let Some(map) = claims.as_object_mut() {
            map.insert("iat".into(), json!(now));
            map.insert("nbf".into(), json!(now));
            map.insert("exp".into(), json!(now + TOKEN_SECONDS));
            map.insert("jti".into(), json!(uuid::Uuid::new_v4().to_string()));
        }
        let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.pair.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_with_the_published_key_and_replicas_agree() {
        let secrets = SecretBox::from_key(&[7u8; 32]);
        let signer = Signer::new(&secrets).expect("signer");
        let again = Signer::new(&secrets).expect("signer");
        assert_eq!(signer.jwks(), again.jwks(), "same secret, same key");
        let other = Signer::new(&SecretBox::from_key(&[8u8; 32])).expect("signer");
        assert_ne!(signer.jwks(), other.jwks());

        let token = signer.sign(json!({"sub": "key:1", "aud": "srv"}));
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let x = URL_SAFE_NO_PAD
            .decode(signer.jwks()["keys"][0]["x"].as_str().unwrap_or_default())
            .unwrap_or_default();
        let public = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, x);
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap_or_default();
        let input = format!("{}.{}", parts[0], parts[1]);
        assert!(public.verify(input.as_bytes(), &signature).is_ok());
        assert!(public.verify(b"tampered", &signature).is_err());
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap_or_default())
                .unwrap_or_default();
        assert_eq!(claims["sub"], "key:1");
        assert!(claims["exp"].as_u64() > claims["iat"].as_u64());
    }
}
