//! A message's header fields, kept where they arrived: the head's bytes and, for each
//! field, where its name and value lie in them. Both a client's request head and a
//! provider's response head are read this way.
//!
//! A `http::HeaderMap` cost about 4,000 instructions a request to build and drop for
//! the five or six fields a client sends: each name looked up in the table of standard
//! names (and copied into an allocation when it is not one, as `X-AG-API-Key` is not),
//! each field hashed and probed in, two allocations for the map itself; a provider's
//! ten or so cost about as much again. A head's fields are read a handful of times by
//! name (`Host`, the key, `Content-Type`…) and once in order (to forward them), so a
//! list scanned by name serves them better. Names are lowercased in place when the head
//! is parsed, so a lookup is a byte comparison and the forwarded names are the same as
//! a map's were.

use bytes::Bytes;

/// Where one field's name and value lie in the head.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    name: (u32, u32),
    value: (u32, u32),
}

impl Span {
    /// The span of `name` and `value`, slices of `head`; `None` if either is not.
    pub(crate) fn of(head: &[u8], name: &[u8], value: &[u8]) -> Option<Self> {
        Some(Self {
            name: range_in(head, name)?,
            value: range_in(head, value)?,
        })
    }

    pub(crate) fn name_range(&self) -> std::ops::Range<usize> {
        self.name.0 as usize..self.name.1 as usize
    }
}

/// Where `part`, a slice of `whole`, lies in it.
pub(crate) fn range_in(whole: &[u8], part: &[u8]) -> Option<(u32, u32)> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= whole.len()).then_some((u32::try_from(start).ok()?, u32::try_from(end).ok()?))
}

/// Where each of httparse's `parsed` fields of `head` lies, pushed onto `spans`; `None`
/// if one is not a slice of `head`.
///
/// httparse has refused control bytes and DEL in values (its value map is what
/// `HeaderValue` accepts) and names that are not tokens, so neither is checked again.
pub(crate) fn locate(
    head: &[u8],
    parsed: &[httparse::Header<'_>],
    spans: &mut Vec<Span>,
) -> Option<()> {
    spans.reserve(parsed.len());
    for h in parsed {
        spans.push(Span::of(head, h.name.as_bytes(), h.value)?);
    }
    Some(())
}

/// Lowercase the names at `spans` in `head`, so they compare as bytes from here on.
pub(crate) fn lowercase_names(head: &mut [u8], spans: &[Span]) {
    for span in spans {
        head[span.name_range()].make_ascii_lowercase();
    }
}

/// A head's header fields in the order they came, names in lowercase.
#[derive(Debug, Default, Clone)]
pub struct Fields {
    head: Bytes,
    spans: Vec<Span>,
}

impl Fields {
    /// The fields of `head` at `spans` (from [`Span::of`], names already lowercase).
    pub(crate) fn new(head: Bytes, spans: Vec<Span>) -> Self {
        Self { head, spans }
    }

    /// The list's storage, emptied, for the next request's fields.
    pub(crate) fn into_storage(self) -> Vec<Span> {
        let mut spans = self.spans;
        spans.clear();
        spans
    }

    fn name(&self, s: &Span) -> &[u8] {
        &self.head[s.name.0 as usize..s.name.1 as usize]
    }

    fn value(&self, s: &Span) -> &[u8] {
        &self.head[s.value.0 as usize..s.value.1 as usize]
    }

    /// Every value of the field `name` (lowercase), in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        debug_assert!(!name.bytes().any(|b| b.is_ascii_uppercase()));
        self.spans
            .iter()
            .filter(move |s| self.name(s) == name.as_bytes())
            .map(|s| self.value(s))
    }

    /// The first value of the field `name` (lowercase).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        debug_assert!(!name.bytes().any(|b| b.is_ascii_uppercase()));
        self.spans
            .iter()
            .find(|s| self.name(s) == name.as_bytes())
            .map(|s| self.value(s))
    }

    /// The first value of `name` as text, if it is visible ASCII (spaces and tabs
    /// allowed), as `HeaderValue::to_str` reads one. httparse refused control bytes
    /// and DEL in values when the head was parsed, so ASCII is enough here, and is
    /// checked a word at a time.
    pub fn text(&self, name: &str) -> Option<&str> {
        let value = self.get(name)?;
        if value.is_ascii() {
            std::str::from_utf8(value).ok()
        } else {
            None
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The size of the head the fields are in: at least the size of all of them.
    pub(crate) fn head_len(&self) -> usize {
        self.head.len()
    }

    /// Every field, names in lowercase, in the order they came.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.spans.iter().map(|s| (self.name(s), self.value(s)))
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    /// Fields from `(name, value)` pairs, as a client would send them; for tests.
    #[cfg(test)]
    pub(crate) fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        let mut head = Vec::new();
        let mut at = Vec::new();
        for (name, value) in pairs {
            assert!(valid_value(value.as_bytes()), "{value:?}");
            let n = head.len();
            head.extend_from_slice(name.to_ascii_lowercase().as_bytes());
            head.extend_from_slice(b": ");
            let v = head.len();
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
            at.push((n, name.len(), v, value.len()));
        }
        let spans = at
            .into_iter()
            .map(|(n, nl, v, vl)| Span {
                name: (n as u32, (n + nl) as u32),
                value: (v as u32, (v + vl) as u32),
            })
            .collect();
        Self::new(Bytes::from(head), spans)
    }
}

/// Whether `value` may be a field value at all: no control byte but the tab, no DEL
/// (what httparse and `HeaderValue` refuse; bytes above 0x7f are allowed, and are not
/// text). For the fields tests build by hand.
#[cfg(test)]
pub(crate) fn valid_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b >= b' ' && b != 0x7f))
}

impl sluice_shared::apikey::HeaderText for Fields {
    fn header_text(&self, name: &str) -> Option<&str> {
        self.text(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_find_every_value_in_order() {
        let f = Fields::from_pairs(&[
            ("Host", "a"),
            ("X-Team", "blue"),
            ("x-team", "red"),
            ("Empty", ""),
        ]);
        assert_eq!(f.len(), 4);
        assert_eq!(f.get("host"), Some(&b"a"[..]));
        assert_eq!(f.all("x-team").collect::<Vec<_>>(), [&b"blue"[..], b"red"]);
        assert_eq!(f.text("empty"), Some(""));
        assert!(!f.contains("x-none"));
        let names: Vec<_> = f.iter().map(|(n, _)| n).collect();
        assert_eq!(names, [&b"host"[..], b"x-team", b"x-team", b"empty"]);
    }

    #[test]
    fn text_is_visible_ascii_only() {
        let f = Fields::from_pairs(&[("a", "a b\tc"), ("b", "café")]);
        assert_eq!(f.text("a"), Some("a b\tc"));
        assert_eq!(f.get("b"), Some("café".as_bytes()));
        assert_eq!(f.text("b"), None);
        assert!(valid_value(b"caf\xc3\xa9\t"));
        assert!(!valid_value(b"a\x00b"));
        assert!(!valid_value(b"a\x7f"));
    }

    #[test]
    fn spans_are_only_of_slices_of_the_head() {
        let head = b"name: value";
        assert!(Span::of(head, &head[..4], &head[6..]).is_some());
        // The value lies past the end of the bytes given as the head.
        assert!(Span::of(&head[..6], &head[..4], &head[6..]).is_none());
    }
}
