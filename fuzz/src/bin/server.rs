//! One request to the explorer's whole router (`posenc serve`'s, with its body limits), from text:
//!
//! ```text
//! METHOD URI
//! Header-Name: value        (any number of lines)
//!                           (an empty line)
//! body bytes
//! ```
//!
//! Contract: every `/api/` answer is a JSON object, 200 or a 4xx with an `error` string; never a
//! 5xx, a panic or a hang.

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::BodyExt;
use tower::ServiceExt;

fn runtime() -> &'static tokio::runtime::Runtime {
    // Built on first use, in the forked child: a runtime's threads do not survive fork.
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fn request(data: &[u8]) -> Option<Request<Body>> {
    let head_end = data
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or(data.len());
    let head = std::str::from_utf8(&data[..head_end]).ok()?;
    let body = data.get(head_end + 2..).unwrap_or_default().to_vec();
    let mut lines = head.lines();
    let (method, uri) = lines.next()?.split_once(' ')?;
    let mut builder = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).ok()?)
        .uri(uri);
    for line in lines {
        let (name, value) = line.split_once(':')?;
        builder = builder.header(
            HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
            HeaderValue::from_str(value.trim()).ok()?,
        );
    }
    builder.body(Body::from(body)).ok()
}

fn main() {
    let results = std::env::temp_dir().join("posenc-fuzz-no-results");
    afl::fuzz!(|data: &[u8]| {
        let Some(req) = request(data) else {
            return;
        };
        let path = req.uri().path().to_string();
        let app = cli::serve::app(cli::serve::api::AppState {
            results_dir: results.clone(),
            bundled: true,
            lab_dir: results.join("no-lab"),
        });
        let (status, ctype, bytes) = runtime().block_on(async {
            let resp = app.oneshot(req).await.expect("the router is infallible");
            let status = resp.status();
            let ctype = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let bytes = resp.into_body().collect().await.expect("body").to_bytes();
            (status, ctype, bytes)
        });
        assert!(
            !status.is_server_error(),
            "{path}: {status} {}",
            String::from_utf8_lossy(&bytes)
        );
        if path.starts_with("/api/") {
            assert!(ctype.starts_with("application/json"), "{path}: {ctype}");
            let v: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON answer");
            assert!(v.is_object(), "{path}: {v}");
            if !status.is_success() {
                assert!(v["error"].is_string(), "{path}: {status} {v}");
            }
        }
    });
}
