//! Every error the server logs is a finding: it logs at `ERROR` only what
//! went wrong on its side (a store write that failed, an audit entry lost),
//! often where the caller still gets an answer, so the answer alone would
//! not show it.

use std::fmt::Write;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Makes every `ERROR` event of this process a panic (a crash for
/// libFuzzer, with the input that caused it); other events are not even
/// built. Does nothing if a subscriber is installed already.
pub fn panic_on_error_logs() {
    let subscriber =
        tracing_subscriber::registry().with(PanicOnError.with_filter(LevelFilter::ERROR));
    let _ = tracing::subscriber::set_global_default(subscriber);
}

struct PanicOnError;

impl<S: Subscriber> Layer<S> for PanicOnError {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if *event.metadata().level() == Level::ERROR {
            let mut fields = Fields(String::new());
            event.record(&mut fields);
            panic!(
                "the server logged an error ({}):{}",
                event.metadata().target(),
                fields.0
            );
        }
    }
}

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}
