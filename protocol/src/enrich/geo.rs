//! Geography from the request: where a visitor is, as precisely as analytics needs.
//!
//! Cloudflare resolves the client IP to a place before the Worker runs (`request.cf`);
//! the Worker hands the fields over as string pairs so this crate stays free of Worker
//! types. Coordinates are rounded to one decimal (about 11 km): enough for a map of
//! visitors, too coarse to find a home. Local development has no `request.cf`, so a
//! header in the same vocabulary stands in for it, parsed strictly so a typo shows.

use serde_json::{Map, Number, Value};

/// Where a request came from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Location {
    /// ISO 3166-1 alpha-2 country code, e.g. `DE`.
    pub country: Option<String>,
    /// Region (state, province) name, e.g. `Berlin`.
    pub region: Option<String>,
    /// ISO 3166-2 region code, e.g. `BE`.
    pub region_code: Option<String>,
    /// City name.
    pub city: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// IANA time zone, e.g. `Europe/Berlin`.
    pub timezone: Option<String>,
    /// Latitude in degrees, rounded to one decimal.
    pub latitude: Option<f64>,
    /// Longitude in degrees, rounded to one decimal.
    pub longitude: Option<f64>,
    /// Autonomous system number of the network.
    pub asn: Option<u32>,
    /// Name of the organisation owning that network.
    pub as_organization: Option<String>,
}

/// Why a development geo header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GeoError {
    /// A part had no `=`.
    MissingEquals {
        /// The part as written.
        part: String,
    },
    /// A key that is not one of `request.cf`'s.
    UnknownKey {
        /// The key as written.
        key: String,
    },
    /// The same key twice.
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// A key with nothing after the `=`.
    EmptyValue {
        /// The key.
        key: String,
    },
    /// A coordinate or AS number that is not a number in range.
    InvalidNumber {
        /// The key.
        key: String,
        /// The value as written.
        value: String,
    },
}

impl std::fmt::Display for GeoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MissingEquals { part } => write!(f, "geo part \"{part}\" is not key=value"),
            Self::UnknownKey { key } => write!(f, "geo key \"{key}\" is unknown"),
            Self::DuplicateKey { key } => write!(f, "geo key \"{key}\" is given twice"),
            Self::EmptyValue { key } => write!(f, "geo key \"{key}\" has an empty value"),
            Self::InvalidNumber { key, value } => {
                write!(f, "geo key \"{key}\": \"{value}\" is not a valid number")
            }
        }
    }
}

impl std::error::Error for GeoError {}

/// The `request.cf` keys read, in the order the JSON object lists them.
const KEYS: &[&str] = &[
    "country",
    "region",
    "regionCode",
    "city",
    "postalCode",
    "timezone",
    "latitude",
    "longitude",
    "asn",
    "asOrganization",
];

impl Location {
    /// Builds a location from `request.cf` fields as (key, value) strings. Unknown keys
    /// (`colo`, `continent`, …) and unreadable values are skipped: a missing city must
    /// never cost an event.
    pub fn from_cf_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut location = Self::default();
        for (key, value) in pairs {
            // Errors are only for the strict development header; here a bad value is
            // simply not known.
            let _ = location.set(key, value);
        }
        location
    }

    /// Parses the development header `country=DE;city=Berlin;latitude=52.52;…`, with the
    /// same keys as `request.cf`.
    pub fn from_dev_header(value: &str) -> Result<Self, GeoError> {
        let mut location = Self::default();
        let mut seen: Vec<&str> = Vec::new();
        for part in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| GeoError::MissingEquals {
                    part: part.to_owned(),
                })?;
            let key = key.trim();
            if seen.contains(&key) {
                return Err(GeoError::DuplicateKey { key: key.into() });
            }
            seen.push(key);
            location.set(key, value)?;
        }
        Ok(location)
    }

    /// Whether nothing at all is known.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// The `context.location` object, in Segment's key style (`postalCode`, `asOrganization`),
    /// with only the known fields.
    pub fn to_json(&self) -> Map<String, Value> {
        let text = |v: &Option<String>| v.clone().map(Value::String);
        let number = |v: Option<f64>| v.and_then(Number::from_f64).map(Value::Number);
        let values = [
            text(&self.country),
            text(&self.region),
            text(&self.region_code),
            text(&self.city),
            text(&self.postal_code),
            text(&self.timezone),
            number(self.latitude),
            number(self.longitude),
            self.asn.map(|n| Value::Number(n.into())),
            text(&self.as_organization),
        ];
        let mut object = Map::new();
        for (key, value) in KEYS.iter().zip(values) {
            if let Some(value) = value {
                object.insert((*key).to_owned(), value);
            }
        }
        object
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), GeoError> {
        let unknown = || GeoError::UnknownKey { key: key.into() };
        // An unknown key is the likelier mistake, so it is reported before its value.
        if !KEYS.contains(&key) {
            return Err(unknown());
        }
        let value = value.trim();
        if value.is_empty() {
            return Err(GeoError::EmptyValue { key: key.into() });
        }
        let invalid = || GeoError::InvalidNumber {
            key: key.into(),
            value: value.into(),
        };
        let text = Some(value.to_owned());
        match key {
            "country" => self.country = text,
            "region" => self.region = text,
            "regionCode" => self.region_code = text,
            "city" => self.city = text,
            "postalCode" => self.postal_code = text,
            "timezone" => self.timezone = text,
            "latitude" => self.latitude = Some(coordinate(value, 90).ok_or_else(invalid)?),
            "longitude" => self.longitude = Some(coordinate(value, 180).ok_or_else(invalid)?),
            "asn" => self.asn = Some(value.parse().map_err(|_| invalid())?),
            "asOrganization" => self.as_organization = text,
            _ => return Err(unknown()),
        }
        Ok(())
    }
}

/// Reads a decimal coordinate within ±`limit` degrees, rounded half away from zero to
/// one decimal.
///
/// Read by hand into tenths rather than through `f64::from_str`, whose exact algorithm
/// costs the Worker some 20 KB of Wasm; exponents, `inf` and `NaN` are refused.
fn coordinate(text: &str, limit: u32) -> Option<f64> {
    let (negative, digits) = match text.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        all => (false, all),
    };
    let (whole, fraction) = match digits.iter().position(|&b| b == b'.') {
        Some(dot) => (&digits[..dot], &digits[dot + 1..]),
        None => (digits, &[][..]),
    };
    if whole.is_empty() && fraction.is_empty()
        || !whole.iter().chain(fraction).all(u8::is_ascii_digit)
    {
        return None;
    }
    let digit = |i: usize| fraction.get(i).map_or(0, |d| u32::from(d - b'0'));
    let mut tenths = whole.iter().fold(0u32, |acc, d| {
        acc.saturating_mul(10).saturating_add(u32::from(d - b'0'))
    });
    tenths = tenths
        .saturating_mul(10)
        .saturating_add(digit(0) + u32::from(digit(1) >= 5));
    if tenths > limit * 10 {
        return None;
    }
    // Division by 10 is correctly rounded, so 134 tenths is exactly the f64 nearest 13.4;
    // zero stays positive, so the JSON never says -0.0.
    let degrees = f64::from(tenths) / 10.0;
    Some(if negative && tenths > 0 {
        -degrees
    } else {
        degrees
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> Location {
        Location {
            country: Some("DE".into()),
            region: Some("Berlin".into()),
            region_code: None,
            city: Some("Berlin".into()),
            postal_code: Some("10115".into()),
            timezone: Some("Europe/Berlin".into()),
            latitude: Some(52.5),
            longitude: Some(13.4),
            asn: Some(3320),
            as_organization: None,
        }
    }

    #[test]
    fn dev_header_gives_the_same_location_as_cf() {
        let header = Location::from_dev_header(
            "country=DE;region=Berlin;city=Berlin;postalCode=10115;timezone=Europe/Berlin;latitude=52.52;longitude=13.40;asn=3320",
        )
        .unwrap();
        let cf = Location::from_cf_pairs([
            ("country", "DE"),
            ("region", "Berlin"),
            ("city", "Berlin"),
            ("postalCode", "10115"),
            ("timezone", "Europe/Berlin"),
            ("latitude", "52.52000"),
            ("longitude", "13.40500"),
            ("asn", "3320"),
            ("colo", "FRA"),
        ]);
        assert_eq!(header, berlin());
        assert_eq!(cf, berlin());
    }

    #[test]
    fn coarsens_coordinates_to_one_decimal() {
        let cases = [
            ("52.52", Some(52.5)),
            ("13.46", Some(13.5)),
            ("13.40500", Some(13.4)),
            ("-33.8688", Some(-33.9)),
            ("+7.05", Some(7.1)),
            ("-0.04", Some(0.0)),
            ("0", Some(0.0)),
            ("52.", Some(52.0)),
            (".25", Some(0.3)),
            ("180", Some(180.0)),
            ("-179.99", Some(-180.0)),
            ("180.05", None),
            ("99999999999999999999", None),
            ("1e2", None),
            ("NaN", None),
            ("inf", None),
            ("", None),
            ("-", None),
            (".", None),
            ("1.2.3", None),
            ("12 ", None),
        ];
        for (text, want) in cases {
            let got = coordinate(text, 180);
            assert_eq!(got, want, "{text}");
            assert!(
                got.is_none_or(|g| g.is_sign_positive() || g < 0.0),
                "{text} gave -0.0"
            );
        }
    }

    #[test]
    fn dev_header_rejects_malformed_parts() {
        let cases = [
            (
                "country",
                GeoError::MissingEquals {
                    part: "country".into(),
                },
            ),
            (
                "colour=red",
                GeoError::UnknownKey {
                    key: "colour".into(),
                },
            ),
            (
                "colour=",
                GeoError::UnknownKey {
                    key: "colour".into(),
                },
            ),
            (
                "city=A;city=B",
                GeoError::DuplicateKey { key: "city".into() },
            ),
            ("city=", GeoError::EmptyValue { key: "city".into() }),
            (
                "latitude=north",
                GeoError::InvalidNumber {
                    key: "latitude".into(),
                    value: "north".into(),
                },
            ),
            (
                "latitude=91",
                GeoError::InvalidNumber {
                    key: "latitude".into(),
                    value: "91".into(),
                },
            ),
            (
                "longitude=NaN",
                GeoError::InvalidNumber {
                    key: "longitude".into(),
                    value: "NaN".into(),
                },
            ),
            (
                "asn=-1",
                GeoError::InvalidNumber {
                    key: "asn".into(),
                    value: "-1".into(),
                },
            ),
        ];
        for (header, want) in cases {
            assert_eq!(Location::from_dev_header(header), Err(want), "{header}");
        }
        let message = Location::from_dev_header("latitude=north")
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "geo key \"latitude\": \"north\" is not a valid number"
        );
    }

    #[test]
    fn dev_header_tolerates_spacing_and_empty_parts() {
        let got = Location::from_dev_header(" country = DE ; ; city=Berlin;").unwrap();
        assert_eq!(got.country.as_deref(), Some("DE"));
        assert_eq!(got.city.as_deref(), Some("Berlin"));
        assert!(Location::from_dev_header("").unwrap().is_empty());
    }

    #[test]
    fn cf_pairs_skip_unreadable_values() {
        let got = Location::from_cf_pairs([
            ("country", "NL"),
            ("latitude", "not a number"),
            ("longitude", "999"),
            ("asn", ""),
            ("city", "  "),
            ("asOrganization", "Example Networks"),
        ]);
        let want = Location {
            country: Some("NL".into()),
            as_organization: Some("Example Networks".into()),
            ..Location::default()
        };
        assert_eq!(got, want);
    }

    #[test]
    fn writes_only_known_fields_as_json() {
        let json = Value::Object(berlin().to_json());
        assert_eq!(
            json,
            serde_json::json!({
                "country": "DE", "region": "Berlin", "city": "Berlin", "postalCode": "10115",
                "timezone": "Europe/Berlin", "latitude": 52.5, "longitude": 13.4, "asn": 3320
            })
        );
        assert!(Location::default().to_json().is_empty());
    }
}
