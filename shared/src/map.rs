//! The hash map of the lookups a request makes.
//!
//! std's `HashMap` hashes with SipHash-1-3, keyed per map against flooding: 150 to 220
//! instructions a lookup under callgrind, and a proxied request makes about seven
//! (gateway, consumer, key digest, the registry's health twice, the idle connection
//! pool twice). hashbrown's default hasher, foldhash, is seeded per process too and
//! costs a fraction of that. What these maps hold is set by the config, never by a
//! client: a client only looks a key up, and a lookup cannot make the stored keys
//! collide with each other, so the weaker hash gives a flood nothing to grow.
pub type Map<K, V> = hashbrown::HashMap<K, V>;
