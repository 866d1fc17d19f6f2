//! Calling upstream providers: a pooled keep-alive HTTP/1.1 client over a
//! pluggable connector (TCP, or an in-process one for benchmarks), building
//! each dialect's request and classifying each answer's head.
//!
//! The connector is boxed so that the router never depends on who supplies
//! it: `Connector::tcp()` for real sockets, `Connector::from_service(svc)`
//! for any `tower::Service<Uri>` whose streams hyper can speak over (the mock
//! providers' in-process connector is one).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioExecutor;

use super::config::{Dialect, Upstream};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A byte stream hyper can speak HTTP/1.1 over.
pub trait Io: Read + Write + Send + Unpin + 'static {}
impl<T: Read + Write + Send + Unpin + 'static> Io for T {}

/// A connection of any kind.
pub struct BoxedIo(Box<dyn Io>);

impl Connection for BoxedIo {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl Read for BoxedIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl Write for BoxedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

type ConnectFn = dyn Fn(Uri) -> BoxFuture<Result<BoxedIo, BoxError>> + Send + Sync;

/// How the router reaches its upstreams.
#[derive(Clone)]
pub struct Connector(Arc<ConnectFn>);

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connector")
    }
}

/// How long a TCP connect to an upstream may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Connector {
    /// Real TCP, with no-delay on.
    pub fn tcp() -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        Self::from_service(http)
    }

    /// Any connector service, such as an in-process one.
    pub fn from_service<S>(service: S) -> Self
    where
        S: tower_service::Service<Uri> + Clone + Send + Sync + 'static,
        S::Response: Read + Write + Send + Unpin + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
    {
        Connector(Arc::new(move |uri| {
            let mut service = service.clone();
            Box::pin(async move {
                std::future::poll_fn(|cx| service.poll_ready(cx))
                    .await
                    .map_err(Into::into)?;
                let io = service.call(uri).await.map_err(Into::into)?;
                Ok(BoxedIo(Box::new(io)))
            })
        }))
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = BoxedIo;
    type Error = BoxError;
    type Future = BoxFuture<Result<BoxedIo, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        (self.0)(uri)
    }
}

/// The pooled client every upstream request goes through.
pub type HttpClient = Client<Connector, Full<Bytes>>;

/// A keep-alive pool sized for many concurrent streams to few hosts.
pub fn client(connector: Connector) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(4096)
        .build(connector)
}

/// The header that carries the harness's request id, forwarded upstream.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-gauntlet-request-id");
/// The Anthropic API version the router speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Builds the upstream request for one attempt.
pub fn request(
    upstream: &Upstream,
    api_key: &str,
    body: Bytes,
    request_id: Option<&HeaderValue>,
) -> Result<Request<Full<Bytes>>, http::Error> {
    let (path, auth) = match upstream.dialect {
        Dialect::OpenAi => ("/v1/chat/completions", (AUTHORIZATION, format!("Bearer {api_key}"))),
        Dialect::Anthropic => (
            "/v1/messages",
            (HeaderName::from_static("x-api-key"), api_key.to_string()),
        ),
    };
    let mut builder = Request::post(format!("{}{path}", upstream.base_url))
        .header(CONTENT_TYPE, "application/json")
        .header(auth.0, auth.1);
    if upstream.dialect == Dialect::Anthropic {
        builder = builder.header("anthropic-version", ANTHROPIC_VERSION);
    }
    if let Some(id) = request_id {
        builder = builder.header(REQUEST_ID, id.clone());
    }
    builder.body(Full::new(body))
}

/// What the head of an upstream answer says.
#[derive(Debug)]
pub enum Head {
    /// 200: the body follows.
    Ok(Response<Incoming>),
    /// An error status, with its `Retry-After` if any and its body (to read,
    /// so the connection can go back to the pool).
    Failed {
        status: StatusCode,
        retry_after: Option<Duration>,
        body: Incoming,
    },
}

/// Reads `retry-after-ms` (OpenAI's, exact) or `retry-after` (seconds, or an
/// HTTP date which the router treats as one second). A value too long for
/// a `Duration` (`retry-after: 1e300`) is the longest one; the retry
/// policy clamps it to a day.
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let seconds = |secs: f64| Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX);
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(seconds(ms / 1000.0));
    }
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim();
    match value.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => Some(seconds(secs)),
        Ok(_) => None,
        Err(_) => Some(Duration::from_secs(1)),
    }
}

/// Classifies an answer by its head.
pub fn head(response: Response<Incoming>) -> Head {
    let status = response.status();
    if status == StatusCode::OK {
        Head::Ok(response)
    } else {
        let retry_after = retry_after(response.headers());
        Head::Failed {
            status,
            retry_after,
            body: response.into_body(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_prefers_the_exact_header() {
        let mut headers = http::HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));
        headers.clear();
        headers.insert("retry-after", HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(1)));
    }

    /// An upstream's `retry-after: 1e300` once panicked the router.
    #[test]
    fn a_retry_after_too_long_for_a_duration_is_the_longest() {
        for (name, value) in [("retry-after", "1e300"), ("retry-after-ms", "1e300")] {
            let mut headers = http::HeaderMap::new();
            headers.insert(name, HeaderValue::from_static(value));
            assert_eq!(retry_after(&headers), Some(Duration::MAX), "{name}: {value}");
        }
    }

    #[test]
    fn requests_speak_each_dialect() {
        let upstream = Upstream {
            name: "a".into(),
            dialect: Dialect::Anthropic,
            base_url: "http://127.0.0.1:9".into(),
            api_key: "k".into(),
        };
        let req = request(&upstream, "sk-1", Bytes::from_static(b"{}"), None).unwrap();
        assert_eq!(req.uri(), "http://127.0.0.1:9/v1/messages");
        assert_eq!(req.headers()["x-api-key"], "sk-1");
        assert_eq!(req.headers()["anthropic-version"], ANTHROPIC_VERSION);
        let openai = Upstream {
            dialect: Dialect::OpenAi,
            ..upstream
        };
        let req = request(&openai, "sk-2", Bytes::new(), Some(&HeaderValue::from_static("r1"))).unwrap();
        assert_eq!(req.uri(), "http://127.0.0.1:9/v1/chat/completions");
        assert_eq!(req.headers()[AUTHORIZATION], "Bearer sk-2");
        assert_eq!(req.headers()[REQUEST_ID], "r1");
    }
}
