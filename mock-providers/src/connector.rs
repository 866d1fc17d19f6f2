//! An in-process connector: a hyper-util client built with it reaches the
//! mock providers through in-memory pipes instead of sockets. The request
//! still goes through real HTTP/1.1 framing on both sides, so a router under
//! benchmark runs its ordinary client code.
//!
//! ```no_run
//! # async fn demo(mocks: mock_providers::MockSet) {
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! let client: Client<_, http_body_util::Full<bytes::Bytes>> =
//!     Client::builder(TokioExecutor::new()).build(mocks.connector());
//! # }
//! ```

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::io::DuplexStream;

use crate::provider::Provider;

/// Buffer size of each in-memory pipe.
const PIPE_BYTES: usize = 64 * 1024;

/// Connects to providers by the authority (`host:port`) of the request URI.
#[derive(Debug, Clone, Default)]
pub struct InProcessConnector {
    routes: Arc<HashMap<String, Arc<Provider>>>,
}

/// No provider answers at that authority.
#[derive(Debug, thiserror::Error)]
#[error("no in-process provider at `{0}`")]
pub struct NoProvider(String);

impl InProcessConnector {
    pub fn new(routes: impl IntoIterator<Item = (String, Arc<Provider>)>) -> Self {
        InProcessConnector {
            routes: Arc::new(routes.into_iter().collect()),
        }
    }

    /// Opens an in-memory connection to the provider at `authority`.
    pub fn connect(&self, authority: &str) -> Result<InProcessStream, NoProvider> {
        let provider = self
            .routes
            .get(authority)
            .cloned()
            .ok_or_else(|| NoProvider(authority.to_string()))?;
        let (client, server) = tokio::io::duplex(PIPE_BYTES);
        tokio::spawn(async move {
            let service = service_fn(move |req| Arc::clone(&provider).handle(req, None));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(server), service)
                .await;
        });
        Ok(InProcessStream {
            inner: TokioIo::new(client),
        })
    }
}

impl tower_service::Service<Uri> for InProcessConnector {
    type Response = InProcessStream;
    type Error = NoProvider;
    type Future = Ready<Result<InProcessStream, NoProvider>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), NoProvider>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let authority = uri.authority().map(|a| a.as_str().to_string()).unwrap_or_default();
        ready(self.connect(&authority))
    }
}

/// The client end of an in-memory connection.
#[derive(Debug)]
pub struct InProcessStream {
    inner: TokioIo<DuplexStream>,
}

impl Connection for InProcessStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl Read for InProcessStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl Write for InProcessStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
