//! The fuzz targets' bodies on stable Rust, over inputs made by mutating the golden
//! fixtures (bit flips, cuts, splices, repeated spans) with a fixed-seed generator, so
//! every CI run covers the same few thousand hostile inputs. `cargo fuzz` (see the
//! README) explores further.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_translate::fuzzing;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn fixtures(prefix: &str) -> Vec<Vec<u8>> {
    let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            name.starts_with(prefix)
                .then(|| std::fs::read(e.path()).unwrap())
        })
        .collect();
    out.sort();
    out
}

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..=rng.below(4) {
        if v.is_empty() {
            v.push(b'{');
        }
        let at = rng.below(v.len());
        match rng.below(6) {
            0 => v[at] ^= 1 << rng.below(8),
            1 => v.truncate(at),
            2 => {
                let len = rng.below(v.len() - at).min(64);
                let span = v[at..at + len].to_vec();
                let to = rng.below(v.len());
                v.splice(to..to, span);
            }
            3 => {
                v[at] =
                    [b'"', b'{', b'}', b'[', b']', b',', b':', b'\\', b'\n', 0xff][rng.below(10)]
            }
            4 => {
                let end = (at + rng.below(32)).min(v.len());
                v.drain(at..end);
            }
            _ => v.insert(at, rng.next() as u8),
        }
    }
    v
}

fn run(prefix: &str, seed: u64, rounds: usize, target: fn(&[u8])) {
    let bases = fixtures(prefix);
    assert!(!bases.is_empty(), "fixtures {prefix}*");
    let mut rng = Rng(seed);
    let each_dialect = |input: &[u8]| {
        for dialect in 0u8..3 {
            let mut tagged = vec![dialect];
            tagged.extend_from_slice(input);
            target(&tagged);
        }
        target(input);
    };
    for base in &bases {
        each_dialect(base);
    }
    for _ in 0..rounds {
        let base = &bases[rng.below(bases.len())];
        each_dialect(&mutate(&mut rng, base));
    }
}

#[test]
fn stream_parsers_survive_hostile_streams() {
    run("stream_", 0x5eed_0001, 400, fuzzing::stream);
}

#[test]
fn request_parsers_survive_hostile_bodies() {
    run("request_", 0x5eed_0002, 1500, fuzzing::request);
}

#[test]
fn response_parsers_survive_hostile_answers() {
    run("response_", 0x5eed_0003, 1500, fuzzing::response);
}

#[test]
fn json_edits_survive_hostile_bodies() {
    run("request_", 0x5eed_0004, 3000, fuzzing::json_edit);
}

#[test]
fn the_plain_usage_reader_agrees_with_serde() {
    run("usage_", 0x5eed_0005, 4000, fuzzing::usage_scan);
}
