//! A bound on the long-lived streams anyone may open (health `Watch`,
//! server reflection): per peer address, at most a configured number at
//! once. A stream holds its place until its response body is dropped, which
//! is when it ends or its peer goes away.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};

/// Open streams per peer address.
pub(crate) struct StreamLimit {
    per_peer: u32,
    open: Mutex<HashMap<IpAddr, u32>>,
}

impl StreamLimit {
    /// At most `per_peer` streams per address.
    pub(crate) fn per_peer(per_peer: NonZeroU32) -> Arc<Self> {
        Arc::new(Self {
            per_peer: per_peer.get(),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A place for one more stream from `peer`, or `None` when it holds
    /// its share. A peer whose address is unknown shares one place count.
    pub(crate) fn acquire(self: &Arc<Self>, peer: Option<IpAddr>) -> Option<StreamPlace> {
        let peer = peer.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let mut open = self.open.lock().ok()?;
        let count = open.entry(peer).or_insert(0);
        if *count >= self.per_peer {
            return None;
        }
        *count += 1;
        Some(StreamPlace {
            limit: self.clone(),
            peer,
        })
    }
}

/// One stream's place; given back when dropped.
pub(crate) struct StreamPlace {
    limit: Arc<StreamLimit>,
    peer: IpAddr,
}

impl Drop for StreamPlace {
    fn drop(&mut self) {
        let Ok(mut open) = self.limit.open.lock() else {
            return;
        };
        if let Some(count) = open.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.peer);
            }
        }
    }
}

/// A response body that holds a [`StreamPlace`] for as long as it lives.
pub(crate) struct HoldingPlace<B> {
    body: B,
    _place: StreamPlace,
}

impl<B> HoldingPlace<B> {
    /// `body`, holding `place` until it is dropped.
    pub(crate) fn new(body: B, place: StreamPlace) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_per_peer_and_given_back() {
        let limit = StreamLimit::per_peer(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        let first = limit.acquire(a);
        let second = limit.acquire(a);
        assert!(first.is_some() && second.is_some());
        assert!(limit.acquire(a).is_none(), "a third place for one peer");
        assert!(limit.acquire(b).is_some(), "another peer has its own");
        drop(first);
        assert!(limit.acquire(a).is_some(), "a dropped place is given back");
        drop(second);
        assert!(limit.open.lock().is_ok_and(|open| open.is_empty()));
    }
}
