//! The order-notes enrich stage in Rust: it left-joins each order with its
//! product from the global table products and emits the enriched order, as
//! ../enrich does in Go. streamrt-rust.yaml runs the app with this stage.
//!
//! Input: topic orders, keyed by order id, value
//! `{"id","product_id","customer_id","quantity"}`. Table: products
//! (global), keyed by product id, value `{"id","name","price"}`. Output:
//! enriched, the order's members plus `"product"`: the product, or null
//! when it is unknown.
//!
//! The product id is a string's text, or a number as written (`7` and
//! `7.0` are different products). An order that is not a JSON object, or
//! whose product_id is missing or of another kind, fails, which hands it to
//! the stage's error policy (a dead-letter topic in this example); so does
//! one whose product is in the table but is not JSON.
//!
//! The output has the members of the Go stage's output, so readers see the
//! same object, but not its bytes. Both keep the order as written and add
//! "product" after its other members, but this stage drops the whitespace
//! between tokens and any "product" member the order had, where the Go
//! stage keeps the whitespace and puts the product in place of the first
//! "product" member (dropping any others). Any other name the order repeats
//! stays repeated in both; readers that keep the last, as Go's do, see the
//! same.
//!
//! Build (streamrt does it when a stage's module is this directory):
//!
//! ```text
//! PATH=/usr/bin:$PATH cargo build --release --target wasm32-unknown-unknown
//! ```

pub mod json;

use std::borrow::Cow;

use streamrt::{Output, Record, Result, Store};

use json::ObjectError;

static PRODUCTS: Store = Store::new("products");
static OUT: Output = Output::new("enriched");

/// Enriches one order.
pub fn enrich(r: &Record) -> Result<()> {
    // A null value (a tombstone) is no more JSON than an empty one.
    let members = match json::object(r.value.unwrap_or(b"")) {
        Ok(m) => m,
        Err(ObjectError::Syntax(e)) => return Err(format!("order is not JSON: {}", e).into()),
        Err(ObjectError::NotObject(kind)) => {
            return Err(format!("order is {}, not a JSON object", kind).into())
        }
    };
    // The last of repeated names counts, as in Go's decoding.
    let id = members
        .iter()
        .rev()
        .find(|m| m.name == "product_id")
        .ok_or("order has no product_id")?;
    let product_id: Cow<str> = match id.value.as_bytes()[0] {
        b'"' => json::string(id.value),
        b'-' | b'0'..=b'9' => Cow::Borrowed(id.value),
        _ => {
            return Err(format!("product_id {} is not a string or a number", id.value).into())
        }
    };
    let product = PRODUCTS.get(product_id.as_bytes())?;

    let mut out = String::with_capacity(r.value.map_or(0, <[u8]>::len) + 64);
    out.push('{');
    for m in members.iter().filter(|m| m.name != "product") {
        out.push_str(m.raw_name);
        out.push(':');
        json::compact_into(&mut out, m.value);
        out.push(',');
    }
    out.push_str("\"product\":");
    match &product {
        None => out.push_str("null"),
        Some(p) => {
            let p = json::parse(p)
                .map_err(|e| format!("product {:?} is not JSON: {}", product_id, e))?;
            json::compact_into(&mut out, p);
        }
    }
    out.push('}');
    OUT.emit(r.key, Some(out.as_bytes()))
}

streamrt::export_stage!(record: enrich);

// The stage's unit tests run natively (`cargo test`) on the SDK's fake
// host, which applies the error policy as the streamrt host does.
#[cfg(test)]
mod tests {
    use super::enrich;
    use streamrt::abi::OwnedRecord;
    use streamrt::testing::{FakeHost, Policy};

    fn host() -> FakeHost {
        let host = FakeHost::new()
            .table("products")
            .output("enriched", "enriched-orders")
            .policy(Policy::DeadLetter("order-notes-enrich-dlq".into()));
        host.set("products", b"p1", br#"{"id":"p1", "name":"widget", "price":10}"#);
        host.set("products", b"p\"2\xc3\xa9", br#"{"id":"p\"2\u00e9"}"#);
        host.set("products", b"7", br#"{"id":7}"#);
        host.set("products", b"not json", b"{oops");
        host
    }

    fn order(offset: i64, value: Option<&[u8]>) -> OwnedRecord {
        OwnedRecord {
            topic: "orders".into(),
            offset,
            key: Some(format!("o{}", offset).into_bytes()),
            value: value.map(<[u8]>::to_vec),
            ..Default::default()
        }
    }

    /// Runs orders through the stage and returns what each produced, in
    /// order: "topic: value" for an enriched one, "error: message" for one
    /// that was dead-lettered.
    fn run(orders: &[&str]) -> Vec<String> {
        let host = host();
        let records: Vec<OwnedRecord> = orders
            .iter()
            .enumerate()
            .map(|(i, o)| order(i as i64, Some(o.as_bytes())))
            .collect();
        host.run_records(&records, enrich).unwrap();
        let emitted = host.emitted();
        assert_eq!(emitted.len(), orders.len());
        records
            .iter()
            .map(|r| {
                let e = emitted.iter().find(|e| e.key == r.key).unwrap();
                let value = String::from_utf8_lossy(e.value.as_deref().unwrap_or(b""));
                match e.header("streamrt.error") {
                    Some(msg) => format!("error: {}", String::from_utf8_lossy(msg)),
                    None => format!("{}: {}", e.topic, value),
                }
            })
            .collect()
    }

    #[test]
    fn enriches_orders_with_their_product_or_null() {
        let got = run(&[
            r#"{"id":"o0","product_id":"p1","customer_id":"c0","quantity":1}"#,
            r#"{"id":"o1","product_id":"p9","quantity":2}"#,
            // Escapes in the product id are undone before the lookup, and
            // the order is kept as written, whitespace aside.
            r#" { "id" : "o2", "product_id" : "p\"2\u00e9", "note" : "a  b\"" } "#,
            r#"{"id":"o3","product_id":7}"#,
            r#"{"id":"o4","product_id":7.0}"#,
            // A "product" the order had is replaced; the last product_id
            // counts.
            r#"{"product":{"id":"fake"},"product_id":"p9","produc\u0074":1,"product_id":"p1"}"#,
        ]);
        assert_eq!(
            got,
            [
                r#"enriched-orders: {"id":"o0","product_id":"p1","customer_id":"c0","quantity":1,"product":{"id":"p1","name":"widget","price":10}}"#,
                r#"enriched-orders: {"id":"o1","product_id":"p9","quantity":2,"product":null}"#,
                r#"enriched-orders: {"id":"o2","product_id":"p\"2\u00e9","note":"a  b\"","product":{"id":"p\"2\u00e9"}}"#,
                r#"enriched-orders: {"id":"o3","product_id":7,"product":{"id":7}}"#,
                r#"enriched-orders: {"id":"o4","product_id":7.0,"product":null}"#,
                r#"enriched-orders: {"product_id":"p9","product_id":"p1","product":{"id":"p1","name":"widget","price":10}}"#,
            ]
        );
    }

    #[test]
    fn dead_letters_bad_orders_with_their_error() {
        let got = run(&[
            "not json at all",
            r#"{"id":"x","quantity":1}"#,
            r#"{"id":"x","product_id":"p1""#,
            r#"["product_id","p1"]"#,
            r#"{"product_id":null}"#,
            r#"{"product_id":{"id":"p1"}}"#,
            r#"{"product_id":"not json"}"#,
            r#"{"id":"ok","product_id":"p1"}"#,
        ]);
        assert_eq!(
            got,
            [
                "error: order is not JSON: invalid character 'o' in literal null at byte 1",
                "error: order has no product_id",
                "error: order is not JSON: unexpected end of input after an object member at byte 27",
                "error: order is an array, not a JSON object",
                "error: product_id null is not a string or a number",
                r#"error: product_id {"id":"p1"} is not a string or a number"#,
                "error: product \"not json\" is not JSON: invalid character 'o' looking for the beginning of an object member's name at byte 1",
                r#"enriched-orders: {"id":"ok","product_id":"p1","product":{"id":"p1","name":"widget","price":10}}"#,
            ]
        );
    }

    #[test]
    fn a_tombstone_is_not_json() {
        let host = host();
        host.run_records(&[order(0, None)], enrich).unwrap();
        assert_eq!(
            host.failures()[0].message,
            "order is not JSON: unexpected end of input looking for the beginning of a value at byte 0"
        );
    }

    #[test]
    fn keeps_the_order_key() {
        let host = host();
        host.run_records(&[order(3, Some(br#"{"product_id":"p1"}"#))], enrich)
            .unwrap();
        assert_eq!(host.emitted()[0].key.as_deref(), Some(&b"o3"[..]));
    }
}
