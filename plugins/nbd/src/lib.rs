//! A small synchronous NBD client, written from the protocol document
//! (<https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md>).
//!
//! It speaks what the storage adapters need from qemu-storage-daemon (and libvirt's
//! pull-mode backup exports): the fixed newstyle handshake with `NBD_OPT_GO`, structured
//! replies, metadata contexts (`base:allocation`, `qemu:dirty-bitmap:*`,
//! `qemu:allocation-depth`), reads, writes, zeroes, trim, flush and block status. It is
//! std only and generic over any `Read + Write` stream, so it runs on the host and inside
//! a `wasm32-wasip2` adapter alike.
//!
//! Requests are pipelined on one connection: a read or write is split into pieces of at
//! most the server's maximum block size and up to [`Client::in_flight`] of them are kept
//! outstanding, their replies matched by cookie. One request in flight reaches only about
//! half of what qsd can serve.
//!
//! Whatever the server sends is checked before it is trusted: a bad magic, a reply for a
//! cookie not in flight, a chunk outside the requested range, or a truncated stream is an
//! [`Error::Protocol`] naming what was wrong; no buffer is sized by a server field beyond
//! what was asked for. After such an error (or an I/O error) the connection is out of step
//! and every later call fails at once.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};

#[cfg(feature = "device")]
pub mod device;
#[cfg(test)]
mod tests;

/// What every call of this crate returns.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an NBD call failed, in kinds an adapter can map to its own errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection itself failed (reset, timeout, refused); the client is unusable.
    #[error("NBD connection: {0}")]
    Io(#[from] io::Error),
    /// The server broke the protocol (or closed the stream mid-message); the client is
    /// unusable, since it can no longer tell where the next message starts.
    #[error("NBD protocol violation: {0}")]
    Protocol(String),
    /// The server answered a command with an error; the connection stays usable.
    #[error("NBD server failed {command} of {length} bytes at offset {offset}: {errno}: {message}")]
    Server {
        /// The command that failed (`READ`, `WRITE`, ...).
        command: &'static str,
        /// Where the failure was: the error chunk's offset if it gave one, else the request's.
        offset: u64,
        /// The length of the failed request.
        length: u64,
        /// The NBD error name (`EIO`, `EINVAL`, `ENOSPC`, `EPERM`, ...).
        errno: &'static str,
        /// The NBD error value as sent.
        code: u32,
        /// The server's message, or the error's description when it sent none.
        message: String,
    },
    /// The server or the export refused what was asked during the handshake (unknown
    /// export, unsupported option), or the export cannot do it (writes to a read-only one).
    #[error("NBD refused: {0}")]
    Refused(String),
    /// The caller asked for something invalid (a range beyond the export, a metadata
    /// context that was not negotiated); nothing was sent.
    #[error("invalid NBD request: {0}")]
    Invalid(String),
}

/// One extent of a block status answer: `length` bytes from `offset` with the context's
/// `flags` (for `base:allocation` bit 0 = hole, bit 1 = reads as zeroes; for
/// `qemu:dirty-bitmap:*` bit 0 = dirty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Where the extent starts, in bytes from the start of the export.
    pub offset: u64,
    /// How long it is, in bytes (never zero).
    pub length: u64,
    /// The context's status flags for it.
    pub flags: u32,
}

/// The metadata context of allocation status every NBD server may offer.
pub const BASE_ALLOCATION: &str = "base:allocation";

/// `base:allocation` flag: the extent is a hole (not allocated).
pub const STATE_HOLE: u32 = 1;
/// `base:allocation` flag: the extent reads as zeroes.
pub const STATE_ZERO: u32 = 2;
/// `qemu:dirty-bitmap:*` flag: the extent is dirty.
pub const STATE_DIRTY: u32 = 1;

/// Transmission flag: the export is read-only.
pub const FLAG_READ_ONLY: u16 = 1 << 1;
/// Transmission flag: `NBD_CMD_FLUSH` is supported.
pub const FLAG_SEND_FLUSH: u16 = 1 << 2;
/// Transmission flag: `NBD_CMD_TRIM` is supported.
pub const FLAG_SEND_TRIM: u16 = 1 << 5;
/// Transmission flag: `NBD_CMD_WRITE_ZEROES` is supported.
pub const FLAG_SEND_WRITE_ZEROES: u16 = 1 << 6;
/// Transmission flag: several connections to this export see one consistent cache.
pub const FLAG_CAN_MULTI_CONN: u16 = 1 << 8;

/// How many requests are kept in flight by default (qemu's server works on 16 at once).
pub const DEFAULT_IN_FLIGHT: usize = 16;
/// The most requests [`Client::set_in_flight`] allows in flight.
pub const MAX_IN_FLIGHT: usize = 64;
/// The maximum block size assumed when the server does not advertise one (32 MiB).
pub const DEFAULT_MAX_BLOCK: u32 = 32 << 20;

// Handshake.
const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
const OLDSTYLE_MAGIC: u64 = 0x4202_8186_1253;
const OPT_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
const FLAG_FIXED_NEWSTYLE: u16 = 1;
const FLAG_NO_ZEROES: u16 = 2;
const OPT_EXPORT_NAME: u32 = 1;
const OPT_GO: u32 = 7;
const OPT_STRUCTURED_REPLY: u32 = 8;
const OPT_SET_META_CONTEXT: u32 = 10;
const REP_ACK: u32 = 1;
const REP_INFO: u32 = 3;
const REP_META_CONTEXT: u32 = 4;
const REP_ERR_UNSUP: u32 = (1 << 31) + 1;
const INFO_EXPORT: u16 = 0;
const INFO_BLOCK_SIZE: u16 = 3;
const FLAG_HAS_FLAGS: u16 = 1;

// Transmission.
const REQUEST_MAGIC: u32 = 0x2560_9513;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;
const CMD_READ: u16 = 0;
const CMD_WRITE: u16 = 1;
const CMD_DISC: u16 = 2;
const CMD_FLUSH: u16 = 3;
const CMD_TRIM: u16 = 4;
const CMD_WRITE_ZEROES: u16 = 6;
const CMD_BLOCK_STATUS: u16 = 7;
const REPLY_FLAG_DONE: u16 = 1;
const REPLY_NONE: u16 = 0;
const REPLY_OFFSET_DATA: u16 = 1;
const REPLY_OFFSET_HOLE: u16 = 2;
const REPLY_BLOCK_STATUS: u16 = 5;
const REPLY_ERROR_BIT: u16 = 1 << 15;
const REPLY_ERROR_OFFSET: u16 = REPLY_ERROR_BIT + 2;

// Limits on what the server may make us read or hold.
/// An option reply longer than this is refused (strings are limited to 4096 bytes).
const MAX_OPTION_REPLY: u32 = 64 << 10;
/// Option replies to one option (INFO, META_CONTEXT) beyond this are refused.
const MAX_OPTION_REPLIES: usize = 1024;
/// An error chunk longer than this is refused (message <= 4096 + offset + header).
const MAX_ERROR_CHUNK: u32 = 8 << 10;
/// Error chunks in one reply beyond this are refused.
const MAX_ERROR_CHUNKS: u32 = 64;
/// Extents in one block status chunk beyond this are refused (the protocol's 2^20).
const MAX_EXTENTS: u32 = 1 << 20;
/// The longest request of a command without payload (zeroes, trim, block status).
const MAX_NO_PAYLOAD: u64 = 1 << 30;
/// Names and queries are strings of at most 4096 bytes.
const MAX_STRING: usize = 4096;
/// The read buffer in front of the stream.
const READ_BUFFER: usize = 128 << 10;
/// Write payloads smaller than this are copied next to their header (one write call).
const COALESCE: usize = 64 << 10;

/// An NBD connection in its transmission phase, to one export.
///
/// Not `Sync`: one connection carries one conversation. Open several clients for
/// parallelism across connections (see [`Client::can_multi_conn`]).
pub struct Client<S: Read + Write> {
    conn: Conn<S>,
    export: String,
    size: u64,
    flags: u16,
    min_block: u32,
    preferred_block: u32,
    max_block: u32,
    structured: bool,
    contexts: Vec<(String, u32)>,
    missing: Vec<String>,
    next_cookie: u64,
    in_flight: usize,
    /// Why the connection is out of step, once it is.
    broken: Option<String>,
    closed: bool,
}

impl Client<TcpStream> {
    /// Connects over TCP (with `TCP_NODELAY`, so small requests are not delayed) and
    /// negotiates as [`Client::connect`] does.
    pub fn connect_tcp(
        addr: impl ToSocketAddrs,
        export: &str,
        meta_contexts: &[&str],
    ) -> Result<Self> {
        let stream = TcpStream::connect(addr)?;
        // Best effort: a sandbox may not offer the option.
        let _ = stream.set_nodelay(true);
        Self::connect(stream, export, meta_contexts)
    }
}

impl<S: Read + Write> Client<S> {
    /// Negotiates on a fresh stream: fixed newstyle handshake, structured replies, the
    /// given metadata contexts (those the server does not give back are reported by
    /// [`Client::has_context`] and [`Client::missing_contexts`], and refused on use), then
    /// `NBD_OPT_GO` for `export`, honouring the block sizes the server advertises.
    pub fn connect(stream: S, export: &str, meta_contexts: &[&str]) -> Result<Self> {
        if export.len() > MAX_STRING {
            return Err(Error::Invalid(format!(
                "export name of {} bytes (at most {MAX_STRING})",
                export.len()
            )));
        }
        for context in meta_contexts {
            if context.len() > MAX_STRING || !context.contains(':') {
                return Err(Error::Invalid(format!(
                    "metadata context {context:?} is not a NAMESPACE:NAME of at most {MAX_STRING} bytes"
                )));
            }
        }
        let mut conn = Conn::new(stream);
        let magic = conn.u64("the server greeting")?;
        if magic != NBDMAGIC {
            return Err(Error::Protocol(format!(
                "bad greeting magic {magic:#018x} (expected NBDMAGIC): not an NBD server"
            )));
        }
        match conn.u64("the server greeting")? {
            IHAVEOPT => {}
            OLDSTYLE_MAGIC => {
                return Err(Error::Refused(
                    "the server speaks oldstyle negotiation, which this client does not".into(),
                ));
            }
            other => {
                return Err(Error::Protocol(format!(
                    "bad greeting magic {other:#018x} after NBDMAGIC (expected IHAVEOPT)"
                )));
            }
        }
        let handshake = conn.u16("the handshake flags")?;
        if handshake & FLAG_FIXED_NEWSTYLE == 0 {
            return Err(Error::Refused(
                "the server does not offer fixed newstyle negotiation".into(),
            ));
        }
        let no_zeroes = handshake & FLAG_NO_ZEROES != 0;
        let client_flags = u32::from(FLAG_FIXED_NEWSTYLE)
            | if no_zeroes {
                u32::from(FLAG_NO_ZEROES)
            } else {
                0
            };
        conn.put(&client_flags.to_be_bytes());

        let mut client = Client {
            conn,
            export: export.to_string(),
            size: 0,
            flags: 0,
            min_block: 1,
            preferred_block: 4096,
            max_block: DEFAULT_MAX_BLOCK,
            structured: false,
            contexts: Vec::new(),
            missing: meta_contexts.iter().map(|c| c.to_string()).collect(),
            next_cookie: 1,
            in_flight: DEFAULT_IN_FLIGHT,
            broken: None,
            closed: false,
        };
        client.negotiate_structured()?;
        if client.structured && !meta_contexts.is_empty() {
            client.negotiate_contexts(meta_contexts)?;
        }
        client.go(no_zeroes)?;
        Ok(client)
    }

    fn negotiate_structured(&mut self) -> Result<()> {
        self.conn.option(OPT_STRUCTURED_REPLY, &[])?;
        let (kind, _) = self.conn.option_reply(OPT_STRUCTURED_REPLY)?;
        match kind {
            REP_ACK => self.structured = true,
            // Refused or unknown: simple replies only, no block status.
            k if k & (1 << 31) != 0 => self.structured = false,
            other => {
                return Err(Error::Protocol(format!(
                    "reply type {other} to NBD_OPT_STRUCTURED_REPLY"
                )));
            }
        }
        Ok(())
    }

    fn negotiate_contexts(&mut self, wanted: &[&str]) -> Result<()> {
        let mut data = Vec::new();
        put_string(&mut data, &self.export);
        data.extend_from_slice(&(wanted.len() as u32).to_be_bytes());
        for context in wanted {
            put_string(&mut data, context);
        }
        self.conn.option(OPT_SET_META_CONTEXT, &data)?;
        for _ in 0..MAX_OPTION_REPLIES {
            let (kind, data) = self.conn.option_reply(OPT_SET_META_CONTEXT)?;
            match kind {
                REP_META_CONTEXT => {
                    if data.len() < 5 {
                        return Err(Error::Protocol(format!(
                            "NBD_REP_META_CONTEXT of {} bytes",
                            data.len()
                        )));
                    }
                    let id = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                    let name = String::from_utf8(data[4..].to_vec()).map_err(|_| {
                        Error::Protocol("NBD_REP_META_CONTEXT name is not UTF-8".into())
                    })?;
                    if self.contexts.iter().any(|(_, i)| *i == id) {
                        return Err(Error::Protocol(format!(
                            "metadata context id {id} given twice"
                        )));
                    }
                    self.missing.retain(|m| *m != name);
                    self.contexts.push((name, id));
                }
                REP_ACK => return Ok(()),
                k if k & (1 << 31) != 0 => {
                    return Err(Error::Refused(format!(
                        "export '{}': metadata contexts {wanted:?} refused: {}",
                        self.export,
                        option_error(k, &data)
                    )));
                }
                other => {
                    return Err(Error::Protocol(format!(
                        "reply type {other} to NBD_OPT_SET_META_CONTEXT"
                    )));
                }
            }
        }
        Err(Error::Protocol(format!(
            "more than {MAX_OPTION_REPLIES} replies to NBD_OPT_SET_META_CONTEXT"
        )))
    }

    fn go(&mut self, no_zeroes: bool) -> Result<()> {
        let mut data = Vec::new();
        put_string(&mut data, &self.export);
        data.extend_from_slice(&1u16.to_be_bytes());
        data.extend_from_slice(&INFO_BLOCK_SIZE.to_be_bytes());
        self.conn.option(OPT_GO, &data)?;
        let mut export_info = None;
        for _ in 0..MAX_OPTION_REPLIES {
            let (kind, data) = self.conn.option_reply(OPT_GO)?;
            match kind {
                REP_INFO => {
                    if data.len() < 2 {
                        return Err(Error::Protocol("NBD_REP_INFO shorter than its type".into()));
                    }
                    match u16::from_be_bytes([data[0], data[1]]) {
                        INFO_EXPORT => {
                            if data.len() != 12 {
                                return Err(Error::Protocol(format!(
                                    "NBD_INFO_EXPORT of {} bytes (expected 12)",
                                    data.len()
                                )));
                            }
                            let size =
                                u64::from_be_bytes(data[2..10].try_into().unwrap_or_default());
                            let flags = u16::from_be_bytes([data[10], data[11]]);
                            export_info = Some((size, flags));
                        }
                        INFO_BLOCK_SIZE => {
                            if data.len() != 14 {
                                return Err(Error::Protocol(format!(
                                    "NBD_INFO_BLOCK_SIZE of {} bytes (expected 14)",
                                    data.len()
                                )));
                            }
                            let word = |i: usize| {
                                u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]])
                            };
                            let (min, preferred, max) = (word(2), word(6), word(10));
                            if !min.is_power_of_two() || min > 1 << 16 || max < min {
                                return Err(Error::Protocol(format!(
                                    "NBD_INFO_BLOCK_SIZE min {min} preferred {preferred} max {max} is inconsistent"
                                )));
                            }
                            self.min_block = min;
                            self.preferred_block = preferred;
                            self.max_block = max;
                        }
                        // Names, descriptions, anything newer: not needed.
                        _ => {}
                    }
                }
                REP_ACK => {
                    let Some((size, flags)) = export_info else {
                        return Err(Error::Protocol(
                            "NBD_OPT_GO acknowledged without NBD_INFO_EXPORT".into(),
                        ));
                    };
                    return self.enter(size, flags);
                }
                REP_ERR_UNSUP => return self.export_name(no_zeroes),
                k if k & (1 << 31) != 0 => {
                    return Err(Error::Refused(format!(
                        "export '{}': {}",
                        self.export,
                        option_error(k, &data)
                    )));
                }
                other => {
                    return Err(Error::Protocol(format!("reply type {other} to NBD_OPT_GO")));
                }
            }
        }
        Err(Error::Protocol(format!(
            "more than {MAX_OPTION_REPLIES} replies to NBD_OPT_GO"
        )))
    }

    /// The fallback for servers without `NBD_OPT_GO`: they close the connection on an
    /// unknown export instead of saying so.
    fn export_name(&mut self, no_zeroes: bool) -> Result<()> {
        let name = self.export.clone().into_bytes();
        self.conn.option(OPT_EXPORT_NAME, &name)?;
        let unknown = |e: Error| match e {
            Error::Protocol(_) => Error::Refused(format!(
                "export '{}': the server closed the connection on NBD_OPT_EXPORT_NAME (unknown export?)",
                self.export
            )),
            other => other,
        };
        let size = self.conn.u64("the export size").map_err(unknown)?;
        let flags = self.conn.u16("the transmission flags").map_err(unknown)?;
        if !no_zeroes {
            self.conn.skip(124, "the export reply padding")?;
        }
        self.enter(size, flags)
    }

    fn enter(&mut self, size: u64, flags: u16) -> Result<()> {
        if flags & FLAG_HAS_FLAGS == 0 {
            return Err(Error::Protocol(format!(
                "transmission flags {flags:#06x} lack NBD_FLAG_HAS_FLAGS"
            )));
        }
        self.size = size;
        self.flags = flags;
        Ok(())
    }

    /// The export's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The export's name, as asked for.
    pub fn export(&self) -> &str {
        &self.export
    }

    /// The transmission flags the server sent (`FLAG_*`), for features not wrapped here.
    pub fn flags(&self) -> u16 {
        self.flags
    }

    /// Whether the export refuses writes (writes are then refused before sending).
    pub fn is_read_only(&self) -> bool {
        self.flags & FLAG_READ_ONLY != 0
    }

    /// Whether several connections to this export may be used at once safely (a flush on
    /// one covers writes completed on all).
    pub fn can_multi_conn(&self) -> bool {
        self.flags & FLAG_CAN_MULTI_CONN != 0
    }

    /// The largest read or write payload per request (requests are split to fit).
    pub fn max_block(&self) -> u32 {
        self.max_block
    }

    /// The alignment requests honour (unaligned reads are widened, unaligned writes
    /// read-modify-write their edge blocks).
    pub fn min_block(&self) -> u32 {
        self.min_block
    }

    /// The block size the server serves efficiently.
    pub fn preferred_block(&self) -> u32 {
        self.preferred_block
    }

    /// Whether structured replies were negotiated (without them there is no block status).
    pub fn structured_replies(&self) -> bool {
        self.structured
    }

    /// Whether metadata context `name` was negotiated and can be queried.
    pub fn has_context(&self, name: &str) -> bool {
        self.contexts.iter().any(|(n, _)| n == name)
    }

    /// The metadata contexts asked for that the server did not give (e.g. a dirty bitmap
    /// the export does not carry).
    pub fn missing_contexts(&self) -> &[String] {
        &self.missing
    }

    /// How many requests are kept in flight at once.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Sets how many requests are kept in flight (1 = strictly one after another), clamped
    /// to 1..=[`MAX_IN_FLIGHT`].
    pub fn set_in_flight(&mut self, requests: usize) {
        self.in_flight = requests.clamp(1, MAX_IN_FLIGHT);
    }

    /// Reads `len` bytes from `offset` (holes come back as zeroes).
    pub fn read(&mut self, offset: u64, len: u64) -> Result<Vec<u8>> {
        let mut all = self.read_many(&[(offset, len)])?;
        Ok(all.pop().unwrap_or_default())
    }

    /// Reads `buf.len()` bytes from `offset` into `buf`, for callers reusing a buffer.
    pub fn read_into(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.read_many_into(&mut [(offset, buf)])
    }

    /// Reads several `(offset, length)` ranges with their requests pipelined together on
    /// this connection; the results come back in the order asked.
    pub fn read_many(&mut self, ranges: &[(u64, u64)]) -> Result<Vec<Vec<u8>>> {
        self.usable()?;
        let mut out = Vec::with_capacity(ranges.len());
        for &(offset, len) in ranges {
            self.check_range(offset, len)?;
            out.push(vec![0u8; to_usize(len)?]);
        }
        let mut targets: Vec<(u64, &mut [u8])> = ranges
            .iter()
            .zip(out.iter_mut())
            .map(|(&(offset, _), buf)| (offset, buf.as_mut_slice()))
            .collect();
        self.read_many_into(&mut targets)?;
        Ok(out)
    }

    /// Reads several ranges into the caller's buffers (`(offset, buffer)`, each filled
    /// whole), pipelined as [`Client::read_many`] is, for copies reusing their buffers.
    pub fn read_many_into(&mut self, ranges: &mut [(u64, &mut [u8])]) -> Result<()> {
        self.usable()?;
        let align = u64::from(self.min_block);
        // Unaligned ranges are read through a widened, aligned bounce buffer.
        let mut bounces: Vec<Option<(u64, Vec<u8>)>> = Vec::with_capacity(ranges.len());
        for (offset, buf) in ranges.iter() {
            let len = buf.len() as u64;
            self.check_range(*offset, len)?;
            if len > 0 && (!offset.is_multiple_of(align) || !len.is_multiple_of(align)) {
                let start = offset - offset % align;
                let end = (offset + len)
                    .div_ceil(align)
                    .saturating_mul(align)
                    .min(self.size);
                bounces.push(Some((start, vec![0u8; to_usize(end - start)?])));
            } else {
                bounces.push(None);
            }
        }
        let piece = self.max_payload();
        let mut jobs = Vec::new();
        for ((offset, buf), bounce) in ranges.iter_mut().zip(bounces.iter_mut()) {
            let (mut at, target): (u64, &mut [u8]) = match bounce {
                Some((start, b)) => (*start, b.as_mut_slice()),
                None => (*offset, &mut **buf),
            };
            for chunk in target.chunks_mut(piece) {
                let len = chunk.len() as u64;
                jobs.push(Job::new(CMD_READ, at, len, Kind::Read(chunk)));
                at += len;
            }
        }
        self.run(&mut jobs)?;
        drop(jobs);
        for ((offset, buf), bounce) in ranges.iter_mut().zip(bounces) {
            if let Some((start, b)) = bounce {
                let from = (*offset - start) as usize;
                buf.copy_from_slice(&b[from..from + buf.len()]);
            }
        }
        Ok(())
    }

    /// Writes `data` at `offset`, split into pipelined requests of at most the maximum
    /// block size. Refused before sending on a read-only export.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.writable("write")?;
        let len = data.len() as u64;
        self.check_range(offset, len)?;
        if len == 0 {
            return Ok(());
        }
        let align = u64::from(self.min_block);
        if offset.is_multiple_of(align) && len.is_multiple_of(align) {
            return self.write_aligned(offset, data);
        }
        // Read-modify-write of the edge blocks (not atomic against other writers).
        let start = offset - offset % align;
        let end = (offset + len)
            .div_ceil(align)
            .saturating_mul(align)
            .min(self.size);
        let mut span = vec![0u8; to_usize(end - start)?];
        let head = (align.min(end - start)) as usize;
        self.read_into(start, &mut span[..head])?;
        if end - start > align {
            let tail = span.len() - (align as usize).min(span.len());
            let tail_offset = start + tail as u64;
            self.read_into(tail_offset, &mut span[tail..])?;
        }
        let from = (offset - start) as usize;
        span[from..from + data.len()].copy_from_slice(data);
        self.write_aligned(start, &span)
    }

    fn write_aligned(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let mut jobs = Vec::new();
        let mut at = offset;
        for chunk in data.chunks(self.max_payload()) {
            let len = chunk.len() as u64;
            jobs.push(Job::new(CMD_WRITE, at, len, Kind::Write(chunk)));
            at += len;
        }
        self.run(&mut jobs)
    }

    /// Makes `len` bytes from `offset` read as zeroes: `NBD_CMD_WRITE_ZEROES` where the
    /// server offers it (unaligned edges are written), else writes of zeroes.
    pub fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<()> {
        self.writable("write zeroes to")?;
        self.check_range(offset, len)?;
        if len == 0 {
            return Ok(());
        }
        if self.flags & FLAG_SEND_WRITE_ZEROES == 0 {
            let zeroes = vec![0u8; to_usize(len.min(self.max_payload() as u64))?];
            let mut at = offset;
            while at < offset + len {
                let n = (offset + len - at).min(zeroes.len() as u64);
                self.write(at, &zeroes[..n as usize])?;
                at += n;
            }
            return Ok(());
        }
        let align = u64::from(self.min_block);
        let end = offset + len;
        let inner_start = offset.div_ceil(align).saturating_mul(align).min(end);
        let inner_end = (end - end % align).max(inner_start);
        if inner_start > offset {
            self.write(offset, &vec![0u8; (inner_start - offset) as usize])?;
        }
        self.no_payload(CMD_WRITE_ZEROES, inner_start, inner_end - inner_start)?;
        if end > inner_end {
            self.write(inner_end, &vec![0u8; (end - inner_end) as usize])?;
        }
        Ok(())
    }

    /// Tells the server `len` bytes from `offset` are no longer needed (a hint: rounded
    /// inward to the block size, and nothing is sent if the server does not offer trim).
    /// Their contents are undefined afterwards.
    pub fn trim(&mut self, offset: u64, len: u64) -> Result<()> {
        self.writable("trim")?;
        self.check_range(offset, len)?;
        if self.flags & FLAG_SEND_TRIM == 0 {
            return Ok(());
        }
        let align = u64::from(self.min_block);
        let end = offset + len;
        let start = offset.div_ceil(align).saturating_mul(align);
        let end = end - end % align;
        if end > start {
            self.no_payload(CMD_TRIM, start, end - start)?;
        }
        Ok(())
    }

    /// Makes every write already answered durable. A server that does not offer flush
    /// gets none (it writes through, as the Linux NBD client assumes too).
    pub fn flush(&mut self) -> Result<()> {
        self.usable()?;
        if self.flags & FLAG_SEND_FLUSH == 0 {
            return Ok(());
        }
        self.run(&mut [Job::new(CMD_FLUSH, 0, 0, Kind::Other)])
    }

    /// The extents of metadata context `context` over `len` bytes from `offset`, covering
    /// the range exactly (asking again where the server answered a shorter range;
    /// adjacent extents with equal flags merged).
    pub fn block_status(&mut self, context: &str, offset: u64, len: u64) -> Result<Vec<Extent>> {
        self.usable()?;
        let Some(id) = self
            .contexts
            .iter()
            .find(|(n, _)| n == context)
            .map(|(_, i)| *i)
        else {
            return Err(Error::Invalid(format!(
                "metadata context '{context}' was not negotiated on export '{}'{}",
                self.export,
                if self.structured {
                    ""
                } else {
                    " (the server refused structured replies)"
                }
            )));
        };
        self.check_range(offset, len)?;
        let cap = MAX_NO_PAYLOAD - MAX_NO_PAYLOAD % u64::from(self.min_block);
        let end = offset + len;
        let mut at = offset;
        let mut out: Vec<Extent> = Vec::new();
        while at < end {
            let mut extents = Vec::new();
            let ask = (end - at).min(cap);
            self.run(&mut [Job::new(
                CMD_BLOCK_STATUS,
                at,
                ask,
                Kind::Status {
                    context: id,
                    extents: &mut extents,
                },
            )])?;
            for (length, flags) in extents {
                if at >= end {
                    break;
                }
                let length = u64::from(length).min(end - at);
                match out.last_mut() {
                    Some(last) if last.flags == flags && last.offset + last.length == at => {
                        last.length += length;
                    }
                    _ => out.push(Extent {
                        offset: at,
                        length,
                        flags,
                    }),
                }
                at += length;
            }
        }
        Ok(out)
    }

    /// The allocated (data, not hole) ranges `(offset, length)` within `len` bytes from
    /// `offset`, from `base:allocation`.
    pub fn allocated(&mut self, offset: u64, len: u64) -> Result<Vec<(u64, u64)>> {
        let extents = self.block_status(BASE_ALLOCATION, offset, len)?;
        Ok(ranges_where(&extents, |flags| flags & STATE_HOLE == 0))
    }

    /// The dirty ranges `(offset, length)` within `len` bytes from `offset`, from a
    /// `qemu:dirty-bitmap:NAME` context.
    pub fn dirty(&mut self, context: &str, offset: u64, len: u64) -> Result<Vec<(u64, u64)>> {
        let extents = self.block_status(context, offset, len)?;
        Ok(ranges_where(&extents, |flags| flags & STATE_DIRTY != 0))
    }

    /// Ends the session cleanly (`NBD_CMD_DISC`; the server finishes what is outstanding).
    /// Dropping a client does the same, ignoring errors.
    pub fn disconnect(mut self) -> Result<()> {
        self.disc()
    }

    fn disc(&mut self) -> Result<()> {
        if self.closed || self.broken.is_some() {
            return Ok(());
        }
        self.closed = true;
        put_request(&mut self.conn.out, CMD_DISC, 0, 0, 0, 0);
        self.conn.flush()
    }

    fn usable(&self) -> Result<()> {
        if let Some(why) = &self.broken {
            return Err(Error::Protocol(format!(
                "connection to export '{}' unusable after an earlier failure: {why}",
                self.export
            )));
        }
        if self.closed {
            return Err(Error::Invalid("the connection was disconnected".into()));
        }
        Ok(())
    }

    fn writable(&self, what: &str) -> Result<()> {
        self.usable()?;
        if self.is_read_only() {
            return Err(Error::Refused(format!(
                "cannot {what} export '{}': it is read-only",
                self.export
            )));
        }
        Ok(())
    }

    fn check_range(&self, offset: u64, len: u64) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(Error::Invalid(format!(
                "range {offset}+{len} is beyond the end of export '{}' ({} bytes)",
                self.export, self.size
            ))),
        }
    }

    /// The payload per READ/WRITE request: the maximum block, aligned down to the minimum.
    fn max_payload(&self) -> usize {
        let max = u64::from(self.max_block).min(u64::from(u32::MAX));
        let align = u64::from(self.min_block);
        (max - max % align).max(align) as usize
    }

    fn no_payload(&mut self, cmd: u16, offset: u64, len: u64) -> Result<()> {
        let cap = MAX_NO_PAYLOAD - MAX_NO_PAYLOAD % u64::from(self.min_block);
        let mut jobs = Vec::new();
        let mut at = offset;
        while at < offset + len {
            let n = (offset + len - at).min(cap);
            jobs.push(Job::new(cmd, at, n, Kind::Other));
            at += n;
        }
        self.run(&mut jobs)
    }

    /// Sends `jobs` with up to `in_flight` outstanding and reads their replies, matched by
    /// cookie. A server error stops sending further jobs; the ones in flight are still
    /// read so the stream stays in step, then the first error is returned. A protocol or
    /// I/O error marks the connection broken.
    fn run(&mut self, jobs: &mut [Job<'_>]) -> Result<()> {
        self.usable()?;
        match self.run_inner(jobs) {
            Err(e @ (Error::Io(_) | Error::Protocol(_))) => {
                self.broken = Some(e.to_string());
                Err(e)
            }
            other => other,
        }
    }

    fn run_inner(&mut self, jobs: &mut [Job<'_>]) -> Result<()> {
        let n = jobs.len();
        if n == 0 {
            return Ok(());
        }
        let base = self.next_cookie;
        self.next_cookie = self.next_cookie.wrapping_add(n as u64);
        let mut states: Vec<State> = (0..n).map(|_| State::Waiting).collect();
        let mut sent = 0;
        let mut done = 0;
        let mut failure: Option<Error> = None;
        while sent < n.min(self.in_flight) {
            self.conn
                .send(&jobs[sent], base.wrapping_add(sent as u64))?;
            states[sent] = State::Flying(Flight::default());
            sent += 1;
        }
        self.conn.flush()?;
        while done < sent {
            let index = self.next_reply(jobs, &mut states, base)?;
            if let Some(index) = index {
                done += 1;
                if let State::Flying(flight) = std::mem::replace(&mut states[index], State::Done)
                    && let Some(e) = flight.error
                {
                    failure.get_or_insert(e);
                }
                if sent < n && failure.is_none() {
                    self.conn
                        .send(&jobs[sent], base.wrapping_add(sent as u64))?;
                    self.conn.flush()?;
                    states[sent] = State::Flying(Flight::default());
                    sent += 1;
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Reads one reply message (a simple reply or one structured chunk); `Some(index)` when
    /// it completed job `index`.
    fn next_reply(
        &mut self,
        jobs: &mut [Job<'_>],
        states: &mut [State],
        base: u64,
    ) -> Result<Option<usize>> {
        let magic = self.conn.u32("a reply header")?;
        match magic {
            SIMPLE_REPLY_MAGIC => {
                let code = self.conn.u32("a simple reply")?;
                let cookie = self.conn.u64("a simple reply")?;
                let index = find(states, base, cookie)?;
                let job = &mut jobs[index];
                let State::Flying(flight) = &mut states[index] else {
                    unreachable!("find returns flying jobs only")
                };
                if code != 0 {
                    flight.error = Some(server_error(job, code, None, String::new()));
                    return Ok(Some(index));
                }
                match &mut job.kind {
                    Kind::Read(buf) => {
                        if self.structured {
                            return Err(Error::Protocol(
                                "a simple reply with data to READ, though structured replies were negotiated".into(),
                            ));
                        }
                        self.conn.read_exact(buf, "READ data")?;
                    }
                    Kind::Status { .. } => {
                        return Err(Error::Protocol(
                            "a simple success reply to BLOCK_STATUS (no extents)".into(),
                        ));
                    }
                    Kind::Write(_) | Kind::Other => {}
                }
                Ok(Some(index))
            }
            STRUCTURED_REPLY_MAGIC => {
                let flags = self.conn.u16("a reply chunk header")?;
                let kind = self.conn.u16("a reply chunk header")?;
                let cookie = self.conn.u64("a reply chunk header")?;
                let length = self.conn.u32("a reply chunk header")?;
                if !self.structured {
                    return Err(Error::Protocol(
                        "a structured reply chunk, though structured replies were not negotiated"
                            .into(),
                    ));
                }
                let index = find(states, base, cookie)?;
                let State::Flying(flight) = &mut states[index] else {
                    unreachable!("find returns flying jobs only")
                };
                let job = &mut jobs[index];
                self.chunk(job, flight, kind, length, flags & REPLY_FLAG_DONE != 0)?;
                if flags & REPLY_FLAG_DONE == 0 {
                    return Ok(None);
                }
                if flight.error.is_none() {
                    match &job.kind {
                        Kind::Read(_) if flight.bytes != job.len => {
                            return Err(Error::Protocol(format!(
                                "the READ reply for {}+{} ended after {} bytes",
                                job.offset, job.len, flight.bytes
                            )));
                        }
                        Kind::Status { context, .. } if !flight.contexts.contains(context) => {
                            return Err(Error::Protocol(format!(
                                "the BLOCK_STATUS reply for {}+{} ended without extents for the context asked",
                                job.offset, job.len
                            )));
                        }
                        _ => {}
                    }
                }
                Ok(Some(index))
            }
            other => Err(Error::Protocol(format!(
                "bad reply magic {other:#010x} (neither simple nor structured)"
            ))),
        }
    }

    fn chunk(
        &mut self,
        job: &mut Job<'_>,
        flight: &mut Flight,
        kind: u16,
        length: u32,
        done: bool,
    ) -> Result<()> {
        let command = command_name(job.cmd);
        match (kind, &mut job.kind) {
            (REPLY_NONE, _) => {
                if length != 0 || !done {
                    return Err(Error::Protocol(format!(
                        "NONE chunk of {length} bytes{} to {command}",
                        if done { "" } else { " without the DONE flag" }
                    )));
                }
            }
            (REPLY_OFFSET_DATA, Kind::Read(buf)) => {
                if length < 9 {
                    return Err(Error::Protocol(format!(
                        "OFFSET_DATA chunk of {length} bytes"
                    )));
                }
                let at = self.conn.u64("an OFFSET_DATA chunk")?;
                let len = u64::from(length - 8);
                let from = flight.cover(at, len, job.offset, job.len, "OFFSET_DATA")?;
                self.conn
                    .read_exact(&mut buf[from..from + len as usize], "READ data")?;
            }
            (REPLY_OFFSET_HOLE, Kind::Read(buf)) => {
                if length != 12 {
                    return Err(Error::Protocol(format!(
                        "OFFSET_HOLE chunk of {length} bytes (expected 12)"
                    )));
                }
                let at = self.conn.u64("an OFFSET_HOLE chunk")?;
                let len = u64::from(self.conn.u32("an OFFSET_HOLE chunk")?);
                if len == 0 {
                    return Err(Error::Protocol("OFFSET_HOLE chunk of zero bytes".into()));
                }
                let from = flight.cover(at, len, job.offset, job.len, "OFFSET_HOLE")?;
                buf[from..from + len as usize].fill(0);
            }
            (REPLY_BLOCK_STATUS, Kind::Status { context, extents }) => {
                if length < 12 || !(length - 4).is_multiple_of(8) {
                    return Err(Error::Protocol(format!(
                        "BLOCK_STATUS chunk of {length} bytes (not 4 + 8n, n >= 1)"
                    )));
                }
                let count = (length - 4) / 8;
                if u64::from(count) > job.len.max(1) || count > MAX_EXTENTS {
                    return Err(Error::Protocol(format!(
                        "BLOCK_STATUS chunk of {count} extents for a {}-byte request",
                        job.len
                    )));
                }
                let id = self.conn.u32("a BLOCK_STATUS chunk")?;
                if !self.contexts.iter().any(|(_, i)| *i == id) {
                    return Err(Error::Protocol(format!(
                        "BLOCK_STATUS chunk for metadata context id {id}, which was not negotiated"
                    )));
                }
                if flight.contexts.contains(&id) {
                    return Err(Error::Protocol(format!(
                        "two BLOCK_STATUS chunks for metadata context id {id} in one reply"
                    )));
                }
                flight.contexts.push(id);
                if id == *context {
                    extents.reserve(count as usize);
                    for _ in 0..count {
                        let len = self.conn.u32("a block status descriptor")?;
                        let flags = self.conn.u32("a block status descriptor")?;
                        if len == 0 {
                            return Err(Error::Protocol("a zero-length extent".into()));
                        }
                        extents.push((len, flags));
                    }
                } else {
                    self.conn
                        .skip(u64::from(count) * 8, "a block status descriptor")?;
                }
            }
            (kind, _) if kind & REPLY_ERROR_BIT != 0 => {
                flight.errors += 1;
                if flight.errors > MAX_ERROR_CHUNKS {
                    return Err(Error::Protocol(format!(
                        "more than {MAX_ERROR_CHUNKS} error chunks in one reply to {command}"
                    )));
                }
                if !(6..=MAX_ERROR_CHUNK).contains(&length) {
                    return Err(Error::Protocol(format!(
                        "error chunk of {length} bytes to {command}"
                    )));
                }
                let code = self.conn.u32("an error chunk")?;
                let message_len = u32::from(self.conn.u16("an error chunk")?);
                if message_len > length - 6 {
                    return Err(Error::Protocol(format!(
                        "error chunk message of {message_len} bytes in a {length}-byte chunk"
                    )));
                }
                let mut message = vec![0u8; message_len as usize];
                self.conn.read_exact(&mut message, "an error message")?;
                let mut rest = length - 6 - message_len;
                let mut at = None;
                if kind == REPLY_ERROR_OFFSET && rest >= 8 {
                    at = Some(self.conn.u64("an error chunk offset")?);
                    rest -= 8;
                }
                self.conn.skip(u64::from(rest), "an error chunk")?;
                if flight.error.is_none() {
                    let message = String::from_utf8_lossy(&message).into_owned();
                    flight.error = Some(server_error(job, code, at, message));
                }
            }
            (kind, _) => {
                return Err(Error::Protocol(format!(
                    "unexpected reply chunk type {kind} ({length} bytes) to {command}"
                )));
            }
        }
        Ok(())
    }
}

impl<S: Read + Write> Drop for Client<S> {
    fn drop(&mut self) {
        let _ = self.disc();
    }
}

impl<S: Read + Write> std::fmt::Debug for Client<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("export", &self.export)
            .field("size", &self.size)
            .field("flags", &format_args!("{:#06x}", self.flags))
            .field("min_block", &self.min_block)
            .field("max_block", &self.max_block)
            .field("structured", &self.structured)
            .field("contexts", &self.contexts)
            .field("broken", &self.broken)
            .finish()
    }
}

/// What a request does with its data.
enum Kind<'a> {
    Read(&'a mut [u8]),
    Write(&'a [u8]),
    Status {
        context: u32,
        extents: &'a mut Vec<(u32, u32)>,
    },
    Other,
}

/// One request of a pipelined batch.
struct Job<'a> {
    cmd: u16,
    offset: u64,
    len: u64,
    kind: Kind<'a>,
}

impl<'a> Job<'a> {
    fn new(cmd: u16, offset: u64, len: u64, kind: Kind<'a>) -> Self {
        Self {
            cmd,
            offset,
            len,
            kind,
        }
    }
}

enum State {
    Waiting,
    Flying(Flight),
    Done,
}

/// What has arrived so far of one request's reply.
#[derive(Default)]
struct Flight {
    /// Content chunks received, start -> end, never overlapping.
    covered: BTreeMap<u64, u64>,
    bytes: u64,
    errors: u32,
    error: Option<Error>,
    /// Metadata context ids a block status chunk came for.
    contexts: Vec<u32>,
}

impl Flight {
    /// Records a content chunk `at`+`len` of a request `offset`+`request`; where it starts
    /// in the request's buffer. Refuses chunks outside the request or overlapping others.
    fn cover(&mut self, at: u64, len: u64, offset: u64, request: u64, what: &str) -> Result<usize> {
        let end = at.checked_add(len);
        if at < offset || end.is_none_or(|end| end > offset + request) {
            return Err(Error::Protocol(format!(
                "{what} chunk {at}+{len} lies outside the requested {offset}+{request}"
            )));
        }
        let end = at + len;
        if let Some((start, stop)) = self.covered.range(..end).next_back()
            && *stop > at
        {
            return Err(Error::Protocol(format!(
                "{what} chunk {at}+{len} overlaps an earlier chunk {start}+{}",
                stop - start
            )));
        }
        self.covered.insert(at, end);
        self.bytes += len;
        Ok((at - offset) as usize)
    }
}

/// The job a cookie names, if it is in flight.
fn find(states: &[State], base: u64, cookie: u64) -> Result<usize> {
    let index = cookie.wrapping_sub(base);
    match states.get(usize::try_from(index).unwrap_or(usize::MAX)) {
        Some(State::Flying(_)) => Ok(index as usize),
        _ => Err(Error::Protocol(format!(
            "a reply for cookie {cookie:#x}, which is not in flight"
        ))),
    }
}

/// A buffered stream: reads come through a buffer (large payloads go straight to their
/// destination), writes gather in `out` until [`Conn::flush`].
struct Conn<S> {
    stream: S,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    out: Vec<u8>,
}

impl<S: Read + Write> Conn<S> {
    fn new(stream: S) -> Self {
        Self {
            stream,
            buf: vec![0u8; READ_BUFFER].into_boxed_slice(),
            pos: 0,
            end: 0,
            out: Vec::with_capacity(COALESCE + 64),
        }
    }

    fn read_exact(&mut self, dst: &mut [u8], what: &str) -> Result<()> {
        let mut done = (self.end - self.pos).min(dst.len());
        dst[..done].copy_from_slice(&self.buf[self.pos..self.pos + done]);
        self.pos += done;
        while done < dst.len() {
            let direct = dst.len() - done >= self.buf.len();
            let target = if direct {
                &mut dst[done..]
            } else {
                &mut self.buf[..]
            };
            let n = match self.stream.read(target) {
                Ok(0) => {
                    return Err(Error::Protocol(format!(
                        "truncated stream: the server closed the connection in {what}"
                    )));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Io(e)),
            };
            if direct {
                done += n;
            } else {
                let take = n.min(dst.len() - done);
                dst[done..done + take].copy_from_slice(&self.buf[..take]);
                self.pos = take;
                self.end = n;
                done += take;
            }
        }
        Ok(())
    }

    fn skip(&mut self, mut n: u64, what: &str) -> Result<()> {
        let mut scratch = [0u8; 512];
        while n > 0 {
            let take = n.min(scratch.len() as u64) as usize;
            self.read_exact(&mut scratch[..take], what)?;
            n -= take as u64;
        }
        Ok(())
    }

    fn u16(&mut self, what: &str) -> Result<u16> {
        let mut b = [0u8; 2];
        self.read_exact(&mut b, what)?;
        Ok(u16::from_be_bytes(b))
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read_exact(&mut b, what)?;
        Ok(u32::from_be_bytes(b))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read_exact(&mut b, what)?;
        Ok(u64::from_be_bytes(b))
    }

    fn put(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    fn flush(&mut self) -> Result<()> {
        self.stream.write_all(&self.out)?;
        self.out.clear();
        self.stream.flush()?;
        Ok(())
    }

    /// Queues an option request and sends it.
    fn option(&mut self, option: u32, data: &[u8]) -> Result<()> {
        self.put(&IHAVEOPT.to_be_bytes());
        self.put(&option.to_be_bytes());
        self.put(&(data.len() as u32).to_be_bytes());
        self.put(data);
        self.flush()
    }

    /// One option reply to `option`: its type and data (bounded by [`MAX_OPTION_REPLY`]).
    fn option_reply(&mut self, option: u32) -> Result<(u32, Vec<u8>)> {
        let name = option_name(option);
        let what = format!("the reply to {name}");
        let magic = self.u64(&what)?;
        if magic != OPT_REPLY_MAGIC {
            return Err(Error::Protocol(format!(
                "bad option reply magic {magic:#018x} in the reply to {name}"
            )));
        }
        let answered = self.u32(&what)?;
        if answered != option {
            return Err(Error::Protocol(format!(
                "a reply to option {answered} while {name} was asked"
            )));
        }
        let kind = self.u32(&what)?;
        let len = self.u32(&what)?;
        if len > MAX_OPTION_REPLY {
            return Err(Error::Protocol(format!(
                "a {len}-byte reply to {name} (at most {MAX_OPTION_REPLY})"
            )));
        }
        let mut data = vec![0u8; len as usize];
        self.read_exact(&mut data, &what)?;
        Ok((kind, data))
    }

    /// Queues a request (and its payload) under `cookie`; large payloads are written at once.
    fn send(&mut self, job: &Job<'_>, cookie: u64) -> Result<()> {
        put_request(
            &mut self.out,
            job.cmd,
            0,
            cookie,
            job.offset,
            job.len as u32,
        );
        if let Kind::Write(data) = job.kind {
            if data.len() < COALESCE {
                self.out.extend_from_slice(data);
            } else {
                self.stream.write_all(&self.out)?;
                self.out.clear();
                self.stream.write_all(data)?;
            }
        }
        Ok(())
    }
}

fn put_request(out: &mut Vec<u8>, cmd: u16, flags: u16, cookie: u64, offset: u64, len: u32) {
    out.extend_from_slice(&REQUEST_MAGIC.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&cmd.to_be_bytes());
    out.extend_from_slice(&cookie.to_be_bytes());
    out.extend_from_slice(&offset.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn to_usize(len: u64) -> Result<usize> {
    usize::try_from(len)
        .map_err(|_| Error::Invalid(format!("{len} bytes do not fit in this address space")))
}

/// The `(offset, length)` ranges of the extents whose flags satisfy `keep`, merged.
fn ranges_where(extents: &[Extent], keep: impl Fn(u32) -> bool) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for e in extents.iter().filter(|e| keep(e.flags)) {
        match out.last_mut() {
            Some((start, len)) if *start + *len == e.offset => *len += e.length,
            _ => out.push((e.offset, e.length)),
        }
    }
    out
}

fn server_error(job: &Job<'_>, code: u32, at: Option<u64>, message: String) -> Error {
    let (errno, description) = errno(code);
    Error::Server {
        command: command_name(job.cmd),
        offset: at.unwrap_or(job.offset),
        length: job.len,
        errno,
        code,
        message: if message.is_empty() {
            description.to_string()
        } else {
            message
        },
    }
}

/// The NBD error name and description of an error value.
fn errno(code: u32) -> (&'static str, &'static str) {
    match code {
        1 => ("EPERM", "Operation not permitted"),
        5 => ("EIO", "Input/output error"),
        12 => ("ENOMEM", "Cannot allocate memory"),
        22 => ("EINVAL", "Invalid argument"),
        28 => ("ENOSPC", "No space left on device"),
        75 => ("EOVERFLOW", "Value too large"),
        95 => ("ENOTSUP", "Operation not supported"),
        108 => ("ESHUTDOWN", "Server is in the process of being shut down"),
        // The protocol says to treat unknown values as EINVAL.
        _ => ("EINVAL", "Unknown error value (treated as EINVAL)"),
    }
}

fn command_name(cmd: u16) -> &'static str {
    match cmd {
        CMD_READ => "READ",
        CMD_WRITE => "WRITE",
        CMD_DISC => "DISC",
        CMD_FLUSH => "FLUSH",
        CMD_TRIM => "TRIM",
        CMD_WRITE_ZEROES => "WRITE_ZEROES",
        CMD_BLOCK_STATUS => "BLOCK_STATUS",
        _ => "an unknown command",
    }
}

fn option_name(option: u32) -> String {
    match option {
        OPT_EXPORT_NAME => "NBD_OPT_EXPORT_NAME".into(),
        OPT_GO => "NBD_OPT_GO".into(),
        OPT_STRUCTURED_REPLY => "NBD_OPT_STRUCTURED_REPLY".into(),
        OPT_SET_META_CONTEXT => "NBD_OPT_SET_META_CONTEXT".into(),
        other => format!("option {other}"),
    }
}

/// An option error reply as text: its name, meaning and the server's message.
fn option_error(kind: u32, data: &[u8]) -> String {
    let name = match kind & !(1 << 31) {
        1 => "NBD_REP_ERR_UNSUP (option not supported)",
        2 => "NBD_REP_ERR_POLICY (forbidden by server policy)",
        3 => "NBD_REP_ERR_INVALID (invalid request)",
        4 => "NBD_REP_ERR_PLATFORM (not supported on the server's platform)",
        5 => "NBD_REP_ERR_TLS_REQD (TLS required)",
        6 => "NBD_REP_ERR_UNKNOWN (unknown export)",
        7 => "NBD_REP_ERR_SHUTDOWN (server shutting down)",
        8 => "NBD_REP_ERR_BLOCK_SIZE_REQD (block size negotiation required)",
        9 => "NBD_REP_ERR_TOO_BIG (request too big)",
        _ => "an unknown option error",
    };
    let message = String::from_utf8_lossy(data);
    if message.is_empty() {
        name.to_string()
    } else {
        format!("{name}: {message}")
    }
}
