//! Encoded response sizes of the no-op and of Tessera for the same calls,
//! and whether VerifyBearer's answers are byte-for-byte the same (the
//! no-op's figures are only a baseline if they are).

use prost::Message;
use tessera_client::pb::{ConsumeTicketRequest, MintTicketRequest, VerifyBearerRequest};

/// One RPC's encoded response on both servers.
pub struct Size {
    pub rpc: String,
    pub noop: usize,
    pub tessera: usize,
    /// Byte-for-byte the same (`None` where answers hold fresh random
    /// tickets and cannot be).
    pub identical: Option<bool>,
}

/// The answers of one server, in the order of [`sizes`]' rows.
async fn answers(endpoint: &str, tokens: &[(&str, &str)]) -> Result<Vec<Vec<u8>>, String> {
    let mut client = crate::servers::grpc_client(endpoint, crate::SERVICE_SECRET).await?;
    let mut list = Vec::new();
    for (_, token) in tokens {
        let answer = client
            .verify_bearer(VerifyBearerRequest {
                token: (*token).to_owned(),
            })
            .await
            .map_err(|s| format!("VerifyBearer: {s}"))?
            .into_inner();
        list.push(answer.encode_to_vec());
    }
    let minted = client
        .mint_ticket(MintTicketRequest {
            user_id: "user-0000".to_owned(),
            provider: "github".to_owned(),
            purpose: "bench".to_owned(),
            ttl_seconds: 0,
        })
        .await
        .map_err(|s| format!("MintTicket: {s}"))?
        .into_inner();
    list.push(minted.encode_to_vec());
    let consumed = client
        .consume_ticket(ConsumeTicketRequest {
            ticket: minted.ticket,
            purpose: "bench".to_owned(),
        })
        .await
        .map_err(|s| format!("ConsumeTicket: {s}"))?
        .into_inner();
    list.push(consumed.encode_to_vec());
    Ok(list)
}

/// VerifyBearer of each `(name, token)`, then MintTicket and ConsumeTicket,
/// on the no-op and on Tessera.
pub async fn sizes(
    noop: &str,
    tessera: &str,
    tokens: &[(&str, &str)],
) -> Result<Vec<Size>, String> {
    let a = answers(noop, tokens).await?;
    let b = answers(tessera, tokens).await?;
    let names = tokens
        .iter()
        .map(|(name, _)| format!("VerifyBearer ({name})"))
        .chain(["MintTicket".to_owned(), "ConsumeTicket".to_owned()]);
    Ok(names
        .zip(a.iter().zip(&b))
        .enumerate()
        .map(|(i, (rpc, (x, y)))| Size {
            rpc,
            noop: x.len(),
            tessera: y.len(),
            identical: (i < tokens.len()).then_some(x == y),
        })
        .collect())
}
