//! What [`super::serve`] does about slow and idle clients, beside hyper's
//! header timeout: the deadline of a request body, the bound on connections
//! served at once, and waiting out a failed accept. The limits are the
//! config's [`ConnectionLimits`](super::config::ConnectionLimits).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use super::upstream::BoxError;

/// The request body did not arrive whole within the body timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body did not arrive within {} ms", .0.as_millis())]
pub struct BodyTimeout(pub Duration);

/// A request body that must arrive whole by a deadline set when its head
/// arrived; past it, reading fails with [`BodyTimeout`]. A deadline, not an
/// idle timeout: a trickle of bytes does not extend it. The timer is made
/// only if the body is not already there when first read.
#[derive(Debug)]
pub struct DeadlineBody<B> {
    inner: B,
    timeout: Duration,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<B> DeadlineBody<B> {
    pub fn new(inner: B, timeout: Duration) -> Self {
        DeadlineBody {
            inner,
            timeout,
            deadline: Instant::now() + timeout,
            sleep: None,
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The connections served at once: a slot is taken before accepting and
/// given back when the connection ends.
#[derive(Debug)]
pub struct Slots {
    max: usize,
    free: Arc<Semaphore>,
    /// Signalled whenever a connection ends (for an accept that failed).
    ended: Arc<Notify>,
}

/// One connection's slot, given back on drop.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    ended: Arc<Notify>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.ended.notify_one();
    }
}

impl Slots {
    pub fn new(max: usize) -> Self {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        Slots {
            max,
            free: Arc::new(Semaphore::new(max)),
            ended: Arc::new(Notify::new()),
        }
    }

    /// Waits for a free slot.
    pub async fn take(&self) -> Option<Slot> {
        let permit = Arc::clone(&self.free).acquire_owned().await.ok()?;
        Some(Slot {
            _permit: permit,
            ended: Arc::clone(&self.ended),
        })
    }

    /// Connections being served.
    pub fn open(&self) -> usize {
        self.max.saturating_sub(self.free.available_permits())
    }
}

/// The listen backlog `serve` asks for (the kernel caps it at
/// `net.core.somaxconn`): the connections that wait, without a descriptor,
/// while `max-connections` are served. The standard library's 128 would have
/// the kernel drop further connection attempts, which clients retry only
/// after a second or more.
pub const LISTEN_BACKLOG: i32 = 1024;

/// Asks the kernel for a [`LISTEN_BACKLOG`] on an already listening socket
/// (Linux and the BSDs apply a second `listen`); on failure the socket
/// keeps the backlog it has.
pub fn widen_backlog(listener: &tokio::net::TcpListener) {
    let _ = socket2::SockRef::from(listener).listen(LISTEN_BACKLOG);
}

/// How often a failing accept is reported on stderr at most.
const REPORT_EVERY: Duration = Duration::from_secs(10);
/// The longest wait before accepting again after the process ran out of
/// something (descriptors, memory) when no connection ends meanwhile.
const RETRY_AFTER: Duration = Duration::from_millis(50);

/// What the accept loop does after `accept` failed.
#[derive(Debug, Default)]
pub struct AcceptErrors {
    reported: Option<Instant>,
    unreported: u64,
}

impl AcceptErrors {
    /// After a failed accept: a connection that broke before it was taken
    /// is forgotten at once; otherwise (out of descriptors, EMFILE/ENFILE,
    /// or memory) the pending connections stay in the backlog, and the loop
    /// waits until one of its connections ends, or `RETRY_AFTER` (50 ms), then
    /// tries again, saying so on stderr at most every `REPORT_EVERY` (10 s).
    pub async fn wait(&mut self, e: &std::io::Error, slots: &Slots) {
        use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted, WouldBlock};
        if matches!(
            e.kind(),
            ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted | WouldBlock
        ) {
            return;
        }
        if self.reported.is_none_or(|at| at.elapsed() >= REPORT_EVERY) {
            let more = match self.unreported {
                0 => String::new(),
                n => format!(" ({n} more failures since the last report)"),
            };
            eprintln!(
                "warning: router: cannot accept a connection: {e}; {} connections open; retrying as they close{more}",
                slots.open()
            );
            self.reported = Some(Instant::now());
            self.unreported = 0;
        } else {
            self.unreported += 1;
        }
        let _ = tokio::time::timeout(RETRY_AFTER, slots.ended.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    /// A body that sends a few bytes and then nothing, forever.
    struct Stalled(Option<Bytes>);

    impl Body for Stalled {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::convert::Infallible>>> {
            match self.get_mut().0.take() {
                Some(bytes) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
                None => Poll::Pending,
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_is_there_is_read_and_a_stalled_one_times_out() {
        let whole = DeadlineBody::new(Full::new(Bytes::from_static(b"hello")), Duration::from_secs(1));
        assert_eq!(whole.collect().await.unwrap().to_bytes(), "hello");

        let started = Instant::now();
        let stalled = DeadlineBody::new(Stalled(Some(Bytes::from_static(b"{\"mo"))), Duration::from_secs(2));
        let e = stalled.collect().await.unwrap_err();
        assert_eq!(
            e.downcast_ref::<BodyTimeout>(),
            Some(&BodyTimeout(Duration::from_secs(2)))
        );
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert_eq!(e.to_string(), "the request body did not arrive within 2000 ms");
    }

    #[tokio::test]
    async fn slots_bound_the_connections_and_come_back_on_drop() {
        let slots = Slots::new(2);
        let a = slots.take().await.unwrap();
        let _b = slots.take().await.unwrap();
        assert_eq!(slots.open(), 2);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), slots.take())
                .await
                .is_err()
        );
        drop(a);
        assert_eq!(slots.open(), 1);
        assert!(slots.take().await.is_some());
    }
}
