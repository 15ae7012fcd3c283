//! Consumer API keys: how they are minted, and the only form in which sluice keeps them.
//!
//! A key is `ag_` followed by 32 random bytes in unpadded base64url. The plaintext is
//! returned once, when it is created; the store, the config documents and the snapshot
//! hold only its SHA-256 digest, so a leaked database or Redis cannot be replayed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefix that marks a sluice API key, also in `Authorization: Bearer ag_…`.
pub const KEY_PREFIX: &str = "ag_";

/// The header an API key is sent in.
pub const API_KEY_HEADER: &str = "x-ag-api-key";

/// Header fields read by name: a `http::HeaderMap`, or the proxy's own list of a
/// request's fields.
pub trait HeaderText {
    /// The first value of the field `name` (lowercase), if it is visible ASCII.
    fn header_text(&self, name: &str) -> Option<&str>;
}

impl HeaderText for http::HeaderMap {
    fn header_text(&self, name: &str) -> Option<&str> {
        self.get(name)?.to_str().ok()
    }
}

/// The `Authorization: Bearer` token, if any.
pub fn bearer<H: HeaderText + ?Sized>(headers: &H) -> Option<&str> {
    let auth = headers.header_text("authorization")?;
    let (scheme, token) = auth.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The API key a request presents: `X-AG-API-Key`, `x-api-key`, or a bearer token that
/// looks like a sluice key (`Authorization: Bearer ag_…`). Every plane reads keys here.
pub fn presented<H: HeaderText + ?Sized>(headers: &H) -> Option<&str> {
    let direct = headers
        .header_text(API_KEY_HEADER)
        .or_else(|| headers.header_text("x-api-key"))
        .map(str::trim)
        .filter(|k| !k.is_empty());
    direct.or_else(|| bearer(headers).filter(|t| t.starts_with(KEY_PREFIX)))
}

/// A SHA-256 digest of a presented or stored API key.
pub type KeyDigest = [u8; 32];

/// A freshly minted key: the plaintext (shown once) and what is stored instead.
#[derive(Debug, Clone)]
pub struct MintedKey {
    pub plaintext: String,
    pub digest_hex: String,
    pub prefix: String,
    pub suffix: String,
}

/// Mint a new random API key.
pub fn mint() -> MintedKey {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let plaintext = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw));
    let digest_hex = hex(&digest(&plaintext));
    let prefix = plaintext.chars().take(7).collect();
    let suffix = plaintext[plaintext.len() - 4..].to_string();
    MintedKey {
        plaintext,
        digest_hex,
        prefix,
        suffix,
    }
}

/// The digest under which a key is looked up.
pub fn digest(key: &str) -> KeyDigest {
    Sha256::digest(key.as_bytes()).into()
}

/// Lower-case hex of a digest, the form the store and the documents carry.
pub fn hex(digest: &KeyDigest) -> String {
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// Parse the hex form back into a digest; `None` for anything that is not 64 hex digits.
pub fn parse_hex(text: &str) -> Option<KeyDigest> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_key_has_documented_shape() {
        let key = mint();
        assert!(key.plaintext.starts_with(KEY_PREFIX));
        // 32 bytes in unpadded base64url are 43 characters.
        assert_eq!(key.plaintext.len(), 3 + 43);
        assert!(
            key.plaintext[3..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(key.digest_hex, hex(&digest(&key.plaintext)));
        assert_ne!(mint().plaintext, key.plaintext);
    }

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        let d = digest("ag_example");
        assert_eq!(parse_hex(&hex(&d)), Some(d));
        assert_eq!(parse_hex("xyz"), None);
        assert_eq!(parse_hex(&"g".repeat(64)), None);
    }
}
