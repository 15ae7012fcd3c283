//! Giving back the code pages that only starting up needed.
//!
//! Starting `sluice all` runs a lot of code once: migrations, the admin store, config
//! compilation, TLS roots, the Kafka and Redis clients. Each page of the executable it
//! touches stays mapped, and the kernel maps up to 64 KiB of cached neighbours around
//! every fault, so about 20 MiB of the binary stayed resident although serving requests
//! reads about 5 MiB of it. Once the planes are up, sluice pages its executable's clean
//! pages out (`MADV_PAGEOUT`, which the kernel honours for a process that could write
//! the file) and unmaps them (`MADV_DONTNEED`, for any process). The pages the request
//! path runs fault back in on its first requests; the rest stay out until something
//! needs them.
//!
//! Only mappings that hold nothing but the file's own bytes are touched: a mapping with
//! any anonymous page (the relocated `.data.rel.ro`, a debugger's breakpoint) or any
//! writable one is left alone, so no byte of state is ever discarded.

use std::path::Path;

/// One mapping of `/proc/self/smaps` that can be dropped and read back from its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanMapping {
    pub start: usize,
    pub end: usize,
    /// Resident bytes before release.
    pub rss: u64,
}

/// The mappings of `path` in `smaps` text that are read-only, resident and have no
/// anonymous (copied-on-write) page.
pub fn clean_mappings(smaps: &str, path: &Path) -> Vec<CleanMapping> {
    let mut out = Vec::new();
    // The mapping being read: its range, and whether it qualifies so far.
    let mut current: Option<(usize, usize, bool)> = None;
    let mut rss = None;
    let mut anonymous = None;
    let mut flush =
        |current: Option<(usize, usize, bool)>, rss: Option<u64>, anonymous: Option<u64>| {
            if let (Some((start, end, true)), Some(rss), Some(0)) = (current, rss, anonymous)
                && rss > 0
            {
                out.push(CleanMapping { start, end, rss });
            }
        };
    for line in smaps.lines() {
        if let Some(header) = mapping_header(line) {
            flush(current, rss, anonymous);
            let (start, end, perms, name) = header;
            let read_only = perms.as_bytes().get(1) == Some(&b'-');
            current = Some((start, end, read_only && Path::new(name) == path));
            rss = None;
            anonymous = None;
        } else if let Some(kib) = field_kib(line, "Rss:") {
            rss = Some(kib * 1024);
        } else if let Some(kib) = field_kib(line, "Anonymous:") {
            anonymous = Some(kib * 1024);
        }
    }
    flush(current, rss, anonymous);
    out
}

/// `start-end perms offset dev inode [name]`: the range, permissions and name.
fn mapping_header(line: &str) -> Option<(usize, usize, &str, &str)> {
    let mut parts = line.splitn(6, ' ');
    let range = parts.next()?;
    let (start, end) = range.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = parts.next()?;
    // offset, device, inode
    for _ in 0..3 {
        parts.next()?;
    }
    let name = parts.next().unwrap_or("").trim_start();
    (perms.len() == 4).then_some((start, end, perms, name))
}

/// The value of a `Name:   123 kB` line.
fn field_kib(line: &str, name: &str) -> Option<u64> {
    line.strip_prefix(name)?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

/// Unmap the executable's clean resident pages; the bytes that were resident in them.
///
/// `None` where there is nothing to do or the system does not allow it (not Linux,
/// no `/proc`); never an error worth stopping for.
#[allow(unsafe_code)]
pub fn release_startup_code() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let exe = std::fs::read_link("/proc/self/exe").ok()?;
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut released = 0;
        for m in clean_mappings(&smaps, &exe) {
            // SAFETY: the range is a whole mapping of the executable, read-only, with no
            // anonymous page: every page of it is the file's own bytes, so dropping it
            // changes nothing the program can observe; the next access reads the same
            // bytes back from the page cache. Read-only mappings cannot gain a
            // copied-on-write page between the check and this call.
            let (start, len) = (m.start as *mut libc::c_void, m.end - m.start);
            // Paged out, the pages leave the page cache too, so the request path's
            // faults later bring back only what they read (and the kernel's read-ahead)
            // rather than every cached neighbour; the kernel does this only for a
            // process that could write the file (its owner, root) and ignores it
            // otherwise. Unmapped, the pages stay cached but out of this process.
            let rc = unsafe {
                libc::madvise(start, len, libc::MADV_PAGEOUT);
                libc::madvise(start, len, libc::MADV_DONTNEED)
            };
            if rc == 0 {
                released += m.rss;
            }
        }
        Some(released)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0a0000000-55d0a0300000 r--p 00000000 08:01 1234                       /opt/sluice/sluice
Size:               3072 kB
Rss:                3000 kB
Anonymous:             0 kB
55d0a0300000-55d0a1400000 r-xp 00300000 08:01 1234                       /opt/sluice/sluice
Size:              17408 kB
Rss:               17000 kB
Anonymous:             0 kB
55d0a1400000-55d0a1500000 r--p 01400000 08:01 1234                       /opt/sluice/sluice
Size:               1024 kB
Rss:                1000 kB
Anonymous:          1000 kB
55d0a1500000-55d0a1510000 rw-p 01500000 08:01 1234                       /opt/sluice/sluice
Size:                 64 kB
Rss:                  64 kB
Anonymous:             0 kB
55d0a1510000-55d0a1520000 r--p 01510000 08:01 1234                       /opt/sluice/sluice
Size:                 64 kB
Rss:                   0 kB
Anonymous:             0 kB
7f0000000000-7f0000100000 r-xp 00000000 08:01 99                         /usr/lib/libc.so.6
Size:               1024 kB
Rss:                1000 kB
Anonymous:             0 kB
7f0000200000-7f0000300000 rw-p 00000000 00:00 0 
Size:               1024 kB
Rss:                1024 kB
Anonymous:          1024 kB
";

    #[test]
    fn only_clean_read_only_resident_mappings_of_the_executable_are_chosen() {
        let chosen = clean_mappings(SMAPS, Path::new("/opt/sluice/sluice"));
        assert_eq!(
            chosen,
            vec![
                CleanMapping {
                    start: 0x55d0a0000000,
                    end: 0x55d0a0300000,
                    rss: 3000 * 1024
                },
                CleanMapping {
                    start: 0x55d0a0300000,
                    end: 0x55d0a1400000,
                    rss: 17000 * 1024
                },
            ],
            "the relocated, the writable and the non-resident mappings stay"
        );
        assert!(clean_mappings(SMAPS, Path::new("/usr/bin/other")).is_empty());
    }

    #[test]
    fn a_header_without_fields_or_a_broken_line_chooses_nothing() {
        let torn = "55d0a0000000-55d0a0300000 r--p 00000000 08:01 1234 /opt/sluice/sluice\n";
        assert!(clean_mappings(torn, Path::new("/opt/sluice/sluice")).is_empty());
        assert!(clean_mappings("garbage\nRss: 12 kB\n", Path::new("/x")).is_empty());
    }

    /// On this process's own executable: pages come back out of residence, and the
    /// code in them still runs afterwards.
    #[cfg(target_os = "linux")]
    #[test]
    fn releasing_the_test_binary_keeps_it_running() {
        let resident = || {
            let exe = std::fs::read_link("/proc/self/exe").unwrap();
            let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
            clean_mappings(&smaps, &exe)
                .iter()
                .map(|m| m.rss)
                .sum::<u64>()
        };
        let before = resident();
        assert!(before > 0, "the test binary's code is resident");
        let released = release_startup_code().expect("Linux has /proc");
        assert!(released > 0);
        // Code and constants of the binary are read back on demand.
        let words: Vec<String> = ["a", "b"].iter().map(|s| s.repeat(3)).collect();
        assert_eq!(words.join("-"), "aaa-bbb");
        assert!(
            resident() < before,
            "fewer of the binary's pages are resident after release"
        );
    }
}
