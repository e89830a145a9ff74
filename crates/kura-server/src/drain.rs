//! Answers to requests refused before their body was read (401, 403, 404, 413, 415) must
//! reach the client. Over HTTP/2 the server resets a stream whose request body it did not
//! read, and common clients (curl 7.88, Debian 12's) then report "Stream error in the
//! HTTP/2 framing layer" instead of the answer. So a body the handler left unread comes
//! back here and is read to its end (bounded by the body limit) before the answer goes.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};

/// A request body that, dropped before its end, hands itself back to [`drain_unread`].
struct Returning {
    inner: Option<Body>,
    back: Arc<Mutex<Option<Body>>>,
}

impl http_body::Body for Returning {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match self.inner.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(SizeHint::default, http_body::Body::size_hint)
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        if let Some(body) = self
            .inner
            .take()
            .filter(|body| !http_body::Body::is_end_stream(body))
            && let Ok(mut back) = self.back.lock()
        {
            *back = Some(body);
        }
    }
}

/// Middleware: reads what the handler left of the request body, up to `limit` bytes,
/// before answering. A body over the limit is cut off as before (the answer then says
/// 413 and the client is told by the reset).
pub async fn drain_unread(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let back = Arc::new(Mutex::new(None));
    let request = request.map(|body| {
        Body::new(Returning {
            inner: Some(body),
            back: Arc::clone(&back),
        })
    });
    let response = next.run(request).await;
    let unread = back.lock().ok().and_then(|mut slot| slot.take());
    if let Some(body) = unread {
        let _ = axum::body::to_bytes(body, limit).await;
    }
    response
}
