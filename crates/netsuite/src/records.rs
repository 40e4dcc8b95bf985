//! Typed NetSuite REST record shapes: the fields heartsuite reads and writes, with everything else
//! kept in `extra` so a GET → PATCH round trip loses nothing.
//!
//! NetSuite JSON conventions (reference §1 "JSON shapes"): ids are strings; references are
//! `{id, refName}` (written as `{id}`); sublists are `{items: [...]}`; amounts are JSON numbers,
//! which we hold as `Decimal` and write back as exact JSON numbers (never through f64).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub type Extra = Map<String, Value>;

/// A record with a fixed REST type id, for the typed helpers on the client.
pub trait NsRecord: Serialize + serde::de::DeserializeOwned + Send + Sync {
    const TYPE: &'static str;
}

/// A reference field. Deserializes from `{"id": "14", "refName": "…"}` or a bare `"14"` (what
/// `simpleEnumFormat` and some enum fields give); serializes as an object without `links`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordRef {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Output only; NetSuite ignores it on input, so it is not sent.
    #[serde(skip_serializing)]
    pub ref_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

impl RecordRef {
    pub fn id(id: impl Into<String>) -> Self {
        Self { id: Some(id.into()), ..Default::default() }
    }
}

impl<'de> Deserialize<'de> for RecordRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Obj {
            #[serde(default, deserialize_with = "de_opt_id")]
            id: Option<String>,
            #[serde(default)]
            ref_name: Option<String>,
            #[serde(default)]
            external_id: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Bare(String),
            Obj(Obj),
        }
        Ok(match Either::deserialize(d)? {
            Either::Bare(id) => RecordRef::id(id),
            Either::Obj(o) => RecordRef { id: o.id, ref_name: o.ref_name, external_id: o.external_id },
        })
    }
}

/// Ids are strings in NetSuite JSON, but accept a number too rather than failing a whole record.
fn de_opt_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// A sublist: `{"items": [...]}` plus, on reads, `links/count/hasMore/offset/totalResults`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sublist<T> {
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
    #[serde(flatten, skip_serializing)]
    pub extra: Extra,
}

impl<T> Sublist<T> {
    pub fn new(items: Vec<T>) -> Self {
        Self { items, extra: Extra::new() }
    }
}

impl<T> Default for Sublist<T> {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

/// Decimal amounts as exact JSON numbers (`arbitrary_precision` keeps every digit).
pub mod decimal_number {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;
    use std::str::FromStr;

    pub fn serialize<S: Serializer>(v: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => serde_json::Number::from_str(&d.to_string())
                .map_err(serde::ser::Error::custom)?
                .serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        let text = match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) if s.is_empty() => return Ok(None),
            Some(Value::String(s)) => s,
            Some(other) => return Err(serde::de::Error::custom(format!("expected a number, got {other}"))),
        };
        // from_scientific covers "1E+2"; plain text must parse exactly.
        Decimal::from_str_exact(&text)
            .or_else(|_| Decimal::from_scientific(&text))
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("amount {text:?}: {e}")))
    }
}

macro_rules! record {
    (
        $(#[$meta:meta])*
        $name:ident = $ty:literal {
            $( $(#[$fmeta:meta])* $field:ident : $fty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            /// Internal id; output only (NetSuite assigns it).
            #[serde(default, skip_serializing, deserialize_with = "de_opt_id")]
            pub id: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub external_id: Option<String>,
            $(
                $(#[$fmeta])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$fty>,
            )*
            /// Every other field, preserved as NetSuite sent it.
            #[serde(flatten)]
            pub extra: Extra,
        }
        impl NsRecord for $name {
            const TYPE: &'static str = $ty;
        }
    };
}

macro_rules! line {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $fty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            $(
                $(#[$fmeta])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$fty>,
            )*
            #[serde(flatten)]
            pub extra: Extra,
        }
    };
}

record!(Customer = "customer" {
    entity_id: String,
    company_name: String,
    first_name: String,
    last_name: String,
    is_person: bool,
    email: String,
    phone: String,
    subsidiary: RecordRef,
    currency: RecordRef,
    terms: RecordRef,
    last_modified_date: String,
});

record!(InventoryItem = "inventoryItem" {
    item_id: String,
    display_name: String,
    sales_description: String,
    upc_code: String,
    is_inactive: bool,
    subsidiary: Value,
    last_modified_date: String,
});

line!(TransactionLine {
    item: RecordRef,
    #[serde(with = "decimal_number")]
    quantity: Decimal,
    #[serde(with = "decimal_number")]
    rate: Decimal,
    #[serde(with = "decimal_number")]
    amount: Decimal,
    description: String,
    location: RecordRef,
    line: i64,
    is_closed: bool,
});

line!(ApplyLine {
    doc: RecordRef,
    apply: bool,
    #[serde(with = "decimal_number")]
    amount: Decimal,
    line: i64,
});

record!(SalesOrder = "salesOrder" {
    entity: RecordRef,
    tran_date: String,
    tran_id: String,
    currency: RecordRef,
    subsidiary: RecordRef,
    location: RecordRef,
    memo: String,
    other_ref_num: String,
    /// Written as a bare code ("A" pending approval, "B" pending fulfillment), read as `{id, refName}`.
    order_status: Value,
    status: RecordRef,
    ship_method: RecordRef,
    #[serde(with = "decimal_number")]
    shipping_cost: Decimal,
    #[serde(with = "decimal_number")]
    subtotal: Decimal,
    #[serde(with = "decimal_number")]
    total: Decimal,
    item: Sublist<TransactionLine>,
    last_modified_date: String,
});

line!(FulfillmentLine {
    order_line: i64,
    item: RecordRef,
    location: RecordRef,
    #[serde(with = "decimal_number")]
    quantity: Decimal,
    item_receive: bool,
});

record!(ItemFulfillment = "itemFulfillment" {
    created_from: RecordRef,
    entity: RecordRef,
    tran_date: String,
    tran_id: String,
    /// A picked, B packed, C shipped.
    ship_status: RecordRef,
    memo: String,
    item: Sublist<FulfillmentLine>,
    last_modified_date: String,
});

record!(Invoice = "invoice" {
    entity: RecordRef,
    created_from: RecordRef,
    tran_date: String,
    tran_id: String,
    currency: RecordRef,
    subsidiary: RecordRef,
    location: RecordRef,
    memo: String,
    #[serde(with = "decimal_number")]
    total: Decimal,
    #[serde(with = "decimal_number")]
    amount_remaining: Decimal,
    item: Sublist<TransactionLine>,
    last_modified_date: String,
});

record!(CustomerPayment = "customerPayment" {
    customer: RecordRef,
    #[serde(with = "decimal_number")]
    payment: Decimal,
    account: RecordRef,
    undep_funds: bool,
    currency: RecordRef,
    subsidiary: RecordRef,
    tran_date: String,
    payment_option: RecordRef,
    memo: String,
    apply: Sublist<ApplyLine>,
    last_modified_date: String,
});

record!(CashSale = "cashSale" {
    entity: RecordRef,
    created_from: RecordRef,
    tran_date: String,
    currency: RecordRef,
    subsidiary: RecordRef,
    location: RecordRef,
    account: RecordRef,
    undep_funds: bool,
    payment_option: RecordRef,
    memo: String,
    #[serde(with = "decimal_number")]
    total: Decimal,
    item: Sublist<TransactionLine>,
    last_modified_date: String,
});

record!(CreditMemo = "creditMemo" {
    entity: RecordRef,
    created_from: RecordRef,
    tran_date: String,
    currency: RecordRef,
    subsidiary: RecordRef,
    location: RecordRef,
    memo: String,
    #[serde(with = "decimal_number")]
    total: Decimal,
    item: Sublist<TransactionLine>,
    apply: Sublist<ApplyLine>,
    last_modified_date: String,
});

record!(CustomerRefund = "customerRefund" {
    customer: RecordRef,
    account: RecordRef,
    currency: RecordRef,
    subsidiary: RecordRef,
    tran_date: String,
    payment_option: RecordRef,
    memo: String,
    #[serde(with = "decimal_number")]
    total: Decimal,
    apply: Sublist<ApplyLine>,
    last_modified_date: String,
});

line!(JournalLine {
    account: RecordRef,
    #[serde(with = "decimal_number")]
    debit: Decimal,
    #[serde(with = "decimal_number")]
    credit: Decimal,
    memo: String,
    entity: RecordRef,
    department: RecordRef,
    class: RecordRef,
    location: RecordRef,
});

record!(JournalEntry = "journalEntry" {
    subsidiary: RecordRef,
    currency: RecordRef,
    tran_date: String,
    tran_id: String,
    memo: String,
    line: Sublist<JournalLine>,
    last_modified_date: String,
});

line!(DepositPaymentLine {
    /// true = include this undeposited payment in the deposit.
    deposit: bool,
    #[serde(deserialize_with = "de_opt_id")]
    id: String,
    #[serde(with = "decimal_number")]
    payment_amount: Decimal,
    payment_method: RecordRef,
    entity: RecordRef,
    doc_number: String,
});

line!(DepositOtherLine {
    account: RecordRef,
    #[serde(with = "decimal_number")]
    amount: Decimal,
    entity: RecordRef,
    memo: String,
    payment_method: RecordRef,
});

record!(Deposit = "deposit" {
    account: RecordRef,
    subsidiary: RecordRef,
    currency: RecordRef,
    tran_date: String,
    memo: String,
    #[serde(with = "decimal_number")]
    total: Decimal,
    payment: Sublist<DepositPaymentLine>,
    other: Sublist<DepositOtherLine>,
    last_modified_date: String,
});

line!(InventoryAdjustmentLine {
    item: RecordRef,
    location: RecordRef,
    #[serde(with = "decimal_number")]
    adjust_qty_by: Decimal,
    memo: String,
});

record!(InventoryAdjustment = "inventoryAdjustment" {
    account: RecordRef,
    adj_location: RecordRef,
    subsidiary: RecordRef,
    tran_date: String,
    memo: String,
    inventory: Sublist<InventoryAdjustmentLine>,
    last_modified_date: String,
});

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn sales_order_round_trips_netsuite_shapes_exactly() {
        let body = r#"{
            "links":[{"rel":"self","href":"https://x/services/rest/record/v1/salesOrder/77"}],
            "id":"77","externalId":"hs-order-1","tranDate":"2026-11-26",
            "entity":{"links":[],"id":"14","refName":"Acme"},
            "orderStatus":{"id":"B","refName":"Pending Fulfillment"},
            "total":1234567890.12345678,
            "item":{"links":[],"count":1,"hasMore":false,"offset":0,"totalResults":1,
                    "items":[{"item":{"id":"9","refName":"Widget"},"quantity":3,"rate":0.1,"amount":0.30,"line":1,"custcol_x":"keep"}]},
            "custbody_channel":"web"
        }"#;
        let so: SalesOrder = serde_json::from_str(body).unwrap();
        assert_eq!(so.id.as_deref(), Some("77"));
        assert_eq!(so.entity.as_ref().and_then(|e| e.ref_name.as_deref()), Some("Acme"));
        assert_eq!(so.total, Some(Decimal::from_str("1234567890.12345678").unwrap()));
        let line = &so.item.as_ref().unwrap().items[0];
        assert_eq!(line.amount, Some(Decimal::from_str("0.30").unwrap()));
        assert_eq!(line.extra["custcol_x"], "keep");
        assert_eq!(so.extra["custbody_channel"], "web");

        let out = serde_json::to_string(&so).unwrap();
        // Exact decimals as JSON numbers, id and links not written back, refs as {id}.
        assert!(out.contains(r#""total":1234567890.12345678"#), "{out}");
        assert!(out.contains(r#""rate":0.1"#), "{out}");
        assert!(out.contains(r#""entity":{"id":"14"}"#), "{out}");
        assert!(!out.contains(r#""id":"77""#), "{out}");
        assert!(!out.contains("refName\":\"Acme"), "{out}");
    }

    #[test]
    fn reference_accepts_bare_id_and_amount_accepts_string() {
        let l: TransactionLine = serde_json::from_str(r#"{"item":"9","amount":"10.50"}"#).unwrap();
        assert_eq!(l.item, Some(RecordRef::id("9")));
        assert_eq!(l.amount, Some(Decimal::from_str("10.50").unwrap()));
        let bad: Result<TransactionLine, _> = serde_json::from_str(r#"{"amount":true}"#);
        assert!(bad.is_err());
    }

    #[test]
    fn type_ids_are_the_rest_names() {
        assert_eq!(Customer::TYPE, "customer");
        assert_eq!(InventoryItem::TYPE, "inventoryItem");
        assert_eq!(ItemFulfillment::TYPE, "itemFulfillment");
        assert_eq!(CustomerPayment::TYPE, "customerPayment");
        assert_eq!(CustomerRefund::TYPE, "customerRefund");
        assert_eq!(InventoryAdjustment::TYPE, "inventoryAdjustment");
        assert_eq!(JournalEntry::TYPE, "journalEntry");
        assert_eq!(Deposit::TYPE, "deposit");
        assert_eq!(CashSale::TYPE, "cashSale");
        assert_eq!(CreditMemo::TYPE, "creditMemo");
        assert_eq!(Invoice::TYPE, "invoice");
        assert_eq!(SalesOrder::TYPE, "salesOrder");
    }
}
