//! Property: whatever the order of rotations, registrations, restarts (with
//! or without the configs directory), clock jumps and platform refreshes,
//! the platform's forward call with the secret it holds is accepted by the
//! runtime's check (the one `InboundAuthLayer::from_files` applies, reading
//! the runtime's files) after every step.
//!
//! The platform is modelled as it must behave: it re-reads
//! `GetInboundSecret` at least once per grace period, and right after a
//! forced rotation (which ends a grace on purpose: a platform still holding
//! the secret it replaced is refused, as intended after a leak).
#![cfg(unix)]

mod common;

use std::time::Duration;

use common::{FakeTessera, GRACE, REGISTRATION_TOKEN, WORKSPACE};
use proptest::prelude::*;
use tessera_client::workspace::{RegisterError, WorkspaceFiles, register_and_persist};
use tessera_client::{Client, Secret};

#[derive(Clone, Debug)]
enum Event {
    Rotate { force: bool },
    Register,
    RestartWiped,
    RestartKeepingDir,
    TimePasses(Duration),
    PlatformRefresh,
}

fn event() -> impl Strategy<Value = Event> {
    let grace = GRACE.as_secs();
    prop_oneof![
        2 => any::<bool>().prop_map(|force| Event::Rotate { force }),
        3 => Just(Event::Register),
        1 => Just(Event::RestartWiped),
        1 => Just(Event::RestartKeepingDir),
        2 => (1..grace).prop_map(|s| Event::TimePasses(Duration::from_secs(s))),
        1 => (grace..3 * grace).prop_map(|s| Event::TimePasses(Duration::from_secs(s))),
        1 => Just(Event::PlatformRefresh),
    ]
}

struct World {
    fake: FakeTessera,
    client: Client,
    tmp: tempfile::TempDir,
    /// A new directory per wiped restart.
    dirs: u32,
    files: WorkspaceFiles,
    /// What the platform presents, and when (fake clock) it read it.
    platform: (String, std::time::SystemTime),
}

impl World {
    async fn new() -> Self {
        let fake = FakeTessera::new();
        let client = fake.serve(None).await;
        let tmp = tempfile::tempdir().unwrap();
        let files = WorkspaceFiles::in_dir(tmp.path().join("0"));
        let platform = (fake.platform_secret().unwrap(), fake.now());
        let world = Self {
            fake,
            client,
            tmp,
            dirs: 0,
            files,
            platform,
        };
        // A runtime registers when it starts.
        world.register().await;
        world
    }

    async fn register(&self) {
        let token = Secret::new(REGISTRATION_TOKEN);
        match register_and_persist(&self.client, WORKSPACE, &token, &self.files).await {
            Ok(_) => {}
            Err(RegisterError::Persist { source, .. }) => panic!("{source}"),
            Err(err) => panic!("{err}"),
        }
    }

    fn refresh_platform(&mut self) {
        self.platform = (self.fake.platform_secret().unwrap(), self.fake.now());
    }

    fn forward_call_accepted(&self) -> bool {
        let header = format!("Bearer {}", self.platform.0);
        self.files
            .inbound_secrets()
            .authorizes_at(Some(&header), self.fake.now())
    }

    async fn apply(&mut self, event: &Event) -> Result<(), TestCaseError> {
        match event {
            Event::Rotate { force } => {
                // Refused during a grace unless forced: nothing happens.
                if self.fake.rotate(*force).is_ok() && *force {
                    self.refresh_platform();
                }
            }
            Event::Register => self.register().await,
            Event::RestartWiped => {
                self.dirs += 1;
                self.files = WorkspaceFiles::in_dir(self.tmp.path().join(self.dirs.to_string()));
                self.register().await;
            }
            Event::RestartKeepingDir => {
                // A new process: new handles, so nothing cached survives.
                let dir = self.files.dir().to_owned();
                self.files = WorkspaceFiles::in_dir(self.tmp.path().join("unused"));
                self.files = WorkspaceFiles::in_dir(dir);
                self.register().await;
            }
            Event::TimePasses(total) => {
                // In slices, refreshing the platform before its copy is a
                // grace period old, and checking at every slice.
                let mut left = *total;
                while !left.is_zero() {
                    let age = self
                        .fake
                        .now()
                        .duration_since(self.platform.1)
                        .unwrap_or_default();
                    let room = GRACE.saturating_sub(age + Duration::from_secs(1));
                    if room.is_zero() {
                        self.refresh_platform();
                        continue;
                    }
                    let slice = room.min(left);
                    self.fake.advance(slice);
                    left -= slice;
                    prop_assert!(
                        self.forward_call_accepted(),
                        "refused {:?} into the jump",
                        *total - left
                    );
                }
            }
            Event::PlatformRefresh => self.refresh_platform(),
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_platform_is_never_refused(events in prop::collection::vec(event(), 1..24)) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut world = World::new().await;
            prop_assert!(world.forward_call_accepted(), "refused after the first registration");
            for (step, event) in events.iter().enumerate() {
                world.apply(event).await?;
                prop_assert!(
                    world.forward_call_accepted(),
                    "forward call refused after step {} ({:?})", step, event
                );
                // And the check is no open door.
                let header = "Bearer tsr_wsi_never_issued";
                prop_assert!(!world.files.inbound_secrets().authorizes_at(Some(header), world.fake.now()));
            }
            Ok(())
        })?;
    }
}
