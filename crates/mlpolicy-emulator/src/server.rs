//! Connections: the accept loop and HTTP/1.1 over hyper, with the limits a server on a shared
//! machine needs. At most [`Limits::max_connections`] connections are open at once (further
//! clients wait in the kernel's accept queue, holding no descriptor of ours); a connection
//! that has not sent a complete request head within [`Limits::header_read_timeout`] (idle
//! keep-alive connections included: the timer runs from the end of the previous answer) is
//! closed by hyper; and one that moves no byte either way for [`Limits::idle_timeout`] while
//! no request is being handled (a body that stops half-way, an answer nobody reads) is closed
//! here, through [`IdleIo`], a wrapper that stamps every read and write.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, watch};

use crate::Shared;

/// Connection limits and timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// Time to receive a complete request head, counted from the connection's start or the
    /// end of its previous answer (so it is also the keep-alive idle limit).
    pub header_read_timeout: Duration,
    /// Time without a byte read or written, while no request is being handled, after which
    /// the connection is closed.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl Limits {
    /// Refuses limits the server cannot run with.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=65_536).contains(&self.max_connections) {
            return Err(format!("the connection limit must be 1 to 65536, not {}", self.max_connections));
        }
        for (name, d) in [("header read timeout", self.header_read_timeout), ("idle timeout", self.idle_timeout)] {
            if d.is_zero() || d > Duration::from_secs(3600) {
                return Err(format!(
                    "the {name} must be more than 0 and at most 1h, not {}",
                    humantime::format_duration(d)
                ));
            }
        }
        Ok(())
    }
}

/// Accepts connections until shutdown, at most `limits.max_connections` at once.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.changed() => return,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, _)) = accepted else {
            // Out of descriptors or a connection reset before accept: do not spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let shared = Arc::clone(&shared);
        let stop = shutdown.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => serve_connection(stream, shared, limits, stop).await,
                Some(acceptor) => {
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await
                    {
                        serve_connection(stream, shared, limits, stop).await;
                    }
                }
            }
        });
    }
}

/// Serves HTTP/1.1 on one connection until it closes, times out, a fault drops it, or shutdown.
async fn serve_connection<S>(stream: S, shared: Arc<Shared>, limits: Limits, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let kill = Arc::new(Notify::new());
    let activity = Arc::new(Activity::new());
    let io = IdleIo { inner: stream, activity: Arc::clone(&activity) };
    let conn_kill = Arc::clone(&kill);
    let conn_activity = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let shared = Arc::clone(&shared);
        let kill = Arc::clone(&conn_kill);
        let activity = Arc::clone(&conn_activity);
        async move { Ok::<_, Infallible>(crate::serve(shared, kill, activity, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(TokioIo::new(io), service);
    tokio::select! {
        _ = conn => {}
        () = kill.notified() => {}
        _ = stop.changed() => {}
        () = activity.idle_for(limits.idle_timeout) => {}
    }
}

/// When a connection last moved a byte, and how many of its requests are being handled.
pub(crate) struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    busy: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity { start: Instant::now(), last_ms: AtomicU64::new(0), busy: AtomicUsize::new(0) }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_ms.store(self.elapsed_ms(), Ordering::Relaxed);
    }

    /// Marks a request as being handled until the guard drops: a handler that sleeps (latency,
    /// long-running operations) is not an idle connection.
    pub(crate) fn busy(self: &Arc<Self>) -> BusyGuard {
        self.busy.fetch_add(1, Ordering::SeqCst);
        BusyGuard(Arc::clone(self))
    }

    /// Resolves once the connection has moved no byte for `limit` while no request was being
    /// handled.
    async fn idle_for(&self, limit: Duration) {
        let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        loop {
            let quiet = self.elapsed_ms().saturating_sub(self.last_ms.load(Ordering::Relaxed));
            let wait = if self.busy.load(Ordering::SeqCst) > 0 {
                limit_ms
            } else if quiet >= limit_ms {
                return;
            } else {
                limit_ms - quiet
            };
            tokio::time::sleep(Duration::from_millis(wait.max(5))).await;
        }
    }
}

/// See [`Activity::busy`].
pub(crate) struct BusyGuard(Arc<Activity>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A stream that records the time of every read and write in its [`Activity`].
struct IdleIo<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleIo<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
