//! How the explorer's server holds up against slow, idle, oversized and too many clients.
//!
//! [`serve`] accepts connections itself (instead of `axum::serve`) so that each one gets:
//! * a cap on open connections ([`Limits::max_connections`]); past it a new connection is answered
//!   `503` with a JSON error at once and closed, so a flood of idle sockets cannot make other
//!   clients hang;
//! * a header-read timeout ([`Limits::header_read_timeout`]): the whole request head must arrive
//!   within it, counted from the moment the server starts waiting for it, so a slowloris client
//!   that dribbles one byte at a time is cut off, and so is a keep-alive connection that stays idle
//!   between requests;
//! * an idle timeout ([`Limits::idle_timeout`]): a connection on which no byte moves in either
//!   direction while the server waits on the client (a stalled body, a client that stops reading
//!   its answer) is closed.
//!
//! [`limit_body`] (a middleware in [`super::app`]) bounds request bodies: a `Content-Length` above
//! [`MAX_BODY_BYTES`] is answered `413` before a byte of the body is read, a longer chunked body
//! is cut off at the limit with the same `413`, and a body that is not complete within
//! [`BODY_TIMEOUT`] gets `408`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

/// Largest request body, in bytes: the largest body any endpoint reads (a pasted `config.json`,
/// [`super::api::MAX_CONFIG_BYTES`]).
pub const MAX_BODY_BYTES: usize = super::api::MAX_CONFIG_BYTES;

/// Time allowed to receive a whole request body once its head has arrived.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection-level limits of [`serve`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most connections open at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Time allowed for a request head to arrive, from when the server waits for it (after
    /// accepting, or after the previous answer on a keep-alive connection).
    pub header_read_timeout: Duration,
    /// Time a connection may go without moving a byte while the server waits on the client.
    /// Longer than any computation can take (a computation waits at most
    /// [`super::pools::QUEUE_TIMEOUT`] for a slot, then runs within the endpoints' caps).
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Serves `app` on `listener` with `limits` until `shutdown` completes, then stops accepting and
/// lets open connections finish (the caller bounds how long it waits).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: wait a
                    // moment instead of spinning, then go on.
                    if !matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream, limits.max_connections));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(IdleStream::new(stream, limits.idle_timeout));
        let service = TowerToHyperService::new(app.clone());
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .keep_alive(true);
        let connection = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            // Errors here are the client's (reset, timed out, malformed head): nothing to report.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Answers a connection past the cap with 503 and closes it.
async fn refuse(mut stream: TcpStream, cap: usize) {
    let body =
        format!("{{\"error\":\"too many open connections (the cap is {cap}); retry later\"}}");
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(reply.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client already sent, so that closing does not reset the connection
        // before it has read the answer.
        let mut sink = [0u8; 4096];
        loop {
            match tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        io::Result::Ok(())
    })
    .await;
}

/// A stream that fails with `TimedOut` when no byte has moved for `timeout` and the server is
/// waiting on the peer (a read or a write is pending).
pub struct IdleStream<S> {
    inner: S,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<S> IdleStream<S> {
    /// Wraps `inner`; the clock starts now.
    pub fn new(inner: S, timeout: Duration) -> Self {
        IdleStream {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    fn progressed(&mut self) {
        let next = Instant::now() + self.timeout;
        self.deadline.as_mut().reset(next);
    }

    fn expired<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle for too long",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.progressed();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.expired(cx),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(result) => {
                if matches!(result, Ok(n) if n > 0) {
                    this.progressed();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.expired(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                if matches!(result, Ok(n) if n > 0) {
                    this.progressed();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.expired(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.expired(cx),
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A JSON error answer with `status`, the message and, for 413, the limit in bytes.
fn body_error(status: StatusCode, message: String) -> Response {
    let mut body = serde_json::json!({ "error": message });
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        body["limit_bytes"] = MAX_BODY_BYTES.into();
    }
    (status, axum::Json(body)).into_response()
}

fn too_large(what: &str) -> Response {
    body_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("{what} exceeds the limit of {MAX_BODY_BYTES} bytes"),
    )
}

/// Middleware: bounds the size of request bodies and the time to receive them (see the module
/// docs). A body within the limits is read in full here and handed on.
pub async fn limit_body(req: Request, next: Next) -> Response {
    let declared = match req.headers().get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => match v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) {
            Some(n) => Some(n),
            None => {
                return body_error(
                    StatusCode::BAD_REQUEST,
                    "Content-Length must be a non-negative integer".into(),
                )
            }
        },
    };
    if let Some(n) = declared {
        if n > MAX_BODY_BYTES as u64 {
            return too_large(&format!("a request body of {n} bytes (Content-Length)"));
        }
    }
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    let bodiless = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if declared.unwrap_or(0) == 0 && !chunked && bodiless {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let collected =
        tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY_BYTES).collect()).await;
    let bytes = match collected {
        Err(_) => {
            return body_error(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    BODY_TIMEOUT.as_secs()
                ),
            )
        }
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return too_large("the request body");
        }
        Ok(Err(e)) => {
            return body_error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {e}"),
            )
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    let mut req = Request::from_parts(parts, Body::from(bytes.clone()));
    if let Ok(len) = HeaderValue::from_str(&bytes.len().to_string()) {
        req.headers_mut().insert(header::CONTENT_LENGTH, len);
    }
    req.headers_mut().remove(header::TRANSFER_ENCODING);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    //! The limits over real sockets on 127.0.0.1, with short timeouts.
    use super::*;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncReadExt;

    fn app() -> Router {
        super::super::app(super::super::api::AppState {
            results_dir: std::env::temp_dir().join("posenc-limits-test-no-results"),
            bundled: false,
            lab_dir: std::env::temp_dir().join("posenc-limits-test-no-lab"),
        })
    }

    async fn start(limits: Limits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, app(), limits, async {
            stopped.await.ok();
        }));
        (addr, stop)
    }

    /// Sends `request` and reads until the server closes; (status, body).
    async fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, String) {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request).await.expect("send");
        read_answer(&mut stream).await
    }

    async fn read_answer(stream: &mut TcpStream) -> (u16, String) {
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw))
            .await
            .expect("an answer within 20 s")
            .ok();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    async fn health(addr: SocketAddr) -> u16 {
        exchange(
            addr,
            b"GET /api/health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .await
        .0
    }

    /// Whether the server has closed `stream` (reads EOF or an error) within `within`.
    async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
        let mut buf = [0u8; 1024];
        let deadline = Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn other_clients_are_served_during_a_slowloris() {
        let limits = Limits {
            max_connections: 128,
            header_read_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(30),
        };
        let (addr, _stop) = start(limits).await;
        let closed = Arc::new(AtomicUsize::new(0));
        let answered = Arc::new(AtomicUsize::new(0));
        let mut slow = Vec::new();
        for _ in 0..48 {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            let (closed, answered) = (closed.clone(), answered.clone());
            slow.push(tokio::spawn(async move {
                stream
                    .write_all(b"GET /api/health HTTP/1.1\r\nHost: t\r\n")
                    .await
                    .expect("start of a head");
                let started = Instant::now();
                // One more header byte every 100 ms, for up to 10 s: never a whole head.
                let mut buf = [0u8; 256];
                while started.elapsed() < Duration::from_secs(10) {
                    if stream.write_all(b"X").await.is_err() {
                        break;
                    }
                    match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf))
                        .await
                    {
                        Ok(Ok(0)) | Ok(Err(_)) => break,
                        Ok(Ok(_)) => {
                            answered.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        Err(_) => {}
                    }
                }
                closed.fetch_add(1, Ordering::SeqCst);
                started.elapsed()
            }));
        }
        // Meanwhile, ordinary requests on fresh connections are answered.
        for _ in 0..20 {
            assert_eq!(health(addr).await, 200);
        }
        assert_eq!(
            closed.load(Ordering::SeqCst),
            0,
            "the ordinary requests were answered while every slow client was still connected"
        );
        for s in slow {
            let lasted = s.await.expect("slow client");
            assert!(
                lasted < Duration::from_secs(8),
                "a slowloris connection is closed by the header-read timeout, not kept for {lasted:?}"
            );
        }
        assert_eq!(
            answered.load(Ordering::SeqCst),
            0,
            "an incomplete head gets no answer"
        );
        assert_eq!(health(addr).await, 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_past_the_cap_get_503_at_once_and_idle_ones_are_closed() {
        let limits = Limits {
            max_connections: 4,
            header_read_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(30),
        };
        let (addr, _stop) = start(limits).await;
        let mut idle = Vec::new();
        for _ in 0..4 {
            idle.push(TcpStream::connect(addr).await.expect("connect"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let (status, body) = exchange(
            addr,
            b"GET /api/health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(status, 503, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON error");
        assert!(
            v["error"].as_str().unwrap_or("").contains("cap is 4"),
            "{v}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "refused at once"
        );
        // The idle connections never send a head: the header-read timeout closes them, and the
        // slots come back.
        for stream in &mut idle {
            assert!(closed_by_server(stream, Duration::from_secs(6)).await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(health(addr).await, 200);
        // A keep-alive connection idle after its answer is closed the same way.
        let mut keep = TcpStream::connect(addr).await.expect("connect");
        keep.write_all(b"GET /api/health HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .expect("send");
        let mut buf = [0u8; 1024];
        let n = keep.read(&mut buf).await.expect("answer");
        assert!(String::from_utf8_lossy(&buf[..n]).contains("200 OK"));
        assert!(closed_by_server(&mut keep, Duration::from_secs(6)).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_oversized_body_gets_413_with_the_limit_before_it_is_sent() {
        let (addr, _stop) = start(Limits::default()).await;
        // Content-Length far past the limit and a small body, the connection left open: the
        // answer must not wait for the rest.
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"POST /api/config/inspect HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999\r\n\r\n{}")
            .await
            .expect("send");
        let started = Instant::now();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("answered within 5 s")
            .expect("read");
        assert!(started.elapsed() < Duration::from_secs(5));
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(text.starts_with("HTTP/1.1 413"), "{text}");
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        let v: serde_json::Value = serde_json::from_str(body).expect("JSON error");
        assert_eq!(v["limit_bytes"], MAX_BODY_BYTES);
        assert!(v["error"]
            .as_str()
            .unwrap_or("")
            .contains(&MAX_BODY_BYTES.to_string()));

        // A chunked body that grows past the limit is cut off with the same answer.
        let chunk = vec![b' '; 64 * 1024];
        let mut request =
            b"POST /api/config/inspect HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                .to_vec();
        for _ in 0..(MAX_BODY_BYTES / chunk.len() + 2) {
            request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            request.extend_from_slice(&chunk);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
        let (status, body) = exchange(addr, &request).await;
        assert_eq!(status, 413, "{body}");

        // A body within the limit still reaches the endpoint.
        let config = r#"{"head_dim": 64, "max_position_embeddings": 4096, "rope_theta": 10000.0}"#;
        let request = format!(
            "POST /api/config/inspect HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{config}",
            config.len()
        );
        let (status, body) = exchange(addr, request.as_bytes()).await;
        assert_eq!(status, 200, "{body}");
    }

    /// A body that never completes.
    struct Stalled;

    impl axum::body::HttpBody for Stalled {
        type Data = axum::body::Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_gets_408() {
        use tower::ServiceExt;
        let req = Request::post("/api/config/inspect")
            .header(header::CONTENT_LENGTH, "100")
            .body(Body::new(Stalled))
            .expect("request");
        let resp = app().oneshot(req).await.expect("infallible");
        assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        assert!(v["error"].as_str().unwrap_or("").contains("did not arrive"));
    }
}
