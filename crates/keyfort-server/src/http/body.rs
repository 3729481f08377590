//! JSON request bodies, with errors a person can act on (serde_json's syntax
//! errors name a position, never the input text).

use keyfort_core::Error;
use serde_json::{Map, Value};

/// The body as a JSON object; an empty body is an error.
pub fn object(body: &[u8]) -> Result<Map<String, Value>, Error> {
    if body.is_empty() {
        return Err(Error::bad(
            "The request body is empty; this operation needs a JSON object.",
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Error::bad("The request body must be a JSON object.")),
        Err(e) => Err(Error::bad(format!(
            "The request body is not valid JSON: {e}."
        ))),
    }
}

/// The body as a JSON object; an empty body is an empty object.
pub fn object_or_empty(body: &[u8]) -> Result<Map<String, Value>, Error> {
    if body.is_empty() {
        Ok(Map::new())
    } else {
        object(body)
    }
}

/// The `properties` object of an ARM-shaped body.
pub fn properties(body: &[u8]) -> Result<Map<String, Value>, Error> {
    match object(body)?.remove("properties") {
        Some(Value::Object(p)) => Ok(p),
        _ => Err(Error::bad("The request body needs a 'properties' object.")),
    }
}
