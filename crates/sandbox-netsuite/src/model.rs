//! Record types, their fields and sublists: the static schema the simulator enforces.
//!
//! Field names are the REST (camelCase) names from the 2026.1 OpenAPI dump; input matching is
//! case-insensitive because Oracle's own examples send lowercase names.

/// A record type the sandbox stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RType {
    Customer,
    InventoryItem,
    SalesOrder,
    ItemFulfillment,
    Invoice,
    CustomerPayment,
    CashSale,
    CashRefund,
    CreditMemo,
    CustomerRefund,
    JournalEntry,
    Deposit,
    InventoryAdjustment,
    Account,
    Subsidiary,
    Location,
    PaymentMethod,
    Currency,
}

/// How a field's value is parsed, stored and rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Bool,
    /// A calendar date, stored `YYYY-MM-DD`.
    Date,
    /// An exact decimal (money or quantity), stored as a decimal string.
    Dec,
    /// A reference to a record of the given type, stored `{"id": "…"}`.
    Ref(RType),
    /// A reference to any transaction (createdFrom, apply doc).
    TranRef,
    /// An enum value rendered `{id, refName}`.
    Enum,
    /// A server-computed integer (line numbers).
    Int,
}

use Kind::*;
use RType::*;

pub type Fields = &'static [(&'static str, Kind)];

const ITEM_LINE: Fields = &[
    ("item", Ref(InventoryItem)),
    ("quantity", Dec),
    ("rate", Dec),
    ("amount", Dec),
    ("description", Text),
    ("location", Ref(Location)),
    ("line", Int),
    ("isClosed", Bool),
];
const FULFIL_LINE: Fields = &[
    ("item", Ref(InventoryItem)),
    ("quantity", Dec),
    ("location", Ref(Location)),
    ("orderLine", Int),
    ("itemReceive", Bool),
    ("line", Int),
    ("description", Text),
];
const APPLY_LINE: Fields = &[
    ("doc", TranRef),
    ("apply", Bool),
    ("amount", Dec),
    ("total", Dec),
    ("due", Dec),
    ("line", Int),
];
const JE_LINE: Fields = &[
    ("account", Ref(Account)),
    ("debit", Dec),
    ("credit", Dec),
    ("memo", Text),
    ("entity", Ref(Customer)),
    ("location", Ref(Location)),
    ("line", Int),
];
const DEPOSIT_PAYMENT_LINE: Fields = &[
    // A payment or a cash sale in Undeposited Funds (checked when the deposit is saved).
    ("doc", TranRef),
    ("deposit", Bool),
    ("paymentAmount", Dec),
    ("paymentMethod", Ref(PaymentMethod)),
    ("entity", Ref(Customer)),
    ("docNumber", Text),
    ("line", Int),
];
const DEPOSIT_OTHER_LINE: Fields = &[
    ("account", Ref(Account)),
    ("amount", Dec),
    ("entity", Ref(Customer)),
    ("paymentMethod", Ref(PaymentMethod)),
    ("memo", Text),
    ("line", Int),
];
const DEPOSIT_CASHBACK_LINE: Fields = &[
    ("account", Ref(Account)),
    ("amount", Dec),
    ("memo", Text),
    ("line", Int),
];
const INVADJ_LINE: Fields = &[
    ("item", Ref(InventoryItem)),
    ("location", Ref(Location)),
    ("adjustQtyBy", Dec),
    ("unitCost", Dec),
    ("memo", Text),
    ("line", Int),
];
const ADDRESS_LINE: Fields = &[
    ("label", Text),
    ("defaultBilling", Bool),
    ("defaultShipping", Bool),
    ("addressBookAddress", Text),
];

/// Body fields every transaction shares.
const TRAN_COMMON: Fields = &[
    ("tranId", Text),
    ("tranDate", Date),
    ("currency", Ref(Currency)),
    ("subsidiary", Ref(Subsidiary)),
    ("memo", Text),
    ("externalId", Text),
    ("createdFrom", TranRef),
    ("status", Enum),
    ("exchangeRate", Dec),
];

pub struct Meta {
    pub name: &'static str,
    /// Body fields specific to the type (transactions also get `TRAN_COMMON`).
    pub fields: Fields,
    pub sublists: &'static [(&'static str, Fields)],
    /// SuiteQL `transaction.type` code; `None` for non-transactions.
    pub tran_code: Option<&'static str>,
    /// Human name used in refName / BUILTIN.DF ("Sales Order #1001").
    pub label: &'static str,
}

impl RType {
    pub const ALL: [RType; 18] = [
        Customer,
        InventoryItem,
        SalesOrder,
        ItemFulfillment,
        Invoice,
        CustomerPayment,
        CashSale,
        CashRefund,
        CreditMemo,
        CustomerRefund,
        JournalEntry,
        Deposit,
        InventoryAdjustment,
        Account,
        Subsidiary,
        Location,
        PaymentMethod,
        Currency,
    ];

    /// Case-insensitive lookup of a REST URL record id (`salesorder` == `salesOrder`).
    pub fn parse(s: &str) -> Option<RType> {
        RType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
    }

    pub fn name(self) -> &'static str {
        self.meta().name
    }

    pub fn is_transaction(self) -> bool {
        self.meta().tran_code.is_some()
    }

    pub fn tran_code(self) -> Option<&'static str> {
        self.meta().tran_code
    }

    /// Ids are drawn from one sequence per family, as in NetSuite: every transaction type
    /// shares the `transaction` table, so ids must not collide across types.
    pub fn family(self) -> &'static str {
        if self.is_transaction() {
            "transaction"
        } else {
            self.name()
        }
    }

    pub fn all_fields(self) -> impl Iterator<Item = (&'static str, Kind)> {
        let common: Fields = if self.is_transaction() { TRAN_COMMON } else { &[] };
        common.iter().chain(self.meta().fields.iter()).copied()
    }

    pub fn field(self, name: &str) -> Option<(&'static str, Kind)> {
        self.all_fields().find(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    pub fn sublist(self, name: &str) -> Option<(&'static str, Fields)> {
        self.meta()
            .sublists
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .copied()
    }

    pub fn meta(self) -> &'static Meta {
        match self {
            Customer => &Meta {
                name: "customer",
                fields: &[
                    ("entityId", Text),
                    ("companyName", Text),
                    ("firstName", Text),
                    ("lastName", Text),
                    ("isPerson", Bool),
                    ("email", Text),
                    ("phone", Text),
                    ("subsidiary", Ref(Subsidiary)),
                    ("currency", Ref(Currency)),
                    ("externalId", Text),
                    ("terms", Enum),
                    ("comments", Text),
                    ("isInactive", Bool),
                ],
                sublists: &[("addressBook", ADDRESS_LINE)],
                tran_code: None,
                label: "Customer",
            },
            InventoryItem => &Meta {
                name: "inventoryItem",
                fields: &[
                    ("itemId", Text),
                    ("displayName", Text),
                    ("salesDescription", Text),
                    ("basePrice", Dec),
                    ("cost", Dec),
                    ("upcCode", Text),
                    ("subsidiary", Ref(Subsidiary)),
                    ("externalId", Text),
                    ("isInactive", Bool),
                ],
                sublists: &[],
                tran_code: None,
                label: "Inventory Item",
            },
            SalesOrder => &Meta {
                name: "salesOrder",
                fields: &[
                    ("entity", Ref(Customer)),
                    ("location", Ref(Location)),
                    ("otherRefNum", Text),
                    ("orderStatus", Enum),
                    ("shippingCost", Dec),
                    ("subtotal", Dec),
                    ("total", Dec),
                ],
                sublists: &[("item", ITEM_LINE)],
                tran_code: Some("SalesOrd"),
                label: "Sales Order",
            },
            ItemFulfillment => &Meta {
                name: "itemFulfillment",
                fields: &[("entity", Ref(Customer)), ("shipStatus", Enum)],
                sublists: &[("item", FULFIL_LINE)],
                tran_code: Some("ItemShip"),
                label: "Item Fulfillment",
            },
            Invoice => &Meta {
                name: "invoice",
                fields: &[
                    ("entity", Ref(Customer)),
                    ("location", Ref(Location)),
                    ("otherRefNum", Text),
                    ("shippingCost", Dec),
                    ("subtotal", Dec),
                    ("total", Dec),
                    ("amountPaid", Dec),
                    ("amountRemaining", Dec),
                ],
                sublists: &[("item", ITEM_LINE)],
                tran_code: Some("CustInvc"),
                label: "Invoice",
            },
            CustomerPayment => &Meta {
                name: "customerPayment",
                fields: &[
                    ("customer", Ref(Customer)),
                    ("payment", Dec),
                    ("account", Ref(Account)),
                    ("undepFunds", Bool),
                    ("paymentOption", Ref(PaymentMethod)),
                    ("paymentMethod", Ref(PaymentMethod)),
                    ("applied", Dec),
                    ("unapplied", Dec),
                ],
                sublists: &[("apply", APPLY_LINE)],
                tran_code: Some("CustPymt"),
                label: "Payment",
            },
            CashSale => &Meta {
                name: "cashSale",
                fields: &[
                    ("entity", Ref(Customer)),
                    ("location", Ref(Location)),
                    ("account", Ref(Account)),
                    ("undepFunds", Bool),
                    ("paymentMethod", Ref(PaymentMethod)),
                    ("paymentOption", Ref(PaymentMethod)),
                    ("otherRefNum", Text),
                    ("shippingCost", Dec),
                    ("subtotal", Dec),
                    ("total", Dec),
                ],
                sublists: &[("item", ITEM_LINE)],
                tran_code: Some("CashSale"),
                label: "Cash Sale",
            },
            CashRefund => &Meta {
                name: "cashRefund",
                fields: &[
                    ("entity", Ref(Customer)),
                    ("location", Ref(Location)),
                    ("account", Ref(Account)),
                    ("paymentMethod", Ref(PaymentMethod)),
                    ("paymentOption", Ref(PaymentMethod)),
                    ("subtotal", Dec),
                    ("total", Dec),
                ],
                sublists: &[("item", ITEM_LINE)],
                tran_code: Some("CashRfnd"),
                label: "Cash Refund",
            },
            CreditMemo => &Meta {
                name: "creditMemo",
                fields: &[
                    ("entity", Ref(Customer)),
                    ("location", Ref(Location)),
                    ("subtotal", Dec),
                    ("total", Dec),
                    ("applied", Dec),
                    ("unapplied", Dec),
                ],
                sublists: &[("item", ITEM_LINE), ("apply", APPLY_LINE)],
                tran_code: Some("CustCred"),
                label: "Credit Memo",
            },
            CustomerRefund => &Meta {
                name: "customerRefund",
                fields: &[
                    ("customer", Ref(Customer)),
                    ("account", Ref(Account)),
                    ("paymentMethod", Ref(PaymentMethod)),
                    ("paymentOption", Ref(PaymentMethod)),
                    ("total", Dec),
                ],
                sublists: &[("apply", APPLY_LINE)],
                tran_code: Some("CustRfnd"),
                label: "Customer Refund",
            },
            JournalEntry => &Meta {
                name: "journalEntry",
                fields: &[("approved", Bool)],
                sublists: &[("line", JE_LINE)],
                tran_code: Some("Journal"),
                label: "Journal",
            },
            Deposit => &Meta {
                name: "deposit",
                fields: &[("account", Ref(Account)), ("total", Dec)],
                sublists: &[
                    ("payment", DEPOSIT_PAYMENT_LINE),
                    ("other", DEPOSIT_OTHER_LINE),
                    ("cashBack", DEPOSIT_CASHBACK_LINE),
                ],
                tran_code: Some("Deposit"),
                label: "Deposit",
            },
            InventoryAdjustment => &Meta {
                name: "inventoryAdjustment",
                fields: &[("account", Ref(Account)), ("adjLocation", Ref(Location))],
                sublists: &[("inventory", INVADJ_LINE)],
                tran_code: Some("InvAdjst"),
                label: "Inventory Adjustment",
            },
            Account => &Meta {
                name: "account",
                fields: &[
                    ("acctName", Text),
                    ("acctNumber", Text),
                    ("acctType", Enum),
                    ("currency", Ref(Currency)),
                    ("subsidiary", Ref(Subsidiary)),
                    ("externalId", Text),
                    ("isInactive", Bool),
                ],
                sublists: &[],
                tran_code: None,
                label: "Account",
            },
            Subsidiary => &Meta {
                name: "subsidiary",
                fields: &[
                    ("name", Text),
                    ("currency", Ref(Currency)),
                    ("country", Enum),
                    ("externalId", Text),
                    ("isInactive", Bool),
                ],
                sublists: &[],
                tran_code: None,
                label: "Subsidiary",
            },
            Location => &Meta {
                name: "location",
                fields: &[
                    ("name", Text),
                    ("subsidiary", Ref(Subsidiary)),
                    ("externalId", Text),
                    ("isInactive", Bool),
                ],
                sublists: &[],
                tran_code: None,
                label: "Location",
            },
            PaymentMethod => &Meta {
                name: "paymentMethod",
                fields: &[
                    ("name", Text),
                    ("methodType", Enum),
                    ("account", Ref(Account)),
                    ("undepFunds", Bool),
                    ("externalId", Text),
                    ("isInactive", Bool),
                ],
                sublists: &[],
                tran_code: None,
                label: "Payment Method",
            },
            Currency => &Meta {
                name: "currency",
                fields: &[
                    ("name", Text),
                    ("symbol", Text),
                    ("isBaseCurrency", Bool),
                    ("exchangeRate", Dec),
                    ("externalId", Text),
                    ("isInactive", Bool),
                ],
                sublists: &[],
                tran_code: None,
                label: "Currency",
            },
        }
    }
}

/// Display name of a transaction status, as SuiteQL's `BUILTIN.DF(status)` renders it.
pub fn status_label(code: &str, status: &str) -> Option<&'static str> {
    Some(match (code, status) {
        ("SalesOrd", "A") => "Sales Order : Pending Approval",
        ("SalesOrd", "B") => "Sales Order : Pending Fulfillment",
        ("SalesOrd", "D") => "Sales Order : Partially Fulfilled",
        ("SalesOrd", "F") => "Sales Order : Pending Billing",
        ("SalesOrd", "G") => "Sales Order : Billed",
        ("CustInvc", "A") => "Invoice : Open",
        ("CustInvc", "B") => "Invoice : Paid In Full",
        ("CustPymt", "B") => "Payment : Not Deposited",
        ("CustPymt", "C") => "Payment : Deposited",
        ("CashSale", "B") => "Cash Sale : Not Deposited",
        ("CashSale", "C") => "Cash Sale : Deposited",
        ("CustCred", "A") => "Credit Memo : Open",
        ("CustCred", "B") => "Credit Memo : Fully Applied",
        ("ItemShip", "A") => "Item Fulfillment : Picked",
        ("ItemShip", "B") => "Item Fulfillment : Packed",
        ("ItemShip", "C") => "Item Fulfillment : Shipped",
        ("Journal", "B") => "Journal : Approved for Posting",
        _ => return None,
    })
}

/// The short status name shown as `status.refName` in REST.
pub fn status_short(code: &str, status: &str) -> Option<&'static str> {
    status_label(code, status).and_then(|s| s.split(" : ").nth(1))
}
