//! Peers that misbehave or are watched at the socket level: counting a
//! channel's TCP connections, waiting for the server to close a socket, and
//! reading a process's CPU time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tessera_client::tonic::transport::{Channel, Endpoint, Uri};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;

/// `/proc/<pid>/stat` counts CPU time in these ticks a second (`USER_HZ`,
/// 100 on every Linux architecture that matters here).
const TICKS_PER_SECOND: f64 = 100.0;

/// A plaintext channel to `addr` and the number of TCP connections it has
/// opened so far: a second connection means the server closed the first.
pub async fn counting_channel(addr: SocketAddr) -> (Channel, Arc<AtomicUsize>) {
    let connects = Arc::new(AtomicUsize::new(0));
    let counter = connects.clone();
    let connector = tower::service_fn(move |_: Uri| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move { TcpStream::connect(addr).await.map(TokioIo::new) }
    });
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_with_connector(connector)
        .await
        .expect("connect");
    (channel, connects)
}

/// True when the server closes `stream` (end of stream or an error) within
/// `within`; whatever it sends before is read and ignored.
pub async fn closed_within(mut stream: impl AsyncRead + Unpin, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let until_closed = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, until_closed).await.is_ok()
}

/// CPU time (user and system) process `pid` has used, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/pid/stat");
    // The command name, in parentheses, may hold spaces: count after it.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).expect("stat");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime) of stat(5); fields[0] is field 3.
    let ticks = |index: usize| fields[index - 3].parse::<f64>().expect("ticks");
    (ticks(14) + ticks(15)) / TICKS_PER_SECOND
}
