//! Reading and filling the JSON the authority answers with, without indexing that could
//! panic: a missing field reads as `null`, and a field is set only on an object.

use serde_json::Value;

/// `value[key]`, or `null` when there is no such field.
pub fn field<'v>(value: &'v Value, key: &str) -> &'v Value {
    value.get(key).unwrap_or(&Value::Null)
}

/// Sets `object[key] = v`; a value that is not an object is left as it is.
pub fn set(object: &mut Value, key: &str, v: Value) {
    if let Some(fields) = object.as_object_mut() {
        fields.insert(key.to_owned(), v);
    }
}
