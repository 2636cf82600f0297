//! A client of libvirt's remote protocol, written from libvirt's own protocol files
//! (`src/rpc/virnetprotocol.x` for the framing, `src/remote/remote_protocol.x` for the
//! procedures): XDR messages over one stream, as `libvirtd --listen` serves them on TCP.
//!
//! It is std only and generic over any `Read + Write` stream, and it reads and writes on
//! that one stream (no `try_clone`), so it runs on the host and inside a `wasm32-wasip2`
//! adapter alike. Calls are synchronous, one in flight at a time.
//!
//! - [`xdr`]: the encoding, with a decoder that checks every length before allocating;
//! - [`Client::call`]: one call by procedure number, arguments and reply as XDR bytes;
//!   replies are matched to the call's serial, event messages that arrive meanwhile are
//!   queued ([`Client::take_events`]), keepalive pings are answered, and an error reply
//!   becomes [`Error::Libvirt`] with libvirt's code and message;
//! - typed calls ([`calls`]): `connect_open`, domains, snapshots, checkpoints, backups,
//!   block jobs, storage pools and volumes, each a small function over `call` with the
//!   argument and reply structures laid out exactly as in `remote_protocol.x`.
//!
//! Whatever the server sends is checked before it is trusted: a frame shorter than its
//! header or longer than 32 MiB, another program or version, a reply to a serial not in
//! flight, a stream message, or a truncated or overlong XDR body is an
//! [`Error::Protocol`] naming what was wrong. After such an error (or an I/O error) the
//! connection is out of step and every later call fails at once with [`Error::Broken`].

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

pub mod calls;
pub mod xdr;

#[cfg(test)]
mod tests;

pub use calls::*;
use xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrError};

/// libvirt's remote program number (`REMOTE_PROGRAM`).
pub const REMOTE_PROGRAM: u32 = 0x2000_8086;
/// Its protocol version (`REMOTE_PROTOCOL_VERSION`).
pub const REMOTE_PROTOCOL_VERSION: u32 = 1;
/// libvirt's QEMU-specific program (`QEMU_PROGRAM`, `qemu_protocol.x`): monitor passthrough.
pub const QEMU_PROGRAM: u32 = 0x2000_8087;
/// The keepalive program (`KEEPALIVE_PROGRAM`, "keep"); its pings are answered.
pub const KEEPALIVE_PROGRAM: u32 = 0x6b65_6570;
const KEEPALIVE_PROC_PING: i32 = 1;
const KEEPALIVE_PROC_PONG: i32 = 2;

/// The largest message, length word included (`VIR_NET_MESSAGE_MAX`, 32 MiB).
pub const MESSAGE_MAX: usize = 32 << 20;
/// The length word and the header before a message's body.
pub const HEADER_LEN: usize = 4 + 24;
/// The limit on a `remote_nonnull_string` (`REMOTE_STRING_MAX`).
pub const STRING_MAX: u32 = 4 << 20;
/// Event messages kept for [`Client::take_events`]; older ones are dropped past it.
pub const EVENT_QUEUE_MAX: usize = 1024;

/// What every call of this crate returns.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The stream failed (refused, reset, timed out); the client is unusable.
    #[error("libvirt connection: {0}")]
    Io(#[from] io::Error),
    /// The server broke the protocol; the client is unusable.
    #[error("libvirt protocol violation: {0}")]
    Protocol(#[from] ProtocolError),
    /// libvirtd answered the call with an error; the connection stays usable.
    #[error("{0}")]
    Libvirt(Box<RemoteError>),
    /// An earlier I/O error or protocol violation left the connection out of step.
    #[error("libvirt connection unusable after an earlier failure: {0}")]
    Broken(String),
    /// What the caller asked cannot be sent (a message past 32 MiB) or done (no
    /// authentication this client speaks).
    #[error("invalid libvirt request: {0}")]
    Invalid(String),
}

impl From<RemoteError> for Error {
    fn from(e: RemoteError) -> Self {
        Error::Libvirt(Box::new(e))
    }
}

impl Error {
    /// libvirt's error code (`virErrorNumber`) when libvirtd refused the call.
    pub fn code(&self) -> Option<i32> {
        match self {
            Error::Libvirt(e) => Some(e.code),
            _ => None,
        }
    }

    /// Whether libvirtd refused the call with `code` (see [`codes`]).
    pub fn is(&self, code: i32) -> bool {
        self.code() == Some(code)
    }
}

/// The ways a server's bytes can be wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The stream ended between messages.
    #[error("libvirtd closed the connection")]
    Closed,
    /// The stream ended inside a message.
    #[error("the stream ended {got} bytes into a {len}-byte message")]
    Truncated {
        /// The message's length word.
        len: usize,
        /// Bytes of it received.
        got: usize,
    },
    /// A length word shorter than the length word and header themselves.
    #[error("message length {len} is shorter than its {HEADER_LEN}-byte header")]
    FrameTooShort {
        /// The length sent.
        len: u32,
    },
    /// A length word past [`MESSAGE_MAX`].
    #[error("message length {len} is above the 32 MiB limit ({MESSAGE_MAX})")]
    FrameTooLarge {
        /// The length sent.
        len: u32,
    },
    /// A message of another program.
    #[error(
        "message of program {program:#x}, not the program called (the remote program is {REMOTE_PROGRAM:#x})"
    )]
    WrongProgram {
        /// The program sent.
        program: u32,
    },
    /// A message of another protocol version.
    #[error("message of protocol version {version}, not {REMOTE_PROTOCOL_VERSION}")]
    WrongVersion {
        /// The version sent.
        version: u32,
    },
    /// A reply whose serial is not the call in flight.
    #[error("reply to serial {serial}, but the call in flight is serial {expected}")]
    UnknownSerial {
        /// The serial sent.
        serial: u32,
        /// The call's serial.
        expected: u32,
    },
    /// A reply for another procedure than the call's.
    #[error("reply for procedure {procedure} to a call of procedure {expected}")]
    WrongProcedure {
        /// The procedure sent.
        procedure: i32,
        /// The call's procedure.
        expected: i32,
    },
    /// A message type a client does not take (a call, a stream packet, file descriptors).
    #[error("message of type {kind} ({}), which this client does not take", type_name(*kind))]
    UnexpectedType {
        /// The type sent.
        kind: i32,
    },
    /// A reply status other than OK or ERROR (CONTINUE belongs to streams).
    #[error("reply status {status}, expected OK (0) or ERROR (1)")]
    UnexpectedStatus {
        /// The status sent.
        status: i32,
    },
    /// A body that does not decode as the procedure's reply (or as `remote_error`).
    #[error("reply to procedure {procedure}: {error}")]
    Xdr {
        /// The call's procedure.
        procedure: i32,
        /// What was wrong in the body.
        error: XdrError,
    },
}

fn type_name(kind: i32) -> &'static str {
    match kind {
        0 => "CALL",
        1 => "REPLY",
        2 => "MESSAGE",
        3 => "STREAM",
        4 => "CALL_WITH_FDS",
        5 => "REPLY_WITH_FDS",
        6 => "STREAM_HOLE",
        _ => "unknown",
    }
}

/// Message types (`virNetMessageType`).
pub mod message_type {
    /// A call from the client.
    pub const CALL: i32 = 0;
    /// The reply to a call.
    pub const REPLY: i32 = 1;
    /// An asynchronous message from the server (an event).
    pub const MESSAGE: i32 = 2;
    /// A stream packet.
    pub const STREAM: i32 = 3;
}

/// Reply statuses (`virNetMessageStatus`).
pub mod status {
    /// Success; the body is the reply structure.
    pub const OK: i32 = 0;
    /// Failure; the body is a `remote_error`.
    pub const ERROR: i32 = 1;
    /// More stream data follows.
    pub const CONTINUE: i32 = 2;
}

/// The message header (`virNetMessageHeader`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Program number.
    pub program: u32,
    /// Program version.
    pub version: u32,
    /// Procedure number.
    pub procedure: i32,
    /// [`message_type`].
    pub kind: i32,
    /// Matches a reply to its call.
    pub serial: u32,
    /// [`status`].
    pub status: i32,
}

impl Header {
    fn encode(&self, e: &mut Encoder) {
        e.uint(self.program)
            .uint(self.version)
            .int(self.procedure)
            .int(self.kind)
            .uint(self.serial)
            .int(self.status);
    }

    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            program: d.uint("header program")?,
            version: d.uint("header version")?,
            procedure: d.int("header procedure")?,
            kind: d.int("header type")?,
            serial: d.uint("header serial")?,
            status: d.int("header status")?,
        })
    }
}

/// A whole message: its header and its body.
pub fn encode_message(header: &Header, body: &[u8]) -> Result<Vec<u8>> {
    let len = HEADER_LEN + body.len();
    if len > MESSAGE_MAX {
        return Err(Error::Invalid(format!(
            "a {len}-byte message is above the 32 MiB limit"
        )));
    }
    let mut e = Encoder::new();
    e.uint(len as u32);
    header.encode(&mut e);
    let mut out = e.into_bytes();
    out.extend_from_slice(body);
    Ok(out)
}

/// Reads one message: `None` if the stream ended cleanly before it. The body is read as
/// it arrives, so a length word alone never sizes an allocation.
pub fn read_message(stream: &mut impl Read) -> Result<Option<(Header, Vec<u8>)>> {
    let mut len_word = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match stream.read(&mut len_word[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(ProtocolError::Truncated { len: 4, got }.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = u32::from_be_bytes(len_word);
    if (len as usize) < HEADER_LEN {
        return Err(ProtocolError::FrameTooShort { len }.into());
    }
    if len as usize > MESSAGE_MAX {
        return Err(ProtocolError::FrameTooLarge { len }.into());
    }
    let rest = len as usize - 4;
    let mut buf = Vec::with_capacity(rest.min(64 << 10));
    stream.take(rest as u64).read_to_end(&mut buf)?;
    if buf.len() < rest {
        return Err(ProtocolError::Truncated {
            len: len as usize,
            got: 4 + buf.len(),
        }
        .into());
    }
    let mut d = Decoder::new(&buf);
    let header = Header::decode(&mut d).expect("the header's 24 bytes are there");
    let body = buf.split_off(HEADER_LEN - 4);
    Ok(Some((header, body)))
}

/// A UUID (`remote_uuid`, 16 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// Parses the hyphenated (or plain) hex form.
    pub fn parse(s: &str) -> Option<Self> {
        let hex: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
        if hex.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, pair) in hex.chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).ok()?;
            out[i] = u8::from_str_radix(text, 16).ok()?;
        }
        Some(Self(out))
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uuid({self})")
    }
}

impl XdrEncode for Uuid {
    fn encode(&self, e: &mut Encoder) {
        e.fixed_opaque(&self.0);
    }
}

impl XdrDecode for Uuid {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        d.fixed_opaque::<16>("uuid").map(Self)
    }
}

/// A network named in an error (`remote_nonnull_network`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// Its name.
    pub name: String,
    /// Its UUID.
    pub uuid: Uuid,
}

/// libvirt's error (`remote_error`, the body of an ERROR reply), field by field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("libvirt error {code} (domain {domain}): {}", message.as_deref().unwrap_or("(no message)"))]
pub struct RemoteError {
    /// `virErrorNumber` (see [`codes`]).
    pub code: i32,
    /// `virErrorDomain`: which part of libvirt raised it.
    pub domain: i32,
    /// The message.
    pub message: Option<String>,
    /// `virErrorLevel`: 1 warning, 2 error.
    pub level: i32,
    /// The domain concerned, if any.
    pub dom: Option<Domain>,
    /// Extra information.
    pub str1: Option<String>,
    /// Extra information.
    pub str2: Option<String>,
    /// Extra information.
    pub str3: Option<String>,
    /// Extra information.
    pub int1: i32,
    /// Extra information.
    pub int2: i32,
    /// The network concerned, if any.
    pub net: Option<Network>,
}

impl XdrDecode for RemoteError {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            code: d.int("error code")?,
            domain: d.int("error domain")?,
            message: d.opt_string("error message")?,
            level: d.int("error level")?,
            dom: d.optional("error dom", Domain::decode)?,
            str1: d.opt_string("error str1")?,
            str2: d.opt_string("error str2")?,
            str3: d.opt_string("error str3")?,
            int1: d.int("error int1")?,
            int2: d.int("error int2")?,
            net: d.optional("error net", |d| {
                Ok(Network {
                    name: d.string("error net name", STRING_MAX)?,
                    uuid: Uuid::decode(d)?,
                })
            })?,
        })
    }
}

/// libvirt error codes (`virErrorNumber`) an adapter tells apart.
pub mod codes {
    /// Internal error.
    pub const INTERNAL_ERROR: i32 = 1;
    /// Function not supported.
    pub const NO_SUPPORT: i32 = 3;
    /// Invalid argument.
    pub const INVALID_ARG: i32 = 8;
    /// Operation failed.
    pub const OPERATION_FAILED: i32 = 9;
    /// XML not well formed or broken.
    pub const XML_ERROR: i32 = 27;
    /// The domain already exists.
    pub const DOM_EXIST: i32 = 28;
    /// Operation forbidden on a read-only connection.
    pub const OPERATION_DENIED: i32 = 29;
    /// Some sort of RPC error.
    pub const RPC: i32 = 39;
    /// Domain not found.
    pub const NO_DOMAIN: i32 = 42;
    /// Storage pool not found.
    pub const NO_STORAGE_POOL: i32 = 49;
    /// Storage volume not found.
    pub const NO_STORAGE_VOL: i32 = 50;
    /// Operation not applicable at this time (e.g. the domain is not running).
    pub const OPERATION_INVALID: i32 = 55;
    /// Unsupported configuration construct.
    pub const CONFIG_UNSUPPORTED: i32 = 67;
    /// Timeout.
    pub const OPERATION_TIMEOUT: i32 = 68;
    /// Domain snapshot not found.
    pub const NO_DOMAIN_SNAPSHOT: i32 = 72;
    /// Valid API use but unsupported by the driver.
    pub const ARGUMENT_UNSUPPORTED: i32 = 74;
    /// Operation aborted.
    pub const OPERATION_ABORTED: i32 = 78;
    /// The requested operation is not supported.
    pub const OPERATION_UNSUPPORTED: i32 = 84;
    /// Resource already in use.
    pub const RESOURCE_BUSY: i32 = 87;
    /// Access denied.
    pub const ACCESS_DENIED: i32 = 88;
    /// The storage volume already exists.
    pub const STORAGE_VOL_EXIST: i32 = 90;
    /// Domain checkpoint not found.
    pub const NO_DOMAIN_CHECKPOINT: i32 = 103;
    /// Domain backup job not found.
    pub const NO_DOMAIN_BACKUP: i32 = 104;
}

/// An event (a MESSAGE from the remote program) received while waiting for a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its procedure (`REMOTE_PROC_DOMAIN_EVENT_*`).
    pub procedure: i32,
    /// Its body, XDR as the procedure's `*_msg` structure.
    pub body: Vec<u8>,
}

/// A libvirt connection over one stream.
pub struct Client<S: Read + Write> {
    stream: S,
    serial: u32,
    events: VecDeque<Event>,
    events_dropped: u64,
    broken: Option<String>,
}

impl Client<TcpStream> {
    /// Connects over TCP to a `libvirtd --listen` (`tcp_port`), with `timeout` for the
    /// connection and for each read and write (best effort where the platform has no
    /// socket timeouts), then authenticates and opens `uri` (see [`Client::open`]).
    pub fn connect_tcp(addr: impl ToSocketAddrs, uri: &str, timeout: Duration) -> Result<Self> {
        let mut last = None;
        for addr in addr.to_socket_addrs()? {
            // A platform without timed connects (a sandbox) gets a plain one.
            let connected = match TcpStream::connect_timeout(&addr, timeout) {
                Err(e) if e.kind() == io::ErrorKind::Unsupported => TcpStream::connect(addr),
                other => other,
            };
            match connected {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    let _ = stream.set_read_timeout(Some(timeout));
                    let _ = stream.set_write_timeout(Some(timeout));
                    return Client::open(stream, uri);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address to connect to"))
            .into())
    }
}

impl<S: Read + Write> Client<S> {
    /// A client on `stream`, nothing sent yet (see [`Client::open`]).
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            serial: 0,
            events: VecDeque::new(),
            events_dropped: 0,
            broken: None,
        }
    }

    /// A client on `stream` that has authenticated and opened `uri` (e.g.
    /// `qemu:///session`): `REMOTE_PROC_AUTH_LIST` must offer `none` (this client speaks
    /// no SASL or polkit), then `REMOTE_PROC_CONNECT_OPEN`.
    pub fn open(stream: S, uri: &str) -> Result<Self> {
        let mut client = Self::new(stream);
        let auth = client.auth_list()?;
        if !auth.contains(&AUTH_NONE) {
            return Err(Error::Invalid(format!(
                "libvirtd asks for authentication {auth:?} (0 none, 1 SASL, 2 polkit); this client speaks only none"
            )));
        }
        client.connect_open(Some(uri), 0)?;
        Ok(client)
    }

    /// The stream, for whoever takes it over.
    pub fn into_inner(self) -> S {
        self.stream
    }

    /// Events received so far (oldest first), taking them out of the queue.
    pub fn take_events(&mut self) -> Vec<Event> {
        self.events.drain(..).collect()
    }

    /// Events dropped because the queue was full ([`EVENT_QUEUE_MAX`]).
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    /// One call of the remote program: `args` is the procedure's `*_args` structure as
    /// XDR (empty when it has none); the reply body, the `*_ret` structure as XDR, is
    /// returned. An ERROR reply is [`Error::Libvirt`].
    pub fn call(&mut self, procedure: i32, args: &[u8]) -> Result<Vec<u8>> {
        self.call_program(REMOTE_PROGRAM, procedure, args)
    }

    /// [`Client::call`] of another program on the same connection ([`QEMU_PROGRAM`]); its
    /// protocol version is 1 as the remote program's.
    pub fn call_program(&mut self, program: u32, procedure: i32, args: &[u8]) -> Result<Vec<u8>> {
        if let Some(why) = &self.broken {
            return Err(Error::Broken(why.clone()));
        }
        match self.exchange(program, procedure, args) {
            Err(e @ (Error::Io(_) | Error::Protocol(_))) => {
                self.broken = Some(e.to_string());
                Err(e)
            }
            other => other,
        }
    }

    /// [`Client::call`] with typed arguments and reply: the reply must decode as `R`
    /// exactly, nothing left over.
    pub fn call_typed<A: XdrEncode + ?Sized, R: XdrDecode>(
        &mut self,
        procedure: i32,
        args: &A,
    ) -> Result<R> {
        self.call_program_typed(REMOTE_PROGRAM, procedure, args)
    }

    /// [`Client::call_typed`] of another program ([`Client::call_program`]).
    pub fn call_program_typed<A: XdrEncode + ?Sized, R: XdrDecode>(
        &mut self,
        program: u32,
        procedure: i32,
        args: &A,
    ) -> Result<R> {
        let mut e = Encoder::new();
        args.encode(&mut e);
        let body = self.call_program(program, procedure, e.as_bytes())?;
        xdr::decode_all(&body).map_err(|error| {
            let e = Error::Protocol(ProtocolError::Xdr { procedure, error });
            self.broken = Some(e.to_string());
            e
        })
    }

    fn send(&mut self, header: &Header, body: &[u8]) -> Result<()> {
        let message = encode_message(header, body)?;
        self.stream.write_all(&message)?;
        self.stream.flush()?;
        Ok(())
    }

    fn exchange(&mut self, program: u32, procedure: i32, args: &[u8]) -> Result<Vec<u8>> {
        self.serial = self.serial.wrapping_add(1);
        let serial = self.serial;
        let call = Header {
            program,
            version: REMOTE_PROTOCOL_VERSION,
            procedure,
            kind: message_type::CALL,
            serial,
            status: status::OK,
        };
        self.send(&call, args)?;
        loop {
            let (header, body) = read_message(&mut self.stream)?.ok_or(ProtocolError::Closed)?;
            if header.program == KEEPALIVE_PROGRAM && header.kind == message_type::MESSAGE {
                if header.procedure == KEEPALIVE_PROC_PING {
                    let pong = Header {
                        procedure: KEEPALIVE_PROC_PONG,
                        serial: 0,
                        ..header
                    };
                    self.send(&pong, &[])?;
                }
                continue;
            }
            // Events come from the remote program whatever was called; replies from the
            // program called.
            let expected = if header.kind == message_type::MESSAGE {
                REMOTE_PROGRAM
            } else {
                program
            };
            if header.program != expected {
                return Err(ProtocolError::WrongProgram {
                    program: header.program,
                }
                .into());
            }
            if header.version != REMOTE_PROTOCOL_VERSION {
                return Err(ProtocolError::WrongVersion {
                    version: header.version,
                }
                .into());
            }
            match header.kind {
                message_type::MESSAGE => {
                    if self.events.len() == EVENT_QUEUE_MAX {
                        self.events.pop_front();
                        self.events_dropped += 1;
                    }
                    self.events.push_back(Event {
                        procedure: header.procedure,
                        body,
                    });
                    continue;
                }
                message_type::REPLY => {}
                kind => return Err(ProtocolError::UnexpectedType { kind }.into()),
            }
            if header.serial != serial {
                return Err(ProtocolError::UnknownSerial {
                    serial: header.serial,
                    expected: serial,
                }
                .into());
            }
            if header.procedure != procedure {
                return Err(ProtocolError::WrongProcedure {
                    procedure: header.procedure,
                    expected: procedure,
                }
                .into());
            }
            return match header.status {
                status::OK => Ok(body),
                status::ERROR => {
                    let error: RemoteError = xdr::decode_all(&body)
                        .map_err(|error| ProtocolError::Xdr { procedure, error })?;
                    Err(Error::Libvirt(Box::new(error)))
                }
                status => Err(ProtocolError::UnexpectedStatus { status }.into()),
            };
        }
    }
}
