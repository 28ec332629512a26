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
    /// The JSON path in the directory document, e.g. `$.computed."totalRevenue"`.
    pub path: String,
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

/// Parses one `where` condition.
pub fn parse(text: &str) -> Result<Condition, SearchError> {
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
            .ok_or_else(|| SearchError(format!("{text:?}: unknown operator; {HELP}")))?;
            (&text[..i], op, Some(&rest[len..]))
        }
    };
    let (group, key) = field
        .trim()
        .split_once('.')
        .ok_or_else(|| SearchError(format!("{text:?}: no field group; {HELP}")))?;
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
        "traits" | "identifiers" => {}
        "computed" if COMPUTED.contains(&key) => {}
        "computed" => {
            return Err(SearchError(format!(
                "{text:?}: no computed trait {key:?}; there are {}",
                COMPUTED.join(", ")
            )))
        }
        _ => {
            return Err(SearchError(format!(
                "{text:?}: unknown field group {group:?}; {HELP}"
            )))
        }
    }
    if let Some(v) = value {
        check_value(text, op, v.trim())?;
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
        path: format!("$.{group}.\"{key}\""),
        op,
        value,
    })
}

/// Refuses a value its operator cannot use, so a typo is a 400 and not a silent empty
/// answer: `==` or `=>`, an empty value, or an ordering against a text that is neither a
/// number nor an ISO 8601 time.
fn check_value(text: &str, op: Op, value: &str) -> Result<(), SearchError> {
    if value.starts_with(['=', '!', '<', '>', '~']) {
        return Err(SearchError(format!("{text:?}: unknown operator; {HELP}")));
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
        params.push(Param::Text(c.path.clone()));
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
        assert_eq!(c.path, "$.computed.\"totalRevenue\"");
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
