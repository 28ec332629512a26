//! A catalog kind: its name, the mapping its files go through, and which event fields name
//! its items. `products`, `content` and `users` exist in every workspace; a workspace may
//! declare more (`PUT /v1/catalog/kinds/{kind}`) and change the built-in ones' settings.

use serde_json::{json, Map, Value};

use super::mapping::Mapping;

/// Names that are routes under `/v1/catalog/`, never kinds.
const RESERVED: [&str; 3] = ["kinds", "feeds", "uploads"];

/// The kinds every workspace has.
pub const BUILT_IN: [&str; 3] = ["products", "content", "users"];

/// Most kinds a workspace declares.
pub const MAX_KINDS: usize = 20;

/// An event field that names an item: `properties.<name>`, or
/// `properties.<list>[].<name>` for each line of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemField {
    /// The list of lines the field is in (`products` in `products[].product_id`).
    pub list: Option<String>,
    /// The field holding the item's id.
    pub name: String,
}

impl ItemField {
    /// Reads `product_id` or `products[].product_id`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let ok = |s: &str| {
            (1..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        let (list, name) = match text.split_once("[].") {
            Some((list, name)) => (Some(list.to_owned()), name),
            None => (None, text),
        };
        if !ok(name) || list.as_deref().is_some_and(|l| !ok(l)) {
            return Err(format!(
                "{text:?}: an item field is a property name such as \"product_id\", or \"products[].product_id\" for each line of a list"
            ));
        }
        Ok(Self {
            list,
            name: name.to_owned(),
        })
    }

    /// As written in settings.
    pub fn text(&self) -> String {
        match &self.list {
            Some(list) => format!("{list}[].{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// A kind's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Kind {
    /// Its name, as in `/v1/catalog/{kind}`.
    pub name: String,
    /// How a file's rows become items; without one, a row is kept as it is (it needs `id`).
    pub mapping: Option<Mapping>,
    /// The event fields that name its items (none for `users`, whose rows become
    /// identify calls instead).
    pub item_fields: Vec<ItemField>,
}

/// Whether `name` can name a kind: 1 to 40 characters a-z, 0-9, `_` and `-`, not a route.
pub fn name_ok(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && !RESERVED.contains(&name)
}

impl Kind {
    /// A built-in kind with its default settings.
    pub fn built_in(name: &str) -> Option<Self> {
        let fields: &[&str] = match name {
            "products" => &["product_id", "products[].product_id"],
            "content" => &["content_id"],
            "users" => &[],
            _ => return None,
        };
        Some(Self {
            name: name.to_owned(),
            mapping: None,
            item_fields: fields
                .iter()
                .filter_map(|f| ItemField::parse(f).ok())
                .collect(),
        })
    }

    /// Reads the settings of kind `name` (`{"mapping": {…}, "itemFields": […]}`, both
    /// optional); the error says what to write.
    pub fn parse(name: &str, spec: &Value) -> Result<Self, String> {
        if !name_ok(name) {
            return Err(format!(
                "{name:?}: a kind is 1 to 40 characters a-z, 0-9, _ and -, and not one of {RESERVED:?}"
            ));
        }
        let Some(spec) = spec.as_object() else {
            return Err("a kind's settings are an object: {\"mapping\": {…}, \"itemFields\": [\"product_id\"]}".into());
        };
        if let Some(key) = spec
            .keys()
            .find(|k| !matches!(k.as_str(), "kind" | "mapping" | "itemFields"))
        {
            return Err(format!(
                "unknown setting {key:?} (a kind has mapping and itemFields)"
            ));
        }
        let mapping = match spec.get("mapping") {
            None | Some(Value::Null) => None,
            Some(m) => Some(Mapping::parse(m).map_err(|e| format!("mapping: {e}"))?),
        };
        let item_fields = match spec.get("itemFields") {
            None => Self::built_in(name).map_or_else(Vec::new, |k| k.item_fields),
            Some(Value::Array(fields)) if name == "users" && !fields.is_empty() => {
                return Err("itemFields: users are not named by events; their rows become identify calls".into())
            }
            Some(Value::Array(fields)) if fields.len() <= 10 => fields
                .iter()
                .map(|f| {
                    f.as_str()
                        .ok_or_else(|| "itemFields: each is a text".to_owned())
                        .and_then(ItemField::parse)
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err("itemFields: a list of at most 10 fields, e.g. [\"product_id\", \"products[].product_id\"]".into())
            }
        };
        Ok(Self {
            name: name.to_owned(),
            mapping,
            item_fields,
        })
    }

    /// The item a source row becomes, or why the row is refused.
    pub fn item_of(&self, row: &Map<String, Value>) -> Result<Map<String, Value>, String> {
        if let Some(mapping) = &self.mapping {
            return mapping.apply(row);
        }
        let mut item: Map<String, Value> = row
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let id = match item.get("id") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => return Err("id: a text or a number".into()),
            None => {
                return Err("id: the row has no \"id\" (or declare a mapping that names it)".into())
            }
        };
        if id.chars().count() > 200 {
            return Err("id: at most 200 characters".into());
        }
        item.insert("id".into(), Value::String(id));
        Ok(item)
    }

    /// The settings as the API shows them (the mapping as it was written is kept by the
    /// caller; this is the parsed form's item fields).
    pub fn item_fields_json(&self) -> Value {
        json!(self
            .item_fields
            .iter()
            .map(ItemField::text)
            .collect::<Vec<_>>())
    }
}
