//! Who a peer is, as the per-address bounds count it, and the places one
//! address may hold at once.
//!
//! An IPv6 host is usually given a whole /64: counted one address at a
//! time, it could use each of its addresses as a fresh share. So an IPv6
//! address also counts towards its /64, which may hold
//! [`ADDRESSES_PER_BLOCK`] addresses' worth (hosts sharing a /64, as pods
//! of one node may, do not squeeze each other out at once).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

/// Places one IPv6 /64 may hold, as a multiple of one address's share.
pub(crate) const ADDRESSES_PER_BLOCK: u32 = 4;

/// A peer's address as the per-address bounds know it: IPv4 also when it
/// comes IPv4-mapped, so the two forms share one count.
pub(crate) fn peer_address(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The smallest block a host is usually given: its [`peer_address`], or for
/// IPv6 its /64.
pub(crate) fn peer_block(ip: IpAddr) -> IpAddr {
    match peer_address(ip) {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

/// Places per peer address: what one address may hold at once (open
/// connections, public streams), so that one peer cannot take them all.
pub(crate) struct PeerPlaces {
    per_peer: u32,
    open: Mutex<Open>,
}

/// Places held, per address and per IPv6 /64.
#[derive(Default)]
struct Open {
    addresses: HashMap<IpAddr, u32>,
    blocks: HashMap<IpAddr, u32>,
}

impl PeerPlaces {
    /// At most `per_peer` places per address (and [`ADDRESSES_PER_BLOCK`]
    /// times as many per IPv6 /64).
    pub(crate) fn per_peer(per_peer: NonZeroU32) -> Arc<Self> {
        Arc::new(Self {
            per_peer: per_peer.get(),
            open: Mutex::new(Open::default()),
        })
    }

    /// A place for `peer` (see [`peer_address`]), or `None` when it holds
    /// its share. Peers whose address is unknown share one count.
    pub(crate) fn acquire(self: &Arc<Self>, peer: Option<IpAddr>) -> Option<Place> {
        let block_share = self.per_peer.saturating_mul(ADDRESSES_PER_BLOCK);
        self.acquire_within(peer, self.per_peer, block_share)
    }

    /// A place for `peer` only if it holds fewer than `most` places, its
    /// /64 included: for the last places of a bounded resource, kept for
    /// peers that hold few.
    pub(crate) fn acquire_if_holding_under(
        self: &Arc<Self>,
        peer: Option<IpAddr>,
        most: u32,
    ) -> Option<Place> {
        self.acquire_within(peer, most.min(self.per_peer), most)
    }

    fn acquire_within(
        self: &Arc<Self>,
        peer: Option<IpAddr>,
        per_address: u32,
        per_block: u32,
    ) -> Option<Place> {
        let address = peer.map_or(IpAddr::from([0, 0, 0, 0]), peer_address);
        let block = address.is_ipv6().then(|| peer_block(address));
        let mut open = self.open.lock().ok()?;
        let held = |map: &HashMap<IpAddr, u32>, key: IpAddr| map.get(&key).copied().unwrap_or(0);
        if held(&open.addresses, address) >= per_address
            || block.is_some_and(|block| held(&open.blocks, block) >= per_block)
        {
            return None;
        }
        *open.addresses.entry(address).or_insert(0) += 1;
        if let Some(block) = block {
            *open.blocks.entry(block).or_insert(0) += 1;
        }
        Some(Place {
            places: self.clone(),
            address,
            block,
        })
    }
}

/// One place of a peer; given back when dropped.
pub(crate) struct Place {
    places: Arc<PeerPlaces>,
    address: IpAddr,
    block: Option<IpAddr>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let Ok(mut open) = self.places.open.lock() else {
            return;
        };
        give_back(&mut open.addresses, self.address);
        if let Some(block) = self.block {
            give_back(&mut open.blocks, block);
        }
    }
}

/// One place less for `key`, forgotten once it holds none.
fn give_back(map: &mut HashMap<IpAddr, u32>, key: IpAddr) {
    if let Some(count) = map.get_mut(&key) {
        *count -= 1;
        if *count == 0 {
            map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::from([0; 4]))
    }

    fn places(n: u32) -> Arc<PeerPlaces> {
        PeerPlaces::per_peer(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
    }

    #[test]
    fn places_are_per_peer_and_given_back() {
        let limit = places(2);
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
        assert!(
            limit
                .open
                .lock()
                .is_ok_and(|open| open.addresses.is_empty())
        );
    }

    #[test]
    fn an_ipv4_mapped_address_is_its_ipv4_address() {
        assert_eq!(peer_address(ip("::ffff:10.0.0.7")), ip("10.0.0.7"));
        assert_eq!(peer_address(ip("2001:db8:1:2::1")), ip("2001:db8:1:2::1"));
        let limit = places(1);
        let _held = limit.acquire(Some(ip("10.0.0.7")));
        assert!(limit.acquire(Some(ip("::ffff:10.0.0.7"))).is_none());
    }

    #[test]
    fn an_ipv6_host_is_bounded_by_its_64_whatever_addresses_it_uses() {
        let limit = places(2);
        let held: Vec<_> = (1..=100)
            .filter_map(|i| limit.acquire(Some(ip(&format!("2001:db8:1:2::{i:x}")))))
            .collect();
        assert_eq!(
            held.len(),
            2 * ADDRESSES_PER_BLOCK as usize,
            "the /64's share"
        );
        let other = limit.acquire(Some(ip("2001:db8:1:3::1")));
        assert!(other.is_some(), "another /64 has its own");
        drop(held);
        let open = limit.open.lock().expect("not poisoned");
        assert_eq!(open.blocks.len(), 1, "only 2001:db8:1:3::/64 holds a place");
        drop(open);
        // The /64's own first address counts towards it like any other.
        let full: Vec<_> = (1..=8)
            .filter_map(|i| limit.acquire(Some(ip(&format!("2001:db8:1:4::{i:x}")))))
            .collect();
        assert_eq!(full.len(), 8);
        assert!(limit.acquire(Some(ip("2001:db8:1:4::"))).is_none());
    }

    #[test]
    fn the_last_places_go_only_to_peers_that_hold_few() {
        let limit = places(10);
        let heavy = Some(ip("10.0.0.1"));
        let _held: Vec<_> = (0..3).filter_map(|_| limit.acquire(heavy)).collect();
        assert!(limit.acquire_if_holding_under(heavy, 3).is_none());
        assert!(
            limit
                .acquire_if_holding_under(Some(ip("10.0.0.2")), 3)
                .is_some()
        );
        assert_eq!(peer_block(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(peer_block(ip("::ffff:10.0.0.7")), ip("10.0.0.7"));
    }
}
