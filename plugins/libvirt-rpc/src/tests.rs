//! XDR round trips, malformed XDR and frames, and the client against scripted servers.

use std::io::{self, Cursor, Read, Write};

use crate::xdr::{Decoder, Encoder, XdrErrorKind, decode_all};
use crate::*;

/// A stream whose reads come from a script and whose writes are kept.
struct Scripted {
    input: Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Scripted {
    fn new(input: Vec<u8>) -> Self {
        Self {
            input: Cursor::new(input),
            output: Vec::new(),
        }
    }
}

impl Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Scripted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn header(procedure: i32, kind: i32, serial: u32, status: i32) -> Header {
    Header {
        program: REMOTE_PROGRAM,
        version: REMOTE_PROTOCOL_VERSION,
        procedure,
        kind,
        serial,
        status,
    }
}

fn reply(procedure: i32, serial: u32, body: &[u8]) -> Vec<u8> {
    encode_message(
        &header(procedure, message_type::REPLY, serial, status::OK),
        body,
    )
    .unwrap()
}

fn error_body(code: i32, message: &str) -> Vec<u8> {
    let mut e = Encoder::new();
    e.int(code)
        .int(10)
        .opt_string(Some(message))
        .int(2)
        .bool(false)
        .opt_string(Some("extra"))
        .opt_string(None)
        .opt_string(None)
        .int(-1)
        .int(0)
        .bool(false);
    e.into_bytes()
}

fn domain() -> Domain {
    Domain {
        name: "vm1".into(),
        uuid: Uuid::parse("8f6a3c3e-3d5a-4f4e-9c55-0123456789ab").unwrap(),
        id: -1,
    }
}

fn encoded<T: xdr::XdrEncode>(v: &T) -> Vec<u8> {
    let mut e = Encoder::new();
    e.put(v);
    e.into_bytes()
}

#[test]
fn scalars_are_big_endian_and_four_or_eight_bytes() {
    let mut e = Encoder::new();
    e.int(-2)
        .uint(0x0102_0304)
        .hyper(-3)
        .uhyper(0x0102_0304_0506_0708)
        .bool(true);
    let bytes = e.into_bytes();
    assert_eq!(&bytes[..4], &[0xff, 0xff, 0xff, 0xfe]);
    assert_eq!(&bytes[4..8], &[1, 2, 3, 4]);
    assert_eq!(&bytes[8..16], &(-3i64).to_be_bytes());
    assert_eq!(&bytes[16..24], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(&bytes[24..], &[0, 0, 0, 1]);
    let mut d = Decoder::new(&bytes);
    assert_eq!(d.int("a").unwrap(), -2);
    assert_eq!(d.uint("b").unwrap(), 0x0102_0304);
    assert_eq!(d.hyper("c").unwrap(), -3);
    assert_eq!(d.uhyper("d").unwrap(), 0x0102_0304_0506_0708);
    assert!(d.bool("e").unwrap());
    d.finish().unwrap();
}

#[test]
fn strings_and_opaque_are_padded_to_four_and_round_trip() {
    for len in 0..=9 {
        let s: String = "abcdefghi"[..len].to_string();
        let mut e = Encoder::new();
        e.string(&s);
        let bytes = e.into_bytes();
        assert_eq!(bytes.len(), 4 + len.div_ceil(4) * 4, "length {len}");
        assert!(bytes[4 + len..].iter().all(|b| *b == 0), "zero padding");
        let mut d = Decoder::new(&bytes);
        assert_eq!(d.string("s", 100).unwrap(), s);
        d.finish().unwrap();
    }
    let mut e = Encoder::new();
    e.opaque(&[9, 8, 7]).fixed_opaque(&[1, 2, 3, 4, 5]);
    let bytes = e.into_bytes();
    assert_eq!(bytes.len(), 8 + 8);
    let mut d = Decoder::new(&bytes);
    assert_eq!(d.opaque("o", 3).unwrap(), vec![9, 8, 7]);
    assert_eq!(d.fixed_opaque::<5>("f").unwrap(), [1, 2, 3, 4, 5]);
    d.finish().unwrap();
}

#[test]
fn optional_values_and_arrays_round_trip() {
    let mut e = Encoder::new();
    e.opt_string(Some("x"))
        .opt_string(None)
        .optional(Some(&7u32), |e, v| {
            e.uint(*v);
        })
        .array(&[1i32, -1, 5], |e, v| {
            e.int(*v);
        });
    let bytes = e.into_bytes();
    let mut d = Decoder::new(&bytes);
    assert_eq!(d.opt_string("a").unwrap().as_deref(), Some("x"));
    assert_eq!(d.opt_string("b").unwrap(), None);
    assert_eq!(d.optional("c", |d| d.uint("c")).unwrap(), Some(7));
    assert_eq!(d.array("d", 3, 4, |d| d.int("d")).unwrap(), vec![1, -1, 5]);
    d.finish().unwrap();
}

#[test]
fn handles_round_trip_in_the_protocol_layout() {
    let dom = domain();
    let bytes = encoded(&dom);
    // name "vm1" (4 + 4), uuid (16), id (4).
    assert_eq!(bytes.len(), 8 + 16 + 4);
    assert_eq!(&bytes[..8], &[0, 0, 0, 3, b'v', b'm', b'1', 0]);
    assert_eq!(&bytes[8..24], &dom.uuid.0);
    assert_eq!(&bytes[24..], &[0xff; 4]);
    assert_eq!(decode_all::<Domain>(&bytes).unwrap(), dom);

    let pool = StoragePool {
        name: "p".into(),
        uuid: Uuid([7; 16]),
    };
    assert_eq!(decode_all::<StoragePool>(&encoded(&pool)).unwrap(), pool);
    let vol = StorageVol {
        pool: "p".into(),
        name: "v.qcow2".into(),
        key: "/x/v.qcow2".into(),
    };
    assert_eq!(decode_all::<StorageVol>(&encoded(&vol)).unwrap(), vol);
    let snap = DomainSnapshot {
        name: "s1".into(),
        dom: dom.clone(),
    };
    assert_eq!(decode_all::<DomainSnapshot>(&encoded(&snap)).unwrap(), snap);
    let cp = DomainCheckpoint {
        name: "cp1".into(),
        dom,
    };
    assert_eq!(decode_all::<DomainCheckpoint>(&encoded(&cp)).unwrap(), cp);
}

#[test]
fn uuids_parse_and_print_hyphenated() {
    let text = "8f6a3c3e-3d5a-4f4e-9c55-0123456789ab";
    let uuid = Uuid::parse(text).unwrap();
    assert_eq!(uuid.to_string(), text);
    assert_eq!(Uuid::parse(&text.replace('-', "")), Some(uuid));
    assert_eq!(Uuid::parse("8f6a"), None);
    assert_eq!(Uuid::parse("zz6a3c3e-3d5a-4f4e-9c55-0123456789ab"), None);
}

#[test]
fn malformed_xdr_is_an_error_naming_the_field() {
    // A string claiming 100 bytes with 3 there.
    let mut e = Encoder::new();
    e.uint(100).fixed_opaque(b"abc");
    let err = Decoder::new(e.as_bytes())
        .string("domain name", 1000)
        .unwrap_err();
    assert!(
        matches!(
            err.kind,
            XdrErrorKind::Truncated {
                what: "domain name",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("domain name"), "{err}");

    // Over the protocol's limit.
    let err = Decoder::new(e.as_bytes()).string("s", 10).unwrap_err();
    assert!(matches!(
        err.kind,
        XdrErrorKind::TooLong {
            len: 100,
            max: 10,
            ..
        }
    ));

    // A bool that is 2.
    let err = Decoder::new(&[0, 0, 0, 2]).bool("flag").unwrap_err();
    assert!(matches!(err.kind, XdrErrorKind::BadBool { value: 2, .. }));

    // Not UTF-8.
    let mut e = Encoder::new();
    e.opaque(&[0xff, 0xfe]);
    let err = Decoder::new(e.as_bytes()).string("s", 10).unwrap_err();
    assert!(matches!(err.kind, XdrErrorKind::NotUtf8 { .. }));

    // Ends in the middle of a hyper.
    let err = Decoder::new(&[0, 0, 0]).uhyper("capacity").unwrap_err();
    assert!(matches!(
        err.kind,
        XdrErrorKind::Truncated {
            needed: 8,
            left: 3,
            ..
        }
    ));

    // Trailing bytes after a whole structure.
    let mut bytes = encoded(&domain());
    bytes.extend_from_slice(&[0, 0, 0, 0]);
    let err = decode_all::<Domain>(&bytes).unwrap_err();
    assert!(matches!(err.kind, XdrErrorKind::Trailing { len: 4 }));

    // A negative count.
    let err = Decoder::new(&[0xff, 0xff, 0xff, 0xff])
        .non_negative("count")
        .unwrap_err();
    assert!(matches!(
        err.kind,
        XdrErrorKind::OutOfRange { value: -1, .. }
    ));
}

#[test]
fn an_array_count_the_message_cannot_hold_fails_before_allocating() {
    // 16384 domains (the limit) claimed in an 8-byte body: refused by the bytes left,
    // not by running out after allocating room for them.
    let err = Decoder::new(&[0, 0, 0x40, 0, 0, 0, 0, 0])
        .array("domains", 16384, 24, Domain::decode)
        .unwrap_err();
    assert!(
        matches!(err.kind, XdrErrorKind::Truncated { what: "domains", needed, .. } if needed == 16384 * 24),
        "{err}"
    );
    // Past the limit.
    let err = Decoder::new(&[0xff, 0xff, 0xff, 0xff])
        .array("domains", 16384, 24, Domain::decode)
        .unwrap_err();
    assert!(matches!(err.kind, XdrErrorKind::TooLong { .. }));
}

#[test]
fn frames_are_length_then_header_then_body() {
    let message = encode_message(
        &header(59, message_type::CALL, 7, status::OK),
        &[1, 2, 3, 4],
    )
    .unwrap();
    assert_eq!(message.len(), 32);
    assert_eq!(&message[..4], &32u32.to_be_bytes());
    assert_eq!(&message[4..8], &REMOTE_PROGRAM.to_be_bytes());
    assert_eq!(&message[8..12], &1u32.to_be_bytes());
    assert_eq!(&message[12..16], &59i32.to_be_bytes());
    assert_eq!(&message[16..20], &0i32.to_be_bytes());
    assert_eq!(&message[20..24], &7u32.to_be_bytes());
    assert_eq!(&message[24..28], &0i32.to_be_bytes());
    let (h, body) = read_message(&mut Cursor::new(message)).unwrap().unwrap();
    assert_eq!(h, header(59, message_type::CALL, 7, status::OK));
    assert_eq!(body, vec![1, 2, 3, 4]);
    assert!(encode_message(&h, &vec![0; MESSAGE_MAX]).is_err());
}

fn frame_error(bytes: Vec<u8>) -> ProtocolError {
    match read_message(&mut Cursor::new(bytes)) {
        Err(Error::Protocol(e)) => e,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[test]
fn malformed_frames_are_errors_naming_what_was_wrong() {
    assert!(
        read_message(&mut Cursor::new(Vec::new()))
            .unwrap()
            .is_none()
    );
    assert_eq!(
        frame_error(vec![0, 0]),
        ProtocolError::Truncated { len: 4, got: 2 }
    );
    assert_eq!(
        frame_error(8u32.to_be_bytes().to_vec()),
        ProtocolError::FrameTooShort { len: 8 }
    );
    let too_large = (MESSAGE_MAX as u32 + 1).to_be_bytes().to_vec();
    let err = frame_error(too_large);
    assert_eq!(
        err,
        ProtocolError::FrameTooLarge {
            len: MESSAGE_MAX as u32 + 1
        }
    );
    assert!(err.to_string().contains("32 MiB"), "{err}");
    // A 1000-byte message cut after 40 bytes.
    let mut cut = 1000u32.to_be_bytes().to_vec();
    cut.extend_from_slice(&[0; 36]);
    assert_eq!(
        frame_error(cut),
        ProtocolError::Truncated { len: 1000, got: 40 }
    );
    // A length of u32::MAX: refused by its length, nothing read or allocated for it.
    assert_eq!(
        frame_error(vec![0xff; 4]),
        ProtocolError::FrameTooLarge { len: u32::MAX }
    );
}

#[test]
fn a_call_sends_its_serial_and_takes_the_matching_reply_queueing_events_before_it() {
    let mut input =
        encode_message(&header(318, message_type::MESSAGE, 0, status::OK), &[9; 8]).unwrap();
    let mut body = Encoder::new();
    body.string("host.example");
    input.extend(reply(procedure::CONNECT_GET_HOSTNAME, 1, body.as_bytes()));
    let mut client = Client::new(Scripted::new(input));
    assert_eq!(client.get_hostname().unwrap(), "host.example");
    let events = client.take_events();
    assert_eq!(
        events,
        vec![Event {
            procedure: 318,
            body: vec![9; 8]
        }]
    );
    assert!(client.take_events().is_empty());
    let sent = client.into_inner().output;
    let (h, body) = read_message(&mut Cursor::new(sent)).unwrap().unwrap();
    assert_eq!(
        h,
        header(
            procedure::CONNECT_GET_HOSTNAME,
            message_type::CALL,
            1,
            status::OK
        )
    );
    assert!(body.is_empty());
}

#[test]
fn connect_open_sends_the_uri_as_an_optional_string_after_auth_none() {
    let mut auth = Encoder::new();
    auth.array(&[AUTH_NONE], |e, v| {
        e.int(*v);
    });
    let mut input = reply(procedure::AUTH_LIST, 1, auth.as_bytes());
    input.extend(reply(procedure::CONNECT_OPEN, 2, &[]));
    let client = Client::open(Scripted::new(input), "qemu:///session").unwrap();
    let sent = client.into_inner().output;
    let mut cursor = Cursor::new(sent);
    let (h1, b1) = read_message(&mut cursor).unwrap().unwrap();
    assert_eq!(
        (h1.procedure, h1.serial, b1.len()),
        (procedure::AUTH_LIST, 1, 0)
    );
    let (h2, b2) = read_message(&mut cursor).unwrap().unwrap();
    assert_eq!((h2.procedure, h2.serial), (procedure::CONNECT_OPEN, 2));
    let mut expected = Encoder::new();
    expected.bool(true).string("qemu:///session").uint(0);
    assert_eq!(b2, expected.into_bytes());
}

#[test]
fn a_server_wanting_sasl_is_refused() {
    let mut auth = Encoder::new();
    auth.array(&[1], |e, v| {
        e.int(*v);
    });
    let err = match Client::open(
        Scripted::new(reply(procedure::AUTH_LIST, 1, auth.as_bytes())),
        "qemu:///session",
    ) {
        Err(e) => e,
        Ok(_) => panic!("opened"),
    };
    assert!(matches!(err, Error::Invalid(_)), "{err}");
}

#[test]
fn an_error_reply_keeps_libvirts_code_and_message_and_the_connection() {
    let mut input = encode_message(
        &header(
            procedure::DOMAIN_LOOKUP_BY_NAME,
            message_type::REPLY,
            1,
            status::ERROR,
        ),
        &error_body(
            codes::NO_DOMAIN,
            "Domain not found: no domain with matching name 'x'",
        ),
    )
    .unwrap();
    input.extend(reply(
        procedure::DOMAIN_LOOKUP_BY_NAME,
        2,
        &encoded(&domain()),
    ));
    let mut client = Client::new(Scripted::new(input));
    let err = client.domain_lookup_by_name("x").unwrap_err();
    assert!(err.is(codes::NO_DOMAIN), "{err}");
    match &err {
        Error::Libvirt(e) => {
            assert_eq!(e.code, 42);
            assert_eq!(e.domain, 10);
            assert_eq!(e.level, 2);
            assert_eq!(e.str1.as_deref(), Some("extra"));
            assert!(
                e.message
                    .as_deref()
                    .unwrap()
                    .contains("no domain with matching name")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("libvirt error 42"), "{err}");
    // Still usable.
    assert_eq!(client.domain_lookup_by_name("vm1").unwrap(), domain());
}

#[test]
fn keepalive_pings_are_answered_with_pongs() {
    let ping = Header {
        program: KEEPALIVE_PROGRAM,
        version: 1,
        procedure: 1,
        kind: message_type::MESSAGE,
        serial: 0,
        status: status::OK,
    };
    let mut input = encode_message(&ping, &[]).unwrap();
    input.extend(reply(
        procedure::CONNECT_GET_VERSION,
        1,
        &10_000_002u64.to_be_bytes(),
    ));
    let mut client = Client::new(Scripted::new(input));
    assert_eq!(client.get_version().unwrap(), 10_000_002);
    let mut sent = Cursor::new(client.into_inner().output);
    read_message(&mut sent).unwrap().unwrap();
    let (pong, _) = read_message(&mut sent).unwrap().unwrap();
    assert_eq!(
        (pong.program, pong.procedure, pong.kind),
        (KEEPALIVE_PROGRAM, 2, message_type::MESSAGE)
    );
}

fn call_error(input: Vec<u8>) -> (Error, Client<Scripted>) {
    let mut client = Client::new(Scripted::new(input));
    let err = client.get_hostname().unwrap_err();
    (err, client)
}

#[test]
fn garbage_replies_are_protocol_errors_and_break_the_connection() {
    let mut hostname = Encoder::new();
    hostname.string("h");
    let good = reply(procedure::CONNECT_GET_HOSTNAME, 1, hostname.as_bytes());

    let mut wrong_program = good.clone();
    wrong_program[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    let mut wrong_version = good.clone();
    wrong_version[8..12].copy_from_slice(&2u32.to_be_bytes());
    let mut wrong_serial = good.clone();
    wrong_serial[20..24].copy_from_slice(&99u32.to_be_bytes());
    let mut wrong_proc = good.clone();
    wrong_proc[12..16].copy_from_slice(&4i32.to_be_bytes());
    let mut stream_packet = good.clone();
    stream_packet[16..20].copy_from_slice(&message_type::STREAM.to_be_bytes());
    let mut continues = good.clone();
    continues[24..28].copy_from_slice(&status::CONTINUE.to_be_bytes());
    // A string claiming more bytes than the body has.
    let mut truncated_body = good.clone();
    truncated_body[28..32].copy_from_slice(&1000u32.to_be_bytes());
    // An error reply whose remote_error is cut short.
    let broken_error = encode_message(
        &header(
            procedure::CONNECT_GET_HOSTNAME,
            message_type::REPLY,
            1,
            status::ERROR,
        ),
        &[0, 0, 0, 42],
    )
    .unwrap();

    let cases: Vec<(Vec<u8>, ProtocolError)> = vec![
        (Vec::new(), ProtocolError::Closed),
        (
            wrong_program,
            ProtocolError::WrongProgram {
                program: 0x1234_5678,
            },
        ),
        (wrong_version, ProtocolError::WrongVersion { version: 2 }),
        (
            wrong_serial,
            ProtocolError::UnknownSerial {
                serial: 99,
                expected: 1,
            },
        ),
        (
            wrong_proc,
            ProtocolError::WrongProcedure {
                procedure: 4,
                expected: procedure::CONNECT_GET_HOSTNAME,
            },
        ),
        (stream_packet, ProtocolError::UnexpectedType { kind: 3 }),
        (continues, ProtocolError::UnexpectedStatus { status: 2 }),
    ];
    for (input, expected) in cases {
        let (err, mut client) = call_error(input);
        match &err {
            Error::Protocol(e) => assert_eq!(e, &expected),
            other => panic!("expected {expected:?}, got {other:?}"),
        }
        // Out of step now: later calls fail at once, saying why.
        match client.get_hostname() {
            Err(Error::Broken(why)) => assert_eq!(why, err.to_string()),
            other => panic!("{other:?}"),
        }
    }
    for input in [truncated_body, broken_error] {
        let (err, mut client) = call_error(input);
        match &err {
            Error::Protocol(ProtocolError::Xdr { procedure, .. }) => {
                assert_eq!(*procedure, procedure::CONNECT_GET_HOSTNAME)
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(client.get_hostname(), Err(Error::Broken(_))));
    }
}

#[test]
fn typed_replies_decode_as_in_the_protocol_file() {
    // remote_connect_list_all_domains_ret: domains<>, unsigned int ret.
    let mut body = Encoder::new();
    body.array(&[domain(), domain()], |e, d| {
        e.put(d);
    })
    .uint(2);
    let mut input = reply(procedure::CONNECT_LIST_ALL_DOMAINS, 1, body.as_bytes());
    // remote_domain_get_info_ret: state (uchar), maxMem, memory, nrVirtCpu (ushort), cpuTime.
    let mut info = Encoder::new();
    info.uint(1).uhyper(65536).uhyper(32768).uint(1).uhyper(123);
    input.extend(reply(procedure::DOMAIN_GET_INFO, 2, info.as_bytes()));
    // remote_domain_get_block_job_info_ret with found = 0.
    let mut job = Encoder::new();
    job.int(0).int(0).uhyper(0).uhyper(0).uhyper(0);
    input.extend(reply(
        procedure::DOMAIN_GET_BLOCK_JOB_INFO,
        3,
        job.as_bytes(),
    ));
    // remote_storage_vol_get_info_ret: char type, capacity, allocation.
    let mut vol = Encoder::new();
    vol.int(0).uhyper(16 << 20).uhyper(196_608);
    input.extend(reply(procedure::STORAGE_VOL_GET_INFO, 4, vol.as_bytes()));

    let mut client = Client::new(Scripted::new(input));
    assert_eq!(
        client.list_all_domains(0).unwrap(),
        vec![domain(), domain()]
    );
    let info = client.domain_get_info(&domain()).unwrap();
    assert_eq!(info.state, DomainState::Running);
    assert_eq!(
        (info.max_mem, info.memory, info.nr_virt_cpu, info.cpu_time),
        (65536, 32768, 1, 123)
    );
    assert_eq!(client.block_job_info(&domain(), "vda").unwrap(), None);
    let v = StorageVol {
        pool: "p".into(),
        name: "v".into(),
        key: "k".into(),
    };
    let vi = client.storage_vol_get_info(&v).unwrap();
    assert_eq!(
        (vi.kind, vi.capacity, vi.allocation),
        (0, 16 << 20, 196_608)
    );

    // What was sent: list_all_domains (need_results = 1, flags = 0).
    let mut sent = Cursor::new(client.into_inner().output);
    let (h, b) = read_message(&mut sent).unwrap().unwrap();
    assert_eq!(h.procedure, procedure::CONNECT_LIST_ALL_DOMAINS);
    assert_eq!(b, vec![0, 0, 0, 1, 0, 0, 0, 0]);
    // domain_get_info: just the domain.
    let (_, b) = read_message(&mut sent).unwrap().unwrap();
    assert_eq!(b, encoded(&domain()));
}

#[test]
fn a_full_event_queue_drops_the_oldest() {
    let mut input = Vec::new();
    for i in 0..(EVENT_QUEUE_MAX + 3) {
        input.extend(
            encode_message(
                &header(318, message_type::MESSAGE, 0, status::OK),
                &(i as u32).to_be_bytes(),
            )
            .unwrap(),
        );
    }
    input.extend(reply(procedure::CONNECT_CLOSE, 1, &[]));
    let mut client = Client::new(Scripted::new(input));
    client.connect_close().unwrap();
    assert_eq!(client.events_dropped(), 3);
    let events = client.take_events();
    assert_eq!(events.len(), EVENT_QUEUE_MAX);
    assert_eq!(events[0].body, 3u32.to_be_bytes().to_vec());
}
