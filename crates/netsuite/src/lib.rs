//! heartsuite-netsuite: the NetSuite connector.
//!
//! - Auth: TBA (OAuth 1.0a HMAC-SHA256, [`oauth1`]) or OAuth 2.0 client credentials with an ES256
//!   JWT assertion and a single-flight token cache ([`oauth2`]).
//! - Record service (create, get, update, delete, upsert by external id, transform, list) and
//!   SuiteQL with paging, on [`NetSuiteClient`]; typed record shapes in [`records`].
//! - Every failure is an [`Error`] that maps onto heartsuite's error classes (`Failure`).
//! - Governance: a per-account AIMD [`Governor`], optionally backed by cross-process leases
//!   ([`PermitStore`]).
//! - Change polling over SuiteQL with a durable cursor: [`poll_changes`].
//!
//! Only the account id, base URL and credentials differ between the sandbox and a real account.

pub mod client;
pub mod error;
pub mod governor;
pub mod oauth1;
pub mod oauth2;
pub mod poll;
pub mod records;

pub use client::{
    Auth, Concurrency, Config, GovernanceLimits, ListItem, ListPage, NetSuiteClient, SuiteQlPage, account_slug,
    default_base_url,
};
pub use error::Error;
pub use governor::{Governor, LocalPermitStore, Outcome, Permit, PermitStore};
pub use oauth1::{NonceSource, OsNonce};
pub use poll::{Cursor, poll_changes};
pub use records::*;
