//! A server under a fault, and the checks that it came through unharmed.

use tessera_client::Client;
use tessera_client::pb::PrincipalKind;
use tessera_client::tonic::transport::Channel;
use tessera_client::tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::grpc::{consume_ticket, mint_ticket, verify_bearer};
use crate::raw::{self, RawCall};
use crate::{
    CREDENTIAL_SERVICE, ServerOptions, TestDatabase, TestServer, assert_status, scheduler_secret,
};

const CANARY_USER: &str = "canary-user";
const CANARY_PURPOSE: &str = "canary";

/// A server calling as `SCHEDULER`, a raw channel to it, and a canary
/// ticket minted before any fault: consumable exactly once afterwards, it
/// shows that nothing stored was lost or corrupted.
pub struct Fixture {
    /// The server's database.
    pub db: TestDatabase,
    /// The server.
    pub server: TestServer,
    /// A `SCHEDULER` client.
    pub client: Client,
    /// A plaintext channel for [`RawCall`]s.
    pub channel: Channel,
    canary: String,
}

impl Fixture {
    /// A fixture on a fresh SQLite file.
    pub async fn sqlite() -> Self {
        Self::on(TestDatabase::sqlite(), &[]).await
    }

    /// A fixture on `db`, the server started with extra environment `env`.
    pub async fn on(db: TestDatabase, env: &[(&str, &str)]) -> Self {
        let server = TestServer::start(&db, ServerOptions::scheduler().envs(env)).await;
        let mut client = server.scheduler().await;
        let canary = mint_ticket(&mut client, CANARY_USER, CANARY_PURPOSE, 300)
            .await
            .expect("mint the canary");
        let channel = raw::channel(&server.endpoint()).await;
        Fixture {
            db,
            server,
            client,
            channel,
            canary,
        }
    }

    /// Sends a raw call; the server must answer it (no transport failure)
    /// with HTTP 200, as gRPC does for every answer.
    pub async fn raw(&self, call: RawCall) -> Status {
        let response = call
            .send(&self.channel)
            .await
            .unwrap_or_else(|err| panic!("the server did not answer: {err}"));
        assert_eq!(response.http_status, 200, "gRPC answers with HTTP 200");
        response.status().clone()
    }

    /// Health SERVING and a successful authenticated call.
    pub async fn assert_up(&mut self, after: &str) {
        for service in ["", CREDENTIAL_SERVICE] {
            assert_eq!(
                self.server.health_status(service).await,
                Some(ServingStatus::Serving),
                "health of {service:?} after {after}"
            );
        }
        let principal = verify_bearer(&mut self.client, &scheduler_secret())
            .await
            .unwrap_or_else(|s| panic!("VerifyBearer after {after}: {s:?}"));
        assert_eq!(principal.kind(), PrincipalKind::Service);
    }

    /// Up, the canary consumable exactly once, a fresh ticket works, and the
    /// server never panicked.
    pub async fn assert_survived(mut self) {
        self.assert_up("the faults").await;
        let identity = consume_ticket(&mut self.client, &self.canary, CANARY_PURPOSE)
            .await
            .expect("the ticket minted before the faults is still consumable");
        assert_eq!(identity.user_id, CANARY_USER);
        assert_eq!(identity.provider, "github");
        let status = consume_ticket(&mut self.client, &self.canary, CANARY_PURPOSE)
            .await
            .expect_err("and only once");
        assert_status(&status, Code::Unauthenticated, Some("TICKET_REPLAYED"));
        let fresh = mint_ticket(&mut self.client, "after", "", 0)
            .await
            .expect("mint");
        consume_ticket(&mut self.client, &fresh, "")
            .await
            .expect("consume a fresh ticket");
        let stderr = self.server.stderr();
        assert!(
            !stderr.contains("panicked"),
            "the server panicked:\n{stderr}"
        );
        drop(self.db);
    }
}
