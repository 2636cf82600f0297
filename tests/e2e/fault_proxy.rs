//! A fault proxy: a TCP relay between an adapter and a real daemon, on 127.0.0.1, whose
//! behaviour a test switches while it runs — pass bytes through, delay them, reset
//! connections, cut the daemon's answer short, or answer garbage (or a canned HTTP
//! response: 500, 503 with `Retry-After`, a wrong content type) instead of the daemon.
//! Faults come from this instrument, never from mocks: everything else is the real daemon.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::daemons;

/// What the proxy does to connections (new ones, and bytes still flowing on old ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Relays both ways.
    Pass,
    /// Holds every chunk of the daemon's answers this long before relaying it.
    Delay(Duration),
    /// Closes every connection at once (new ones on accept, old ones at their next chunk).
    Reset,
    /// Relays the first `n` bytes of the daemon's answers on a connection, then closes it.
    Truncate(usize),
    /// Answers these bytes instead of the daemon, then closes (garbage, or a canned HTTP
    /// response such as [`http_response`]).
    Answer(Vec<u8>),
}

/// A running proxy; its threads live as long as the test process (they hold no daemon).
pub struct FaultProxy {
    /// The port adapters are pointed at.
    pub port: u16,
    fault: Arc<Mutex<Fault>>,
}

impl FaultProxy {
    /// A proxy on a free port in front of `127.0.0.1:upstream`, passing bytes through.
    pub fn start(upstream: u16) -> FaultProxy {
        let port = daemons::port();
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("binding the fault proxy");
        let fault = Arc::new(Mutex::new(Fault::Pass));
        let shared = fault.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let fault = shared.clone();
                std::thread::spawn(move || relay(client, upstream, fault));
            }
        });
        FaultProxy { port, fault }
    }

    /// Switches what the proxy does from now on.
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }
}

/// A canned HTTP response, for HTTP daemons (clouds, DNS APIs, BMCs).
pub fn http_response(status: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut text = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("Connection: close\r\n\r\n");
    text.push_str(body);
    text.into_bytes()
}

fn current(fault: &Mutex<Fault>) -> Fault {
    fault.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn relay(mut client: TcpStream, upstream: u16, fault: Arc<Mutex<Fault>>) {
    match current(&fault) {
        Fault::Reset => {
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        Fault::Answer(bytes) => {
            take_request(&mut client);
            let _ = client.write_all(&bytes);
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        _ => {}
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let (Ok(client_in), Ok(server_out)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    // Requests go up untouched; faults apply to what comes back.
    std::thread::spawn(move || pump(client_in, server_out));
    let mut from = server;
    let mut to = client;
    let mut relayed = 0usize;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = match current(&fault) {
            Fault::Pass => &buf[..n],
            Fault::Delay(d) => {
                std::thread::sleep(d);
                &buf[..n]
            }
            Fault::Reset => break,
            Fault::Truncate(limit) => {
                let room = limit.saturating_sub(relayed);
                if room == 0 {
                    break;
                }
                &buf[..n.min(room)]
            }
            Fault::Answer(bytes) => {
                let _ = to.write_all(&bytes);
                break;
            }
        };
        relayed += chunk.len();
        if to.write_all(chunk).is_err() {
            break;
        }
        // Cut short: close as soon as the limit is reached, not at the next chunk.
        if matches!(current(&fault), Fault::Truncate(limit) if relayed >= limit) {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// Reads what the client sends until it pauses for 200 ms, so that a canned answer comes after
/// the request as a server's would (an HTTP client that is still sending when the answer
/// arrives reports a protocol error instead of the answer). A client that waits for the
/// server to speak first (NBD) just gets the answer 200 ms later.
fn take_request(client: &mut TcpStream) {
    let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 16 << 10];
    while matches!(client.read(&mut buf), Ok(n) if n > 0) {}
    let _ = client.set_read_timeout(None);
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

/// A server on a free port answering each connection with `reply`, then closing.
#[cfg(test)]
fn answering(reply: &'static [u8]) -> u16 {
    let port = daemons::port();
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(reply);
        }
    });
    port
}

#[cfg(test)]
fn fetch(port: u16) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stream.write_all(b"GET / HTTP/1.1\r\n\r\n");
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got);
    got
}

#[test]
fn the_proxy_relays_cuts_short_resets_and_answers_for_the_daemon() {
    let upstream = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    let proxy = FaultProxy::start(upstream);
    assert!(fetch(proxy.port).ends_with(b"hello"));
    proxy.set(Fault::Truncate(12));
    assert_eq!(fetch(proxy.port), b"HTTP/1.1 200");
    proxy.set(Fault::Reset);
    assert!(fetch(proxy.port).is_empty());
    proxy.set(Fault::Answer(http_response(
        "503 Service Unavailable",
        &[("Retry-After", "2"), ("Content-Type", "text/html")],
        "<html>busy</html>",
    )));
    let answer = String::from_utf8(fetch(proxy.port)).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 503") && answer.contains("Retry-After: 2"),
        "{answer}"
    );
    proxy.set(Fault::Pass);
    assert!(fetch(proxy.port).ends_with(b"hello"));
}
