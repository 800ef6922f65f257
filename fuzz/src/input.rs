//! The layout of an `rpc` input:
//!
//! | byte | meaning |
//! | --- | --- |
//! | 0 | the method: an index into [`crate::methods::paths`], modulo their number |
//! | 1 | bits 0–2: the [`Bearer`]; bit 3: send the rest unframed |
//! | 2.. | the request message (protobuf), framed as one gRPC message |
//!
//! With [`Bearer::FromInput`], the message's first line (up to `\n`) is the
//! whole `authorization` header value and the rest is the message. Unframed,
//! the bytes are the HTTP/2 request body as is, so the gRPC framing itself
//! (compression flag, length) is fuzzed too.

/// Which `authorization` header an input sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bearer {
    /// No header.
    None,
    /// The configured service secret (a `SERVICE` admin).
    Service,
    /// The first administrator's user access token (a `USER` admin).
    User,
    /// The provisioned workspace's registration token.
    WorkspaceRegistration,
    /// That workspace's current auth token.
    WorkspaceAuth,
    /// The server's internal credential.
    Internal,
    /// A header value taken from the input.
    FromInput,
    /// The service secret, in two `authorization` headers.
    Twice,
}

impl Bearer {
    const ALL: [Bearer; 8] = [
        Bearer::None,
        Bearer::Service,
        Bearer::User,
        Bearer::WorkspaceRegistration,
        Bearer::WorkspaceAuth,
        Bearer::Internal,
        Bearer::FromInput,
        Bearer::Twice,
    ];

    fn code(self) -> u8 {
        let index = Self::ALL.iter().position(|bearer| *bearer == self);
        index.and_then(|i| u8::try_from(i).ok()).unwrap_or(0)
    }
}

/// Bit of byte 1 that sends the body without gRPC framing.
const UNFRAMED: u8 = 0b1000;

/// One decoded `rpc` input.
#[derive(Debug)]
pub struct Input<'a> {
    /// Index into the method paths.
    pub method: usize,
    /// The credential sent.
    pub bearer: Bearer,
    /// The raw header value, for [`Bearer::FromInput`].
    pub header: &'a [u8],
    /// Whether `body` is sent as the HTTP/2 body as is.
    pub unframed: bool,
    /// The request message (or, unframed, the whole body).
    pub body: &'a [u8],
}

impl<'a> Input<'a> {
    /// Splits `data` as the layout says; `None` when it is shorter than the
    /// two leading bytes.
    pub fn parse(data: &'a [u8], methods: usize) -> Option<Self> {
        let (&[method, flags], rest) = data.split_first_chunk::<2>()?;
        let bearer = Bearer::ALL[usize::from(flags & 0b111)];
        let (header, body) = match bearer {
            Bearer::FromInput => match rest.iter().position(|&b| b == b'\n') {
                Some(end) => (&rest[..end], &rest[end + 1..]),
                None => (rest, &[][..]),
            },
            _ => (&[][..], rest),
        };
        Some(Self {
            method: usize::from(method) % methods.max(1),
            bearer,
            header,
            unframed: flags & UNFRAMED != 0,
            body,
        })
    }
}

/// The framed input calling method `method` with `bearer` and `message`.
pub fn encode(method: u8, bearer: Bearer, message: &[u8]) -> Vec<u8> {
    let mut data = vec![method, bearer.code()];
    data.extend_from_slice(message);
    data
}

/// Like [`encode`] with [`Bearer::FromInput`] and the header value `header`.
pub fn encode_with_header(method: u8, header: &[u8], message: &[u8]) -> Vec<u8> {
    let mut data = vec![method, Bearer::FromInput.code()];
    data.extend_from_slice(header);
    data.push(b'\n');
    data.extend_from_slice(message);
    data
}

/// `message` as one uncompressed gRPC message: flag 0, big-endian length.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
    let mut framed = Vec::with_capacity(message.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    framed
}
