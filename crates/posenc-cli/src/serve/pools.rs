//! Where the API's computations run: two bounded pools of slots on tokio's blocking threads, so
//! that slow work cannot starve fast work.
//!
//! * [`Pool::Light`]: every endpoint whose work is bounded to milliseconds by its caps;
//!   `2 × cores` computations at once.
//! * [`Pool::Heavy`]: the endpoints that may take up to seconds (the config inspector's base
//!   bound search, the base bound endpoint, the advisor's scan); `cores` at once, so however many
//!   of them queue up, the light pool keeps its own slots and its computations share the cores
//!   with at most `cores` slow ones (a single slow slot on 2 cores left one core idle while every
//!   client of the page's mix queued behind it).
//!
//! Health and the static assets never enter a pool: they answer on the async workers, and the
//! computation threads run at a lower CPU priority than those workers (Linux: nice +5).
//! A computation waits at most [`QUEUE_TIMEOUT`] for a slot, then gets `503` with
//! `Retry-After`, so a backlog turns into quick refusals instead of ever longer waits. The memory
//! in use is bounded by the slots times the per-request caps, whatever the number of clients.

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::params::{ApiError, ApiResult};
use super::reply::Reply;

/// Longest wait for a computation slot before the request is refused with 503.
pub const QUEUE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which pool a computation runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// Endpoints bounded to milliseconds.
    Light,
    /// Endpoints that may take seconds.
    Heavy,
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

impl Pool {
    /// Computations of this pool that may run at once.
    pub fn slots(self) -> usize {
        match self {
            Pool::Light => 2 * cores(),
            Pool::Heavy => cores(),
        }
    }

    fn semaphore(self) -> &'static Semaphore {
        static LIGHT: OnceLock<Semaphore> = OnceLock::new();
        static HEAVY: OnceLock<Semaphore> = OnceLock::new();
        let cell = match self {
            Pool::Light => &LIGHT,
            Pool::Heavy => &HEAVY,
        };
        cell.get_or_init(|| Semaphore::new(self.slots()))
    }
}

/// How much lower than the async workers' the computation threads' CPU priority is (nice steps).
const COMPUTE_NICENESS: i32 = 5;

/// Lowers the calling (blocking) thread's CPU priority once: when computations saturate the cores,
/// the async workers that accept connections, read requests and answer `/api/health` still get
/// the CPU first, and computations take whatever they leave (nearly all of it).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use std::cell::Cell;
        thread_local! { static LOWERED: Cell<bool> = const { Cell::new(false) }; }
        LOWERED.with(|lowered| {
            if !lowered.get() {
                lowered.set(true);
                // SAFETY: plain system calls on the calling thread (on Linux, `PRIO_PROCESS` with
                // id 0 is the calling thread); a failure leaves the priority as it was.
                unsafe {
                    let current = libc::getpriority(libc::PRIO_PROCESS, 0);
                    libc::setpriority(libc::PRIO_PROCESS, 0, (current + COMPUTE_NICENESS).min(19));
                }
            }
        });
    }
}

/// Runs `f` on a blocking thread once a slot of `pool` is free, and turns its result into a JSON
/// response (serialising on the blocking thread too, so large answers stay off the async workers).
pub async fn run<R: Into<Reply>>(
    pool: Pool,
    f: impl FnOnce() -> ApiResult<R> + Send + 'static,
) -> Response {
    let permit = match tokio::time::timeout(QUEUE_TIMEOUT, pool.semaphore().acquire()).await {
        Ok(Ok(permit)) => permit,
        Ok(Err(_)) => {
            return ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "shutting down".into(),
            }
            .into_response()
        }
        Err(_) => {
            let mut resp = ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: format!(
                    "busy: no computation slot freed within {} s; retry later",
                    QUEUE_TIMEOUT.as_secs()
                ),
            }
            .into_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            return resp;
        }
    };
    let result = tokio::task::spawn_blocking(move || {
        lower_priority();
        f().and_then(|r| r.into().into_bytes())
    })
    .await;
    drop(permit);
    match result {
        Ok(Ok(bytes)) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(_) => ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "computation failed".into(),
        }
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every heavy slot held by a computation that does not finish: a light computation still
    /// runs at once, and a further heavy one waits its turn.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn heavy_work_does_not_starve_light_work() {
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = std::sync::Arc::new(std::sync::Mutex::new(release_rx));
        let mut held = Vec::new();
        for _ in 0..Pool::Heavy.slots() {
            let rx = release_rx.clone();
            held.push(tokio::spawn(run(Pool::Heavy, move || {
                let _ = rx.lock().map(|r| r.recv());
                Ok(json!({"heavy": true}))
            })));
        }
        // Give the held computations time to take their slots.
        while Pool::Heavy.semaphore().available_permits() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let light = tokio::time::timeout(
            Duration::from_secs(5),
            run(Pool::Light, || Ok(json!({"light": true}))),
        )
        .await
        .expect("a light computation runs while every heavy slot is busy");
        assert_eq!(light.status(), StatusCode::OK);
        let queued = tokio::spawn(run(Pool::Heavy, || Ok(json!({"queued": true}))));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !queued.is_finished(),
            "a heavy computation waits for a slot"
        );
        for _ in &held {
            release_tx.send(()).unwrap();
        }
        for h in held {
            assert_eq!(h.await.unwrap().status(), StatusCode::OK);
        }
        assert_eq!(queued.await.unwrap().status(), StatusCode::OK);
    }
}
