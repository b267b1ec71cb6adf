//! Named parameters, with typed accessors whose errors (`-32602`) name
//! the parameter.

use super::RpcError;
use serde_json::{Map, Value};

/// Named parameters with typed accessors that produce `-32602` errors naming
/// the parameter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params(pub Map<String, Value>);

impl Params {
    /// A parameter's raw value; `null` counts as absent.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A required string parameter.
    pub fn str(&self, name: &str) -> Result<&str, RpcError> {
        match self.get(name) {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(RpcError::param(name, "must be a string")),
            None => Err(RpcError::param(name, "is required")),
        }
    }

    /// An optional string parameter.
    pub fn opt_str(&self, name: &str) -> Result<Option<&str>, RpcError> {
        match self.get(name) {
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(RpcError::param(name, "must be a string")),
            None => Ok(None),
        }
    }

    /// An optional boolean parameter, `default` when absent.
    pub fn bool_or(&self, name: &str, default: bool) -> Result<bool, RpcError> {
        match self.get(name) {
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(RpcError::param(name, "must be true or false")),
            None => Ok(default),
        }
    }

    /// An optional object parameter.
    pub fn opt_object(&self, name: &str) -> Result<Option<&Map<String, Value>>, RpcError> {
        match self.get(name) {
            Some(Value::Object(o)) => Ok(Some(o)),
            Some(_) => Err(RpcError::param(name, "must be an object")),
            None => Ok(None),
        }
    }

    /// An optional non-negative integer parameter.
    pub fn opt_u64(&self, name: &str) -> Result<Option<u64>, RpcError> {
        match self.get(name) {
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| RpcError::param(name, "must be a non-negative integer")),
            None => Ok(None),
        }
    }

    /// Rejects parameters other than `allowed`, so a typo is an error and not ignored.
    pub fn only(&self, allowed: &[&str]) -> Result<(), RpcError> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(RpcError::param(k, "is not a parameter of this method")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn param_accessors_name_the_param() {
        let p = Params(
            json!({"name": 3, "wait": "yes"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        assert!(p.str("name").unwrap_err().message.contains("`name`"));
        assert!(p
            .bool_or("wait", false)
            .unwrap_err()
            .message
            .contains("`wait`"));
        assert!(p.str("missing").unwrap_err().message.contains("required"));
        assert!(p.only(&["name"]).unwrap_err().message.contains("`wait`"));
    }
}
