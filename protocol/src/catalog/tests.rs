use serde_json::{json, Map, Value};

use super::kind::Kind;
use super::mapping::Mapping;
use super::{chunks, enrich, identify_of, named, read};

fn kinds() -> Vec<Kind> {
    ["products", "content"]
        .iter()
        .filter_map(|k| Kind::built_in(k))
        .collect()
}

fn product_ids(body: &Map<String, Value>) -> Vec<String> {
    named(body, &kinds())
        .into_iter()
        .map(|(_, id)| id)
        .collect()
}

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
    let lookup =
        |kind: &str, id: &str| (kind == "products" && id == "stove").then(|| stove.clone());
    let mut viewed = object(
        json!({"event": "Product Viewed", "properties": {"product_id": "stove", "price": 49}}),
    );
    assert_eq!(product_ids(&viewed), ["stove"]);
    assert!(enrich(&mut viewed, &kinds(), lookup));
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
    assert!(enrich(&mut order, &kinds(), lookup));
    assert_eq!(
        order["properties"]["products"][0]["category"],
        json!("Cooking")
    );
    assert_eq!(
        order["properties"]["products"][1],
        json!({"product_id": "unknown"})
    );
    let mut nothing = object(json!({"properties": {"product_id": "unknown"}}));
    assert!(!enrich(&mut nothing, &kinds(), lookup));
    assert!(nothing.get("context").is_none());
}

#[test]
fn item_fields_are_configurable_and_ids_may_be_numbers() {
    let kinds = vec![
        Kind::parse("products", &json!({"itemFields": ["sku", "items[].sku"]})).unwrap(),
        Kind::built_in("content").unwrap(),
    ];
    let body = object(json!({"properties": {"sku": 42, "product_id": "ignored",
        "items": [{"sku": "a"}, {"sku": ""}, "not an object"], "content_id": "post-1"}}));
    assert_eq!(
        named(&body, &kinds),
        [
            ("content".to_owned(), "post-1".to_owned()),
            ("products".to_owned(), "42".to_owned()),
            ("products".to_owned(), "a".to_owned())
        ]
    );
    let mut enriched = body.clone();
    let lookup = |kind: &str, id: &str| match (kind, id) {
        ("products", "42") => Some(object(json!({"id": "42", "brand": "Acme"}))),
        ("content", "post-1") => Some(object(json!({"id": "post-1", "author": "Ann"}))),
        _ => None,
    };
    assert!(enrich(&mut enriched, &kinds, lookup));
    assert_eq!(enriched["properties"]["brand"], json!("Acme"));
    assert_eq!(enriched["properties"]["author"], json!("Ann"));
    assert_eq!(
        enriched["context"]["catalog"]["filled"],
        json!(["properties.brand", "properties.author"])
    );
}

#[test]
fn bad_kind_settings_say_what_to_write() {
    for (name, spec, says) in [
        ("Bad Name", json!({}), "a kind is 1 to 40 characters"),
        ("feeds", json!({}), "not one of"),
        (
            "products",
            json!({"itemFields": ["a.b"]}),
            "an item field is a property name",
        ),
        (
            "products",
            json!({"fields": []}),
            "unknown setting \"fields\"",
        ),
        (
            "users",
            json!({"itemFields": ["user_id"]}),
            "users are not named by events",
        ),
        (
            "products",
            json!({"mapping": {"name": "t"}}),
            "mapping: a mapping names the source of \"id\"",
        ),
    ] {
        let refused = Kind::parse(name, &spec).unwrap_err();
        assert!(refused.contains(says), "{name} {spec}: {refused}");
    }
    let declared = Kind::parse("recipes", &json!({"itemFields": ["recipe_id"]})).unwrap();
    assert_eq!(declared.item_fields_json(), json!(["recipe_id"]));
    assert!(Kind::parse("recipes", &json!({}))
        .unwrap()
        .item_fields
        .is_empty());
}

#[test]
fn a_file_becomes_items_with_bad_rows_reported_by_line() {
    let products = Kind::parse(
        "products",
        &json!({"mapping": {"id": "sku", "name": "title", "price": {"from": "price_eur", "type": "number"}}}),
    )
    .unwrap();
    let csv = "sku,title,price_eur\nstove,Stove,59\npan,Pan,cheap\n,No id,3\nstove,Stove v2,61\n";
    let got = read(csv, true, &products);
    assert_eq!(
        got.items
            .iter()
            .map(|i| Value::Object(i.clone()))
            .collect::<Vec<_>>(),
        [json!({"id": "stove", "name": "Stove v2", "price": 61.0})]
    );
    let lines: Vec<(usize, &str)> = got
        .errors
        .iter()
        .map(|e| (e.line, e.reason.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            (3, "price (from price_eur): \"cheap\" is not a number"),
            (4, "id: the row has no \"sku\"")
        ]
    );
    // Without a mapping a row is kept as it is, and needs an id.
    let plain = Kind::built_in("content").unwrap();
    let got = read(
        "{\"id\": 7, \"title\": \"Seven\"}\n{\"title\": \"none\"}\nnot json\n",
        false,
        &plain,
    );
    assert_eq!(
        Value::Object(got.items[0].clone()),
        json!({"id": "7", "title": "Seven"})
    );
    assert_eq!(got.errors.len(), 2);
    assert_eq!(got.errors[0].line, 2);
    assert!(got.errors[1].reason.starts_with("not JSON"));
}

#[test]
fn chunks_stay_under_their_size_in_order() {
    let items: Vec<_> = (0..100)
        .map(|i| object(json!({"id": i.to_string(), "pad": "x".repeat(50)})))
        .collect();
    let split = chunks(items, 1_000);
    assert!(split.len() > 5);
    for chunk in &split {
        assert!(serde_json::to_string(chunk).unwrap().len() <= 1_000 + 2);
    }
    let ids: Vec<String> = split
        .iter()
        .flatten()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, (0..100).map(|i| i.to_string()).collect::<Vec<_>>());
    assert!(chunks(Vec::new(), 1_000).is_empty());
}

#[test]
fn a_user_row_is_an_identify_call_the_same_row_twice_the_same_call() {
    let row = object(json!({"id": "u1", "email": "ann@example.com", "plan": "gold"}));
    let call = identify_of(&row).unwrap();
    assert_eq!(call["userId"], json!("u1"));
    assert_eq!(
        call["traits"],
        json!({"email": "ann@example.com", "plan": "gold"})
    );
    assert_eq!(identify_of(&row).unwrap()["messageId"], call["messageId"]);
    let changed = object(json!({"id": "u1", "email": "ann@example.com", "plan": "platinum"}));
    assert_ne!(
        identify_of(&changed).unwrap()["messageId"],
        call["messageId"]
    );
    let other = object(json!({"id": "u2", "email": "ann@example.com", "plan": "gold"}));
    assert_ne!(identify_of(&other).unwrap()["messageId"], call["messageId"]);
}

#[test]
fn a_feed_is_checked_like_a_destination_and_says_what_to_fix() {
    use super::feed::parse;
    let good = json!({"key": "shop_products", "kind": "products", "url": "https://shop.example/feed.csv",
        "format": "csv", "schedule": "*/30 * * * *", "mapping": {"id": "sku"}, "replace": true});
    let feed = parse(&good, false).unwrap();
    assert!(feed.csv && feed.replace && feed.schedule.is_some());
    let local = json!({"key": "f", "kind": "products", "url": "http://127.0.0.1:9000/feed.csv", "format": "csv"});
    assert!(parse(&local, true).unwrap().schedule.is_none());
    for (change, at, says) in [
        (
            json!({"url": "http://127.0.0.1:9000/f"}),
            "url",
            "must use https",
        ),
        (
            json!({"url": "https://10.0.0.2/f"}),
            "url",
            "a feed must be reachable on the internet",
        ),
        (json!({"format": "xml"}), "format", "csv or ndjson"),
        (json!({"schedule": "every hour"}), "schedule", ""),
        (
            json!({"kind": "Bad Kind"}),
            "kind",
            "the kind its items are",
        ),
        (
            json!({"mapping": {"name": "t"}}),
            "mapping",
            "names the source of \"id\"",
        ),
        (json!({"color": "red"}), "color", "unknown field"),
    ] {
        let mut spec = good.clone();
        for (k, v) in change.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let refused = parse(&spec, false).unwrap_err();
        assert_eq!(refused.at, at, "{spec}");
        assert!(refused.message.contains(says), "{refused}");
    }
}
