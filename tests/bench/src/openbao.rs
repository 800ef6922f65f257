//! OpenBao (the open-source Vault), started by the harness on loopback for
//! a side-by-side comparison: its response-wrapping tokens (single use,
//! TTL-bound: the closest thing it has to a ticket) against ticket pairs,
//! and its token lookup against VerifyBearer.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// How long OpenBao may take to listen and become the active node.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The body every wrap sends: a ticket's identity.
const WRAPPED: &str = r#"{"user_id":"user-0000","provider":"github","purpose":"bench"}"#;

/// OpenBao's storage backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Storage {
    /// Integrated storage: every write goes through the raft log in a Bolt
    /// file, fsync'd before it is answered.
    Raft,
    /// Nothing persists.
    Inmem,
}

/// A running, initialised and unsealed OpenBao; killed when dropped.
pub struct Bao {
    child: Child,
    pub storage: Storage,
    pub addr: SocketAddr,
    /// The root token (the harness's caller for wrap and lookup).
    pub root: String,
    /// A token created once with `auth/token/create`, for lookups.
    pub user_token: String,
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port free right now.
fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

impl Bao {
    /// Starts `bao server` in `dir`, initialises it (one key share,
    /// threshold one), unseals it and waits until it is the active node.
    pub async fn start(bin: &Path, dir: &Path, storage: Storage) -> Result<Bao, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let storage_block = match storage {
            Storage::Raft => format!(
                "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"bench\"\n}}\n\
                 cluster_addr = \"http://127.0.0.1:{}\"\n",
                dir.display(),
                free_port()?
            ),
            Storage::Inmem => "storage \"inmem\" {}\n".to_owned(),
        };
        let config = format!(
            "{storage_block}listener \"tcp\" {{\n  address = \"{addr}\"\n  tls_disable = true\n}}\n\
             api_addr = \"http://{addr}\"\ndisable_mlock = true\nui = false\n"
        );
        let config_path = dir.join("config.hcl");
        std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.join("server.log")).map_err(|e| e.to_string())?;
        let child = Command::new(bin)
            .arg("server")
            .arg(format!("-config={}", config_path.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let mut bao = Bao {
            child,
            storage,
            addr,
            root: String::new(),
            user_token: String::new(),
        };
        bao.initialise(dir).await?;
        Ok(bao)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn initialise(&mut self, dir: &Path) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let log = || std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        while tokio::net::TcpStream::connect(self.addr).await.is_err() {
            if Instant::now() > deadline || self.child.try_wait().ok().flatten().is_some() {
                return Err(format!("OpenBao never listened; its log:\n{}", log()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let init = call(
            self.addr,
            "PUT",
            "/v1/sys/init",
            &[],
            json!({"secret_shares": 1, "secret_threshold": 1}).to_string(),
        )
        .await?
        .1;
        let key = init["keys"][0]
            .as_str()
            .ok_or("sys/init: no key")?
            .to_owned();
        self.root = init["root_token"]
            .as_str()
            .ok_or("sys/init: no root token")?
            .to_owned();
        call(
            self.addr,
            "PUT",
            "/v1/sys/unseal",
            &[],
            json!({ "key": key }).to_string(),
        )
        .await?;
        // 200 once this node is the unsealed active one (429 standby, 503 sealed).
        loop {
            let (status, _) = call(self.addr, "GET", "/v1/sys/health", &[], String::new()).await?;
            if status == 200 {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "OpenBao never active ({status}); its log:\n{}",
                    log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let root = [("X-Vault-Token", self.root.as_str())];
        let (status, created) = call(
            self.addr,
            "POST",
            "/v1/auth/token/create",
            &root,
            json!({"ttl": "1h", "policies": ["default"]}).to_string(),
        )
        .await?;
        self.user_token = created["auth"]["client_token"]
            .as_str()
            .ok_or_else(|| format!("auth/token/create ({status}): {created}"))?
            .to_owned();
        Ok(())
    }

    /// The body file of `auth/token/lookup` for h2load.
    pub fn lookup_body(&self, dir: &Path) -> Result<PathBuf, String> {
        let path = dir.join(format!("lookup-{:?}.json", self.storage));
        std::fs::write(&path, json!({ "token": self.user_token }).to_string())
            .map_err(|e| e.to_string())?;
        Ok(path)
    }

    /// A keep-alive HTTP/1.1 connection for wrap + unwrap pairs.
    pub async fn connect(&self) -> Result<BaoConn, String> {
        Ok(BaoConn {
            sender: tokio::sync::Mutex::new(handshake(self.addr).await?),
            root: self.root.clone(),
        })
    }
}

/// One HTTP/1.1 connection to OpenBao (one request in flight at a time).
pub struct BaoConn {
    sender: tokio::sync::Mutex<SendRequest<Full<Bytes>>>,
    root: String,
}

impl BaoConn {
    /// `sys/wrapping/wrap` then `sys/wrapping/unwrap` of the token it
    /// returned; the latency of the unwrap.
    pub async fn pair(&self) -> Result<Duration, String> {
        let mut sender = self.sender.lock().await;
        let headers = [
            ("X-Vault-Token", self.root.as_str()),
            ("X-Vault-Wrap-TTL", "30s"),
        ];
        let (status, wrapped) = send(
            &mut sender,
            "POST",
            "/v1/sys/wrapping/wrap",
            &headers,
            WRAPPED.to_owned(),
        )
        .await?;
        let token = wrapped["wrap_info"]["token"]
            .as_str()
            .ok_or_else(|| format!("wrap ({status}): {wrapped}"))?
            .to_owned();
        let second = Instant::now();
        let headers = [("X-Vault-Token", token.as_str())];
        let (status, unwrapped) = send(
            &mut sender,
            "POST",
            "/v1/sys/wrapping/unwrap",
            &headers,
            String::new(),
        )
        .await?;
        if unwrapped["data"]["provider"] != "github" {
            return Err(format!("unwrap ({status}): {unwrapped}"));
        }
        Ok(second.elapsed())
    }
}

async fn handshake(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("OpenBao {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("OpenBao {addr}: {e}"))?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One request on a fresh connection (set-up calls).
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: String,
) -> Result<(u16, Value), String> {
    let mut sender = handshake(addr).await?;
    send(&mut sender, method, path, headers, body).await
}

/// One request on `sender`: the status and the JSON body (`Null` if none).
async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: String,
) -> Result<(u16, Value), String> {
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    sender.ready().await.map_err(|e| format!("{path}: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("{path}: {e}"))?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{path}: {e}"))?
        .to_bytes();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).map_err(|e| format!("{path} ({status}): {e}"))?
    };
    Ok((status, value))
}
