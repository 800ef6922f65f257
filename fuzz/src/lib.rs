//! Shared code of Tessera's fuzz targets (`fuzz_targets/`): how an `rpc`
//! input is laid out ([`input`], [`wire`], [`methods`]), the in-process
//! server it is sent to ([`harness`], [`database`]), what every answer must
//! look like ([`exchange`]) and what the server must never log
//! ([`errors`]), and the seed inputs of each target ([`seeds`]).
//!
//! The server runs inside the fuzzing process, not as a child `tessera`
//! process: libFuzzer's coverage feedback only sees code that runs in its
//! own process, and a panic anywhere in it (libfuzzer-sys aborts on any
//! panic, on any thread) is then a crash with the input that caused it.

pub mod database;
pub mod errors;
pub mod exchange;
pub mod harness;
pub mod input;
pub mod methods;
pub mod seeds;
pub mod wire;
