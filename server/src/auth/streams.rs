//! The long-lived streams anyone may open (health `Watch`, server
//! reflection) each hold one of their peer's places (see `crate::peers`)
//! until their response body is dropped, which is when they end or their
//! peer goes away.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};

use crate::peers::Place;

/// A response body that holds a [`Place`] for as long as it lives.
pub(crate) struct HoldingPlace<B> {
    body: B,
    _place: Place,
}

impl<B> HoldingPlace<B> {
    /// `body`, holding `place` until it is dropped.
    pub(crate) fn new(body: B, place: Place) -> Self {
        Self {
            body,
            _place: place,
        }
    }
}

impl<B: Body + Unpin> Body for HoldingPlace<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
