//! This worker thread's spare read buffers, head buffers and header maps, shared by the
//! client side (a connection waiting for its next request holds none) and the upstream
//! side (a pooled upstream connection holds none): only requests under way hold buffers,
//! as nginx's per-request pools. Taking one and giving it back costs a few dozen
//! instructions; freeing and allocating them with mimalloc instead measured ~600
//! instructions per keep-alive request (callgrind). At most [`SPARES`] of each kind are
//! kept per worker.

use std::cell::RefCell;

use bytes::BytesMut;
use http::HeaderMap;

/// The size of a read buffer (a request head, or a response head and the body bytes that
/// come with it).
pub(crate) const READ_SIZE: usize = 8192;

/// Room a response head starts with: the security headers alone are ~600 bytes.
pub(crate) const OUT_SIZE: usize = 1024;

/// Spare buffers of each kind kept per worker thread.
const SPARES: usize = 64;

struct Spares {
    bufs: Vec<BytesMut>,
    outs: Vec<Vec<u8>>,
    maps: Vec<HeaderMap>,
}

/// A header map larger than this many entries is freed, not kept.
const MAP_ENTRIES: usize = 64;

thread_local! {
    static SPARE: RefCell<Spares> = const {
        RefCell::new(Spares { bufs: Vec::new(), outs: Vec::new(), maps: Vec::new() })
    };
}

/// An empty read buffer (a spare when there is one).
pub(crate) fn buf() -> BytesMut {
    SPARE
        .with_borrow_mut(|s| s.bufs.pop())
        .unwrap_or_else(|| BytesMut::with_capacity(READ_SIZE))
}

/// An empty response-head buffer (a spare when there is one).
pub(crate) fn out() -> Vec<u8> {
    SPARE
        .with_borrow_mut(|s| s.outs.pop())
        .unwrap_or_else(|| Vec::with_capacity(OUT_SIZE))
}

/// Keeps `buf` (emptied) as a spare; one larger than a usual buffer (a long head) is freed
/// instead. Its memory may still be shared with bytes split off it earlier (header values
/// of a response under way): the next user's `reserve` then allocates afresh, and the
/// shared memory is freed with its last user.
pub(crate) fn give_buf(mut buf: BytesMut) {
    if buf.capacity() == 0 || buf.capacity() > 2 * READ_SIZE {
        return;
    }
    buf.clear();
    SPARE.with_borrow_mut(|s| {
        if s.bufs.len() < SPARES {
            s.bufs.push(buf);
        }
    });
}

/// Keeps `out` (emptied) as a spare; a larger one than usual is freed instead.
pub(crate) fn give_out(mut out: Vec<u8>) {
    if out.capacity() == 0 || out.capacity() > 4 * OUT_SIZE {
        return;
    }
    out.clear();
    SPARE.with_borrow_mut(|s| {
        if s.outs.len() < SPARES {
            s.outs.push(out);
        }
    });
}

/// An empty header map with room for `n` entries (a spare when there is one). A request's
/// and a response's maps cost ~350 instructions each to allocate and ~100 to free, and a
/// map grown past its first capacity is rehashed: a spare has the room of its last use.
pub(crate) fn headers(n: usize) -> HeaderMap {
    match SPARE.with_borrow_mut(|s| s.maps.pop()) {
        Some(mut m) => {
            m.reserve(n);
            m
        }
        None => HeaderMap::with_capacity(n),
    }
}

/// Keeps `map` (emptied) as a spare; an unusually large one is freed instead.
pub(crate) fn give_headers(mut map: HeaderMap) {
    if map.capacity() == 0 || map.capacity() > MAP_ENTRIES {
        return;
    }
    map.clear();
    SPARE.with_borrow_mut(|s| {
        if s.maps.len() < SPARES {
            s.maps.push(map);
        }
    });
}
