//! Many consumers racing for one ticket.

use tessera_client::Client;
use tessera_client::pb;
use tessera_client::tonic::{Code, Status};

use crate::grpc::{consume_ticket, released_together};
use crate::secrets::assert_refused;

/// The reason of a ticket that is not (or no longer) on file.
pub const UNKNOWN: &str = "TICKET_UNKNOWN";
/// The reason of a ticket presented again after it was spent.
pub const REPLAYED: &str = "TICKET_REPLAYED";
/// The reason of a ticket presented after its expiry.
pub const EXPIRED: &str = "TICKET_EXPIRED";

/// `n` ConsumeTicket calls for `ticket` released together, call `i` on
/// `clients[i % clients.len()]` (each a separate connection, possibly to
/// separate servers). Returns each call's client index and result.
pub async fn consume_race(
    clients: &[Client],
    ticket: &str,
    purpose: &str,
    n: usize,
) -> Vec<(usize, Result<pb::TicketIdentity, Status>)> {
    released_together(n, |i| {
        let index = i % clients.len();
        let mut client = clients[index].clone();
        let (ticket, purpose) = (ticket.to_owned(), purpose.to_owned());
        async move { (index, consume_ticket(&mut client, &ticket, &purpose).await) }
    })
    .await
}

/// The ticket was refused as spent before (a replay).
pub fn is_replayed_ticket(status: &Status) -> bool {
    status.code() == Code::Unauthenticated
        && crate::error_reason(status).as_deref() == Some(REPLAYED)
}

/// Exactly one success (for `user_id`); every other call TICKET_REPLAYED
/// (it presented a spent ticket), naming at most 8 characters of `ticket`.
#[track_caller]
pub fn assert_exactly_once(
    results: &[(usize, Result<pb::TicketIdentity, Status>)],
    user_id: &str,
    ticket: &str,
) {
    let winners: Vec<_> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "{} of {} concurrent consumers succeeded",
        winners.len(),
        results.len()
    );
    assert_eq!(winners[0].user_id, user_id);
    assert!(!winners[0].internal);
    for status in results.iter().filter_map(|(_, r)| r.as_ref().err()) {
        assert_refused(status, Code::Unauthenticated, Some(REPLAYED), ticket);
    }
}

/// MintTicket with every field given; the whole response.
pub async fn try_mint(
    client: &mut Client,
    user_id: &str,
    provider: &str,
    purpose: &str,
    ttl_seconds: u32,
) -> Result<pb::MintTicketResponse, Status> {
    let request = pb::MintTicketRequest {
        user_id: user_id.to_owned(),
        provider: provider.to_owned(),
        purpose: purpose.to_owned(),
        ttl_seconds,
    };
    Ok(client.mint_ticket(request).await?.into_inner())
}

/// Mints a ticket for (`user_id`, "github"), which must succeed and carry
/// the ticket prefix.
pub async fn mint(client: &mut Client, user_id: &str, purpose: &str, ttl_seconds: u32) -> String {
    let ticket = try_mint(client, user_id, "github", purpose, ttl_seconds)
        .await
        .expect("mint")
        .ticket;
    assert!(ticket.starts_with("tsr_tkt_"), "ticket prefix");
    ticket
}

/// GetInternalCredential, which must succeed.
pub async fn internal(client: &mut Client) -> String {
    crate::grpc::internal_credential(client)
        .await
        .expect("internal credential")
}
