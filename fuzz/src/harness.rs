//! The server the `rpc` target calls: the real `tessera serve`, started
//! once per fuzzing process on `127.0.0.1:0` over a fresh database
//! ([`database`]), with the credentials an input may present already issued.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tessera_client::pb;
use tessera_client::token::{self, TokenKind};
use tessera_client::{BearerInterceptor, Client, Secret};
use tessera_server::store::{SeaStore, Store};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tonic::transport::{Channel, Endpoint};

use crate::{database, errors, methods};

/// The variable configuring the fuzzing service's secret.
const SERVICE_VAR: &str = "TESSERA_SERVICE_TOKEN_FUZZ";
/// The workspace provisioned at start.
pub const WORKSPACE_ID: &str = "fuzz-workspace";
/// How long the server may take to migrate and answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The in-process server and what a call needs.
pub struct Harness {
    /// Runs the server and the calls.
    pub runtime: Runtime,
    /// One HTTP/2 connection to it, shared by every call.
    pub channel: Channel,
    /// The methods an input may call ([`methods::paths`]).
    pub paths: Vec<String>,
    /// The credentials, refreshed from answers that rotate them.
    pub credentials: Mutex<Credentials>,
    /// Whether each call's method, credential and status are printed
    /// (`TESSERA_FUZZ_TRACE` set), to see how far inputs get.
    pub trace: bool,
}

/// Live credentials and ids an input may present or name.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// The service secret (`$svc`).
    pub service: String,
    /// The first administrator's access token (`$usr`).
    pub user: String,
    /// The workspace's registration token (`$wsr`).
    pub workspace_registration: String,
    /// The workspace's current auth token (`$wsa`).
    pub workspace_auth: String,
    /// The server's internal credential (`$int`).
    pub internal: String,
    /// The last ticket minted (`$tkt`).
    pub ticket: String,
}

impl Credentials {
    /// What placeholder `value` stands for, if it is one.
    pub fn placeholder(&self, value: &[u8]) -> Option<Vec<u8>> {
        let live = match value {
            b"$svc" => &self.service,
            b"$usr" => &self.user,
            b"$wsr" => &self.workspace_registration,
            b"$wsa" => &self.workspace_auth,
            b"$int" => &self.internal,
            b"$tkt" => &self.ticket,
            b"$wid" => WORKSPACE_ID,
            _ => return None,
        };
        Some(live.as_bytes().to_vec())
    }

    /// The secrets no error message may ever contain.
    pub fn secrets(&self) -> [&str; 6] {
        [
            &self.service,
            &self.user,
            &self.workspace_registration,
            &self.workspace_auth,
            &self.internal,
            &self.ticket,
        ]
    }
}

/// The harness of this process, started on first use.
pub fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(start)
}

fn start() -> Harness {
    let service = token::generate(TokenKind::Service).expose().to_owned();
    // SAFETY: runs once, from libFuzzer's initialisation on the main thread,
    // before libFuzzer or this crate start any other thread that could read
    // the environment concurrently.
    unsafe { std::env::set_var(SERVICE_VAR, &service) };
    errors::panic_on_error_logs();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|err| panic!("no tokio runtime: {err}"));
    let (channel, credentials) = runtime.block_on(async {
        let url = database::fresh().await;
        serve(&url, service).await
    });
    Harness {
        runtime,
        channel,
        paths: methods::paths(),
        credentials: Mutex::new(credentials),
        trace: std::env::var_os("TESSERA_FUZZ_TRACE").is_some(),
    }
}

/// Starts the server on `url` and issues the credentials.
async fn serve(url: &str, service: String) -> (Channel, Credentials) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|err| panic!("cannot listen: {err}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|err| panic!("no local address: {err}"));
    // The throttles would soon answer every unauthenticated input with
    // RESOURCE_EXHAUSTED, before its message is read; the background tasks
    // would add coverage unrelated to the input.
    let never = "3600000";
    let flags = [
        "--database-url",
        url,
        "--anonymous-rate-per-minute",
        "4294967295",
        "--auth-failures-per-minute",
        "4294967295",
        "--db-check-interval-ms",
        never,
        "--reaper-interval-ms",
        never,
        "--heartbeat-interval-ms",
        never,
    ]
    .map(String::from);
    let install = file_install_token(url).await;
    tokio::spawn(async move {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let result =
            tessera_server::cli::serve_in_process(&flags, listener, std::future::pending()).await;
        panic!("the server stopped: {result:?}");
    });
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap_or_else(|err| panic!("bad endpoint: {err}"))
        .connect_lazy();
    let credentials = issue(&channel, &install, service).await;
    (channel, credentials)
}

/// Waits for the server, then issues one credential of each kind.
async fn issue(channel: &Channel, install: &Secret, service: String) -> Credentials {
    let client = |secret: &str| {
        let bearer = BearerInterceptor::new(&Secret::new(secret))
            .unwrap_or_else(|err| panic!("bad bearer: {err}"));
        Client::from_channel(channel.clone(), bearer)
    };
    let anonymous = Client::from_channel(channel.clone(), BearerInterceptor::unauthenticated());
    wait_until_serving(&anonymous).await;
    let user = first_admin(&anonymous, install).await;
    let admin = client(&service);
    let provisioned = ok(admin
        .clone()
        .provision_workspace(pb::ProvisionWorkspaceRequest {
            workspace_id: WORKSPACE_ID.into(),
            name: "Fuzz".into(),
        })
        .await);
    let registration = provisioned.registration_token;
    let registered = ok(client(&registration)
        .register_workspace(pb::RegisterWorkspaceRequest {
            workspace_id: WORKSPACE_ID.into(),
            reissue_auth_token: false,
            ..Default::default()
        })
        .await);
    let internal = ok(admin
        .clone()
        .get_internal_credential(pb::GetInternalCredentialRequest {})
        .await);
    let ticket = ok(admin
        .clone()
        .mint_ticket(pb::MintTicketRequest {
            user_id: "fuzz-user".into(),
            provider: "fuzz".into(),
            ..Default::default()
        })
        .await);
    Credentials {
        service,
        user,
        workspace_registration: registration,
        workspace_auth: registered.auth_token.unwrap_or_default(),
        internal: internal.credential,
        ticket: ticket.ticket,
    }
}

async fn wait_until_serving(client: &Client) {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let status = client
            .clone()
            .get_install_token_status(pb::GetInstallTokenStatusRequest {})
            .await;
        match status {
            Ok(_) => return,
            Err(status) if Instant::now() > deadline => {
                panic!("the server never answered: {status}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Migrates the database and files an install token of our own before the
/// server opens it: the server then mints none at boot, so no banner with a
/// token is printed into the fuzzer's output.
async fn file_install_token(url: &str) -> Secret {
    let install = token::generate(TokenKind::Install);
    let store = SeaStore::connect(url)
        .await
        .unwrap_or_else(|err| panic!("cannot open the database: {err}"));
    store
        .migrate()
        .await
        .unwrap_or_else(|err| panic!("cannot migrate the database: {err}"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let filed = store
        .insert_install_token(&token::sha256_hex(install.expose()), now)
        .await
        .unwrap_or_else(|err| panic!("cannot file the install token: {err}"));
    assert!(filed, "a fresh database had an install token");
    store.close().await;
    install
}

/// Redeems the install token for the first administrator's access token.
async fn first_admin(anonymous: &Client, install: &Secret) -> String {
    let consumed = ok(anonymous
        .clone()
        .consume_install_token(pb::ConsumeInstallTokenRequest {
            install_token: install.expose().to_owned(),
            admin_email: "fuzz-admin@example.com".into(),
            admin_name: "Fuzz Admin".into(),
        })
        .await);
    consumed.admin_token
}

fn ok<T>(result: Result<tonic::Response<T>, tonic::Status>) -> T {
    match result {
        Ok(response) => response.into_inner(),
        Err(status) => panic!("setup call failed: {status}"),
    }
}
