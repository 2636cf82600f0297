//! XDR (RFC 4506) as libvirt's rpcgen output uses it: big-endian 4-byte units, 8-byte
//! hypers, variable opaque and strings as a length then the bytes padded to 4, fixed
//! opaque padded to 4, optional values ("pointers") as a bool then the value, and
//! variable arrays as a count then the elements. `char`, `short` and their unsigned
//! forms are 4 bytes on the wire like `int`.
//!
//! The decoder never trusts a length: every count is checked against the limit the `.x`
//! file gives and against the bytes actually left before anything is allocated, and
//! running out of bytes is an [`XdrError`] naming what was being read and where.

use std::fmt;

/// What decoding found wrong, with the offset (in the message body) where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdrError {
    /// Byte offset of the field that could not be decoded.
    pub offset: usize,
    /// What was wrong.
    pub kind: XdrErrorKind,
}

/// The kinds of malformed XDR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XdrErrorKind {
    /// The data ended while `needed` more bytes were expected for `what`.
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Bytes the field needed.
        needed: usize,
        /// Bytes that were left.
        left: usize,
    },
    /// A length or count above what the protocol allows for `what`.
    TooLong {
        /// The field being read.
        what: &'static str,
        /// The length or count sent.
        len: u64,
        /// The protocol's limit.
        max: u64,
    },
    /// A bool (or optional-value marker) other than 0 or 1.
    BadBool {
        /// The field being read.
        what: &'static str,
        /// The value sent.
        value: u32,
    },
    /// A string that is not UTF-8.
    NotUtf8 {
        /// The field being read.
        what: &'static str,
    },
    /// A value outside what the field can hold (e.g. a negative count).
    OutOfRange {
        /// The field being read.
        what: &'static str,
        /// The value sent.
        value: i64,
    },
    /// Bytes left over after the whole structure was decoded.
    Trailing {
        /// How many.
        len: usize,
    },
}

impl fmt::Display for XdrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            XdrErrorKind::Truncated { what, needed, left } => write!(
                f,
                "truncated XDR: {what} needs {needed} bytes at offset {}, {left} left",
                self.offset
            ),
            XdrErrorKind::TooLong { what, len, max } => write!(
                f,
                "XDR {what} at offset {} has length {len}, above the limit {max}",
                self.offset
            ),
            XdrErrorKind::BadBool { what, value } => write!(
                f,
                "XDR {what} at offset {} is {value}, not a bool",
                self.offset
            ),
            XdrErrorKind::NotUtf8 { what } => {
                write!(f, "XDR {what} at offset {} is not UTF-8", self.offset)
            }
            XdrErrorKind::OutOfRange { what, value } => write!(
                f,
                "XDR {what} at offset {} is {value}, out of range",
                self.offset
            ),
            XdrErrorKind::Trailing { len } => write!(
                f,
                "{len} bytes left over after the XDR structure (ending at offset {})",
                self.offset
            ),
        }
    }
}

impl std::error::Error for XdrError {}

/// Padding after `len` bytes of opaque data.
fn pad(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Builds an XDR byte string.
#[derive(Debug, Default, Clone)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The bytes encoded.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// `int`.
    pub fn int(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// `unsigned int` (also `unsigned char`/`unsigned short`, widened).
    pub fn uint(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// `hyper`.
    pub fn hyper(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// `unsigned hyper`.
    pub fn uhyper(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// `bool`.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.uint(u32::from(v))
    }

    /// Fixed-length `opaque[N]`: the bytes and their padding, no length.
    pub fn fixed_opaque(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self.buf.extend(std::iter::repeat_n(0, pad(bytes.len())));
        self
    }

    /// Variable-length `opaque<>`: the length, the bytes, padding. Lengths are the
    /// caller's to keep within the protocol's limits (the server refuses longer ones).
    pub fn opaque(&mut self, bytes: &[u8]) -> &mut Self {
        self.uint(bytes.len() as u32);
        self.fixed_opaque(bytes)
    }

    /// `string<>`.
    pub fn string(&mut self, s: &str) -> &mut Self {
        self.opaque(s.as_bytes())
    }

    /// An optional value (`T *`): a bool, then the value when present.
    pub fn optional<T>(&mut self, v: Option<&T>, f: impl FnOnce(&mut Self, &T)) -> &mut Self {
        match v {
            Some(v) => {
                self.bool(true);
                f(self, v);
            }
            None => {
                self.bool(false);
            }
        }
        self
    }

    /// An optional string (`remote_string`).
    pub fn opt_string(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.bool(true).string(s),
            None => self.bool(false),
        }
    }

    /// A variable array: the count, then each element.
    pub fn array<T>(&mut self, items: &[T], mut f: impl FnMut(&mut Self, &T)) -> &mut Self {
        self.uint(items.len() as u32);
        for item in items {
            f(self, item);
        }
        self
    }

    /// Any [`XdrEncode`] value.
    pub fn put<T: XdrEncode + ?Sized>(&mut self, v: &T) -> &mut Self {
        v.encode(self);
        self
    }
}

/// Reads XDR from a byte string, checking every length before it is used.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Where the next field starts.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn error(&self, kind: XdrErrorKind) -> XdrError {
        XdrError {
            offset: self.pos,
            kind,
        }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], XdrError> {
        if self.remaining() < n {
            return Err(self.error(XdrErrorKind::Truncated {
                what,
                needed: n,
                left: self.remaining(),
            }));
        }
        let bytes = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    fn word(&mut self, what: &'static str) -> Result<[u8; 4], XdrError> {
        let b = self.take(4, what)?;
        Ok([b[0], b[1], b[2], b[3]])
    }

    /// `int`.
    pub fn int(&mut self, what: &'static str) -> Result<i32, XdrError> {
        Ok(i32::from_be_bytes(self.word(what)?))
    }

    /// `unsigned int`.
    pub fn uint(&mut self, what: &'static str) -> Result<u32, XdrError> {
        Ok(u32::from_be_bytes(self.word(what)?))
    }

    /// `hyper`.
    pub fn hyper(&mut self, what: &'static str) -> Result<i64, XdrError> {
        let b = self.take(8, what)?;
        Ok(i64::from_be_bytes(b.try_into().expect("8 bytes")))
    }

    /// `unsigned hyper`.
    pub fn uhyper(&mut self, what: &'static str) -> Result<u64, XdrError> {
        let b = self.take(8, what)?;
        Ok(u64::from_be_bytes(b.try_into().expect("8 bytes")))
    }

    /// `bool`: 0 or 1, nothing else.
    pub fn bool(&mut self, what: &'static str) -> Result<bool, XdrError> {
        let at = self.pos;
        match self.uint(what)? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(XdrError {
                offset: at,
                kind: XdrErrorKind::BadBool { what, value },
            }),
        }
    }

    /// Fixed-length `opaque[N]` and its padding.
    pub fn fixed_opaque<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], XdrError> {
        let bytes = self.take(N + pad(N), what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&bytes[..N]);
        Ok(out)
    }

    /// A length of at most `max`, which the remaining bytes can hold (at `unit` bytes
    /// per element): checked before the caller allocates anything.
    fn length(&mut self, what: &'static str, max: u32, unit: usize) -> Result<usize, XdrError> {
        let at = self.pos;
        let len = self.uint(what)?;
        if len > max {
            return Err(XdrError {
                offset: at,
                kind: XdrErrorKind::TooLong {
                    what,
                    len: u64::from(len),
                    max: u64::from(max),
                },
            });
        }
        let len = len as usize;
        let needed = len.saturating_mul(unit);
        if needed > self.remaining() {
            return Err(self.error(XdrErrorKind::Truncated {
                what,
                needed,
                left: self.remaining(),
            }));
        }
        Ok(len)
    }

    /// Variable-length `opaque<max>`.
    pub fn opaque(&mut self, what: &'static str, max: u32) -> Result<Vec<u8>, XdrError> {
        let len = self.length(what, max, 1)?;
        let bytes = self.take(len + pad(len), what)?;
        Ok(bytes[..len].to_vec())
    }

    /// `string<max>`, which must be UTF-8.
    pub fn string(&mut self, what: &'static str, max: u32) -> Result<String, XdrError> {
        let at = self.pos;
        let bytes = self.opaque(what, max)?;
        String::from_utf8(bytes).map_err(|_| XdrError {
            offset: at,
            kind: XdrErrorKind::NotUtf8 { what },
        })
    }

    /// An optional value: a bool, then the value when it is true.
    pub fn optional<T>(
        &mut self,
        what: &'static str,
        f: impl FnOnce(&mut Self) -> Result<T, XdrError>,
    ) -> Result<Option<T>, XdrError> {
        if self.bool(what)? {
            f(self).map(Some)
        } else {
            Ok(None)
        }
    }

    /// An optional string (`remote_string`), limited to [`crate::STRING_MAX`].
    pub fn opt_string(&mut self, what: &'static str) -> Result<Option<String>, XdrError> {
        self.optional(what, |d| d.string(what, crate::STRING_MAX))
    }

    /// A variable array of at most `max` elements, each at least `min_size` bytes on the
    /// wire (so a count the message cannot hold fails before anything is allocated).
    pub fn array<T>(
        &mut self,
        what: &'static str,
        max: u32,
        min_size: usize,
        mut f: impl FnMut(&mut Self) -> Result<T, XdrError>,
    ) -> Result<Vec<T>, XdrError> {
        let count = self.length(what, max, min_size.max(1))?;
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(f(self)?);
        }
        Ok(out)
    }

    /// A count or index sent as `int` that must not be negative.
    pub fn non_negative(&mut self, what: &'static str) -> Result<u32, XdrError> {
        let at = self.pos;
        let v = self.int(what)?;
        u32::try_from(v).map_err(|_| XdrError {
            offset: at,
            kind: XdrErrorKind::OutOfRange {
                what,
                value: i64::from(v),
            },
        })
    }

    /// Any [`XdrDecode`] value.
    pub fn get<T: XdrDecode>(&mut self) -> Result<T, XdrError> {
        T::decode(self)
    }

    /// Fails if anything is left: a reply must be exactly its structure.
    pub fn finish(&self) -> Result<(), XdrError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(self.error(XdrErrorKind::Trailing {
                len: self.remaining(),
            }))
        }
    }
}

/// A value with an XDR encoding (a call's arguments).
pub trait XdrEncode {
    /// Appends the encoding.
    fn encode(&self, e: &mut Encoder);
}

/// A value decoded from XDR (a call's reply).
pub trait XdrDecode: Sized {
    /// Reads one value.
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError>;
}

/// Decodes `bytes` as exactly one `T`.
pub fn decode_all<T: XdrDecode>(bytes: &[u8]) -> Result<T, XdrError> {
    let mut d = Decoder::new(bytes);
    let v = T::decode(&mut d)?;
    d.finish()?;
    Ok(v)
}

impl XdrEncode for () {
    fn encode(&self, _: &mut Encoder) {}
}

impl XdrDecode for () {
    fn decode(_: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(())
    }
}
