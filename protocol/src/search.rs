//! Profile search: `where` conditions on traits, computed traits and identifiers, as the
//! admin API takes them (`computed.totalRevenue>500`, `traits.plan=pro`,
//! `identifiers.email~@example.com`), turned into a SQL condition over the profile
//! directory's JSON documents with every value bound as a parameter.

use std::fmt;

/// Computed traits a condition may name (`computed.<name>`).
pub const COMPUTED: [&str; 17] = [
    "firstSeen",
    "lastSeen",
    "visits",
    "pageViews",
    "orderCount",
    "totalRevenue",
    "currency",
    "revenueByCurrency",
    "unconvertedCurrencies",
    "averageOrderValue",
    "lastOrderAt",
    "topViewedProducts",
    "topBoughtProducts",
    "topCategories",
    "cartValue",
    "cartAbandoned",
    "consent",
];

/// Most conditions in one search.
pub const MAX_CONDITIONS: usize = 10;

/// How a condition compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `~`: contains, case-insensitively (a text, or a list's JSON).
    Contains,
    /// No operator: the field is set.
    Exists,
}

/// A value to compare with, typed as the JSON it will meet.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// A JSON path or a text.
    Text(String),
    /// A number (JSON booleans compare as 1 and 0).
    Number(f64),
}

/// One parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The field group (`traits`, `computed`, `identifiers`; `properties`, `context` in
    /// an event filter).
    pub group: String,
    /// The key within the group.
    pub key: String,
    /// The comparison.
    pub op: Op,
    /// The value (none for [`Op::Exists`]).
    pub value: Option<Param>,
}

/// Why a condition cannot be used; the message says how to write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchError(pub String);

impl fmt::Display for SearchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const HELP: &str = "write conditions as where=<field><op><value>, with field traits.<key>, computed.<name> or identifiers.<kind>, and op one of = != > >= < <= ~ (contains); where=<field> alone means the field is set";

/// Parses one `where` condition on a profile.
pub fn parse(text: &str) -> Result<Condition, SearchError> {
    parse_in(text, &["traits", "computed", "identifiers"], HELP)
}

const EVENT_HELP: &str = "write event filters as <field><op><value>, with field properties.<key>, context.<key> or traits.<key>, and op one of = != > >= < <= ~ (contains); <field> alone means the field is set";

/// Parses one filter on an event's fields (`properties.total>100`), as audiences take them.
pub fn parse_event_filter(text: &str) -> Result<Condition, SearchError> {
    parse_in(text, &["properties", "context", "traits"], EVENT_HELP)
}

fn parse_in(text: &str, groups: &[&str], help: &str) -> Result<Condition, SearchError> {
    let at = text.find(['=', '!', '<', '>', '~']);
    let (field, op, value) = match at {
        None => (text, Op::Exists, None),
        Some(i) => {
            let rest = &text[i..];
            let (op, len) = [
                (">=", Op::Ge),
                ("<=", Op::Le),
                ("!=", Op::Ne),
                (">", Op::Gt),
                ("<", Op::Lt),
                ("=", Op::Eq),
                ("~", Op::Contains),
            ]
            .into_iter()
            .find(|(sym, _)| rest.starts_with(sym))
            .map(|(sym, op)| (op, sym.len()))
            .ok_or_else(|| SearchError(format!("{text:?}: unknown operator; {help}")))?;
            (&text[..i], op, Some(&rest[len..]))
        }
    };
    let (group, key) = field
        .trim()
        .split_once('.')
        .ok_or_else(|| SearchError(format!("{text:?}: no field group; {help}")))?;
    if key.is_empty()
        || key.len() > 200
        || key.contains(['"', '\\'])
        || key.contains(char::is_control)
    {
        return Err(SearchError(format!(
            "{text:?}: the key must be 1 to 200 characters without quotes or backslashes"
        )));
    }
    match group {
        g if !groups.contains(&g) => {
            return Err(SearchError(format!(
                "{text:?}: unknown field group {group:?}; {help}"
            )))
        }
        "computed" if COMPUTED.contains(&key) => {}
        "computed" => {
            return Err(SearchError(format!(
                "{text:?}: no computed trait {key:?}; there are {}",
                COMPUTED.join(", ")
            )))
        }
        _ => {}
    }
    if let Some(v) = value {
        check_value(text, op, v.trim(), help)?;
    }
    let value = value.map(|v| match (op, v.trim()) {
        (Op::Contains, v) => Param::Text(v.to_lowercase()),
        (_, "true") => Param::Number(1.0),
        (_, "false") => Param::Number(0.0),
        (_, v) => v
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map_or_else(|| Param::Text(v.to_owned()), Param::Number),
    });
    Ok(Condition {
        group: group.to_owned(),
        key: key.to_owned(),
        op,
        value,
    })
}

impl Condition {
    /// The JSON path in the directory document, e.g. `$.computed."totalRevenue"`.
    pub fn path(&self) -> String {
        format!("$.{}.\"{}\"", self.group, self.key)
    }

    /// Whether the condition holds for a document (`{"traits": {..}, "computed": {..}}`, or
    /// an event), as the SQL of [`to_sql`] would judge it: numbers (and booleans, as 1 and
    /// 0) compare as numbers, texts as texts (ISO times order correctly), a list holds a
    /// value when one of its items does, and values of different kinds never compare.
    pub fn holds(&self, doc: &serde_json::Value) -> bool {
        let field = doc.get(&self.group).and_then(|g| g.get(&self.key));
        let Some(field) = field.filter(|f| !f.is_null()) else {
            return self.op == Op::Ne;
        };
        match (&self.op, &self.value) {
            (Op::Exists, _) => true,
            (Op::Contains, Some(Param::Text(needle))) => {
                let text = match field {
                    serde_json::Value::String(s) => s.to_lowercase(),
                    other => other.to_string().to_lowercase(),
                };
                text.contains(needle.as_str())
            }
            (_, Some(param)) => match field {
                serde_json::Value::Array(items) if self.op != Op::Ne => {
                    items.iter().any(|item| compare(item, self.op, param))
                }
                serde_json::Value::Array(items) => {
                    !items.iter().any(|item| compare(item, Op::Eq, param))
                }
                one => compare(one, self.op, param),
            },
            _ => false,
        }
    }
}

/// One JSON value against a parameter.
fn compare(field: &serde_json::Value, op: Op, param: &Param) -> bool {
    use std::cmp::Ordering;
    let ordering = match (field, param) {
        (serde_json::Value::Number(n), Param::Number(p)) => {
            n.as_f64().and_then(|n| n.partial_cmp(p))
        }
        (serde_json::Value::Bool(b), Param::Number(p)) => f64::from(u8::from(*b)).partial_cmp(p),
        (serde_json::Value::String(s), Param::Text(p)) => Some(s.as_str().cmp(p.as_str())),
        _ => None,
    };
    match (op, ordering) {
        (Op::Ne, None) => true,
        (_, None) => false,
        (Op::Eq, Some(o)) => o == Ordering::Equal,
        (Op::Ne, Some(o)) => o != Ordering::Equal,
        (Op::Gt, Some(o)) => o == Ordering::Greater,
        (Op::Ge, Some(o)) => o != Ordering::Less,
        (Op::Lt, Some(o)) => o == Ordering::Less,
        (Op::Le, Some(o)) => o != Ordering::Greater,
        (Op::Contains | Op::Exists, Some(_)) => false,
    }
}

/// Refuses a value its operator cannot use, so a typo is a 400 and not a silent empty
/// answer: `==` or `=>`, an empty value, or an ordering against a text that is neither a
/// number nor an ISO 8601 time.
fn check_value(text: &str, op: Op, value: &str, help: &str) -> Result<(), SearchError> {
    if value.starts_with(['=', '!', '<', '>', '~']) {
        return Err(SearchError(format!("{text:?}: unknown operator; {help}")));
    }
    if value.is_empty() {
        return Err(SearchError(format!(
            "{text:?}: no value after the operator; write the field alone to test that it is set"
        )));
    }
    let ordering = matches!(op, Op::Gt | Op::Ge | Op::Lt | Op::Le);
    let number = value.parse::<f64>().is_ok_and(f64::is_finite);
    let time = value.len() >= 10 && crate::time::parse_rfc3339(&time_of(value)).is_some();
    if ordering && !number && !time {
        return Err(SearchError(format!(
            "{text:?}: {value:?} is not a number or an ISO 8601 time, so it cannot be compared in order"
        )));
    }
    Ok(())
}

/// A date alone (`2026-11-20`) as the start of its day, so it reads as a time.
fn time_of(value: &str) -> String {
    if value.len() == 10 {
        [value, "T00:00:00Z"].concat()
    } else {
        value.to_owned()
    }
}

/// The SQL condition over a `doc` column for all `conditions` (all must hold), and its
/// parameters in order.
pub fn to_sql(conditions: &[Condition]) -> (String, Vec<Param>) {
    let mut sql = Vec::new();
    let mut params = Vec::new();
    for c in conditions {
        let field = "json_extract(doc, ?)";
        params.push(Param::Text(c.path()));
        let clause = match c.op {
            Op::Exists => format!("{field} IS NOT NULL"),
            Op::Contains => format!("instr(lower({field}), ?) > 0"),
            Op::Ne => format!("{field} IS NOT ?"),
            op => {
                let sym = match op {
                    Op::Gt => ">",
                    Op::Ge => ">=",
                    Op::Lt => "<",
                    Op::Le => "<=",
                    _ => "=",
                };
                format!("{field} {sym} ?")
            }
        };
        params.extend(c.value.clone());
        sql.push(clause);
    }
    if sql.is_empty() {
        return ("1".to_owned(), params);
    }
    (sql.join(" AND "), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_conditions() {
        let c = parse("computed.totalRevenue>=500").unwrap();
        assert_eq!(c.path(), "$.computed.\"totalRevenue\"");
        assert_eq!((c.op, c.value), (Op::Ge, Some(Param::Number(500.0))));
        let c = parse("traits.plan=pro").unwrap();
        assert_eq!((c.op, c.value), (Op::Eq, Some(Param::Text("pro".into()))));
        let c = parse("computed.cartAbandoned=true").unwrap();
        assert_eq!(c.value, Some(Param::Number(1.0)));
        let c = parse("identifiers.email~@Example.com").unwrap();
        assert_eq!(
            (c.op, c.value),
            (Op::Contains, Some(Param::Text("@example.com".into())))
        );
        assert_eq!(parse("traits.vip").unwrap().op, Op::Exists);
        assert_eq!(parse("traits.name!=Ada").unwrap().op, Op::Ne);
        assert_eq!(parse("computed.lastSeen>2026-11-20").unwrap().op, Op::Gt);
        assert_eq!(
            parse("computed.lastSeen<=2026-11-20T10:00:00Z").unwrap().op,
            Op::Le
        );
    }

    #[test]
    fn refuses_what_it_cannot_search_with_a_reason() {
        for (bad, says) in [
            ("computed.revenue>1", "no computed trait"),
            ("plan=pro", "no field group"),
            ("profile.x=1", "unknown field group"),
            ("traits.a\"b=1", "without quotes"),
            ("traits.=1", "1 to 200"),
            ("traits.plan==pro", "unknown operator"),
            ("traits.plan=>3", "unknown operator"),
            ("computed.totalRevenue>abc", "not a number"),
            ("computed.lastSeen<yesterday", "not a number"),
            ("traits.plan=", "no value"),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn the_computed_names_are_those_the_profile_shows() {
        let shown = serde_json::to_value(crate::computed::Computed::default()).unwrap();
        let mut shown: Vec<&str> = shown
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut listed = COMPUTED.to_vec();
        shown.sort_unstable();
        listed.sort_unstable();
        assert_eq!(listed, shown);
    }

    #[test]
    fn holds_judges_documents_like_the_sql() {
        let doc = serde_json::json!({
            "traits": {"plan": "pro", "vip": true, "seats": 12},
            "computed": {"totalRevenue": 640.5, "lastSeen": "2026-11-20T10:00:00.000Z"},
            "identifiers": {"email": ["ada@example.com", "ada@work.example"]},
        });
        for (text, expect) in [
            ("computed.totalRevenue>500", true),
            ("computed.totalRevenue<500", false),
            ("computed.totalRevenue>=640.5", true),
            ("traits.plan=pro", true),
            ("traits.plan!=pro", false),
            ("traits.plan!=basic", true),
            ("traits.vip=true", true),
            ("traits.missing", false),
            ("traits.missing!=x", true),
            ("traits.plan>10", false),
            ("computed.lastSeen>2026-11-19", true),
            ("identifiers.email=ada@work.example", true),
            ("identifiers.email!=ada@work.example", false),
            ("identifiers.email~@EXAMPLE.com", true),
        ] {
            let c = parse(text).unwrap_or_else(|_| parse_event_filter(text).unwrap());
            assert_eq!(c.holds(&doc), expect, "{text}");
        }
        let event = serde_json::json!({"properties": {"total": 120, "category": "shoes"}});
        assert!(parse_event_filter("properties.total>100")
            .unwrap()
            .holds(&event));
        assert!(parse_event_filter("properties.category=shoes")
            .unwrap()
            .holds(&event));
        assert!(parse_event_filter("computed.x=1").is_err());
        assert!(parse("properties.total>1").is_err());
    }

    #[test]
    fn binds_every_value() {
        let (sql, params) = to_sql(&[
            parse("computed.orderCount>1").unwrap(),
            parse("traits.plan").unwrap(),
        ]);
        assert_eq!(
            sql,
            "json_extract(doc, ?) > ? AND json_extract(doc, ?) IS NOT NULL"
        );
        assert_eq!(params.len(), 3);
        assert_eq!(to_sql(&[]).0, "1");
    }
}
