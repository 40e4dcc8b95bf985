//! Heartland Retail resources. Money fields are exact decimals (`rust_decimal`), as Retail sends
//! JSON numbers like `19.99`; `RetailClient::money` turns them into `Money`. Boolean fields keep
//! Retail's `?` names on the wire (`active?`).

use crate::wire::{decimal_opt, id, id_opt};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    #[serde(deserialize_with = "id::deserialize")]
    pub id: i64,
    /// The SKU.
    #[serde(default)]
    pub public_id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, with = "decimal_opt")]
    pub price: Option<Decimal>,
    #[serde(default, with = "decimal_opt")]
    pub cost: Option<Decimal>,
    #[serde(rename = "active?", default)]
    pub active: Option<bool>,
    #[serde(rename = "track_inventory?", default)]
    pub track_inventory: Option<bool>,
    #[serde(default, deserialize_with = "id_opt::deserialize")]
    pub primary_vendor_id: Option<i64>,
    #[serde(default)]
    pub custom: Option<Map<String, Value>>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// Fields to create or update an item; `None` fields are left out of the request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemInput {
    pub public_id: Option<String>,
    pub description: Option<String>,
    pub price: Option<heartsuite_core::Money>,
    pub cost: Option<heartsuite_core::Money>,
    pub active: Option<bool>,
    pub track_inventory: Option<bool>,
    pub primary_vendor_id: Option<i64>,
    pub custom: Option<Map<String, Value>>,
}

/// One row of `/inventory/values` grouped by item and location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InventoryValue {
    #[serde(deserialize_with = "id::deserialize")]
    pub item_id: i64,
    #[serde(default, deserialize_with = "id_opt::deserialize")]
    pub location_id: Option<i64>,
    #[serde(default, with = "decimal_opt")]
    pub qty: Option<Decimal>,
    #[serde(default, with = "decimal_opt")]
    pub qty_on_hand: Option<Decimal>,
    #[serde(default, with = "decimal_opt")]
    pub qty_available: Option<Decimal>,
    #[serde(default, with = "decimal_opt")]
    pub qty_committed: Option<Decimal>,
    #[serde(default, with = "decimal_opt")]
    pub qty_on_po: Option<Decimal>,
    #[serde(default, with = "decimal_opt")]
    pub qty_in_transit: Option<Decimal>,
    #[serde(default, with = "decimal_opt")]
    pub unit_cost: Option<Decimal>,
}

/// An inventory adjustment reason (`/reason_codes/inventory_adjustment_reasons`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdjustmentReason {
    #[serde(deserialize_with = "id::deserialize")]
    pub id: i64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(rename = "active?", default)]
    pub active: Option<bool>,
}

/// One line of an inventory adjustment set: `qty` is the signed change, not the new level.
#[derive(Debug, Clone, PartialEq)]
pub struct AdjustmentLine {
    pub item_id: i64,
    pub qty: Decimal,
    pub unit_cost: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    #[serde(deserialize_with = "id::deserialize")]
    pub id: i64,
    #[serde(default)]
    pub public_id: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub custom: Option<Map<String, Value>>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    /// Filled by `RetailClient::get_customer_with_addresses`; not a Retail field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Address>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CustomerInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Address {
    #[serde(
        default,
        deserialize_with = "id_opt::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// A sales ticket (`type` `Ticket`) or a return (`type` `Return`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    #[serde(deserialize_with = "id::deserialize")]
    pub id: i64,
    #[serde(default)]
    pub public_id: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(rename = "completed?", default)]
    pub completed: Option<bool>,
    #[serde(rename = "voided?", default)]
    pub voided: Option<bool>,
    #[serde(default, with = "decimal_opt")]
    pub total: Option<Decimal>,
    #[serde(default, with = "decimal_opt")]
    pub total_tax: Option<Decimal>,
    #[serde(default, with = "decimal_opt")]
    pub total_discounts: Option<Decimal>,
    #[serde(default, with = "decimal_opt")]
    pub balance: Option<Decimal>,
    #[serde(default, deserialize_with = "id_opt::deserialize")]
    pub customer_id: Option<i64>,
    #[serde(default)]
    pub customer_name: Option<String>,
    #[serde(default, deserialize_with = "id_opt::deserialize")]
    pub source_location_id: Option<i64>,
    #[serde(default, deserialize_with = "id_opt::deserialize")]
    pub station_id: Option<i64>,
    #[serde(default)]
    pub sales_rep: Option<String>,
    #[serde(default, deserialize_with = "id_opt::deserialize")]
    pub parent_transaction_id: Option<i64>,
    /// UTC.
    #[serde(default)]
    pub completed_at: Option<String>,
    /// Store-local wall time.
    #[serde(default)]
    pub local_completed_at: Option<String>,
}

impl Ticket {
    pub fn is_return(&self) -> bool {
        self.kind.as_deref() == Some("Return")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketLine {
    #[serde(default, deserialize_with = "id_opt::deserialize")]
    pub id: Option<i64>,
    /// `ItemLine`, `TaxLine`, ...
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "id_opt::deserialize")]
    pub item_id: Option<i64>,
    #[serde(default, with = "decimal_opt")]
    pub qty: Option<Decimal>,
    #[serde(default, with = "decimal_opt")]
    pub value: Option<Decimal>,
    #[serde(default, with = "decimal_opt")]
    pub original_unit_price: Option<Decimal>,
    #[serde(default, with = "decimal_opt")]
    pub adjusted_unit_price: Option<Decimal>,
    #[serde(default, with = "decimal_opt")]
    pub unit_cost: Option<Decimal>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    #[serde(deserialize_with = "id::deserialize")]
    pub id: i64,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, with = "decimal_opt")]
    pub amount: Option<Decimal>,
    #[serde(default, deserialize_with = "id_opt::deserialize")]
    pub payment_type_id: Option<i64>,
    #[serde(default)]
    pub completed_at: Option<String>,
    #[serde(default)]
    pub local_completed_at: Option<String>,
}

/// A ticket with its lines and payments, as a flow needs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TicketDetail {
    pub ticket: Ticket,
    pub lines: Vec<TicketLine>,
    pub payments: Vec<Payment>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    #[serde(deserialize_with = "id::deserialize")]
    pub id: i64,
    #[serde(default)]
    pub public_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(rename = "active?", default)]
    pub active: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    #[serde(deserialize_with = "id::deserialize")]
    pub id: i64,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub events: Vec<String>,
}

/// One page of a Retail collection: `{results, total, pages}`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetailPage<T> {
    pub results: Vec<T>,
    pub total: Option<u64>,
    pub pages: Option<u32>,
    pub page: u32,
    pub per_page: u32,
}

impl<T> RetailPage<T> {
    pub fn has_more(&self) -> bool {
        match self.pages {
            Some(p) => self.page < p,
            // Without a page count, only a full page can have a successor.
            None => {
                !self.results.is_empty() && self.results.len() as u64 >= u64::from(self.per_page)
            }
        }
    }
}
