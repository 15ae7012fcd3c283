//! Hostile variants of a valid message for the robustness tests: bytes flipped, cut,
//! inserted from a set of framing bytes, or a span repeated, from a fixed seed, so
//! every run covers the same inputs.

/// A xorshift generator and the mutations it drives.
pub(crate) struct Mangler {
    seed: u64,
    /// The bytes inserted: those that delimit the message being mangled.
    inserts: &'static [u8],
    /// The longest span repeated.
    span: usize,
}

impl Mangler {
    pub(crate) fn new(seed: u64, inserts: &'static [u8], span: usize) -> Self {
        Self {
            seed,
            inserts,
            span,
        }
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        self.seed
    }

    /// `valid` with one to `edits` mutations.
    pub(crate) fn mangle(&mut self, valid: &[u8], edits: u64) -> Vec<u8> {
        let mut out = valid.to_vec();
        for _ in 0..1 + self.next() % edits {
            if out.is_empty() {
                out.extend_from_slice(valid);
            }
            let at = (self.next() as usize) % out.len();
            match self.next() % 4 {
                0 => out[at] = self.next() as u8,
                1 => {
                    out.remove(at);
                }
                2 => {
                    let byte = self.inserts[(self.next() as usize) % self.inserts.len()];
                    out.insert(at, byte);
                }
                _ => {
                    let piece = out[at..(at + self.span).min(out.len())].to_vec();
                    out.splice(at..at, piece);
                }
            }
        }
        out
    }
}
