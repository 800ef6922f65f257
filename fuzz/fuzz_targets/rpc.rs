//! Arbitrary bytes as the request of any unary RPC, with any credential,
//! through the real server (auth layer, policy, adapters, domain, SQLite):
//! see `tessera_fuzz::input` for the layout and `tessera_fuzz::exchange`
//! for what every answer must look like.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_fuzz::harness::harness;
use tessera_fuzz::input::Input;
use tessera_fuzz::seeds;

fuzz_target!(
    init: {
        seeds::write_if_asked(seeds::rpc_seeds);
        harness();
    },
    |data: &[u8]| {
        let harness = harness();
        if let Some(input) = Input::parse(data, harness.paths.len()) {
            harness.exchange(&input);
        }
    }
);
