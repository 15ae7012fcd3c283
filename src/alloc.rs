//! The process's allocator: mimalloc, asked for plain allocations where it can give them.
//!
//! The `mimalloc` crate's allocator passes every request to `mi_malloc_aligned`, whose
//! fast path checks and probes more than `mi_malloc`'s, and whose slow path (any block
//! over 1 KiB: read buffers, boxed futures) is a separate, longer one. Nearly every
//! allocation of the request path asks for an alignment of at most a word, which every
//! block `mi_malloc` hands out has (its size classes are whole words; up to 64 bytes
//! each word count is a class, so a 24-byte block is aligned to 8 only, not 16). Those
//! go to `mi_malloc`; larger alignments keep the aligned calls.

// An allocator is foreign calls and raw pointers by nature; nothing else here.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment every `mi_malloc` block has: a word.
const PLAIN_ALIGN: usize = std::mem::size_of::<usize>();

/// mimalloc, with plain calls for the alignments they already give.
pub struct Allocator;

/// Whether a plain (unaligned) call satisfies `layout`'s alignment.
#[inline]
fn plain(align: usize) -> bool {
    align <= PLAIN_ALIGN
}

// SAFETY: every call is mimalloc's, which returns memory of at least the size asked for,
// aligned as asked (see `plain`), or null; `dealloc` and `realloc` only see pointers
// mimalloc returned.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        // SAFETY: see the impl.
        unsafe {
            if plain(align) {
                mi::mi_malloc(size).cast()
            } else {
                mi::mi_malloc_aligned(size, align).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        // SAFETY: see the impl.
        unsafe {
            if plain(align) {
                mi::mi_zalloc(size).cast()
            } else {
                mi::mi_zalloc_aligned(size, align).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: see the impl.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            if plain(layout.align()) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aligned(p: *mut u8, align: usize) -> bool {
        !p.is_null() && (p as usize).is_multiple_of(align)
    }

    /// Every size and alignment a program may ask for comes back aligned, zeroed when
    /// asked, and keeps its bytes across a reallocation to a larger and then a smaller
    /// size (across the 1 KiB line where mimalloc's small blocks end).
    #[test]
    fn blocks_are_aligned_as_asked_and_keep_their_bytes() {
        let a = Allocator;
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1, 3, 8, 24, 40, 100, 1000, 1500, 70_000] {
                let layout = |size| Layout::from_size_align(size, align).expect("layout");
                let (big, small) = (size * 3, size / 2 + 1);
                // SAFETY: non-zero sizes; each block is used within its size and freed
                // once, by this allocator, with the layout it has at that point.
                unsafe {
                    let p = a.alloc(layout(size));
                    assert!(aligned(p, align), "size {size}, align {align}");
                    p.write_bytes(0xa5, size);
                    let p = a.realloc(p, layout(size), big);
                    assert!(aligned(p, align), "grown to {big}, align {align}");
                    assert!(
                        std::slice::from_raw_parts(p, size)
                            .iter()
                            .all(|&b| b == 0xa5)
                    );
                    let p = a.realloc(p, layout(big), small);
                    assert!(aligned(p, align), "shrunk to {small}, align {align}");
                    assert!(
                        std::slice::from_raw_parts(p, small)
                            .iter()
                            .all(|&b| b == 0xa5)
                    );
                    a.dealloc(p, layout(small));

                    let z = a.alloc_zeroed(layout(size));
                    assert!(aligned(z, align));
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    a.dealloc(z, layout(size));
                }
            }
        }
    }
}
