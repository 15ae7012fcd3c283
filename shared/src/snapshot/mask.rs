//! Masking of patterns and personal data in text, whole or streamed.
//!
//! All of a policy's patterns (its own and the built-in detectors) compile into one
//! multi-pattern regex, so a text is scanned once. Some detectors confirm a match
//! before masking it: card numbers by their Luhn digit, IBANs by their mod-97 check.
//!
//! A stream is masked without ever splitting a match across chunks: text is held back
//! only from the first position where a match could still begin, which an anchored DFA
//! over the same patterns tells. Text that cannot start a match goes out at once, so a
//! stream is delayed by the length of a candidate (a word, a number), not by a fixed
//! window. A match is assumed to be at most `max_match` bytes long; a longer one may be
//! split, so patterns should bound their repetitions.

use std::sync::Arc;

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::util::start;
use regex_automata::{Anchored, meta};

/// A built-in detector: its pattern, its replacement and an optional confirmation.
struct Detector {
    name: &'static str,
    pattern: &'static str,
    replacement: &'static str,
    check: Option<fn(&str) -> bool>,
}

/// Most specific first: at one position the first pattern that matches wins, so a
/// card number is a card before it could be a phone number.
const DETECTORS: &[Detector] = &[
    Detector {
        name: "api_key",
        pattern: r"(?:sk-(?:proj-|ant-[a-z0-9]{2,6}-)?[A-Za-z0-9_-]{20,200}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,80}|xox[baprs]-[A-Za-z0-9-]{10,100}|AIza[0-9A-Za-z_-]{35})",
        replacement: "[API_KEY]",
        check: None,
    },
    Detector {
        name: "email",
        pattern: r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}",
        replacement: "[EMAIL]",
        check: None,
    },
    Detector {
        name: "iban",
        pattern: r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?",
        replacement: "[IBAN]",
        check: Some(iban_ok),
    },
    Detector {
        name: "credit_card",
        pattern: r"[0-9](?:[ -]?[0-9]){12,18}",
        replacement: "[CARD]",
        check: Some(luhn_ok),
    },
    Detector {
        name: "phone",
        pattern: r"\+?[0-9]{1,3}[ .-]?\(?[0-9]{2,4}\)?[ .-]?[0-9]{3,4}[ .-]?[0-9]{3,4}",
        replacement: "[PHONE]",
        check: None,
    },
];

/// The names of the built-in detectors.
pub fn detector_names() -> impl Iterator<Item = &'static str> {
    DETECTORS.iter().map(|d| d.name)
}

/// Whether a card number's digits pass the Luhn check.
pub fn luhn_ok(text: &str) -> bool {
    let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 { d2 - 9 } else { d2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Whether an IBAN passes its mod-97 check.
pub fn iban_ok(text: &str) -> bool {
    let s: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if s.len() < 15 || s.len() > 34 {
        return false;
    }
    let (head, tail) = s.split_at(4);
    let mut rem: u32 = 0;
    for c in tail.chars().chain(head.chars()) {
        let v = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// One pattern of a masker.
struct Rule {
    replacement: String,
    check: Option<fn(&str) -> bool>,
}

/// A compiled set of patterns.
pub struct Masker {
    regex: meta::Regex,
    /// A lazy DFA of the same patterns, run anchored to tell whether a match may
    /// begin at a position; `None` when the patterns need look-around it cannot do,
    /// and then a fixed window is held.
    prefix: Option<DFA>,
    rules: Vec<Rule>,
    max_match: usize,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masker")
            .field("patterns", &self.rules.len())
            .field("max_match", &self.max_match)
            .finish()
    }
}

impl Masker {
    /// Compile user patterns (with their replacements) and built-in detectors.
    pub fn compile(
        patterns: &[(String, Option<String>)],
        detectors: &[String],
        max_match: usize,
    ) -> Result<Arc<Self>, String> {
        let mut sources: Vec<String> = Vec::new();
        let mut rules = Vec::new();
        for name in detectors {
            let d = DETECTORS
                .iter()
                .find(|d| d.name == name)
                .ok_or_else(|| format!("unknown detector {name}"))?;
            sources.push(d.pattern.to_string());
            rules.push(Rule {
                replacement: d.replacement.to_string(),
                check: d.check,
            });
        }
        for (pattern, replacement) in patterns {
            sources.push(pattern.clone());
            rules.push(Rule {
                replacement: replacement.clone().unwrap_or_else(|| "[REDACTED]".into()),
                check: None,
            });
        }
        if sources.is_empty() {
            return Err("no pattern and no detector".into());
        }
        let regex = meta::Regex::new_many(&sources).map_err(|e| e.to_string())?;
        if regex.is_match("") {
            // It would mask between every two characters.
            return Err("a pattern matches the empty string".into());
        }
        let prefix = DFA::new_many(&sources).ok();
        Ok(Arc::new(Self {
            regex,
            prefix,
            rules,
            max_match: max_match.max(1),
        }))
    }

    /// Whether any pattern matches (confirmed) somewhere in `text`.
    pub fn detects(&self, text: &str) -> bool {
        self.regex.find_iter(text).any(|m| {
            let rule = &self.rules[m.pattern().as_usize()];
            rule.check.is_none_or(|c| c(&text[m.range()]))
        })
    }

    /// `text` with every match replaced; `None` when nothing matched.
    pub fn mask(&self, text: &str) -> Option<String> {
        let mut out = String::new();
        let end = self.emit(text, text.len(), &mut out);
        debug_assert_eq!(end, text.len());
        if out == text { None } else { Some(out) }
    }

    /// Write the masked form of `text[..upto]` (final matches only) into `out`;
    /// returns how far the text was consumed, which may pass `upto` when a match
    /// straddles it.
    fn emit(&self, text: &str, upto: usize, out: &mut String) -> usize {
        let mut at = 0;
        for m in self.regex.find_iter(text) {
            if m.start() >= upto {
                break;
            }
            out.push_str(&text[at..m.start()]);
            let rule = &self.rules[m.pattern().as_usize()];
            let found = &text[m.range()];
            if rule.check.is_none_or(|c| c(found)) {
                out.push_str(&rule.replacement);
            } else {
                out.push_str(found);
            }
            at = m.end();
        }
        if at < upto {
            out.push_str(&text[at..upto]);
            at = upto;
        }
        at
    }

    /// Whether some match could begin at `from` once more text arrives.
    fn may_begin(&self, cache: &mut Option<Cache>, text: &str, from: usize) -> bool {
        let (Some(dfa), Some(cache)) = (&self.prefix, cache.as_mut()) else {
            return text.len() - from < self.max_match;
        };
        let Ok(mut state) = dfa.start_state(cache, &start::Config::new().anchored(Anchored::Yes))
        else {
            return true;
        };
        for &b in &text.as_bytes()[from..] {
            state = match dfa.next_state(cache, state, b) {
                Ok(s) => s,
                Err(_) => return true,
            };
            if state.is_dead() {
                return false;
            }
            if state.is_quit() {
                return true;
            }
        }
        true
    }

    /// Masks a stream of text pieces.
    pub fn stream(self: &Arc<Self>) -> MaskStream {
        MaskStream {
            masker: self.clone(),
            cache: self.prefix.as_ref().map(DFA::create_cache),
            held: String::new(),
        }
    }
}

/// A stream being masked: push pieces, get what is safe to send.
pub struct MaskStream {
    masker: Arc<Masker>,
    cache: Option<Cache>,
    held: String,
}

impl MaskStream {
    /// Add a piece; returns the text that can go out now.
    pub fn push(&mut self, piece: &str) -> String {
        self.held.push_str(piece);
        let text = self.held.as_str();
        let m = &*self.masker;
        // The earliest position a match could still begin; text before the window is
        // final, since a match is at most `max_match` long.
        let window = text.len().saturating_sub(m.max_match);
        let mut hold = text.len();
        for (i, _) in text.char_indices().filter(|(i, _)| *i >= window) {
            if m.may_begin(&mut self.cache, text, i) {
                hold = i;
                break;
            }
        }
        // A match may begin inside an earlier, final match; only the first position
        // past the final matches counts.
        let mut out = String::new();
        let mut consumed = 0;
        for found in m.regex.find_iter(text) {
            if found.start() >= hold {
                break;
            }
            consumed = found.end();
        }
        let hold = if consumed > hold {
            // The final match swallowed the candidate: look again after it.
            text[consumed..]
                .char_indices()
                .map(|(i, _)| consumed + i)
                .find(|&i| i >= window && m.may_begin(&mut self.cache, text, i))
                .unwrap_or(text.len())
        } else {
            hold
        };
        let done = m.emit(text, hold, &mut out);
        self.held.drain(..done);
        out
    }

    /// The end of the stream: whatever is held, masked.
    pub fn finish(&mut self) -> String {
        let mut out = String::new();
        let text = std::mem::take(&mut self.held);
        self.masker.emit(&text, text.len(), &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pii() -> Arc<Masker> {
        let all: Vec<String> = detector_names().map(str::to_string).collect();
        Masker::compile(&[], &all, 256).unwrap()
    }

    #[test]
    fn detectors_mask_and_confirm() {
        let m = pii();
        let text = "mail ana@example.com, card 4111 1111 1111 1111, not 4111 1111 1111 1112, \
                    iban GB82 WEST 1234 5698 7654 32, key sk-abcdefghijklmnopqrstuvwx, \
                    call +44 20 7946 0958.";
        let masked = m.mask(text).unwrap();
        assert_eq!(
            masked,
            "mail [EMAIL], card [CARD], not 4111 1111 1111 1112, iban [IBAN], key [API_KEY], call [PHONE]."
        );
        assert!(m.mask("nothing to see").is_none());
        assert!(m.detects("write to bob@example.org"));
        assert!(!m.detects("card 4111 1111 1111 1112"));
    }

    #[test]
    fn checks() {
        assert!(luhn_ok("4111-1111-1111-1111"));
        assert!(!luhn_ok("4111111111111112"));
        assert!(iban_ok("DE89 3704 0044 0532 0130 00"));
        assert!(!iban_ok("DE89 3704 0044 0532 0130 01"));
    }

    #[test]
    fn user_patterns_with_replacements() {
        let m = Masker::compile(
            &[(r"secret-[0-9]{3}".into(), Some("<gone>".into()))],
            &[],
            64,
        )
        .unwrap();
        assert_eq!(m.mask("a secret-123 b").unwrap(), "a <gone> b");
    }

    /// Every way of cutting a text into pieces masks it as the whole text is masked.
    #[test]
    fn a_stream_never_splits_a_match() {
        let m = pii();
        let text = "Hi ana@example.com and bob.smith@mail.example.org, pay 4111 1111 1111 1111 \
                    or DE89 3704 0044 0532 0130 00; key sk-abcdefghijklmnopqrstuvwx; +1 415 555 2671 ok";
        let whole = m.mask(text).unwrap();
        let chars: Vec<char> = text.chars().collect();
        for size in 1..=12 {
            let mut s = m.stream();
            let mut out = String::new();
            for piece in chars.chunks(size) {
                let piece: String = piece.iter().collect();
                out.push_str(&s.push(&piece));
            }
            out.push_str(&s.finish());
            assert_eq!(out, whole, "pieces of {size}");
        }
    }

    #[test]
    fn plain_text_is_not_held() {
        let m = pii();
        let mut s = m.stream();
        // Nothing here can begin a match once the space arrives.
        assert_eq!(s.push("hello, "), "hello, ");
        // A word could still become an e-mail address.
        assert_eq!(s.push("world"), "");
        assert_eq!(s.push("! "), "world! ");
    }
}
