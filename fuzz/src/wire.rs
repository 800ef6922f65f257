//! Placeholders in request messages: a top-level string field whose value
//! is exactly a placeholder (`$svc`, `$tkt`, …) is replaced, before the
//! message is sent, by the live credential or id it names. Seeds use them
//! so that the fuzzer starts from calls that succeed (a VerifyBearer of a
//! real token, a ConsumeTicket of a real ticket) and explores from there;
//! tokens written into a committed file would be unknown to the next run's
//! fresh database.

/// The placeholders, each the value of a string field in a seed.
pub const PLACEHOLDERS: [&str; 7] = ["$svc", "$usr", "$wsr", "$wsa", "$int", "$tkt", "$wid"];

/// `message` with every top-level length-delimited field whose value
/// `replace` knows swapped for its replacement; `None` when `message` is
/// not a well-formed sequence of fields or nothing was replaced (the caller
/// then sends it unchanged).
pub fn substitute(message: &[u8], replace: impl Fn(&[u8]) -> Option<Vec<u8>>) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(message.len());
    let mut rest = message;
    let mut replaced = false;
    while !rest.is_empty() {
        let (key, after_key) = varint(rest)?;
        out.extend_from_slice(&rest[..rest.len() - after_key.len()]);
        rest = after_key;
        let len = match key & 0b111 {
            0 => rest.len() - varint(rest)?.1.len(),
            1 => 8,
            5 => 4,
            2 => {
                let (len, after_len) = varint(rest)?;
                let len = usize::try_from(len).ok()?;
                let value = after_len.get(..len)?;
                rest = &after_len[len..];
                match replace(value) {
                    Some(new) => {
                        replaced = true;
                        put_varint(&mut out, new.len() as u64);
                        out.extend_from_slice(&new);
                    }
                    None => {
                        put_varint(&mut out, len as u64);
                        out.extend_from_slice(value);
                    }
                }
                continue;
            }
            _ => return None,
        };
        out.extend_from_slice(rest.get(..len)?);
        rest = &rest[len..];
    }
    replaced.then_some(out)
}

/// A base-128 varint at the start of `bytes`, and what follows it.
fn varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}
