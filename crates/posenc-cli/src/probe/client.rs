//! A small blocking JSON-over-HTTP/1.1 client for the probe (hyper's client, one connection per
//! request), with a timeout per request, bounded retries and concurrent batches.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Largest answer body read (bytes): an `echo` answer with top-20 logprobs of a long prompt.
const MAX_ANSWER_BYTES: usize = 256 << 20;

/// Why a request failed.
#[derive(Debug, Clone)]
pub enum HttpError {
    /// No connection (refused, unreachable, reset before an answer).
    Connect(String),
    /// No complete answer within the timeout.
    Timeout(Duration),
    /// The server answered with a non-2xx status.
    Status(u16, String),
    /// The answer is not JSON.
    BadAnswer(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Connect(e) => write!(f, "connection failed: {e}"),
            HttpError::Timeout(t) => write!(f, "no answer within {:.0} s", t.as_secs_f64()),
            HttpError::Status(s, body) => {
                let short: String = body.chars().take(300).collect();
                write!(f, "HTTP {s}: {short}")
            }
            HttpError::BadAnswer(e) => write!(f, "the answer is not JSON: {e}"),
        }
    }
}

/// The server: host, port and a path prefix, with the request policy.
#[derive(Clone)]
pub struct Client {
    /// `http://HOST:PORT` with any path prefix, without a trailing `/`.
    pub base: String,
    host: String,
    port: u16,
    prefix: String,
    timeout: Duration,
    retries: usize,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl Client {
    /// Parses `url` (`http://HOST[:PORT][/PREFIX]`; a trailing `/v1` is dropped, since endpoint
    /// paths include it). HTTPS is not supported.
    pub fn new(url: &str, timeout: Duration, retries: usize) -> anyhow::Result<Client> {
        let rest = if let Some(r) = url.strip_prefix("http://") {
            r
        } else if url.starts_with("https://") {
            anyhow::bail!("--url {url}: https is not supported; give the plain-HTTP address of the server (or of a local tunnel to it)")
        } else {
            anyhow::bail!("--url {url}: expected http://HOST:PORT")
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let mut prefix = path.trim_end_matches('/').to_string();
        if prefix.ends_with("/v1") {
            prefix.truncate(prefix.len() - 3);
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                let port: u16 = p.parse().map_err(|_| {
                    anyhow::anyhow!("--url {url}: the port {p:?} is not a number in 1..=65535")
                })?;
                (h.to_string(), port)
            }
            _ => (authority.to_string(), 80),
        };
        anyhow::ensure!(!host.is_empty(), "--url {url}: expected http://HOST:PORT");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        Ok(Client {
            base: format!("http://{authority}{prefix}"),
            host,
            port,
            prefix,
            timeout,
            retries,
            runtime: Arc::new(runtime),
        })
    }

    /// `GET path`, parsed as JSON.
    pub fn get(&self, path: &str) -> Result<Value, HttpError> {
        self.runtime.block_on(self.with_retries("GET", path, None))
    }

    /// `POST path` with a JSON body, parsed as JSON.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, HttpError> {
        self.runtime
            .block_on(self.with_retries("POST", path, Some(body.clone())))
    }

    /// Every body posted to `path` at once (each on its own connection); answers in order.
    pub fn post_concurrently(&self, path: &str, bodies: &[Value]) -> Vec<Result<Value, HttpError>> {
        self.runtime.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for (i, b) in bodies.iter().enumerate() {
                let me = self.clone();
                let (path, body) = (path.to_string(), b.clone());
                set.spawn(async move { (i, me.with_retries("POST", &path, Some(body)).await) });
            }
            let mut out: Vec<Option<Result<Value, HttpError>>> = vec![None; bodies.len()];
            while let Some(joined) = set.join_next().await {
                if let Ok((i, r)) = joined {
                    out[i] = Some(r);
                }
            }
            out.into_iter()
                .map(|r| r.unwrap_or_else(|| Err(HttpError::Connect("request task failed".into()))))
                .collect()
        })
    }

    async fn with_retries(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, HttpError> {
        let mut attempt = 0;
        loop {
            let result = tokio::time::timeout(self.timeout, self.once(method, path, body.as_ref()))
                .await
                .unwrap_or(Err(HttpError::Timeout(self.timeout)));
            // Retry what a busy or restarting server answers; never a 4xx or a timeout (a slow
            // server stays slow, and retrying would multiply the wait).
            let transient = matches!(&result, Err(HttpError::Connect(_)))
                || matches!(&result, Err(HttpError::Status(s, _)) if matches!(s, 429 | 502 | 503 | 504));
            if !transient || attempt >= self.retries {
                return result;
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(250 << attempt.min(5))).await;
        }
    }

    async fn once(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, HttpError> {
        let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| HttpError::Connect(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| HttpError::Connect(e.to_string()))?;
        let driver = tokio::spawn(conn);
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header(hyper::header::HOST, format!("{}:{}", self.host, self.port))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| HttpError::Connect(e.to_string()))?;
        let answer = sender
            .send_request(req)
            .await
            .map_err(|e| HttpError::Connect(e.to_string()))?;
        let status = answer.status().as_u16();
        let collected = Limited::new(answer.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| HttpError::Connect(format!("reading the answer: {e}")))?;
        driver.abort();
        let text = String::from_utf8_lossy(&collected.to_bytes()).into_owned();
        if !(200..300).contains(&status) {
            return Err(HttpError::Status(status, text));
        }
        serde_json::from_str(&text).map_err(|e| HttpError::BadAnswer(e.to_string()))
    }
}
