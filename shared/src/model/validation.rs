//! Validation problems with the path of the field they concern, and the slug rules that
//! several objects share.

use serde::Serialize;
use utoipa::ToSchema;

/// One thing wrong with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Problem {
    pub field: String,
    pub problem: String,
}

/// Every problem found in one object; empty means valid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn add(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        self.0.push(Problem {
            field: field.into(),
            problem: problem.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was found, the problems otherwise.
    pub fn into_result(self) -> Result<(), Problems> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }

    /// Check that a required text field is present and of a sane length.
    pub fn require_text(&mut self, field: &str, value: &str, max: usize) {
        if value.trim().is_empty() {
            self.add(field, "must not be empty");
        } else if value.len() > max {
            self.add(field, format!("must be at most {max} characters"));
        }
    }
}

/// Slugs travel in URLs and host names: 1 to 63 of `a-z`, `0-9` and `-`, starting and
/// ending with a letter or digit.
pub fn is_slug(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

/// A slug made from a display name: lower case, runs of anything else folded into one
/// `-`, trimmed to 48 characters so a suffix still fits. Empty input gives `consumer`.
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 48 {
            break;
        }
    }
    let trimmed = out.trim_matches('-');
    if trimmed.is_empty() {
        "consumer".to_string()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_rules() {
        assert!(is_slug("team-a1"));
        for bad in ["", "-a", "a-", "A", "a_b", "a b", &"a".repeat(64)] {
            assert!(!is_slug(bad), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn slugify_makes_valid_slugs() {
        assert_eq!(slugify("My App (prod)"), "my-app-prod");
        assert_eq!(slugify("  ---  "), "consumer");
        assert_eq!(slugify("Ünïcode name"), "n-code-name");
        assert!(is_slug(&slugify(&"x y ".repeat(40))));
    }
}
