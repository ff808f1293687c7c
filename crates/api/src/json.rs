//! Request bodies, parsed with docker's errors: malformed JSON and fields docker does not
//! have are 400s naming what is wrong, never a crash.

use axum::body::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// Fields of API 1.41 that the models (of a newer API) dropped, and that ask for what
/// this engine does anyway: `CheckDuplicate` (network create: a duplicate name is always
/// refused), `Container` (exec create, which docker-py sends: the path names it).
const LEGACY_FIELDS: &[&str] = &["CheckDuplicate", "Container"];

/// `body` as `T`. An empty body is `T`'s default, as docker treats an absent body.
pub(crate) fn parse<T: DeserializeOwned + Serialize + Default>(
    body: &Bytes,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let raw: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON in the request body: {e}")))?;
    let typed: T = serde_json::from_value(raw.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))?;
    let known = serde_json::to_value(&typed)
        .map_err(|e| ApiError::internal(format!("writing the request back: {e}")))?;
    if let Some(field) = unknown_field(&raw, &known, "") {
        return Err(ApiError::bad_request(format!(
            "invalid request body: unknown field {field:?}"
        )));
    }
    Ok(typed)
}

/// The first key of `raw` (recursively through objects) that reading it as the typed value
/// dropped. `null` values are not fields (docker's clients send them for unset ones), and
/// maps whose keys are data (Labels, ExposedPorts, ...) keep every key they were given.
fn unknown_field(raw: &Value, known: &Value, at: &str) -> Option<String> {
    let (Value::Object(raw), Value::Object(known)) = (raw, known) else {
        return None;
    };
    for (key, value) in raw {
        if value.is_null() {
            continue;
        }
        let path = if at.is_empty() {
            key.clone()
        } else {
            format!("{at}.{key}")
        };
        match known.get(key) {
            None if is_empty(value) || LEGACY_FIELDS.contains(&path.as_str()) => {}
            None => return Some(path),
            Some(k) => {
                if let Some(deeper) = unknown_field(value, k, &path) {
                    return Some(deeper);
                }
            }
        }
    }
    None
}

/// A zero value: what an unknown field holds when a client sends every field it knows
/// (docker's CLI sends `"KernelMemory": 0`, a field of older APIs). A zero asks for
/// nothing, so it is no reason to refuse the request; any other value would be ignored
/// silently, and is refused.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_empty),
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Bool(b) => !b,
        Value::Null => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use basic_engine::ContainerConfig;

    #[test]
    fn dockers_create_bodies_parse_and_unknown_fields_are_named() {
        let body = Bytes::from_static(
            br#"{"Image":"busybox","Cmd":["true"],"Env":null,"Labels":{"a":"b"},
                "ExposedPorts":{"80/tcp":{}},"HostConfig":{"Binds":[],"NetworkMode":"none"}}"#,
        );
        let config: ContainerConfig = parse(&body).unwrap();
        assert_eq!(config.image.as_deref(), Some("busybox"));
        let zeros = Bytes::from_static(
            br#"{"Image":"busybox","HostConfig":{"KernelMemory":0,"Old":false,"Gone":{"a":""}}}"#,
        );
        assert!(parse::<ContainerConfig>(&zeros).is_ok());
        let bad = Bytes::from_static(br#"{"Image":"busybox","HostConfig":{"Bogus":1}}"#);
        let e = parse::<ContainerConfig>(&bad).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(e.message.contains("HostConfig.Bogus"), "{}", e.message);
        let broken = Bytes::from_static(b"{\"Image\":");
        let e = parse::<ContainerConfig>(&broken).unwrap_err();
        assert!(e.message.contains("invalid JSON"), "{}", e.message);
        assert_eq!(
            parse::<ContainerConfig>(&Bytes::new()).unwrap(),
            ContainerConfig::default()
        );
    }
}
