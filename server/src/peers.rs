//! Who a peer is, as the per-address bounds count it, and the places one
//! address may hold at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

/// A peer's address as the per-address bounds know it: IPv4 also when it
/// comes IPv4-mapped, so the two forms share one count.
pub(crate) fn peer_address(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Places per peer address: what one address may hold at once (open
/// connections, public streams), so that one peer cannot take them all.
pub(crate) struct PeerPlaces {
    per_peer: u32,
    open: Mutex<HashMap<IpAddr, u32>>,
}

impl PeerPlaces {
    /// At most `per_peer` places per address.
    pub(crate) fn per_peer(per_peer: NonZeroU32) -> Arc<Self> {
        Arc::new(Self {
            per_peer: per_peer.get(),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A place for `peer` (see [`peer_address`]), or `None` when it holds
    /// its share. Peers whose address is unknown share one count.
    pub(crate) fn acquire(self: &Arc<Self>, peer: Option<IpAddr>) -> Option<Place> {
        let peer = peer.map_or(IpAddr::from([0, 0, 0, 0]), peer_address);
        let mut open = self.open.lock().ok()?;
        let count = open.entry(peer).or_insert(0);
        if *count >= self.per_peer {
            return None;
        }
        *count += 1;
        Some(Place {
            places: self.clone(),
            peer,
        })
    }
}

/// One place of a peer; given back when dropped.
pub(crate) struct Place {
    places: Arc<PeerPlaces>,
    peer: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        let Ok(mut open) = self.places.open.lock() else {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_per_peer_and_given_back() {
        let limit = PeerPlaces::per_peer(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
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

    #[test]
    fn an_ipv4_mapped_address_is_its_ipv4_address() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(peer_address(ip("::ffff:10.0.0.7")), ip("10.0.0.7"));
        assert_eq!(peer_address(ip("2001:db8:1:2::1")), ip("2001:db8:1:2::1"));
        let limit = PeerPlaces::per_peer(NonZeroU32::MIN);
        let _held = limit.acquire(Some(ip("10.0.0.7")));
        assert!(limit.acquire(Some(ip("::ffff:10.0.0.7"))).is_none());
    }
}
