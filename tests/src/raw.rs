//! Raw gRPC calls for fault tests: hand-made message frames, arbitrary
//! header bytes, and the status read straight from the HTTP/2 response, so a
//! test can send what no generated client would.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tessera_client::tonic::Status;
use tessera_client::tonic::body::Body;
use tessera_client::tonic::transport::Channel;
use tower::ServiceExt;

/// Path prefix of the credential service's methods.
pub const CREDENTIALS: &str = "/tessera.v1.CredentialService/";

/// One uncompressed, length-prefixed gRPC message frame around `payload`.
pub fn frame(payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(5 + payload.len());
    buf.put_u8(0);
    buf.put_u32(u32::try_from(payload.len()).expect("frame length fits u32"));
    buf.put_slice(payload);
    buf.freeze()
}

/// What the server answered to a raw call.
#[derive(Debug)]
pub struct RawResponse {
    /// The HTTP status (200 for every gRPC answer, error or not).
    pub http_status: StatusCode,
    /// `grpc-status`/`grpc-message`, from the headers (trailers-only
    /// response) or the trailers; `None` when the server sent neither.
    pub status: Option<Status>,
    /// The payloads of the response's message frames.
    pub messages: Vec<Bytes>,
}

impl RawResponse {
    /// The gRPC status; panics when the server sent none.
    #[track_caller]
    pub fn status(&self) -> &Status {
        self.status
            .as_ref()
            .unwrap_or_else(|| panic!("no grpc-status in the response: {self:?}"))
    }
}

/// A raw gRPC request: `method` of the credential service (or a full path
/// starting with `/`), the given extra headers, and `body` sent as is.
#[derive(Clone, Debug)]
pub struct RawCall {
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

impl RawCall {
    /// A call of `method` (e.g. `"MintTicket"`, or a full `/pkg.Svc/Method`
    /// path) whose body is `body`, exactly (use [`frame`] for a message).
    pub fn new(method: &str, body: Bytes) -> Self {
        let path = if method.starts_with('/') {
            method.to_owned()
        } else {
            format!("{CREDENTIALS}{method}")
        };
        Self {
            path,
            headers: Vec::new(),
            body,
        }
    }

    /// Adds a header; `value` may hold any bytes HTTP/2 can carry,
    /// including ones that are not UTF-8.
    pub fn header(mut self, name: &'static str, value: HeaderValue) -> Self {
        self.headers.push((HeaderName::from_static(name), value));
        self
    }

    /// Adds `authorization` with exactly these bytes.
    pub fn authorization(self, value: &[u8]) -> Self {
        let value = HeaderValue::from_bytes(value).expect("a header value HTTP/2 can carry");
        self.header("authorization", value)
    }

    /// Sends the call on `channel` and reads the whole response.
    pub async fn send(self, channel: &Channel) -> Result<RawResponse, String> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.path.as_str())
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Body::new(Full::new(self.body)))
            .map_err(|err| format!("request: {err}"))?;
        for (name, value) in self.headers {
            request.headers_mut().append(name, value);
        }
        let response = channel
            .clone()
            .oneshot(request)
            .await
            .map_err(|err| format!("transport: {err:?}"))?;
        let (parts, body) = response.into_parts();
        let collected = body
            .collect()
            .await
            .map_err(|err| format!("response body: {err:?}"))?;
        let trailers: Option<HeaderMap> = collected.trailers().cloned();
        let data = collected.to_bytes();
        let status = Status::from_header_map(&parts.headers)
            .or_else(|| trailers.as_ref().and_then(Status::from_header_map));
        Ok(RawResponse {
            http_status: parts.status,
            status,
            messages: split_frames(data)?,
        })
    }
}

/// The payloads of consecutive uncompressed message frames.
fn split_frames(mut data: Bytes) -> Result<Vec<Bytes>, String> {
    let mut messages = Vec::new();
    while data.has_remaining() {
        if data.remaining() < 5 {
            return Err(format!("truncated frame header: {data:?}"));
        }
        let compressed = data.get_u8();
        let len = data.get_u32() as usize;
        if compressed != 0 {
            return Err("compressed response frame".into());
        }
        if data.remaining() < len {
            return Err(format!("truncated frame: want {len}, have {}", data.len()));
        }
        messages.push(data.split_to(len));
    }
    Ok(messages)
}

/// A plaintext channel to `endpoint` (`http://host:port`).
pub async fn channel(endpoint: &str) -> Channel {
    Channel::from_shared(endpoint.to_owned())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect")
}
