use serde_json::{json, Map, Value};

use super::mapping::Mapping;
use super::{enrich, product_ids};

fn object(v: Value) -> Map<String, Value> {
    serde_json::from_value(v).expect("an object")
}

fn mapping() -> Mapping {
    Mapping::parse(&json!({
        "id": "sku", "name": "title",
        "price": {"from": "price_eur", "type": "number"},
        "category": {"from": "path", "split": "›"},
        "in_stock": {"from": "stock", "type": "boolean"}
    }))
    .expect("a good mapping")
}

#[test]
fn a_row_keeps_only_mapped_fields_renamed_and_typed() {
    let row = object(
        json!({"sku": "stove", "title": " Titanium stove ", "price_eur": "59.90", "path": "Camping › Cooking", "stock": "1", "secret": "dropped"}),
    );
    let item = mapping().apply(&row).expect("a good row");
    assert_eq!(
        Value::Object(item),
        json!({"id": "stove", "name": "Titanium stove", "price": 59.9, "category": ["Camping", "Cooking"], "in_stock": true})
    );
    // Empty or absent fields are left out; id is required.
    let sparse = mapping()
        .apply(&object(json!({"sku": "pan", "title": ""})))
        .unwrap();
    assert_eq!(Value::Object(sparse), json!({"id": "pan"}));
}

#[test]
fn a_value_that_does_not_fit_its_type_is_a_row_error_naming_the_field() {
    let refused = |row: Value| mapping().apply(&object(row)).unwrap_err();
    assert_eq!(
        refused(json!({"sku": "a", "price_eur": "cheap"})),
        "price (from price_eur): \"cheap\" is not a number"
    );
    assert_eq!(
        refused(json!({"sku": "a", "stock": "maybe"})),
        "in_stock (from stock): \"maybe\" is not true or false"
    );
    assert_eq!(
        refused(json!({"title": "no id"})),
        "id: the row has no \"sku\""
    );
    assert!(refused(json!({"sku": "a", "title": {"nested": 1}})).contains("a text, not a list"));
}

#[test]
fn a_bad_mapping_is_refused_with_what_to_write() {
    for (spec, says) in [
        (json!(["sku"]), "a mapping is an object"),
        (json!({"name": "title"}), "names the source of \"id\""),
        (
            json!({"id": "sku", "price": {"from": "p", "type": "money"}}),
            "price: type is text, number or boolean",
        ),
        (
            json!({"id": "sku", "tags": {"from": "t", "type": "number", "split": ","}}),
            "tags: split is a non-empty separator, on a text field",
        ),
        (
            json!({"id": "sku", "x": {"form": "t"}}),
            "x: unknown setting \"form\"",
        ),
        (
            json!({"id": "sku", "bad name": "t"}),
            "a field name is 1 to 64 characters",
        ),
    ] {
        let refused = Mapping::parse(&spec).unwrap_err();
        assert!(refused.contains(says), "{refused}");
    }
}

#[test]
fn an_event_gets_the_items_fields_it_lacks_and_what_the_client_sent_wins() {
    let stove = object(
        json!({"id": "stove", "name": "Titanium stove", "category": "Cooking", "price": 59}),
    );
    let lookup = |id: &str| (id == "stove").then(|| stove.clone());
    let mut viewed = object(
        json!({"event": "Product Viewed", "properties": {"product_id": "stove", "price": 49}}),
    );
    assert_eq!(product_ids(&viewed), ["stove"]);
    assert!(enrich(&mut viewed, lookup));
    assert_eq!(
        viewed["properties"],
        json!({"product_id": "stove", "price": 49, "name": "Titanium stove", "category": "Cooking"})
    );
    assert_eq!(
        viewed["context"]["catalog"]["filled"],
        json!(["properties.category", "properties.name"])
    );
    let mut order = object(
        json!({"properties": {"products": [{"product_id": "stove"}, {"product_id": "unknown"}]}}),
    );
    assert_eq!(product_ids(&order), ["stove", "unknown"]);
    assert!(enrich(&mut order, lookup));
    assert_eq!(
        order["properties"]["products"][0]["category"],
        json!("Cooking")
    );
    assert_eq!(
        order["properties"]["products"][1],
        json!({"product_id": "unknown"})
    );
    let mut nothing = object(json!({"properties": {"product_id": "unknown"}}));
    assert!(!enrich(&mut nothing, lookup));
    assert!(nothing.get("context").is_none());
}
