//! Named parameters, decoded into each method's params struct (serde
//! derive, unknown fields refused) with `-32602` errors that name the
//! parameter.
//!
//! [`Params::decode`] runs the struct's derived `Deserialize` on a
//! deserializer of its own, which keeps the messages tickd has always
//! sent (`param `name`: must be a string`) instead of serde's
//! (`invalid type: integer `3`, expected a string`), and checks in a fixed
//! order, whatever order the client wrote the keys in:
//! 1. a key that is not a field of the struct: `is not a parameter of this
//!    method` (the first such key, in the map's order);
//! 2. then each field in the struct's declaration order: absent (or
//!    `null`, which counts as absent) when it is not an `Option` is `is
//!    required`, a value of the wrong type `must be ...`.
//!
//! A params type whose own checks produce a complete message (a submitted
//! job's definition, checked by the config file's rules) reads its value
//! through `deserialize_newtype_struct` named [`WHOLE_MESSAGE`]: the
//! messages of its checks (`de::Error::custom`) are then sent as they are,
//! without the ``param `...`: `` prefix (a value of the wrong type still
//! gets it).
//!
//! Nothing here allocates for a request whose params are right, except
//! what the struct itself owns (a `String` field, a copied object).

use super::rpc::{ErrorCode, RpcError};
use crate::methods::call::WHOLE_MESSAGE;
use serde::de::{
    self, value::BorrowedStrDeserializer, DeserializeSeed, Deserializer, MapAccess, SeqAccess,
    Visitor,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::fmt;

/// A request's named parameters (`params`, an object); empty when absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params(pub Map<String, Value>);

impl Params {
    /// A parameter's raw value; `null` counts as absent.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// Decodes the params into `T` (a struct; see the module docs for the
    /// order of the checks and the messages).
    pub fn decode<'a, T: Deserialize<'a>>(&'a self) -> Result<T, RpcError> {
        T::deserialize(Fields(&self.0)).map_err(ParamError::into_rpc)
    }
}

/// Why params did not decode: the parameter (once known) and what is
/// wrong with it.
#[derive(Debug)]
pub struct ParamError {
    param: Option<String>,
    what: String,
    /// `what` is a whole message, sent as it is.
    whole: bool,
    /// Made by the params type's own check (`de::Error::custom`), not by
    /// this deserializer's type checks: only such a message can be whole.
    custom: bool,
}

impl ParamError {
    fn new(what: impl Into<String>) -> ParamError {
        ParamError {
            param: None,
            what: what.into(),
            whole: false,
            custom: false,
        }
    }

    fn about(mut self, param: &str) -> ParamError {
        if self.param.is_none() {
            self.param = Some(param.to_string());
        }
        self
    }

    fn into_rpc(self) -> RpcError {
        match (self.whole, self.param) {
            (false, Some(param)) => RpcError::param(&param, self.what),
            _ => RpcError::new(ErrorCode::InvalidParams, self.what),
        }
    }
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.param {
            Some(p) if !self.whole => write!(f, "param `{p}`: {}", self.what),
            _ => f.write_str(&self.what),
        }
    }
}

impl std::error::Error for ParamError {}

impl de::Error for ParamError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ParamError {
            custom: true,
            ..ParamError::new(msg.to_string())
        }
    }

    fn invalid_type(_: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        ParamError::new(format!("must be {exp}"))
    }

    fn invalid_value(_: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        ParamError::new(format!("must be {exp}"))
    }

    fn missing_field(field: &'static str) -> Self {
        ParamError::new("is required").about(field)
    }

    fn unknown_field(field: &str, _: &'static [&'static str]) -> Self {
        ParamError::new("is not a parameter of this method").about(field)
    }
}

/// The params object as a struct: unknown keys refused first, then the
/// struct's fields visited in their order, absent ones included.
struct Fields<'de>(&'de Map<String, Value>);

impl<'de> Deserializer<'de> for Fields<'de> {
    type Error = ParamError;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ParamError> {
        if let Some(key) = self.0.keys().find(|k| !fields.contains(&k.as_str())) {
            return Err(de::Error::unknown_field(key, fields));
        }
        visitor.visit_map(FieldAccess {
            map: self.0,
            fields: fields.iter(),
            current: "",
        })
    }

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, ParamError> {
        // Only a struct of named fields can be params: a bug, not a request.
        Err(ParamError {
            whole: true,
            ..ParamError::new("internal error: params decoded into a non-struct")
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// Visits every field of the struct, in its order.
struct FieldAccess<'de> {
    map: &'de Map<String, Value>,
    fields: std::slice::Iter<'static, &'static str>,
    current: &'static str,
}

impl<'de> MapAccess<'de> for FieldAccess<'de> {
    type Error = ParamError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ParamError> {
        let Some(&field) = self.fields.next() else {
            return Ok(None);
        };
        self.current = field;
        seed.deserialize(BorrowedStrDeserializer::new(field))
            .map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<S::Value, ParamError> {
        let field = self.current;
        let value = self.map.get(field).filter(|v| !v.is_null());
        seed.deserialize(Field(value)).map_err(|e| e.about(field))
    }
}

/// One field's value: `None` when absent (or null), which only an
/// `Option` accepts.
struct Field<'de>(Option<&'de Value>);

impl<'de> Deserializer<'de> for Field<'de> {
    type Error = ParamError;

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        match self.0 {
            None => visitor.visit_none(),
            Some(v) => visitor.visit_some(Val(v)),
        }
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        Val(self.present()?).deserialize_any(visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        Val(self.present()?).deserialize_bool(visitor)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        Val(self.present()?).deserialize_u64(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        Val(self.present()?).deserialize_str(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        Val(self.present()?).deserialize_str(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        Val(self.present()?).deserialize_map(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        Val(self.present()?).deserialize_seq(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ParamError> {
        Val(self.present()?).deserialize_newtype_struct(name, visitor)
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u128 f32 f64 char
        bytes byte_buf unit unit_struct tuple
        tuple_struct struct enum identifier ignored_any
    }
}

impl<'de> Field<'de> {
    fn present(self) -> Result<&'de Value, ParamError> {
        self.0.ok_or_else(|| ParamError::new("is required"))
    }
}

/// A JSON value (a field's, or one inside it), borrowed from the params.
struct Val<'de>(&'de Value);

impl<'de> Val<'de> {
    fn unexpected(&self) -> de::Unexpected<'de> {
        match self.0 {
            Value::Null => de::Unexpected::Unit,
            Value::Bool(b) => de::Unexpected::Bool(*b),
            Value::Number(_) => de::Unexpected::Other("a number"),
            Value::String(s) => de::Unexpected::Str(s),
            Value::Array(_) => de::Unexpected::Seq,
            Value::Object(_) => de::Unexpected::Map,
        }
    }
}

impl<'de> Deserializer<'de> for Val<'de> {
    type Error = ParamError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => visitor.visit_seq(Items(items.iter())),
            Value::Object(map) => visitor.visit_map(Entries {
                entries: map.iter(),
                value: None,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        match self.0 {
            Value::Bool(b) => visitor.visit_bool(*b),
            _ => Err(ParamError::new("must be true or false")),
        }
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        match self.0.as_u64() {
            Some(n) => visitor.visit_u64(n),
            None => Err(ParamError::new("must be a non-negative integer")),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        match self.0 {
            Value::String(s) => visitor.visit_borrowed_str(s),
            _ => Err(ParamError::new("must be a string")),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        match self.0 {
            Value::Object(_) => self.deserialize_any(visitor),
            _ => Err(ParamError::new("must be an object")),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        match self.0 {
            Value::Array(_) => self.deserialize_any(visitor),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ParamError> {
        let whole = name == WHOLE_MESSAGE;
        visitor.visit_newtype_struct(self).map_err(|mut e| {
            e.whole |= whole && e.custom;
            e
        })
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u128 f32 f64 char
        bytes byte_buf unit unit_struct tuple
        tuple_struct struct enum identifier ignored_any
    }
}

/// The items of an array inside a param.
struct Items<'de>(std::slice::Iter<'de, Value>);

impl<'de> SeqAccess<'de> for Items<'de> {
    type Error = ParamError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ParamError> {
        self.0.next().map(|v| seed.deserialize(Val(v))).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

/// The entries of an object inside a param.
struct Entries<'de> {
    entries: serde_json::map::Iter<'de>,
    value: Option<&'de Value>,
}

impl<'de> MapAccess<'de> for Entries<'de> {
    type Error = ParamError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ParamError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        seed.deserialize(BorrowedStrDeserializer::new(key.as_str()))
            .map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<S::Value, ParamError> {
        let value = self
            .value
            .take()
            .ok_or_else(|| ParamError::new("internal error: a value without its key"))?;
        seed.deserialize(Val(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

#[cfg(test)]
mod tests;
