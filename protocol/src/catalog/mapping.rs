//! A catalog kind's field mapping (the seeds' "data customization"): which source fields an
//! item keeps, under which name and type. Fields not mapped are dropped; a value that does
//! not fit its type is a row error, never a silent drop.
//!
//! ```json
//! {"id": "sku", "name": "title",
//!  "price": {"from": "price_eur", "type": "number"},
//!  "category": {"from": "path", "split": "›"}}
//! ```

use serde_json::{Map, Value};

/// The type a mapped field must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// Kept as text (numbers and booleans written as text).
    Text,
    /// A finite number (text that reads as one is converted).
    Number,
    /// `true` / `false` (also the texts `true`, `false`, `1`, `0`).
    Boolean,
}

/// One mapped field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The item's field name.
    pub name: String,
    /// The source field it is read from.
    pub from: String,
    /// Its type.
    pub kind: Type,
    /// Split text on this separator into a list (trimmed, empty parts left out).
    pub split: Option<String>,
}

/// A kind's mapping: the fields kept, `id` among them.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    /// The fields, `id` first.
    pub fields: Vec<Field>,
}

/// Most fields a mapping keeps.
pub const MAX_FIELDS: usize = 100;

fn field_name_ok(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Mapping {
    /// Reads a mapping; the error names the field and says what to write instead.
    pub fn parse(spec: &Value) -> Result<Self, String> {
        let Some(spec) = spec.as_object() else {
            return Err(
                "a mapping is an object such as {\"id\": \"sku\", \"name\": \"title\"}".into(),
            );
        };
        if !spec.contains_key("id") {
            return Err("a mapping names the source of \"id\", e.g. {\"id\": \"sku\"}".into());
        }
        if spec.len() > MAX_FIELDS {
            return Err(format!("a mapping keeps at most {MAX_FIELDS} fields"));
        }
        let mut fields = Vec::new();
        for (name, rule) in spec {
            if !field_name_ok(name) {
                return Err(format!(
                    "{name:?}: a field name is 1 to 64 characters a-z, A-Z, 0-9 and _"
                ));
            }
            let field = match rule {
                Value::String(from) => Field {
                    name: name.clone(),
                    from: from.clone(),
                    kind: Type::Text,
                    split: None,
                },
                Value::Object(rule) => {
                    for key in rule.keys() {
                        if !matches!(key.as_str(), "from" | "type" | "split") {
                            return Err(format!(
                                "{name}: unknown setting {key:?} (use from, type and split)"
                            ));
                        }
                    }
                    let from = rule
                        .get("from")
                        .and_then(Value::as_str)
                        .ok_or_else(|| format!("{name}: \"from\" names the source field"))?;
                    let kind = match rule.get("type").map(|t| t.as_str()) {
                        None | Some(Some("text")) => Type::Text,
                        Some(Some("number")) => Type::Number,
                        Some(Some("boolean")) => Type::Boolean,
                        Some(_) => return Err(format!("{name}: type is text, number or boolean")),
                    };
                    let split = match rule.get("split") {
                        None => None,
                        Some(Value::String(s)) if !s.is_empty() && kind == Type::Text => {
                            Some(s.clone())
                        }
                        Some(_) => {
                            return Err(format!(
                                "{name}: split is a non-empty separator, on a text field"
                            ))
                        }
                    };
                    Field {
                        name: name.clone(),
                        from: from.to_owned(),
                        kind,
                        split,
                    }
                }
                _ => {
                    return Err(format!(
                        "{name}: a source field name, or {{\"from\", \"type\", \"split\"}}"
                    ))
                }
            };
            if field.from.is_empty() {
                return Err(format!("{name}: the source field name is empty"));
            }
            fields.push(field);
        }
        fields.sort_by_key(|f| f.name != "id");
        Ok(Self { fields })
    }

    /// The item a source row maps to, or why the row is refused. Absent or empty source
    /// fields are left out (but `id` must be there).
    pub fn apply(&self, row: &Map<String, Value>) -> Result<Map<String, Value>, String> {
        let mut item = Map::new();
        for field in &self.fields {
            let value = match row.get(&field.from) {
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) if s.trim().is_empty() => continue,
                Some(v) => v,
            };
            let typed = convert(value, field)
                .map_err(|why| format!("{} (from {}): {why}", field.name, field.from))?;
            item.insert(field.name.clone(), typed);
        }
        match item.get("id") {
            Some(Value::String(id)) if id.chars().count() <= 200 => Ok(item),
            Some(_) => Err("id: at most 200 characters".into()),
            None => Err(format!("id: the row has no {:?}", self.fields[0].from)),
        }
    }
}

fn convert(value: &Value, field: &Field) -> Result<Value, String> {
    match field.kind {
        Type::Text => {
            let text = match value {
                Value::String(s) => s.trim().to_owned(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return Err("a text, not a list or an object".into()),
            };
            Ok(match &field.split {
                Some(separator) => Value::Array(
                    text.split(separator.as_str())
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(|p| Value::String(p.to_owned()))
                        .collect(),
                ),
                None => Value::String(text),
            })
        }
        Type::Number => {
            let number = match value {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            number
                .filter(|n| n.is_finite())
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("{value} is not a number"))
        }
        Type::Boolean => match value {
            Value::Bool(b) => Ok(Value::Bool(*b)),
            Value::String(s) if matches!(s.trim(), "true" | "1") => Ok(Value::Bool(true)),
            Value::String(s) if matches!(s.trim(), "false" | "0") => Ok(Value::Bool(false)),
            Value::Number(n) if n.as_f64() == Some(1.0) => Ok(Value::Bool(true)),
            Value::Number(n) if n.as_f64() == Some(0.0) => Ok(Value::Bool(false)),
            _ => Err(format!("{value} is not true or false")),
        },
    }
}
