//! A hand-written HTTP/1.1 upstream for shapes real MCP servers won't produce: SSE
//! frames split at chosen bytes, duplicate keys, compressed answers, odd content types.
//! It records every request it receives, so tests can prove what was (not) forwarded.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
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
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
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
}

fn serve(
    stream: TcpStream,
    seen: &Mutex<Vec<RawRequest>>,
    respond: &dyn Fn(&RawRequest) -> Reply,
    pause: Duration,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
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
    let mut stream = stream;
    for piece in respond(&req) {
        if stream.write_all(&piece).is_err() {
            return;
        }
        let _ = stream.flush();
        std::thread::sleep(pause);
    }
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
