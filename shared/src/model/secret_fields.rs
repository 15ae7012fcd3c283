//! Objects that carry secrets name their secret fields once ([`SecretFields::secrets_mut`])
//! and get the rest from this trait: masking for responses, sealing for storage and the
//! bus, opening in the plane that uses them, and keeping a stored secret when a client
//! echoes its masked form back on update. A new secret field cannot be forgotten by one
//! of these paths.

use crate::secrets::{SecretBox, SecretError, is_sealed};

/// A secret as responses show it: its last four characters at most, never more than a
/// quarter of it.
pub fn mask_secret(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    let shown = (chars.len() / 4).min(4);
    let tail: String = chars[chars.len() - shown..].iter().collect();
    format!("****{tail}")
}

pub trait SecretFields: Clone {
    /// Every secret field, in a stable order.
    fn secrets_mut(&mut self) -> Vec<&mut String>;

    /// Whether `stored` has the same shape, so its secrets pair with ours by position.
    fn same_shape(&self, stored: &Self) -> bool;

    fn try_map(
        &self,
        f: impl Fn(&str) -> Result<String, SecretError>,
    ) -> Result<Self, SecretError> {
        let mut out = self.clone();
        for secret in out.secrets_mut() {
            *secret = f(secret)?;
        }
        Ok(out)
    }

    /// Every secret replaced by its masked form, for API responses.
    fn masked(&self) -> Self {
        self.try_map(|s| Ok(mask_secret(s)))
            .unwrap_or_else(|_| self.clone())
    }

    /// Every secret sealed for storage and transport.
    fn sealed(&self, secrets: &SecretBox) -> Self {
        self.try_map(|s| Ok(secrets.seal(s)))
            .unwrap_or_else(|_| self.clone())
    }

    /// Every secret opened, for a plane that uses it.
    fn opened(&self, secrets: &SecretBox) -> Result<Self, SecretError> {
        self.try_map(|s| secrets.open(s))
    }

    /// Whether any secret is sealed.
    fn is_sealed(&self) -> bool {
        self.clone().secrets_mut().iter().any(|s| is_sealed(s))
    }

    /// On update, a client that sends back the masked value it read means "keep the
    /// stored secret": restore each such field from `stored`.
    fn keep_masked_secrets(&mut self, stored: &Self) {
        if !self.same_shape(stored) {
            return;
        }
        let mut stored = stored.clone();
        let old = stored.secrets_mut();
        let new = self.secrets_mut();
        if new.len() == old.len() {
            for (new, old) in new.into_iter().zip(old) {
                if *new == mask_secret(old) {
                    new.clone_from(old);
                }
            }
        }
    }
}
