//! docker's `filters` query parameter: JSON `{"key": ["value", ...]}`, or the older
//! `{"key": {"value": true}}` that docker still accepts (docker-py sends the first,
//! docker 1.x clients the second).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::ApiError;

/// The filters of `text` (absent or empty: none).
pub(crate) fn parse(text: Option<&str>) -> Result<BTreeMap<String, Vec<String>>, ApiError> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let bad = |why: &str| ApiError::bad_request(format!("invalid filters {text:?}: {why}"));
    let Value::Object(map) =
        serde_json::from_str::<Value>(text).map_err(|e| bad(&e.to_string()))?
    else {
        return Err(bad("expected a JSON object"));
    };
    let mut filters = BTreeMap::new();
    for (key, values) in map {
        let values: Vec<String> = match values {
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(bad("filter values must be strings")),
                })
                .collect::<Result<_, _>>()?,
            Value::Object(set) => set
                .into_iter()
                .filter(|(_, on)| on.as_bool().unwrap_or(false))
                .map(|(v, _)| v)
                .collect(),
            _ => return Err(bad("expected a list or a set of values for each key")),
        };
        filters.insert(key, values);
    }
    Ok(filters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_parse_and_garbage_is_a_400() {
        let new = parse(Some(r#"{"label":["a=b","c"],"status":["running"]}"#)).unwrap();
        assert_eq!(new["label"], vec!["a=b", "c"]);
        let old = parse(Some(r#"{"status":{"exited":true,"running":false}}"#)).unwrap();
        assert_eq!(old["status"], vec!["exited"]);
        assert!(parse(None).unwrap().is_empty());
        for bad in ["{", "[]", r#"{"a":1}"#, r#"{"a":[1]}"#] {
            let e = parse(Some(bad)).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
