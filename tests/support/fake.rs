//! A hand-written HTTP/1.1 upstream for shapes real MCP servers won't produce: SSE
//! frames split at chosen bytes, duplicate keys, compressed answers, odd content types.
//! It records every request it receives, so tests can prove what was (not) forwarded.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// Request line and headers, as text.
    pub head: String,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl RawRequest {
    /// A header's value (case-insensitive name), first occurrence.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers(name).into_iter().next()
    }

    /// Every value of a header (case-insensitive name), in order.
    pub fn headers(&self, name: &str) -> Vec<String> {
        self.head
            .lines()
            .skip(1)
            .filter_map(|line| {
                let (k, v) = line.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
            .collect()
    }

    /// The HTTP method of the request line.
    pub fn method(&self) -> &str {
        self.head.split(' ').next().unwrap_or("")
    }

    /// The request target of the request line.
    pub fn target(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or("")
    }

    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The JSON-RPC `method` of a single-message body.
    pub fn rpc_method(&self) -> Option<String> {
        self.json()?.get("method")?.as_str().map(str::to_owned)
    }
}

/// What to send back: raw byte pieces written one by one with a pause between them, so
/// the proxy reads them as separate chunks.
pub type Reply = Vec<Vec<u8>>;

/// The fake server; stops accepting when dropped (its thread then idles out).
pub struct FakeUpstream {
    /// `http://127.0.0.1:PORT/mcp`
    pub url: String,
    /// Every request received.
    pub requests: Arc<Mutex<Vec<RawRequest>>>,
}

impl FakeUpstream {
    /// Start; `respond` scripts the answer to each request.
    pub fn start(respond: impl Fn(&RawRequest) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_paced(Duration::from_millis(15), respond)
    }

    /// [`FakeUpstream::start`], pausing `pause` between the pieces of each reply.
    pub fn start_paced(
        pause: Duration,
        respond: impl Fn(&RawRequest) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::start_writing(pause, move |req, out| {
            for piece in respond(req) {
                if !out.write(&piece) {
                    return;
                }
            }
        })
    }

    /// Start; `respond` writes the answer to each request itself, piece by piece, and may
    /// wait between pieces (for a [`Gate`] the test opens, or for the proxy to close the
    /// connection), so a test can hold an answer in flight for as long as it needs.
    pub fn start_writing(
        pause: Duration,
        respond: impl Fn(&RawRequest, &mut ReplyWriter) + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let respond = Arc::new(respond);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let seen = Arc::clone(&seen);
                let respond = Arc::clone(&respond);
                std::thread::spawn(move || serve(stream, &seen, &*respond, pause));
            }
        });
        FakeUpstream {
            url: format!("http://127.0.0.1:{port}/mcp"),
            requests,
        }
    }

    /// Requests received so far.
    pub fn received(&self) -> Vec<RawRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// The JSON-RPC methods (or `"<HTTP method> (no JSON-RPC method)"`) received so far,
    /// for readable assertions.
    pub fn methods(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|r| {
                r.rpc_method()
                    .unwrap_or_else(|| format!("{} (no JSON-RPC method)", r.method()))
            })
            .collect()
    }
}

fn serve(
    stream: TcpStream,
    seen: &Mutex<Vec<RawRequest>>,
    respond: &dyn Fn(&RawRequest, &mut ReplyWriter),
    pause: Duration,
) {
    let _ = stream.set_read_timeout(Some(super::wait::HANG));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut req = RawRequest {
        head,
        body: Vec::new(),
    };
    if let Some(len) = req.header("content-length") {
        let mut body = vec![0; len.parse().unwrap()];
        reader.read_exact(&mut body).unwrap();
        req.body = body;
    } else if req
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            req.body.extend_from_slice(&chunk[..n]);
        }
    }
    seen.lock().unwrap().push(req.clone());
    respond(&req, &mut ReplyWriter { stream, pause });
}

/// Writes one answer of a [`FakeUpstream::start_writing`] upstream.
pub struct ReplyWriter {
    stream: TcpStream,
    pause: Duration,
}

impl ReplyWriter {
    /// Write and flush one piece, then pause; `false` once the proxy has gone away.
    pub fn write(&mut self, piece: &[u8]) -> bool {
        if self.stream.write_all(piece).is_err() {
            return false;
        }
        let _ = self.stream.flush();
        pace(self.pause);
        true
    }

    /// Wait until the proxy closes the connection (an answer that never ends on its own).
    pub fn wait_closed(&mut self) {
        let mut buf = [0u8; 1024];
        let _ = self.stream.set_read_timeout(None);
        while matches!(self.stream.read(&mut buf), Ok(n) if n > 0) {}
    }
}

/// A gate a fake upstream's answer waits at until the test opens it.
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    /// Let every waiter (present and future) through.
    pub fn open(&self) {
        let (open, changed) = &*self.0;
        *open.lock().unwrap() = true;
        changed.notify_all();
    }

    /// Wait until the gate is open (panics after [`super::wait::HANG`]: a test forgot it).
    pub fn wait(&self) {
        let (open, changed) = &*self.0;
        let (_open, timeout) = changed
            .wait_timeout_while(open.lock().unwrap(), super::wait::HANG, |open| !*open)
            .unwrap();
        assert!(!timeout.timed_out(), "the gate was never opened");
    }
}

/// The pause after each piece of a reply, so pieces tend to arrive as separate reads. The
/// proxy must answer the same however they arrive, so no outcome may depend on it; where a
/// test needs an answer to be in flight, it waits for that state, not for this pause.
#[allow(
    clippy::disallowed_methods,
    reason = "paces the pieces of a reply; no outcome depends on it"
)]
fn pace(pause: Duration) {
    std::thread::sleep(pause);
}

/// A complete `application/json` answer.
pub fn json_reply(body: &str) -> Reply {
    vec![format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()]
}

/// A `text/event-stream` answer delimited by connection close, sent in the given pieces.
pub fn sse_reply(pieces: &[&str]) -> Reply {
    let mut out = vec![
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n".to_vec(),
    ];
    out.extend(pieces.iter().map(|p| p.as_bytes().to_vec()));
    out
}

/// A complete answer with any status line, headers and body; `Content-Length` and
/// `Connection: close` are added.
pub fn reply(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut head = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    vec![out]
}

/// A complete `application/json` answer with extra headers (e.g. `mcp-session-id`).
pub fn json_reply_with(headers: &[(&str, &str)], body: &str) -> Reply {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    reply("200 OK", &all, body.as_bytes())
}

/// A `text/event-stream` answer delimited by connection close, with extra headers.
pub fn sse_reply_with(headers: &[(&str, &str)], pieces: &[&str]) -> Reply {
    let mut head = String::from("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("connection: close\r\n\r\n");
    let mut out = vec![head.into_bytes()];
    out.extend(pieces.iter().map(|p| p.as_bytes().to_vec()));
    out
}

/// `202 Accepted` with no body (the answer to notifications and responses).
pub fn accepted() -> Reply {
    reply("202 Accepted", &[], b"")
}

/// Answer every JSON-RPC request in the body with an empty result (a batch with a batch),
/// notifications and responses with 202.
pub fn ok_reply(req: &RawRequest) -> Reply {
    let result = |m: &serde_json::Value| {
        let id = m.get("id").filter(|_| m.get("method").is_some())?;
        Some(serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {}}))
    };
    match req.json() {
        Some(serde_json::Value::Array(items)) => {
            let answers: Vec<_> = items.iter().filter_map(result).collect();
            if answers.is_empty() {
                accepted()
            } else {
                json_reply(&serde_json::Value::Array(answers).to_string())
            }
        }
        Some(message) => match result(&message) {
            Some(answer) => json_reply(&answer.to_string()),
            None => accepted(),
        },
        None => accepted(),
    }
}

/// `data` as a gzip member made of *stored* (uncompressed) deflate blocks: valid gzip
/// whose bytes still contain `data` verbatim, so a test can see it leak.
pub fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut blocks = data.chunks(0xffff).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// CRC-32 (IEEE), bit by bit: fast enough for test bodies.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
