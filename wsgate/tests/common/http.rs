//! Raw HTTP/1.1 on std sockets: a client that sends exact bytes and reads
//! a response with a deadline, and a scripted backend whose behaviour each
//! test chooses (answer, stay silent, send garbage, switch protocols).
//!
//! Deliberately independent of the proxy's own HTTP code: a small, strict
//! reader written here from RFC 9112.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Default deadline for one exchange with the proxy.
pub const IO_DEADLINE: Duration = Duration::from_secs(15);

/// A parsed HTTP message head (request or response) and its body.
#[derive(Debug, Clone, Default)]
pub struct Message {
    /// The request line or status line.
    pub start: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The head exactly as received (without the final CRLF CRLF).
    pub raw_head: String,
}

impl Message {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The status code of a response.
    pub fn status(&self) -> u16 {
        self.start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not a status line: {:?}", self.start))
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Buffered reader over a stream with an absolute deadline.
pub struct Reader<S> {
    pub stream: S,
    pub buf: Vec<u8>,
    pub deadline: Instant,
}

fn set_timeout(stream: &TcpStream, deadline: Instant) -> io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
    }
    stream.set_read_timeout(Some(left))
}

impl Reader<TcpStream> {
    pub fn new(stream: TcpStream, deadline: Duration) -> Self {
        Reader {
            stream,
            buf: Vec::new(),
            deadline: Instant::now() + deadline,
        }
    }

    /// Reads more bytes into the buffer; Ok(0) at EOF.
    fn fill(&mut self) -> io::Result<usize> {
        set_timeout(&self.stream, self.deadline)?;
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads a head. Ok(None) when the peer closed before sending any byte.
    pub fn read_head(&mut self) -> io::Result<Option<Message>> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let raw: Vec<u8> = self.buf.drain(..end + 4).collect();
                let raw_head = String::from_utf8_lossy(&raw[..end]).into_owned();
                let mut lines = raw_head.split("\r\n");
                let start = lines.next().unwrap_or_default().to_string();
                let headers = lines
                    .map(|l| match l.split_once(':') {
                        Some((n, v)) => (n.to_string(), v.trim().to_string()),
                        None => (l.to_string(), String::new()),
                    })
                    .collect();
                return Ok(Some(Message {
                    start,
                    headers,
                    body: Vec::new(),
                    raw_head,
                }));
            }
            if self.fill()? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "EOF inside a head: {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ),
                ));
            }
        }
    }

    fn read_exact_buf(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("EOF after {} of {n} body bytes", self.buf.len()),
                ));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    fn read_line(&mut self) -> io::Result<String> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..end + 2).collect();
                return Ok(String::from_utf8_lossy(&line[..end]).into_owned());
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "EOF inside a chunked body",
                ));
            }
        }
    }

    /// Reads a chunked body and returns the decoded payload.
    fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line()?;
            let size_hex = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_hex, 16).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad chunk size {line:?}"),
                )
            })?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !self.read_line()?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.read_exact_buf(size)?);
            if !self.read_line()?.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "chunk data not followed by CRLF",
                ));
            }
        }
    }

    /// Reads the body that `head` announces. `is_response`: a response
    /// without framing is delimited by the connection close; a request
    /// without framing has no body.
    pub fn read_body(&mut self, head: &mut Message, is_response: bool) -> io::Result<()> {
        if is_response {
            let status = head.status();
            if (100..200).contains(&status) || status == 204 || status == 304 {
                return Ok(());
            }
        }
        let chunked = head
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            head.body = self.read_chunked()?;
        } else if let Some(cl) = head.header("content-length") {
            let n: usize = cl.parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad content-length {cl:?}"),
                )
            })?;
            head.body = self.read_exact_buf(n)?;
        } else if is_response {
            while self.fill()? > 0 {}
            head.body = std::mem::take(&mut self.buf);
        }
        Ok(())
    }

    /// Reads one full response (head and body).
    pub fn read_response(&mut self) -> io::Result<Message> {
        let mut head = self.read_head()?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before any response byte",
            )
        })?;
        self.read_body(&mut head, true)?;
        Ok(head)
    }

    /// Reads until EOF (or reset); returns how long it took. Errors only on
    /// the deadline.
    pub fn wait_closed(&mut self) -> io::Result<Duration> {
        let start = Instant::now();
        loop {
            match self.fill() {
                Ok(0) => return Ok(start.elapsed()),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    return Ok(start.elapsed())
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// A request for a failure message: at most 300 bytes of it, escaped.
pub fn shorten(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
    if bytes.len() > 300 {
        format!("{text:?}... ({} bytes)", bytes.len())
    } else {
        format!("{text:?}")
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Connects to `addr` with a deadline.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_nodelay(true).ok();
    s
}

/// Opens a connection, sends `request` as is, reads one response.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> io::Result<Message> {
    let mut s = connect(addr);
    s.write_all(request)?;
    Reader::new(s, IO_DEADLINE).read_response()
}

/// Sends `request` and returns the response's status, panicking with the
/// raw response (and `context`) on I/O errors.
pub fn status_of(addr: SocketAddr, request: &[u8], context: &str) -> u16 {
    match exchange(addr, request) {
        Ok(m) => m.status(),
        Err(e) => panic!("request {}: no response: {e}\n{context}", shorten(request)),
    }
}

// ---------------------------------------------------------------- scripted backend

/// What a [`ScriptedBackend`] does with each connection.
#[derive(Clone, Copy, Debug)]
pub enum Script {
    /// Reads requests (with their bodies) and answers each with 200 and a
    /// body `ok <n>` (n = requests seen on this connection), keep-alive.
    Ok,
    /// Reads whatever comes and never answers; holds the connection open.
    Silent,
    /// Answers the first request with bytes that are not HTTP.
    Garbage,
    /// Answers the first request with `101 Switching Protocols`, then
    /// stays silent until the peer closes.
    UpgradeThenSilent,
    /// Answers every request with these exact bytes, keep-alive.
    Reply(&'static str),
    /// Answers the first request with these bytes, then closes (for
    /// close-delimited bodies).
    ReplyThenClose(&'static str),
}

/// One request as the backend received it.
pub type Seen = Message;

/// A backend on a raw std `TcpListener`, driven by a [`Script`]. It records
/// every request it read (head and decoded body) and counts connections.
pub struct ScriptedBackend {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Seen>>>,
    pub connections: Arc<AtomicUsize>,
    /// Raw bytes of every connection (by accept order), for `Silent`.
    pub raw: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
}

impl ScriptedBackend {
    pub fn start(script: Script) -> ScriptedBackend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let addr = listener.local_addr().expect("backend addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, c, w, st) = (
            requests.clone(),
            connections.clone(),
            raw.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let index = c.fetch_add(1, Ordering::SeqCst);
                lock(&w).push(Vec::new());
                let (r, w, st) = (r.clone(), w.clone(), st.clone());
                std::thread::spawn(move || serve(conn, script, &r, &w, index, &st));
            }
        });
        ScriptedBackend {
            addr,
            requests,
            connections,
            raw,
            stop,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.requests).clone()
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Every byte received on every connection so far.
    pub fn raw_bytes(&self) -> Vec<u8> {
        lock(&self.raw).concat()
    }
}

impl Drop for ScriptedBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Unblock accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serves one backend connection. Backends live as long as the test, so
/// their reads get a long deadline; the test's own deadlines decide.
fn serve(
    conn: TcpStream,
    script: Script,
    requests: &Mutex<Vec<Seen>>,
    raw: &Mutex<Vec<Vec<u8>>>,
    index: usize,
    stop: &AtomicBool,
) {
    let deadline = Duration::from_secs(120);
    match script {
        Script::Silent => {
            let mut conn = conn;
            let end = Instant::now() + deadline;
            let mut chunk = [0u8; 4096];
            while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
                match conn.read(&mut chunk) {
                    Ok(0) => return,
                    Ok(n) => lock(raw)[index].extend_from_slice(&chunk[..n]),
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => return,
                }
            }
        }
        Script::Ok
        | Script::Garbage
        | Script::UpgradeThenSilent
        | Script::Reply(_)
        | Script::ReplyThenClose(_) => {
            let mut reader = Reader::new(conn, deadline);
            let mut n = 0;
            loop {
                let Ok(Some(mut head)) = reader.read_head() else {
                    return;
                };
                if reader.read_body(&mut head, false).is_err() {
                    lock(requests).push(head);
                    return;
                }
                lock(requests).push(head);
                n += 1;
                let reply: Vec<u8> = match script {
                    Script::Ok => {
                        let body = format!("ok {n}");
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                        .into_bytes()
                    }
                    Script::Garbage => b"this is not HTTP at all\r\n\r\n".to_vec(),
                    Script::Reply(bytes) | Script::ReplyThenClose(bytes) => bytes.as_bytes().to_vec(),
                    _ => b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n".to_vec(),
                };
                if reader.stream.write_all(&reply).is_err() {
                    return;
                }
                match script {
                    Script::Ok | Script::Reply(_) => continue,
                    Script::Garbage | Script::ReplyThenClose(_) => {
                        let _ = reader.stream.shutdown(Shutdown::Write);
                        let _ = reader.wait_closed();
                        return;
                    }
                    _ => {
                        // Tunnel: silent until the proxy closes its side.
                        let _ = reader.wait_closed();
                        return;
                    }
                }
            }
        }
    }
}
