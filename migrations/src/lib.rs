//! Database schema of Tessera, as sea-orm migrations. The same migrations run
//! on SQLite and PostgreSQL; they use only portable column types.
#![forbid(unsafe_code)]

pub use sea_orm_migration::prelude::*;

mod m0001_core;
mod m0002_install_token;
mod m0003_workspaces;
mod m0004_audit_at;
mod m0005_spent_tickets;
mod m0006_auth_failures;
mod m0007_credentials;
mod m0008_inbound_rotation;
mod m0009_service_secret_uses;

/// Applies Tessera's migrations in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_core::Migration),
            Box::new(m0002_install_token::Migration),
            Box::new(m0003_workspaces::Migration),
            Box::new(m0004_audit_at::Migration),
            Box::new(m0005_spent_tickets::Migration),
            Box::new(m0006_auth_failures::Migration),
            Box::new(m0007_credentials::Migration),
            Box::new(m0008_inbound_rotation::Migration),
            Box::new(m0009_service_secret_uses::Migration),
        ]
    }
}
