//! Authenticated encryption of a backup as a stream: AES-256-GCM in the STREAM
//! construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015; the one age and Tink use).
//!
//! ```text
//! header:  "RBK1" | salt (32) | nonce prefix (7)
//! key:     HKDF-SHA256(key file's 32 bytes, salt, "rampart-backup/1 aes-256-gcm")
//! segment: AES-256-GCM(64 KiB of plaintext, nonce = prefix | counter (u32 BE) | last (1),
//!                      aad = header) = ciphertext | tag (16)
//! ```
//!
//! Every segment is authenticated and numbered, and only the last carries the last flag,
//! so a changed, reordered, dropped or truncated segment fails, and the file key is new
//! for every backup (its salt), so nonces never repeat under one key.

use std::io::{self, Read, Write};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::hkdf::{Salt, HKDF_SHA256};
use base64::Engine as _;

const MAGIC: &[u8; 4] = b"RBK1";
const SALT: usize = 32;
const PREFIX: usize = 7;
const HEADER: usize = MAGIC.len() + SALT + PREFIX;
const SEGMENT: usize = 64 * 1024;
const TAG: usize = 16;
const INFO: &[u8] = b"rampart-backup/1 aes-256-gcm";

/// Lowercase hex (checksums, key ids, names).
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A backup key: 32 bytes from a key file.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.id())
    }
}

impl Key {
    /// Reads a key file: 32 bytes as base64 (standard or URL-safe, as `rampart secrets
    /// generate backup-key` writes) or raw.
    ///
    /// # Errors
    /// Unreadable, or not 32 bytes (a passphrase is not a key).
    pub fn from_file(path: &std::path::Path) -> Result<Self, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read the key {}: {e}", path.display()))?;
        Self::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// A key from a key file's contents.
    ///
    /// # Errors
    /// Not 32 bytes, raw or base64.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() == 32 {
            let mut k = [0u8; 32];
            k.copy_from_slice(bytes);
            return Ok(Self(k));
        }
        let text: String = String::from_utf8_lossy(bytes)
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(&text))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&text))
            .map_err(|_| "not a backup key: 32 bytes, base64 or raw".to_owned())?;
        let k: [u8; 32] = decoded.try_into().map_err(|v: Vec<u8>| {
            format!(
                "a backup key is 32 bytes, this one {} (`rampart secrets generate backup-key`)",
                v.len()
            )
        })?;
        Ok(Self(k))
    }

    /// A new random key.
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        let _ = aws_lc_rs::rand::fill(&mut k);
        Self(k)
    }

    /// The key file's text (base64 and a newline).
    pub fn to_file_text(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0) + "\n"
    }

    /// A name for the key that does not reveal it: the first 8 bytes of its SHA-256.
    pub fn id(&self) -> String {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.0);
        hex(&d.as_ref()[..8])
    }

    fn file_key(&self, salt: &[u8]) -> LessSafeKey {
        let okm = Salt::new(HKDF_SHA256, salt).extract(&self.0);
        let key: UnboundKey = okm
            .expand(&[INFO], &AES_256_GCM)
            .map(UnboundKey::from)
            .unwrap_or_else(|_| unreachable!("HKDF of 32 bytes always expands to one AES key"));
        LessSafeKey::new(key)
    }
}

fn nonce(prefix: &[u8], counter: u32, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[..PREFIX].copy_from_slice(prefix);
    n[PREFIX..PREFIX + 4].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

/// Encrypts what is written to it into `inner`; [`Writer::finish`] seals the last segment.
pub struct Writer<W: Write> {
    inner: W,
    key: LessSafeKey,
    header: [u8; HEADER],
    counter: u32,
    buf: Vec<u8>,
}

impl<W: Write> Writer<W> {
    /// Writes the header to `inner`.
    ///
    /// # Errors
    /// The write fails.
    pub fn new(mut inner: W, key: &Key) -> io::Result<Self> {
        let mut header = [0u8; HEADER];
        header[..4].copy_from_slice(MAGIC);
        aws_lc_rs::rand::fill(&mut header[4..]).map_err(|_| io::Error::other("no randomness"))?;
        inner.write_all(&header)?;
        Ok(Self {
            inner,
            key: key.file_key(&header[4..4 + SALT]),
            header,
            counter: 0,
            buf: Vec::with_capacity(SEGMENT + TAG),
        })
    }

    fn seal(&mut self, last: bool) -> io::Result<()> {
        let n = nonce(&self.header[4 + SALT..], self.counter, last);
        let tag = self
            .key
            .seal_in_place_separate_tag(n, Aad::from(&self.header[..]), &mut self.buf)
            .map_err(|_| io::Error::other("encryption failed"))?;
        self.inner.write_all(&self.buf)?;
        self.inner.write_all(tag.as_ref())?;
        self.buf.clear();
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| io::Error::other("backup too large for one stream (256 TiB)"))?;
        Ok(())
    }

    /// The inner writer.
    pub fn inner_ref(&self) -> &W {
        &self.inner
    }

    /// Seals the last segment and returns the inner writer.
    ///
    /// # Errors
    /// The write fails.
    pub fn finish(mut self) -> io::Result<W> {
        self.seal(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Writer<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut rest = data;
        while !rest.is_empty() {
            // A full segment is sealed only once more data comes: the last one may be full.
            if self.buf.len() == SEGMENT {
                self.seal(false)?;
            }
            let take = rest.len().min(SEGMENT - self.buf.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Whether `head` (a backup file's first bytes) is encrypted.
pub fn is_encrypted(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

/// Decrypts a stream written by [`Writer`]; any change to it is an error.
pub struct Reader<R: Read> {
    inner: R,
    key: LessSafeKey,
    header: [u8; HEADER],
    counter: u32,
    /// The segment read ahead (so the last one is known), and the plaintext served.
    next: Vec<u8>,
    plain: Vec<u8>,
    pos: usize,
    done: bool,
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

impl<R: Read> Reader<R> {
    /// Reads the header.
    ///
    /// # Errors
    /// Not an encrypted backup.
    pub fn new(mut inner: R, key: &Key) -> io::Result<Self> {
        let mut header = [0u8; HEADER];
        if read_full(&mut inner, &mut header)? < HEADER || !is_encrypted(&header) {
            return Err(corrupt("not an encrypted rampart backup"));
        }
        let mut r = Self {
            inner,
            key: key.file_key(&header[4..4 + SALT]),
            header,
            counter: 0,
            next: vec![0u8; SEGMENT + TAG],
            plain: Vec::new(),
            pos: 0,
            done: false,
        };
        let n = read_full(&mut r.inner, &mut r.next)?;
        r.next.truncate(n);
        Ok(r)
    }

    fn open_next(&mut self) -> io::Result<()> {
        let mut seg = std::mem::take(&mut self.next);
        // Read ahead: the segment is the last when nothing follows it.
        let mut ahead = vec![0u8; SEGMENT + TAG];
        let n = if seg.len() == SEGMENT + TAG {
            read_full(&mut self.inner, &mut ahead)?
        } else {
            0
        };
        ahead.truncate(n);
        let last = n == 0;
        if seg.len() < TAG {
            return Err(corrupt("the backup is truncated"));
        }
        let nonce = nonce(&self.header[4 + SALT..], self.counter, last);
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(&self.header[..]), &mut seg)
            .map_err(|_| {
                corrupt("the backup does not decrypt: a wrong key, or the file was changed or truncated")
            })?
            .len();
        seg.truncate(plain);
        self.plain = seg;
        self.pos = 0;
        self.next = ahead;
        self.counter = self.counter.wrapping_add(1);
        self.done = last;
        Ok(())
    }
}

impl<R: Read> Read for Reader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.plain.len() {
            if self.done {
                return Ok(0);
            }
            self.open_next()?;
        }
        let n = out.len().min(self.plain.len() - self.pos);
        out[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(key: &Key, data: &[u8]) -> Vec<u8> {
        let mut w = Writer::new(Vec::new(), key).unwrap();
        // Odd write sizes across segment boundaries.
        for chunk in data.chunks(40_000) {
            w.write_all(chunk).unwrap();
        }
        w.finish().unwrap()
    }

    fn open(key: &Key, data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Reader::new(data, key)?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn round_trips_and_refuses_every_change() {
        let key = Key::generate();
        for len in [
            0,
            1,
            SEGMENT - 1,
            SEGMENT,
            SEGMENT + 1,
            3 * SEGMENT,
            200_000,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let sealed = seal(&key, &data);
            assert_eq!(open(&key, &sealed).unwrap(), data, "{len}");
            if len > 0 {
                // A flipped bit anywhere, a wrong key, a truncation: all refused.
                let mut bad = sealed.clone();
                let at = HEADER + len / 2;
                bad[at] ^= 1;
                assert!(open(&key, &bad).is_err(), "{len}");
                assert!(open(&Key::generate(), &sealed).is_err(), "{len}");
            }
            if len > SEGMENT {
                let cut = &sealed[..HEADER + SEGMENT + TAG];
                assert!(open(&key, cut).is_err(), "{len}: truncated at a segment");
            }
        }
        assert!(open(&key, b"RBK0 not this").is_err());
    }

    #[test]
    fn keys_are_32_bytes_in_base64_or_raw() {
        let k = Key::generate();
        let again = Key::from_bytes(k.to_file_text().as_bytes()).unwrap();
        assert_eq!(again.id(), k.id());
        assert!(Key::from_bytes(b"hunter2").is_err());
        assert!(Key::from_bytes(b"aGVsbG8=")
            .unwrap_err()
            .contains("32 bytes"));
        assert!(Key::from_bytes(&[7u8; 32]).is_ok());
    }
}
