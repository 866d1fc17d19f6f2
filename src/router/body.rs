//! The body of every router response: whole bytes, or a stream relayed
//! chunk by chunk from a task.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// The body of every router response: whole, or a relayed stream.
#[derive(Debug)]
pub enum RouterBody {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl From<Bytes> for RouterBody {
    fn from(bytes: Bytes) -> Self {
        RouterBody::Full(Some(bytes))
    }
}

impl Body for RouterBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            RouterBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            RouterBody::Stream(rx) => rx.poll_recv(cx).map(|chunk| chunk.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, RouterBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RouterBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            RouterBody::Full(None) => SizeHint::with_exact(0),
            RouterBody::Stream(_) => SizeHint::default(),
        }
    }
}
