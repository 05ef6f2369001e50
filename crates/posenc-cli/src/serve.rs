//! `posenc serve`: the web explorer.
//!
//! One page (embedded in the binary from `assets/`) and a JSON API under `/api/` whose every
//! number comes from the posenc library ([`api`] lists the endpoints; `assets/API.md` documents
//! them). The server listens on 127.0.0.1 by default, logs one line per request to stderr and
//! stops cleanly on Ctrl-C.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub mod api;
pub mod figures_api;
mod inspect;
pub mod learn_api;
pub mod limits;
pub mod params;
pub mod pools;
pub mod reply;
#[cfg(test)]
mod tests;

/// Arguments of `posenc serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// TCP port to listen on (0 picks a free one and prints it).
    #[arg(long, default_value_t = 7878)]
    pub port: u16,
    /// Address to bind; loopback by default. Binding elsewhere exposes the server to the network.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Open the page in the default browser once the server listens.
    #[arg(long)]
    pub open: bool,
    /// Directory holding `posenc model` JSON results (passkey.json, attention-stats.json).
    #[arg(long, default_value = "posenc-results")]
    pub results: PathBuf,
    /// Do not fall back to the measured results committed in the repository's `results/`
    /// folder (compiled in) for known results missing from `--results`.
    #[arg(long)]
    pub no_committed_results: bool,
    /// Directory holding `posenc lab` result files (JSON), drawn in the NoPE panel.
    #[arg(long, default_value = "results/lab")]
    pub lab: PathBuf,
}

/// The page's files, compiled in: (URL path, content type, body).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../assets/index.html"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_str!("../assets/style.css"),
    ),
    (
        "/js/core.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/js/core.js"),
    ),
    (
        "/js/course.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/js/course.js"),
    ),
    (
        "/js/panels.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/js/panels.js"),
    ),
    (
        "/js/canonical.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/js/canonical.js"),
    ),
    (
        "/js/model.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/js/model.js"),
    ),
    (
        "/js/learn.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/js/learn.js"),
    ),
    (
        "/js/main.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/js/main.js"),
    ),
    (
        "/favicon.svg",
        "image/svg+xml",
        include_str!("../assets/favicon.svg"),
    ),
    // Browsers ask for /favicon.ico whatever the page links; the SVG answers it too.
    (
        "/favicon.ico",
        "image/svg+xml",
        include_str!("../assets/favicon.svg"),
    ),
    (
        "/API.md",
        "text/markdown; charset=utf-8",
        include_str!("../assets/API.md"),
    ),
];

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // The assets change only with the binary; revalidate rather than cache blindly.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// The whole application: page, assets, API, request log; answers are compressed (gzip or
/// brotli, as the client accepts).
pub fn app(state: api::AppState) -> Router {
    let mut router = Router::new();
    for &(path, content_type, body) in ASSETS {
        router = router.route(path, get(move || async move { asset(content_type, body) }));
    }
    router
        .merge(api::router(Arc::new(state)))
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(middleware::from_fn(limits::limit_body))
        .layer(middleware::from_fn(log_request))
}

/// Logs `METHOD path status duration` to stderr.
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status();
    // POSENC_QUIET=1 keeps only errors (for load tests).
    if status != StatusCode::OK || std::env::var_os("POSENC_QUIET").is_none() {
        eprintln!(
            "{method} {uri} {} {:.1} ms",
            status.as_u16(),
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    resp
}

/// How long connections still open after Ctrl-C may finish before the server closes them.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Runs `posenc serve` until Ctrl-C.
pub fn run(args: ServeArgs) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let code = runtime.block_on(serve(args));
    // A computation still running on a blocking thread is abandoned, not awaited.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    code
}

async fn serve(args: ServeArgs) -> anyhow::Result<i32> {
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    let url = format!("http://{local}/");
    eprintln!(
        "posenc explorer listening on {url} (results dir: {}); Ctrl-C to stop",
        args.results.display()
    );
    if !args.bind.is_loopback() {
        eprintln!(
            "posenc: warning: --bind {} exposes the explorer to every host that can reach this machine (it has no authentication); the default 127.0.0.1 keeps it local",
            args.bind
        );
    }
    if !args.results.is_dir() {
        eprintln!(
            "posenc: warning: --results {} is not a directory; {}",
            args.results.display(),
            if args.no_committed_results {
                "the real-model panel has no results to show"
            } else {
                "the real-model panel shows the results committed in the repository"
            }
        );
    }
    if args.open {
        open_browser(&url);
    }
    let app = app(api::AppState {
        results_dir: args.results,
        bundled: !args.no_committed_results,
        lab_dir: args.lab,
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(limits::serve(
        listener,
        app,
        limits::Limits::default(),
        async {
            stop_rx.await.ok();
        },
    ));
    // If the signal handler cannot be installed, run until killed.
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
    eprintln!("posenc explorer: shutting down");
    stop_tx.send(()).ok();
    // Graceful shutdown waits for every open connection; a client that keeps one open (a
    // browser's idle keep-alive, a half-sent request) must not keep the server alive.
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(joined) => joined.context("server task")?,
        Err(_) => eprintln!(
            "posenc explorer: connections still open after {} s; closing them",
            SHUTDOWN_GRACE.as_secs()
        ),
    }
    Ok(0)
}

/// Best effort: asks the desktop to open `url`; prints it when that fails.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(target_os = "windows") {
        "explorer"
    } else {
        "xdg-open"
    };
    if std::process::Command::new(opener).arg(url).spawn().is_err() {
        eprintln!("could not start {opener}; open {url} yourself");
    }
}
