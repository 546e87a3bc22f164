//! HPACK (RFC 7541) for rampart's own HTTP/2 server and client: a decoder (requests,
//! upstream answers) and an encoder (answers, requests to upstreams).
//!
//! The decoder keeps its dynamic table as parsed fields (a name checked once when it
//! enters the table, not on every reference), so the fields a browser or load generator
//! repeats on every request cost a clone each. Fields that are not valid in HTTP/2
//! (uppercase names, forbidden bytes) still enter the table when the peer asks, since the
//! table must stay in step with the peer's; they come out as [`Field::Malformed`].
//!
//! The encoder indexes the fields an answer repeats (rampart's security headers above
//! all): after the first answer on a connection each costs one byte on the wire and a
//! hash and compare here. It finds them through a direct-mapped cache keyed by a hash of
//! name and value; a collision only costs a miss, so values chosen by an upstream cannot
//! slow it down. Strings go out as they are (no Huffman coding: indexing already removes
//! the repeated bytes, and the coding would cost more than it saves on the rest).

use std::collections::VecDeque;
use std::sync::OnceLock;

use bytes::{BufMut as _, Bytes};
use http::header::{HeaderName, HeaderValue};

/// The decoder's table size: the protocol's default, never raised.
pub const TABLE_SIZE: usize = 4096;

/// A header block that cannot be decoded (COMPRESSION_ERROR: the connection cannot go on,
/// its table no longer matches the peer's).
#[derive(Debug, PartialEq, Eq)]
pub struct CompressionError(pub &'static str);

/// A pseudo-header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pseudo {
    /// `:method`
    Method,
    /// `:scheme`
    Scheme,
    /// `:authority`
    Authority,
    /// `:path`
    Path,
    /// `:status` (answers only)
    Status,
    /// `:protocol` (extended CONNECT, not offered)
    Protocol,
}

/// One decoded field.
#[derive(Debug, Clone)]
pub enum Field {
    /// A pseudo-header and its value.
    Pseudo(Pseudo, Bytes),
    /// A regular field, valid in HTTP/2.
    Header(HeaderName, HeaderValue),
    /// A field that is not valid in HTTP/2 (the request carrying it is malformed).
    Malformed(&'static str),
}

/// The static table (RFC 7541 Appendix A), 1-based in the protocol.
const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

fn static_fields() -> &'static [Field] {
    static T: OnceLock<Vec<Field>> = OnceLock::new();
    T.get_or_init(|| {
        STATIC
            .iter()
            .map(|(n, v)| {
                field(
                    Bytes::from_static(n.as_bytes()),
                    Bytes::from_static(v.as_bytes()),
                )
            })
            .collect()
    })
}

/// The field a name and value make, checked once.
fn field(name: Bytes, value: Bytes) -> Field {
    if let Some(p) = name.strip_prefix(b":") {
        let p = match p {
            b"method" => Pseudo::Method,
            b"scheme" => Pseudo::Scheme,
            b"authority" => Pseudo::Authority,
            b"path" => Pseudo::Path,
            b"status" => Pseudo::Status,
            b"protocol" => Pseudo::Protocol,
            _ => return Field::Malformed("unknown pseudo-header"),
        };
        return Field::Pseudo(p, value);
    }
    // HTTP/2 field names are lowercase (RFC 9113 §8.2.1); `HeaderName` would fold them.
    if name.iter().any(u8::is_ascii_uppercase) {
        return Field::Malformed("uppercase field name");
    }
    let Ok(n) = HeaderName::from_bytes(&name) else {
        return Field::Malformed("invalid field name");
    };
    // No leading or trailing whitespace (RFC 9113 §8.2.1); no control bytes (HeaderValue).
    if value.first().is_some_and(|b| *b == b' ' || *b == b'\t')
        || value.last().is_some_and(|b| *b == b' ' || *b == b'\t')
    {
        return Field::Malformed("field value with surrounding whitespace");
    }
    match HeaderValue::from_maybe_shared(value) {
        Ok(v) => Field::Header(n, v),
        Err(_) => Field::Malformed("invalid field value"),
    }
}

/// Reads an integer with an `n`-bit prefix (RFC 7541 §5.1) from `buf` at `*at`.
fn read_int(buf: &[u8], at: &mut usize, n: u32) -> Result<usize, CompressionError> {
    const ERR: CompressionError = CompressionError("truncated or oversized integer");
    let mask = (1usize << n) - 1;
    let first = *buf.get(*at).ok_or(ERR)? as usize & mask;
    *at += 1;
    if first < mask {
        return Ok(first);
    }
    let mut value = mask;
    let mut shift = 0;
    loop {
        let b = *buf.get(*at).ok_or(ERR)?;
        *at += 1;
        // Anything past 2^28 is no length or index a peer can mean.
        if shift > 21 {
            return Err(ERR);
        }
        value += ((b & 0x7f) as usize) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
}

/// Reads a string literal (RFC 7541 §5.2).
fn read_str(src: &Bytes, at: &mut usize, scratch: &mut Vec<u8>) -> Result<Bytes, CompressionError> {
    let huffman = src.get(*at).is_some_and(|b| b & 0x80 != 0);
    let len = read_int(src, at, 7)?;
    let end = at
        .checked_add(len)
        .filter(|e| *e <= src.len())
        .ok_or(CompressionError("string past the end of the block"))?;
    let raw = &src[*at..end];
    let s = if huffman {
        scratch.clear();
        super::huffman::decode(raw, scratch)
            .map_err(|_| CompressionError("invalid Huffman string"))?;
        Bytes::copy_from_slice(scratch)
    } else {
        src.slice(*at..end)
    };
    *at = end;
    Ok(s)
}

struct Entry {
    field: Field,
    size: usize,
}

/// The receiving side: one per connection.
pub struct Decoder {
    table: VecDeque<Entry>,
    size: usize,
    max: usize,
    scratch: Vec<u8>,
    /// Literals by their encoded bytes (see [`Decoder::with_literal_cache`]).
    literals: Option<Box<[Option<Literal>; LITERALS]>>,
}

/// A literal field as it was encoded, and what it decoded to.
struct Literal {
    raw: Vec<u8>,
    field: Field,
    size: usize,
}

/// The two places a literal's encoding may have in the cache.
fn literal_slots(h: u64) -> [usize; 2] {
    [(h >> 58) as usize % LITERALS, (h >> 40) as usize % LITERALS]
}

/// Literals remembered, and the longest encoding remembered.
const LITERALS: usize = 32;
const LITERAL_MAX: usize = 96;

impl Default for Decoder {
    fn default() -> Self {
        Self {
            table: VecDeque::new(),
            size: 0,
            max: TABLE_SIZE,
            scratch: Vec::new(),
            literals: None,
        }
    }
}

impl Decoder {
    /// A decoder that remembers the last literals it decoded, by their encoded bytes, so
    /// that one sent again is not decoded again. For answers from upstreams: nginx, for
    /// one, sends every answer field as a Huffman-coded literal (`server`, `date`,
    /// `content-type` with indexing but never referring to the entry, `grpc-status`
    /// without), the same bytes answer after answer. One with indexing is entered in the
    /// table again from the cache. A literal naming a field of the dynamic table is never
    /// remembered (its name depends on the table); a miss costs one hash of the encoded
    /// bytes.
    pub fn with_literal_cache() -> Self {
        Self {
            literals: Some(Box::new(std::array::from_fn(|_| None))),
            ..Self::default()
        }
    }

    /// The end of the literal representation at `at` whose name index has been read
    /// (`i`, 0 for a literal name), its strings skipped, not decoded.
    fn literal_end(block: &[u8], mut at: usize, i: usize) -> Option<usize> {
        for _ in 0..if i == 0 { 2 } else { 1 } {
            let len = read_int(block, &mut at, 7).ok()?;
            at = at.checked_add(len).filter(|e| *e <= block.len())?;
        }
        Some(at)
    }

    /// Decodes one whole header block, handing each field with its size (name + value +
    /// 32, RFC 9113 §6.5.2) to `each`.
    pub fn decode(
        &mut self,
        block: &Bytes,
        mut each: impl FnMut(Field, usize),
    ) -> Result<(), CompressionError> {
        let mut at = 0;
        let mut fields = false;
        while at < block.len() {
            let b = block[at];
            if b & 0x80 != 0 {
                // Indexed field.
                let i = read_int(block, &mut at, 7)?;
                let (f, size) = self.get(i)?;
                each(f, size);
            } else if b & 0xe0 == 0x20 {
                // Table size update: only before the first field (RFC 7541 §4.2).
                if fields {
                    return Err(CompressionError("table size update after a field"));
                }
                let n = read_int(block, &mut at, 5)?;
                if n > TABLE_SIZE {
                    return Err(CompressionError("table size over the setting"));
                }
                self.max = n;
                self.evict(0);
                continue;
            } else {
                // Literal: with incremental indexing (01), without (0000), never (0001).
                let (indexing, prefix) = if b & 0xc0 == 0x40 {
                    (true, 6)
                } else {
                    (false, 4)
                };
                let start = at;
                let i = read_int(block, &mut at, prefix)?;
                // A literal seen before, not naming a dynamic entry (so it decodes the
                // same whatever the table holds); one with indexing is entered again.
                let mut remember = None;
                if let (Some(cache), true) = (&self.literals, i < 62) {
                    if let Some(end) = Self::literal_end(block, at, i) {
                        let raw = &block[start..end];
                        if raw.len() <= LITERAL_MAX {
                            let h = hash(raw, b"");
                            let slot = literal_slots(h);
                            let hit = slot
                                .iter()
                                .find_map(|&i| cache[i].as_ref().filter(|l| l.raw == raw));
                            if let Some(l) = hit {
                                let (f, size) = (l.field.clone(), l.size);
                                if indexing {
                                    self.insert(f.clone(), size);
                                }
                                each(f, size);
                                at = end;
                                fields = true;
                                continue;
                            }
                            remember = Some((slot, start));
                        }
                    }
                }
                let name = if i == 0 {
                    read_str(block, &mut at, &mut self.scratch)?
                } else {
                    self.name_of(i)?
                };
                let value = read_str(block, &mut at, &mut self.scratch)?;
                let size = name.len() + value.len() + 32;
                let f = field(name, value);
                if indexing {
                    self.insert(f.clone(), size);
                }
                if let (Some((slot, start)), Some(cache)) = (remember, self.literals.as_mut()) {
                    // Two places per literal: the newest in the first, the one it
                    // displaces moved to its own second place when that is free.
                    let [a, b] = slot;
                    let new = Literal {
                        raw: block[start..at].to_vec(),
                        field: f.clone(),
                        size,
                    };
                    if cache[b].is_none() {
                        cache[b] = Some(new);
                    } else if let Some(old) = cache[a].replace(new) {
                        let [_, ob] = literal_slots(hash(&old.raw, b""));
                        if ob != a && cache[ob].is_none() {
                            cache[ob] = Some(old);
                        }
                    }
                }
                each(f, size);
            }
            fields = true;
        }
        Ok(())
    }

    fn get(&self, i: usize) -> Result<(Field, usize), CompressionError> {
        match i {
            0 => Err(CompressionError("index 0")),
            1..=61 => {
                let (n, v) = STATIC[i - 1];
                Ok((static_fields()[i - 1].clone(), n.len() + v.len() + 32))
            }
            _ => self
                .table
                .get(i - 62)
                .map(|e| (e.field.clone(), e.size))
                .ok_or(CompressionError("index past the table")),
        }
    }

    /// The name of entry `i`, as bytes (a literal field may pair it with any value).
    fn name_of(&self, i: usize) -> Result<Bytes, CompressionError> {
        if (1..=61).contains(&i) {
            return Ok(Bytes::from_static(STATIC[i - 1].0.as_bytes()));
        }
        let e = i
            .checked_sub(62)
            .and_then(|j| self.table.get(j))
            .ok_or(CompressionError("name index past the table"))?;
        match &e.field {
            Field::Header(n, _) => Ok(Bytes::copy_from_slice(n.as_str().as_bytes())),
            Field::Pseudo(p, _) => Ok(Bytes::from_static(match p {
                Pseudo::Method => b":method",
                Pseudo::Scheme => b":scheme",
                Pseudo::Authority => b":authority",
                Pseudo::Path => b":path",
                Pseudo::Status => b":status",
                Pseudo::Protocol => b":protocol",
            })),
            // Its name was not valid; any field named by it is not either.
            Field::Malformed(_) => Ok(Bytes::from_static(b"X")),
        }
    }

    fn insert(&mut self, field: Field, size: usize) {
        if size > self.max {
            // An entry larger than the table empties it (RFC 7541 §4.4).
            self.table.clear();
            self.size = 0;
            return;
        }
        self.evict(size);
        self.size += size;
        self.table.push_front(Entry { field, size });
    }

    fn evict(&mut self, room: usize) {
        while self.size + room > self.max {
            match self.table.pop_back() {
                Some(e) => self.size -= e.size,
                None => break,
            }
        }
    }
}

/// A field name in the encoder's table.
enum Name {
    Header(HeaderName),
    Pseudo(Pseudo),
}

/// A field name being encoded.
#[derive(Clone, Copy)]
enum NameRef<'a> {
    Header(&'a HeaderName),
    Pseudo(Pseudo),
}

impl NameRef<'_> {
    fn is(self, n: &Name) -> bool {
        match (self, n) {
            (Self::Header(a), Name::Header(b)) => a == b,
            (Self::Pseudo(a), Name::Pseudo(b)) => a == *b,
            _ => false,
        }
    }

    fn owned(self) -> Name {
        match self {
            Self::Header(h) => Name::Header(h.clone()),
            Self::Pseudo(p) => Name::Pseudo(p),
        }
    }
}

/// The sending side: one per connection.
pub struct Encoder {
    /// Oldest first; entry number `n` (counted from 1 over the connection's life) is at
    /// `n - 1 - (inserted - table.len())`.
    table: VecDeque<(Name, HeaderValue, usize)>,
    size: usize,
    /// The table size in use: the peer's setting, at most [`TABLE_SIZE`].
    max: usize,
    inserted: u64,
    /// Size updates owed at the start of the next block: the smallest since the last one,
    /// then the current (RFC 7541 §4.2).
    update: Option<(usize, usize)>,
    /// Per slot: a tag of the field's hash and its entry number (low 32 bits; 0 for
    /// none). A field may sit in either of two slots, so two fields of one answer rarely
    /// push each other out.
    cache: Box<[(u32, u32); CACHE]>,
}

const CACHE: usize = 128;

impl Default for Encoder {
    fn default() -> Self {
        Self {
            table: VecDeque::new(),
            size: 0,
            max: TABLE_SIZE,
            inserted: 0,
            update: None,
            cache: Box::new([(0, 0); CACHE]),
        }
    }
}

/// Writes an integer with an `n`-bit prefix whose other bits are `flags`.
fn write_int(dst: &mut Vec<u8>, flags: u8, n: u32, mut v: usize) {
    let mask = (1usize << n) - 1;
    if v < mask {
        dst.push(flags | v as u8);
        return;
    }
    dst.push(flags | mask as u8);
    v -= mask;
    while v >= 128 {
        dst.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    dst.push(v as u8);
}

fn write_str(dst: &mut Vec<u8>, s: &[u8]) {
    write_int(dst, 0, 7, s.len());
    dst.put_slice(s);
}

/// The static table's index for a name an answer may carry.
fn static_name(n: &HeaderName) -> usize {
    match n.as_str() {
        "accept-ranges" => 18,
        "access-control-allow-origin" => 20,
        "age" => 21,
        "allow" => 22,
        "cache-control" => 24,
        "content-disposition" => 25,
        "content-encoding" => 26,
        "content-language" => 27,
        "content-length" => 28,
        "content-location" => 29,
        "content-range" => 30,
        "content-type" => 31,
        "date" => 33,
        "etag" => 34,
        "expires" => 36,
        "last-modified" => 44,
        "link" => 45,
        "location" => 46,
        "proxy-authenticate" => 48,
        "refresh" => 52,
        "retry-after" => 53,
        "server" => 54,
        "set-cookie" => 55,
        "strict-transport-security" => 56,
        "vary" => 59,
        "via" => 60,
        "www-authenticate" => 61,
        _ => 0,
    }
}

/// Names whose values change from answer to answer: indexing them would only push the
/// repeated fields out of the table.
fn varies(n: &HeaderName) -> bool {
    matches!(
        n.as_str(),
        "content-length"
            | "etag"
            | "last-modified"
            | "location"
            | "content-range"
            | "age"
            | "set-cookie"
            | "x-request-id"
            | "traceparent"
            | "content-disposition"
    )
}

/// The two cache slots a field's hash may use.
fn slots(h: u64) -> [usize; 2] {
    [h as usize % CACHE, (h >> 20) as usize % CACHE]
}

fn hash(n: &[u8], v: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = (n.len() as u64) << 32 | v.len() as u64;
    for part in [n, v] {
        let mut chunks = part.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            h = (h.rotate_left(5) ^ w).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    h
}

impl Encoder {
    /// The peer's `SETTINGS_HEADER_TABLE_SIZE`.
    pub fn set_max(&mut self, peer: usize) {
        let max = peer.min(TABLE_SIZE);
        if max == self.max {
            return;
        }
        let low = self.update.map_or(max, |(low, _)| low.min(max));
        self.update = Some((low, max));
        self.max = max;
        self.evict(0);
    }

    /// Starts a block: the size updates owed.
    pub fn begin(&mut self, dst: &mut Vec<u8>) {
        if let Some((low, now)) = self.update.take() {
            write_int(dst, 0x20, 5, low);
            if low != now {
                write_int(dst, 0x20, 5, now);
            }
        }
    }

    /// `:status`.
    pub fn status(&mut self, status: http::StatusCode, dst: &mut Vec<u8>) {
        let i = match status.as_u16() {
            200 => 8,
            204 => 9,
            206 => 10,
            304 => 11,
            400 => 12,
            404 => 13,
            500 => 14,
            _ => 0,
        };
        if i != 0 {
            dst.push(0x80 | i);
        } else {
            // Literal without indexing, name `:status` (index 8).
            write_int(dst, 0, 4, 8);
            write_str(dst, status.as_str().as_bytes());
        }
    }

    /// A request's pseudo-header (`:status` is [`Encoder::status`]). `:method` and
    /// `:scheme` come from the static table when they can; `:authority` and `:path` are
    /// indexed, since a client of one upstream repeats them (a gRPC method's path on
    /// every call).
    pub fn pseudo(&mut self, p: Pseudo, value: &[u8], dst: &mut Vec<u8>) {
        let full = match (p, value) {
            (Pseudo::Method, b"GET") => 2,
            (Pseudo::Method, b"POST") => 3,
            (Pseudo::Path, b"/") => 4,
            (Pseudo::Scheme, b"http") => 6,
            (Pseudo::Scheme, b"https") => 7,
            _ => 0,
        };
        if full != 0 {
            dst.push(0x80 | full);
            return;
        }
        let (name, si): (&[u8], usize) = match p {
            Pseudo::Authority => (b":authority", 1),
            Pseudo::Method => (b":method", 2),
            Pseudo::Path => (b":path", 4),
            Pseudo::Scheme => (b":scheme", 6),
            Pseudo::Status => (b":status", 8),
            Pseudo::Protocol => (b":protocol", 0),
        };
        let index = matches!(p, Pseudo::Authority | Pseudo::Path);
        self.put(NameRef::Pseudo(p), name, value, si, index, false, dst);
    }

    /// One field.
    pub fn field(&mut self, name: &HeaderName, value: &HeaderValue, dst: &mut Vec<u8>) {
        self.field_as(name, value.as_bytes(), value.is_sensitive(), dst);
    }

    /// One field from its value's bytes (a valid field value), `sensitive` ones never
    /// indexed.
    pub fn field_as(
        &mut self,
        name: &HeaderName,
        value: &[u8],
        sensitive: bool,
        dst: &mut Vec<u8>,
    ) {
        let n = name.as_str().as_bytes();
        let index = !sensitive && !varies(name);
        self.put(
            NameRef::Header(name),
            n,
            value,
            static_name(name),
            index,
            sensitive,
            dst,
        );
    }

    /// A field by its name (`n` its bytes, `si` its static index or 0): from the table
    /// when it is there, else a literal, entered in the table when `index` allows.
    #[allow(clippy::too_many_arguments)]
    fn put(
        &mut self,
        name: NameRef<'_>,
        n: &[u8],
        v: &[u8],
        si: usize,
        index: bool,
        sensitive: bool,
        dst: &mut Vec<u8>,
    ) {
        let size = n.len() + v.len() + 32;
        let h = if !index || size > self.max / 2 {
            None
        } else {
            Some(hash(n, v))
        };
        if let Some(h) = h {
            let tag = (h >> 32) as u32;
            for slot in slots(h) {
                let (t, seq) = self.cache[slot];
                if t != tag || seq == 0 {
                    continue;
                }
                if let Some(i) = self.live(seq) {
                    let (en, ev, _) = &self.table[i];
                    if name.is(en) && ev.as_bytes() == v {
                        write_int(dst, 0x80, 7, 62 + self.table.len() - 1 - i);
                        return;
                    }
                }
            }
        }
        // The value as a table entry: only a value that is a valid field value (a
        // pseudo-header's always is, coming from a parsed URI).
        let entry = h.and_then(|_| HeaderValue::from_bytes(v).ok());
        let (flags, prefix) = match (entry.is_some(), sensitive) {
            (true, _) => (0x40, 6),
            (false, true) => (0x10, 4),
            (false, false) => (0x00, 4),
        };
        write_int(dst, flags, prefix, si);
        if si == 0 {
            write_str(dst, n);
        }
        write_str(dst, v);
        if let (Some(h), Some(value)) = (h, entry) {
            self.evict(size);
            self.size += size;
            self.table.push_back((name.owned(), value, size));
            self.inserted += 1;
            // Into a slot that holds nothing live, else the one holding the older entry.
            let [a, b] = slots(h);
            let age = |slot: usize| {
                let seq = self.cache[slot].1;
                if seq == 0 {
                    None
                } else {
                    self.live(seq).map(|i| i + 1)
                }
            };
            let slot = match (age(a), age(b)) {
                (None, _) => a,
                (_, None) => b,
                (Some(x), Some(y)) => {
                    if x <= y {
                        a
                    } else {
                        b
                    }
                }
            };
            self.cache[slot] = ((h >> 32) as u32, self.inserted as u32);
        }
    }

    /// Where entry number `seq` (its low 32 bits) is in the table, if still there.
    fn live(&self, seq: u32) -> Option<usize> {
        let back = u64::from((self.inserted as u32).wrapping_sub(seq));
        let n = self.inserted.checked_sub(back)?;
        let oldest = self.inserted - self.table.len() as u64;
        (n > oldest).then(|| (n - oldest - 1) as usize)
    }

    fn evict(&mut self, room: usize) {
        while self.size + room > self.max {
            match self.table.pop_front() {
                Some((_, _, s)) => self.size -= s,
                None => break,
            }
        }
    }
}

/// Fuzzing entry point (the cargo-fuzz target `hpack` and the corpus replay test):
/// `data` as two header blocks on one connection's table; no panic, the table within
/// its size, and every valid field it yields encoded by [`Encoder`] and decoded again
/// unchanged.
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz(data: &[u8]) {
    let mut d = Decoder::default();
    let mut cached = Decoder::with_literal_cache();
    let (mut e, mut back) = (Encoder::default(), Decoder::default());
    let cut = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    for block in [&data[..cut], &data[cut..], &data[cut..]] {
        let mut fields = Vec::new();
        let block = Bytes::copy_from_slice(block);
        let plain = d.decode(&block, |f, _| fields.push(f));
        // The literal cache changes nothing decoded, even on a block seen again.
        let mut again = Vec::new();
        let with_cache = cached.decode(&block, |f, _| again.push(f));
        assert_eq!(plain.is_ok(), with_cache.is_ok());
        assert_eq!(format!("{fields:?}"), format!("{again:?}"));
        assert_eq!(
            (d.size, d.table.len()),
            (cached.size, cached.table.len()),
            "the literal cache left the table otherwise"
        );
        if plain.is_err() {
            return;
        }
        assert!(d.size <= d.max && d.max <= TABLE_SIZE);
        let mut out = Vec::new();
        e.begin(&mut out);
        let mut sent = Vec::new();
        for f in fields {
            match &f {
                Field::Header(n, v) => e.field(n, v, &mut out),
                Field::Pseudo(p, v) if *p != Pseudo::Status && *p != Pseudo::Protocol => {
                    e.pseudo(*p, v, &mut out);
                }
                _ => continue,
            }
            sent.push(f);
        }
        let mut got = Vec::new();
        let decoded = back.decode(&out.into(), |f, _| got.push(f));
        assert!(decoded.is_ok(), "the encoder's own block does not decode");
        assert_eq!(got.len(), sent.len());
        for (g, s) in got.iter().zip(&sent) {
            match (g, s) {
                (Field::Header(gn, gv), Field::Header(n, v)) => assert!(gn == n && gv == v),
                (Field::Pseudo(gp, gv), Field::Pseudo(p, v)) => assert!(gp == p && gv == v),
                _ => panic!("a field came back as another kind"),
            }
        }
        assert_eq!(e.size, back.size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Bytes {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
            .into()
    }

    fn text(f: &Field) -> String {
        match f {
            Field::Pseudo(p, v) => format!("{p:?}={}", String::from_utf8_lossy(v)),
            Field::Header(n, v) => format!("{n}={}", v.to_str().unwrap()),
            Field::Malformed(why) => format!("malformed: {why}"),
        }
    }

    fn decode(d: &mut Decoder, block: &str) -> Vec<String> {
        let mut out = Vec::new();
        d.decode(&hex(block), |f, _| out.push(text(&f))).unwrap();
        out
    }

    #[test]
    fn rfc_7541_c3_requests_without_huffman() {
        let mut d = Decoder::default();
        assert_eq!(
            decode(&mut d, "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"),
            [
                "Method=GET",
                "Scheme=http",
                "Path=/",
                "Authority=www.example.com"
            ]
        );
        assert_eq!(d.size, 57);
        assert_eq!(
            decode(&mut d, "8286 84be 5808 6e6f 2d63 6163 6865"),
            [
                "Method=GET",
                "Scheme=http",
                "Path=/",
                "Authority=www.example.com",
                "cache-control=no-cache"
            ]
        );
        assert_eq!(
            decode(
                &mut d,
                "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"
            ),
            [
                "Method=GET",
                "Scheme=https",
                "Path=/index.html",
                "Authority=www.example.com",
                "custom-key=custom-value"
            ]
        );
        assert_eq!(d.size, 164);
    }

    #[test]
    fn rfc_7541_c4_requests_with_huffman() {
        let mut d = Decoder::default();
        assert_eq!(
            decode(&mut d, "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"),
            [
                "Method=GET",
                "Scheme=http",
                "Path=/",
                "Authority=www.example.com"
            ]
        );
        assert_eq!(
            decode(&mut d, "8286 84be 5886 a8eb 1064 9cbf"),
            [
                "Method=GET",
                "Scheme=http",
                "Path=/",
                "Authority=www.example.com",
                "cache-control=no-cache"
            ]
        );
        assert_eq!(
            decode(
                &mut d,
                "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"
            ),
            [
                "Method=GET",
                "Scheme=https",
                "Path=/index.html",
                "Authority=www.example.com",
                "custom-key=custom-value"
            ]
        );
    }

    #[test]
    fn rfc_7541_c6_responses_with_eviction() {
        // A table of 256 bytes, as in the RFC's example: entries are evicted.
        let mut d = Decoder::default();
        d.decode(&hex("3fe1 01"), |_, _| {}).unwrap();
        assert_eq!(d.max, 256);
        let first = decode(
            &mut d,
            "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        );
        assert_eq!(first[0], "Status=302");
        assert_eq!(d.size, 222);
        let second = decode(&mut d, "4883 640e ff c1c0 bf");
        assert_eq!(second[0], "Status=307");
        assert_eq!(d.size, 222);
        assert_eq!(d.table.len(), 4);
    }

    #[test]
    fn literals_sent_again_come_from_the_cache_unchanged() {
        // `server: nginx` (static name 54) and `grpc-status: 0` (new name), both literals
        // without indexing, the value of the first Huffman-coded; then a dynamic-table
        // name (62), never cached.
        let mut block = vec![0x0f, 54 - 15];
        let v = crate::wire::huffman::encode(b"nginx");
        block.push(0x80 | v.len() as u8);
        block.extend_from_slice(&v);
        block.extend_from_slice(b"\x00\x0bgrpc-status\x010");
        let block = Bytes::from(block);
        let mut d = Decoder::with_literal_cache();
        let first: Vec<String> = decode_block(&mut d, &block);
        assert_eq!(first, ["server=nginx", "grpc-status=0"]);
        let cached = d.literals.as_ref().unwrap().iter().flatten().count();
        assert_eq!(cached, 2);
        assert_eq!(decode_block(&mut d, &block), first);
        // A literal with indexing (nginx sends its answers' fields so, and never refers
        // to them): from the cache it is entered in the table again, where 62 finds it.
        let mut d = Decoder::with_literal_cache();
        let idx = Bytes::from_static(b"\x76\x05nginx\xbe");
        for _ in 0..2 {
            assert_eq!(decode_block(&mut d, &idx), ["server=nginx", "server=nginx"]);
        }
        assert_eq!(d.table.len(), 2);
        assert_eq!(d.literals.as_ref().unwrap().iter().flatten().count(), 1);
        // A literal naming dynamic entry 62 (after one indexed insertion) is not cached;
        // the insertion, whose name is a literal, is.
        let mut d = Decoder::with_literal_cache();
        let ins = Bytes::from_static(b"\x40\x01x\x01a\x0f\x2f\x01b");
        assert_eq!(decode_block(&mut d, &ins), ["x=a", "x=b"]);
        assert_eq!(d.literals.as_ref().unwrap().iter().flatten().count(), 1);
        assert_eq!(decode_block(&mut d, &ins), ["x=a", "x=b"]);
    }

    #[test]
    fn an_answers_literals_all_stay_in_the_cache() {
        // Ten literal fields of new names, as an upstream might send on every answer:
        // two places each keep all ten (one place each lost some to collisions).
        let mut block = Vec::new();
        for i in 0..10 {
            let n = format!("x-upstream-{i}");
            block.push(0);
            block.push(n.len() as u8);
            block.extend_from_slice(n.as_bytes());
            block.extend_from_slice(b"\x05value");
        }
        let block = Bytes::from(block);
        let mut d = Decoder::with_literal_cache();
        let first = decode_block(&mut d, &block);
        assert_eq!(first.len(), 10);
        assert_eq!(d.literals.as_ref().unwrap().iter().flatten().count(), 10);
        assert_eq!(decode_block(&mut d, &block), first);
        assert_eq!(d.literals.as_ref().unwrap().iter().flatten().count(), 10);
    }

    fn decode_block(d: &mut Decoder, block: &Bytes) -> Vec<String> {
        let mut out = Vec::new();
        d.decode(block, |f, _| out.push(text(&f))).unwrap();
        out
    }

    #[test]
    fn bad_blocks_are_compression_errors() {
        let mut d = Decoder::default();
        for bad in [
            "80",
            "ff00",
            "be",
            "4085",
            "3fe2 1f",
            "82 20",
            "41 ff ff ff ff ff 0f",
        ] {
            assert!(d.decode(&hex(bad), |_, _| {}).is_err(), "{bad}");
        }
    }

    #[test]
    fn invalid_fields_still_enter_the_table() {
        let mut d = Decoder::default();
        // Literal with indexing, new name "Foo" (uppercase), value "x"; then index 62.
        let got = decode(&mut d, "4003 466f 6f01 78 be");
        assert_eq!(
            got,
            [
                "malformed: uppercase field name",
                "malformed: uppercase field name"
            ]
        );
        let got = decode(&mut d, "4003 666f 6f02 2078");
        assert_eq!(got, ["malformed: field value with surrounding whitespace"]);
    }

    fn encode_all(e: &mut Encoder, fields: &[(&'static str, &'static str)]) -> Bytes {
        let mut out = Vec::new();
        e.begin(&mut out);
        e.status(http::StatusCode::OK, &mut out);
        for (n, v) in fields {
            e.field(
                &HeaderName::from_static(n),
                &HeaderValue::from_static(v),
                &mut out,
            );
        }
        out.into()
    }

    #[test]
    fn encoder_output_decodes_and_repeats_cost_a_byte() {
        let fields = [
            ("content-type", "text/html"),
            ("strict-transport-security", "max-age=63072000"),
            ("x-frame-options", "DENY"),
            ("content-length", "42"),
            ("x-custom", "a"),
        ];
        let (mut e, mut d) = (Encoder::default(), Decoder::default());
        for round in 0..3 {
            let block = encode_all(&mut e, &fields);
            let mut got = Vec::new();
            d.decode(&block, |f, _| got.push(text(&f))).unwrap();
            assert_eq!(got[0], "Status=200");
            for (i, (n, v)) in fields.iter().enumerate() {
                assert_eq!(got[i + 1], format!("{n}={v}"));
            }
            if round > 0 {
                // :status, four indexed fields, content-length as a literal: its name's
                // index (28) in two bytes of a 4-bit prefix, then "42".
                assert_eq!(block.len(), 1 + 4 + 2 + 3, "round {round}");
            }
        }
    }

    #[test]
    fn many_repeated_fields_all_hit_the_cache() {
        // 40 fields of one answer: each found again on the next (two slots per field).
        let fields: Vec<(&'static str, &'static str)> = (0..40)
            .map(|i| {
                let n: &'static str = Box::leak(format!("x-field-{i}").into_boxed_str());
                (n, "same value every time")
            })
            .collect();
        let mut e = Encoder::default();
        encode_all(&mut e, &fields);
        let again = encode_all(&mut e, &fields);
        let misses = again.len() - 1 - fields.len();
        assert_eq!(misses, 0, "{misses} bytes of misses");
        let third = encode_all(&mut e, &fields);
        assert!(third.len() <= again.len());
    }

    #[test]
    fn encoder_follows_a_smaller_table_and_evicts() {
        let (mut e, mut d) = (Encoder::default(), Decoder::default());
        let many: Vec<(&'static str, &'static str)> = (0..200)
            .map(|i| ("x-n", &*Box::leak(format!("value-{i}").into_boxed_str())))
            .collect();
        for _ in 0..2 {
            let block = encode_all(&mut e, &many);
            d.decode(&block, |_, _| {}).unwrap();
            assert!(e.size <= TABLE_SIZE && e.size == d.size);
        }
        e.set_max(100);
        e.set_max(200);
        let block = encode_all(&mut e, &many[..3]);
        assert_eq!(&block[..2], &[0x20 | 31, 100 - 31]);
        let mut got = Vec::new();
        d.decode(&block, |f, _| got.push(text(&f))).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(d.max, 200);
        assert!(e.size <= 200 && e.size == d.size);
    }

    #[test]
    fn sensitive_values_are_never_indexed() {
        let mut e = Encoder::default();
        let mut v = HeaderValue::from_static("secret");
        v.set_sensitive(true);
        let mut out = Vec::new();
        e.field(&HeaderName::from_static("x-token"), &v, &mut out);
        assert_eq!(out[0], 0x10);
        assert_eq!(e.table.len(), 0);
    }
}
