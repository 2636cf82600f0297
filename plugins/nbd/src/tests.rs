//! Parsing tests against a scripted server: the server's bytes are written in advance
//! (cookies are predictable: 1, 2, 3, ... in request order), what the client sends is kept.

use super::*;
use std::cell::RefCell;
use std::rc::Rc;

/// A stream whose reads come from a script and whose writes are recorded.
struct Script {
    input: io::Cursor<Vec<u8>>,
    sent: Rc<RefCell<Vec<u8>>>,
}

impl Read for Script {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Script {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sent.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The server's side of a conversation, built up message by message.
#[derive(Default)]
struct Server(Vec<u8>);

/// What qsd sends for a writable export; read-only adds bit 1.
const RW_FLAGS: u16 = 0x0ded;
const RO_FLAGS: u16 = RW_FLAGS | FLAG_READ_ONLY;
const MIB: u64 = 1 << 20;

impl Server {
    fn greeting() -> Self {
        let mut s = Server::default();
        s.0.extend_from_slice(&NBDMAGIC.to_be_bytes());
        s.0.extend_from_slice(&IHAVEOPT.to_be_bytes());
        s.0.extend_from_slice(&3u16.to_be_bytes());
        s
    }

    fn opt(mut self, option: u32, kind: u32, data: &[u8]) -> Self {
        self.0.extend_from_slice(&OPT_REPLY_MAGIC.to_be_bytes());
        self.0.extend_from_slice(&option.to_be_bytes());
        self.0.extend_from_slice(&kind.to_be_bytes());
        self.0.extend_from_slice(&(data.len() as u32).to_be_bytes());
        self.0.extend_from_slice(data);
        self
    }

    fn meta(self, id: u32, name: &str) -> Self {
        let mut data = id.to_be_bytes().to_vec();
        data.extend_from_slice(name.as_bytes());
        self.opt(OPT_SET_META_CONTEXT, REP_META_CONTEXT, &data)
    }

    fn info_export(self, size: u64, flags: u16) -> Self {
        let mut data = INFO_EXPORT.to_be_bytes().to_vec();
        data.extend_from_slice(&size.to_be_bytes());
        data.extend_from_slice(&flags.to_be_bytes());
        self.opt(OPT_GO, REP_INFO, &data)
    }

    fn info_block(self, min: u32, preferred: u32, max: u32) -> Self {
        let mut data = INFO_BLOCK_SIZE.to_be_bytes().to_vec();
        for v in [min, preferred, max] {
            data.extend_from_slice(&v.to_be_bytes());
        }
        self.opt(OPT_GO, REP_INFO, &data)
    }

    /// A whole handshake: structured replies, `contexts` given back, the export, and
    /// block sizes `min`/4096/`max`.
    fn ready(size: u64, flags: u16, contexts: &[(u32, &str)], min: u32, max: u32) -> Self {
        let mut s = Self::greeting().opt(OPT_STRUCTURED_REPLY, REP_ACK, &[]);
        if !contexts.is_empty() {
            for (id, name) in contexts {
                s = s.meta(*id, name);
            }
            s = s.opt(OPT_SET_META_CONTEXT, REP_ACK, &[]);
        }
        s.info_export(size, flags)
            .info_block(min, 4096, max)
            .opt(OPT_GO, REP_ACK, &[])
    }

    fn chunk(mut self, flags: u16, kind: u16, cookie: u64, payload: &[u8]) -> Self {
        self.0
            .extend_from_slice(&STRUCTURED_REPLY_MAGIC.to_be_bytes());
        self.0.extend_from_slice(&flags.to_be_bytes());
        self.0.extend_from_slice(&kind.to_be_bytes());
        self.0.extend_from_slice(&cookie.to_be_bytes());
        self.0
            .extend_from_slice(&(payload.len() as u32).to_be_bytes());
        self.0.extend_from_slice(payload);
        self
    }

    fn data(self, done: bool, cookie: u64, offset: u64, bytes: &[u8]) -> Self {
        let mut payload = offset.to_be_bytes().to_vec();
        payload.extend_from_slice(bytes);
        self.chunk(u16::from(done), REPLY_OFFSET_DATA, cookie, &payload)
    }

    fn hole(self, done: bool, cookie: u64, offset: u64, len: u32) -> Self {
        let mut payload = offset.to_be_bytes().to_vec();
        payload.extend_from_slice(&len.to_be_bytes());
        self.chunk(u16::from(done), REPLY_OFFSET_HOLE, cookie, &payload)
    }

    fn status(self, cookie: u64, context: u32, extents: &[(u32, u32)]) -> Self {
        let mut payload = context.to_be_bytes().to_vec();
        for (len, flags) in extents {
            payload.extend_from_slice(&len.to_be_bytes());
            payload.extend_from_slice(&flags.to_be_bytes());
        }
        self.chunk(REPLY_FLAG_DONE, REPLY_BLOCK_STATUS, cookie, &payload)
    }

    fn error(self, cookie: u64, code: u32, message: &str) -> Self {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(&(message.len() as u16).to_be_bytes());
        payload.extend_from_slice(message.as_bytes());
        self.chunk(REPLY_FLAG_DONE, REPLY_ERROR_BIT + 1, cookie, &payload)
    }

    fn simple(mut self, code: u32, cookie: u64, data: &[u8]) -> Self {
        self.0.extend_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
        self.0.extend_from_slice(&code.to_be_bytes());
        self.0.extend_from_slice(&cookie.to_be_bytes());
        self.0.extend_from_slice(data);
        self
    }

    fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }

    fn connect(self, contexts: &[&str]) -> (Result<Client<Script>>, Rc<RefCell<Vec<u8>>>) {
        let sent = Rc::new(RefCell::new(Vec::new()));
        let stream = Script {
            input: io::Cursor::new(self.0),
            sent: sent.clone(),
        };
        (Client::connect(stream, "vol1", contexts), sent)
    }
}

fn client(server: Server, contexts: &[&str]) -> (Client<Script>, Rc<RefCell<Vec<u8>>>) {
    let (client, sent) = server.connect(contexts);
    (client.expect("handshake"), sent)
}

/// The requests (cmd, cookie, offset, len) in what the client sent after the handshake,
/// which ends `handshake_len` bytes in.
fn requests(sent: &[u8], handshake_len: usize) -> Vec<(u16, u64, u64, u32)> {
    let mut out = Vec::new();
    let mut at = handshake_len;
    while at + 28 <= sent.len() {
        let magic = u32::from_be_bytes(sent[at..at + 4].try_into().unwrap());
        assert_eq!(magic, REQUEST_MAGIC, "request magic at {at}");
        let cmd = u16::from_be_bytes(sent[at + 6..at + 8].try_into().unwrap());
        let cookie = u64::from_be_bytes(sent[at + 8..at + 16].try_into().unwrap());
        let offset = u64::from_be_bytes(sent[at + 16..at + 24].try_into().unwrap());
        let len = u32::from_be_bytes(sent[at + 24..at + 28].try_into().unwrap());
        out.push((cmd, cookie, offset, len));
        at += 28 + if cmd == CMD_WRITE { len as usize } else { 0 };
    }
    out
}

fn protocol(e: Error) -> String {
    match e {
        Error::Protocol(m) => m,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[test]
fn handshake_records_size_flags_block_sizes_and_contexts() {
    let server = Server::ready(
        64 * MIB,
        RO_FLAGS,
        &[(7, "base:allocation")],
        512,
        (16 * MIB) as u32,
    );
    let (client, sent) = client(server, &["base:allocation", "qemu:dirty-bitmap:gone"]);
    assert_eq!(client.size(), 64 * MIB);
    assert_eq!(client.flags(), RO_FLAGS);
    assert!(client.is_read_only());
    assert!(client.can_multi_conn());
    assert_eq!(client.min_block(), 512);
    assert_eq!(client.max_block(), (16 * MIB) as u32);
    assert!(client.structured_replies());
    assert!(client.has_context("base:allocation"));
    assert!(!client.has_context("qemu:dirty-bitmap:gone"));
    assert_eq!(client.missing_contexts(), ["qemu:dirty-bitmap:gone"]);
    let sent = sent.borrow();
    // Client flags: FIXED_NEWSTYLE | NO_ZEROES, then STRUCTURED_REPLY with no data.
    assert_eq!(&sent[..4], &3u32.to_be_bytes());
    assert_eq!(&sent[4..12], &IHAVEOPT.to_be_bytes());
    assert_eq!(&sent[12..16], &OPT_STRUCTURED_REPLY.to_be_bytes());
    assert_eq!(&sent[16..20], &0u32.to_be_bytes());
    // Then SET_META_CONTEXT for export "vol1" with two queries.
    assert_eq!(&sent[20..28], &IHAVEOPT.to_be_bytes());
    assert_eq!(&sent[28..32], &OPT_SET_META_CONTEXT.to_be_bytes());
    assert_eq!(&sent[36..40], &4u32.to_be_bytes());
    assert_eq!(&sent[40..44], b"vol1");
    assert_eq!(&sent[44..48], &2u32.to_be_bytes());
    assert_eq!(&sent[48..52], &15u32.to_be_bytes());
    assert_eq!(&sent[52..67], b"base:allocation");
}

#[test]
fn an_unknown_export_is_refused_naming_it() {
    let server = Server::greeting()
        .opt(OPT_STRUCTURED_REPLY, REP_ACK, &[])
        .opt(OPT_GO, (1 << 31) + 6, b"export 'vol1' not present");
    let err = server.connect(&[]).0.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Refused(_)), "{err:?}");
    assert!(
        text.contains("'vol1'") && text.contains("unknown export"),
        "{text}"
    );
    assert!(text.contains("not present"), "{text}");
}

#[test]
fn garbage_greetings_and_truncation_are_protocol_errors() {
    let err = Server::default()
        .raw(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        .connect(&[])
        .0
        .unwrap_err();
    assert!(protocol(err).contains("bad greeting magic"));

    let err = Server::default()
        .raw(&NBDMAGIC.to_be_bytes()[..])
        .connect(&[])
        .0
        .unwrap_err();
    assert!(protocol(err).contains("truncated stream"));

    // An option reply claiming 4 GiB of data: refused before any allocation.
    let mut bad = Server::greeting();
    bad.0.extend_from_slice(&OPT_REPLY_MAGIC.to_be_bytes());
    bad.0.extend_from_slice(&OPT_STRUCTURED_REPLY.to_be_bytes());
    bad.0.extend_from_slice(&REP_ACK.to_be_bytes());
    bad.0.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(
        protocol(bad.connect(&[]).0.unwrap_err()).contains("reply to NBD_OPT_STRUCTURED_REPLY")
    );

    // GO acknowledged without the export's size.
    let err = Server::greeting()
        .opt(OPT_STRUCTURED_REPLY, REP_ACK, &[])
        .opt(OPT_GO, REP_ACK, &[])
        .connect(&[])
        .0
        .unwrap_err();
    assert!(protocol(err).contains("without NBD_INFO_EXPORT"));
}

#[test]
fn reads_assemble_data_and_hole_chunks_in_any_order() {
    let server = Server::ready(MIB, RW_FLAGS, &[], 1, (32 * MIB) as u32)
        .hole(false, 1, 4, 4)
        .data(false, 1, 8, b"tail")
        .data(true, 1, 0, b"head");
    let (mut client, _) = client(server, &[]);
    assert_eq!(client.read(0, 12).unwrap(), b"head\0\0\0\0tail");
}

#[test]
fn a_read_splits_at_max_block_and_pipelines_replies_out_of_order() {
    let server = Server::ready(MIB, RW_FLAGS, &[], 1, 4)
        .data(true, 3, 8, b"cc")
        .data(true, 1, 0, b"aaaa")
        .data(true, 2, 4, b"bbbb");
    let (mut client, sent) = client(server, &[]);
    let handshake = sent.borrow().len();
    assert_eq!(client.read(0, 10).unwrap(), b"aaaabbbbcc");
    let requests = requests(&sent.borrow(), handshake);
    assert_eq!(
        requests,
        [
            (CMD_READ, 1, 0, 4),
            (CMD_READ, 2, 4, 4),
            (CMD_READ, 3, 8, 2)
        ],
        "three requests sent before any reply is read"
    );
}

trait Tap: Sized {
    fn tap(self, f: impl FnOnce(&mut Self)) -> Self;
}
impl<T> Tap for T {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}

#[test]
fn garbage_replies_are_protocol_errors_and_break_the_connection() {
    // A reply for a cookie never sent.
    let server = Server::ready(MIB, RW_FLAGS, &[], 1, 1 << 25).data(true, 99, 0, b"x");
    let (mut c, _) = client(server, &[]);
    assert!(protocol(c.read(0, 1).unwrap_err()).contains("cookie 0x63"));
    // Later calls fail at once, saying why.
    let again = protocol(c.read(0, 1).unwrap_err());
    assert!(
        again.contains("unusable") && again.contains("cookie"),
        "{again}"
    );

    // A data chunk longer than asked: refused before reading its payload.
    let server = Server::ready(MIB, RW_FLAGS, &[], 1, 1 << 25).data(true, 1, 0, b"too long");
    let (mut c, _) = client(server, &[]);
    assert!(protocol(c.read(0, 4).unwrap_err()).contains("outside the requested 0+4"));

    // A chunk header claiming 4 GiB of data for a 4-byte read.
    let mut payload = 0u64.to_be_bytes().to_vec();
    payload.extend_from_slice(b"abcd");
    let mut server = Server::ready(MIB, RW_FLAGS, &[], 1, 1 << 25);
    server
        .0
        .extend_from_slice(&STRUCTURED_REPLY_MAGIC.to_be_bytes());
    server.0.extend_from_slice(&1u16.to_be_bytes());
    server.0.extend_from_slice(&REPLY_OFFSET_DATA.to_be_bytes());
    server.0.extend_from_slice(&1u64.to_be_bytes());
    server.0.extend_from_slice(&u32::MAX.to_be_bytes());
    server.0.extend_from_slice(&payload);
    let (mut c, _) = client(server, &[]);
    assert!(protocol(c.read(0, 4).unwrap_err()).contains("outside the requested"));

    // Overlapping chunks.
    let server = Server::ready(MIB, RW_FLAGS, &[], 1, 1 << 25)
        .data(false, 1, 0, b"ab")
        .data(true, 1, 1, b"bc");
    let (mut c, _) = client(server, &[]);
    assert!(protocol(c.read(0, 3).unwrap_err()).contains("overlaps"));

    // DONE before all the data came.
    let server = Server::ready(MIB, RW_FLAGS, &[], 1, 1 << 25).data(true, 1, 0, b"ab");
    let (mut c, _) = client(server, &[]);
    assert!(protocol(c.read(0, 3).unwrap_err()).contains("ended after 2 bytes"));

    // Bad reply magic.
    let server = Server::ready(MIB, RW_FLAGS, &[], 1, 1 << 25).raw(&[0xde, 0xad, 0xbe, 0xef]);
    let (mut c, _) = client(server, &[]);
    assert!(protocol(c.read(0, 3).unwrap_err()).contains("bad reply magic 0xdeadbeef"));

    // The stream ends in the middle of the data.
    let server = Server::ready(MIB, RW_FLAGS, &[], 1, 1 << 25)
        .data(true, 1, 0, b"abcdef")
        .tap(|s| s.0.truncate(s.0.len() - 3));
    let (mut c, _) = client(server, &[]);
    assert!(protocol(c.read(0, 6).unwrap_err()).contains("truncated stream"));

    // A chunk type that is not valid for a read.
    let server =
        Server::ready(MIB, RW_FLAGS, &[(1, "base:allocation")], 1, 1 << 25).status(1, 1, &[(4, 0)]);
    let (mut c, _) = client(server, &["base:allocation"]);
    assert!(protocol(c.read(0, 4).unwrap_err()).contains("unexpected reply chunk type 5"));
}

#[test]
fn error_chunks_carry_errno_and_message_and_keep_the_connection() {
    let server = Server::ready(MIB, RW_FLAGS, &[], 1, 1 << 25)
        .error(1, 5, "disk on fire")
        .data(true, 2, 0, b"ok");
    let (mut c, _) = client(server, &[]);
    match c.read(0, 2).unwrap_err() {
        Error::Server {
            command,
            errno,
            code,
            message,
            ..
        } => {
            assert_eq!((command, errno, code), ("READ", "EIO", 5));
            assert_eq!(message, "disk on fire");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.read(0, 2).unwrap(), b"ok");
}

#[test]
fn simple_replies_are_read_when_structured_replies_are_refused() {
    let server = Server::greeting()
        .opt(OPT_STRUCTURED_REPLY, REP_ERR_UNSUP, &[])
        .info_export(MIB, RW_FLAGS)
        .opt(OPT_GO, REP_ACK, &[])
        .simple(0, 1, b"simple")
        .simple(28, 2, &[])
        .simple(0, 3, &[]);
    let (mut c, _) = client(server, &["base:allocation"]);
    assert!(!c.structured_replies());
    assert!(!c.has_context("base:allocation"));
    assert_eq!(c.read(0, 6).unwrap(), b"simple");
    let err = c.write(0, b"x").unwrap_err();
    assert!(
        matches!(
            err,
            Error::Server {
                errno: "ENOSPC",
                command: "WRITE",
                ..
            }
        ),
        "{err:?}"
    );
    c.flush().unwrap();
    let err = c.block_status("base:allocation", 0, 1).unwrap_err();
    assert!(
        err.to_string().contains("refused structured replies"),
        "{err}"
    );
}

#[test]
fn block_status_asks_again_until_the_range_is_covered() {
    let contexts = [(1, "base:allocation"), (2, "qemu:dirty-bitmap:b")];
    let server = Server::ready(MIB, RW_FLAGS, &contexts, 1, 1 << 25)
        // First answer covers 0..4096 only (and the other context, which is skipped).
        .chunk(0, REPLY_BLOCK_STATUS, 1, &{
            let mut p = 2u32.to_be_bytes().to_vec();
            p.extend_from_slice(&8192u32.to_be_bytes());
            p.extend_from_slice(&1u32.to_be_bytes());
            p
        })
        .status(1, 1, &[(1024, 0), (3072, 3)])
        // Second answer runs past the end asked for: clipped.
        .status(2, 1, &[(4096, 3), (MIB as u32, 0)]);
    let (mut c, sent) = client(server, &["base:allocation", "qemu:dirty-bitmap:b"]);
    let handshake = sent.borrow().len();
    let extents = c.block_status("base:allocation", 0, 10240).unwrap();
    assert_eq!(
        extents,
        [
            Extent {
                offset: 0,
                length: 1024,
                flags: 0
            },
            Extent {
                offset: 1024,
                length: 7168,
                flags: 3
            },
            Extent {
                offset: 8192,
                length: 2048,
                flags: 0
            },
        ]
    );
    let requests = requests(&sent.borrow(), handshake);
    assert_eq!(
        requests,
        [
            (CMD_BLOCK_STATUS, 1, 0, 10240),
            (CMD_BLOCK_STATUS, 2, 4096, 6144)
        ]
    );
    let err = c.block_status("qemu:dirty-bitmap:other", 0, 1).unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
}

#[test]
fn block_status_garbage_is_refused() {
    // More extents than bytes asked for.
    let server = Server::ready(MIB, RW_FLAGS, &[(1, "base:allocation")], 1, 1 << 25).status(
        1,
        1,
        &[(1, 0), (1, 0), (1, 0)],
    );
    let (mut c, _) = client(server, &["base:allocation"]);
    assert!(protocol(c.block_status(BASE_ALLOCATION, 0, 2).unwrap_err()).contains("3 extents"));

    // A context id never negotiated.
    let server =
        Server::ready(MIB, RW_FLAGS, &[(1, "base:allocation")], 1, 1 << 25).status(1, 9, &[(1, 0)]);
    let (mut c, _) = client(server, &["base:allocation"]);
    assert!(protocol(c.block_status(BASE_ALLOCATION, 0, 2).unwrap_err()).contains("id 9"));

    // A zero-length extent (would never make progress).
    let server =
        Server::ready(MIB, RW_FLAGS, &[(1, "base:allocation")], 1, 1 << 25).status(1, 1, &[(0, 0)]);
    let (mut c, _) = client(server, &["base:allocation"]);
    assert!(protocol(c.block_status(BASE_ALLOCATION, 0, 2).unwrap_err()).contains("zero-length"));
}

#[test]
fn writes_to_a_read_only_export_are_refused_before_sending() {
    let server = Server::ready(MIB, RO_FLAGS, &[], 1, 1 << 25);
    let (mut c, sent) = client(server, &[]);
    let before = sent.borrow().len();
    for err in [
        c.write(0, b"x").unwrap_err(),
        c.write_zeroes(0, 1).unwrap_err(),
        c.trim(0, 512).unwrap_err(),
    ] {
        assert!(
            matches!(&err, Error::Refused(m) if m.contains("'vol1'") && m.contains("read-only")),
            "{err:?}"
        );
    }
    assert_eq!(sent.borrow().len(), before, "nothing was sent");
    let err = c.read(MIB - 1, 2).unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
}

#[test]
fn unaligned_reads_are_widened_and_unaligned_writes_read_modify_write() {
    let block: Vec<u8> = (0..512u32).map(|i| i as u8).collect();
    let server = Server::ready(MIB, RW_FLAGS, &[], 512, 1 << 25)
        // read(10, 20) → READ 0+512
        .data(true, 1, 0, &block)
        // write(1020, 8) → READ 512+512 (head), READ 1024+512 (tail), WRITE 512+1024
        .data(true, 2, 512, &block)
        .data(true, 3, 1024, &block)
        .simple(0, 4, &[]);
    let (mut c, sent) = client(server, &[]);
    let handshake = sent.borrow().len();
    assert_eq!(c.read(10, 20).unwrap(), &block[10..30]);
    c.write(1020, b"ABCDEFGH").unwrap();
    let sent = sent.borrow();
    let requests = requests(&sent, handshake);
    assert_eq!(
        requests,
        [
            (CMD_READ, 1, 0, 512),
            (CMD_READ, 2, 512, 512),
            (CMD_READ, 3, 1024, 512),
            (CMD_WRITE, 4, 512, 1024)
        ]
    );
    let payload = &sent[handshake + 4 * 28..];
    assert_eq!(payload.len(), 1024);
    assert_eq!(&payload[..508], &block[..508]);
    assert_eq!(&payload[508..516], b"ABCDEFGH");
    assert_eq!(&payload[516..], &block[4..]);
}

#[test]
fn a_server_error_stops_further_requests_but_drains_those_in_flight() {
    let server = Server::ready(MIB, RW_FLAGS, &[], 1, 4)
        .error(1, 1, "")
        .simple(0, 2, &[])
        // Cookie 3 is never sent: the write stopped after the failure.
        .data(true, 4, 0, b"next");
    let (mut c, sent) = client(server, &[]);
    c.set_in_flight(2);
    let handshake = sent.borrow().len();
    let err = c.write(0, b"aaaabbbbcccc").unwrap_err();
    assert!(
        matches!(&err, Error::Server { errno: "EPERM", message, .. } if message == "Operation not permitted"),
        "{err:?}"
    );
    assert_eq!(c.read(0, 4).unwrap(), b"next");
    let cookies: Vec<u64> = requests(&sent.borrow(), handshake)
        .iter()
        .map(|r| r.1)
        .collect();
    assert_eq!(cookies, [1, 2, 4]);
}

#[test]
fn disconnect_sends_disc_and_drop_does_too() {
    let (c, sent) = client(Server::ready(MIB, RW_FLAGS, &[], 1, 1 << 25), &[]);
    let handshake = sent.borrow().len();
    c.disconnect().unwrap();
    assert_eq!(requests(&sent.borrow(), handshake), [(CMD_DISC, 0, 0, 0)]);

    let (c, sent) = client(Server::ready(MIB, RW_FLAGS, &[], 1, 1 << 25), &[]);
    let handshake = sent.borrow().len();
    drop(c);
    assert_eq!(requests(&sent.borrow(), handshake), [(CMD_DISC, 0, 0, 0)]);
}

#[test]
fn a_hole_zeroes_a_reused_buffer() {
    let server = Server::ready(MIB, RW_FLAGS, &[], 1, 1 << 25)
        .data(false, 1, 0, b"ab")
        .hole(true, 1, 2, 3);
    let (mut c, _) = client(server, &[]);
    let mut buf = [0xffu8; 5];
    c.read_into(0, &mut buf).unwrap();
    assert_eq!(&buf, b"ab\0\0\0");
}
