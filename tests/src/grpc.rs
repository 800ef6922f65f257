//! Calls of the credential service as the tests make them, and how their
//! failures are read.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tessera_client::Client;
use tessera_client::pb;
use tessera_client::tonic::{Code, Status};
use tokio::sync::Barrier;

use crate::TestServer;

/// How long one of the calls [`released_together`] makes may take.
const RACE_TIMEOUT: Duration = Duration::from_secs(30);

/// MintTicket for (`user_id`, `github`) with `purpose` and `ttl_seconds`;
/// the ticket.
pub async fn mint_ticket(
    client: &mut Client,
    user_id: &str,
    purpose: &str,
    ttl_seconds: u32,
) -> Result<String, Status> {
    let request = pb::MintTicketRequest {
        user_id: user_id.to_owned(),
        provider: "github".to_owned(),
        purpose: purpose.to_owned(),
        ttl_seconds,
    };
    Ok(client.mint_ticket(request).await?.into_inner().ticket)
}

/// ConsumeTicket; the identity of a successful call.
pub async fn consume_ticket(
    client: &mut Client,
    ticket: &str,
    purpose: &str,
) -> Result<pb::TicketIdentity, Status> {
    let request = pb::ConsumeTicketRequest {
        ticket: ticket.to_owned(),
        purpose: purpose.to_owned(),
    };
    let response = client.consume_ticket(request).await?.into_inner();
    Ok(response
        .identity
        .expect("identity in a successful response"))
}

/// GetInternalCredential; the credential.
pub async fn internal_credential(client: &mut Client) -> Result<String, Status> {
    let request = pb::GetInternalCredentialRequest {};
    let response = client.get_internal_credential(request).await?;
    Ok(response.into_inner().credential)
}

/// VerifyBearer of `token` on `client`; the principal.
pub async fn verify_bearer(client: &mut Client, token: &str) -> Result<pb::Principal, Status> {
    let request = pb::VerifyBearerRequest {
        token: token.to_owned(),
    };
    let response = client.verify_bearer(request).await?.into_inner();
    Ok(response
        .principal
        .expect("principal in a successful response"))
}

/// VerifyBearer of `token`, called on a new connection with `caller` as
/// bearer.
pub async fn verify_as(
    server: &TestServer,
    caller: &str,
    token: &str,
) -> Result<pb::Principal, Status> {
    verify_bearer(&mut server.client(Some(caller)).await, token).await
}

/// ProvisionWorkspace of `workspace_id` named `name`, by `admin`.
pub async fn provision_workspace(
    admin: &mut Client,
    workspace_id: &str,
    name: &str,
) -> Result<pb::ProvisionWorkspaceResponse, Status> {
    let request = pb::ProvisionWorkspaceRequest {
        workspace_id: workspace_id.to_owned(),
        name: name.to_owned(),
    };
    Ok(admin.provision_workspace(request).await?.into_inner())
}

/// RegisterWorkspace of `workspace_id`, as a runtime presenting `bearer`
/// (its registration or auth token) on a new connection.
pub async fn register_workspace(
    server: &TestServer,
    bearer: &str,
    workspace_id: &str,
    reissue_auth_token: bool,
) -> Result<pb::RegisterWorkspaceResponse, Status> {
    let mut runtime = server.client(Some(bearer)).await;
    let request = pb::RegisterWorkspaceRequest {
        workspace_id: workspace_id.to_owned(),
        reissue_auth_token,
        ..Default::default()
    };
    Ok(runtime.register_workspace(request).await?.into_inner())
}

/// ConsumeInstallToken: trades `install_token` for the first admin
/// (`email`, `name`) and its access token.
pub async fn consume_install_token(
    client: &mut Client,
    install_token: &str,
    email: &str,
    name: &str,
) -> Result<pb::ConsumeInstallTokenResponse, Status> {
    let request = pb::ConsumeInstallTokenRequest {
        install_token: install_token.to_owned(),
        admin_email: email.to_owned(),
        admin_name: name.to_owned(),
    };
    Ok(client.consume_install_token(request).await?.into_inner())
}

/// The call got no answer because the connection failed or closed under it:
/// UNAVAILABLE, or the client's own CANCELLED for a call it had queued when
/// the connection closed (tonic maps hyper's `Canceled` to CANCELLED, with
/// the transport error as source). It says the server is gone, not that the
/// server broke a call; a CANCELLED the server sent is not one.
pub fn transport_failed(status: &Status) -> bool {
    use std::error::Error as _;
    match status.code() {
        Code::Unavailable => true,
        Code::Cancelled => status
            .source()
            .is_some_and(|source| source.is::<tessera_client::tonic::transport::Error>()),
        _ => false,
    }
}

/// The outcome of the call is unknown: it failed on the connection or the
/// clock rather than with an answer (UNAVAILABLE, CANCELLED, UNKNOWN,
/// DEADLINE_EXCEEDED), so the server may or may not have applied it. A
/// ticket whose ConsumeTicket ended so may be spent or not.
pub fn outcome_unknown(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Cancelled | Code::Unknown | Code::DeadlineExceeded
    )
}

/// Makes `n` calls `call(i)` released together by a barrier, each on its own
/// task, and returns their results in order of `i`; panics when one takes
/// longer than 30 s.
pub async fn released_together<F, Fut, T>(n: usize, call: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let barrier = barrier.clone();
            let call = call(i);
            tokio::spawn(async move {
                barrier.wait().await;
                call.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for task in tasks {
        let result = tokio::time::timeout(RACE_TIMEOUT, task)
            .await
            .expect("a racing call finishes within 30 s")
            .expect("racing task");
        results.push(result);
    }
    results
}
