//! heartsuite-heartland: connectors to Heartland's two APIs.
//!
//! - [`gpapi`]: GP-API (payments gateway): access token, sale/authorize/capture/refund/reversal,
//!   transaction reports, settlement transactions and deposits, batch close. Every money-moving
//!   call carries a deterministic `x-gp-idempotency`, and a `DUPLICATE_ACTION` answer resolves to
//!   the earlier transaction, so a retried effect never moves money twice.
//! - [`retail`]: Heartland Retail (POS): items, inventory, customers, tickets, payments,
//!   locations, webhooks.
//! - [`signature`]: `X-GP-Signature` checks for GP-API `status_url` notifications.
//! - [`events`]: Retail webhook classification and the funded-deposit poller.
//!
//! Both clients work against the real services, a simulator or a test fake by changing only the
//! base URL and credentials. All failures are [`Error`]s that convert into
//! `heartsuite_core::Failure` with a class, system (`gpapi`/`retail`), code and retry delay.

pub mod error;
pub mod events;
pub mod gpapi;
pub mod retail;
pub mod signature;
mod wire;

pub use error::{Error, System};
pub use events::{
    DepositWithTransactions, PollOptions, RetailWebhookEvent, classify_retail_webhook,
    poll_funded_deposits, poll_funded_deposits_with,
};
pub use gpapi::{CardData, GpApiClient, GpApiConfig, PaymentMethod, PaymentRequest};
pub use retail::{ListQuery, RetailClient, RetailConfig};
pub use signature::{gp_signature, verify_gp_signature};
