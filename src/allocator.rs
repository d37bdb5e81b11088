//! The process allocator's settings and its one explicit call. The gateway runs on mimalloc
//! (see `main.rs`); the calls into it are the only `unsafe` code in the project, kept here.

/// How long mimalloc waits before returning freed pages to the OS, in milliseconds: 10,
/// mimalloc 2's default, instead of version 3's 1,000. A proxy's memory comes in bursts
/// (connections, answers in flight) that end within milliseconds; with a second's delay the
/// pages of one burst were still held when the next asked for others, and they set the
/// peak. `MIMALLOC_PURGE_DELAY` in the environment still wins (mimalloc's own knob), which
/// is how `benches/load.sh` compares the two (docs/benchmarks.md, fourth round).
const PURGE_DELAY_MS: std::ffi::c_long = 10;
/// `mi_option_purge_delay` in mimalloc.h's `mi_option_t`, which the bindings do not name.
/// mimalloc keeps the enum's numbering across versions (retired options stay as
/// placeholders); it is 15 in versions 2 and 3 alike.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Applies the settings above. Call it first thing in `main`, before the threads start.
#[allow(unsafe_code)]
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: mi_option_set only stores an integer in mimalloc's option table; it takes no
    // pointer, and mimalloc documents options as settable at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
}

/// Returns the pages freed by the calling thread to the OS now, instead of keeping them for
/// reuse: for the rare one-off burst that no later work will reuse (a tokenizer table's
/// build, ~30 MB of transient memory).
#[allow(unsafe_code)]
pub fn return_freed_memory() {
    // SAFETY: mi_collect takes no pointer and only releases memory no allocation refers to;
    // mimalloc documents it as callable from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
