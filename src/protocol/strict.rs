//! JSON decoding that refuses an object with the same key twice.
//!
//! serde_json (like most JSON libraries) keeps the last of two equal keys,
//! so `{"method":"ping","method":"shutdown"}` would be read as a
//! `shutdown`. RFC 8259 leaves duplicate names to the implementation; a
//! request that two readers could understand differently is refused
//! instead (`-32600`), in the request object and anywhere in its `params`.
//! The checks ride along the one decode the request needs: no second pass.
//!
//! Also here: the shapes the slow path and batches need, read without
//! decoding what they do not look at ([`members`], [`batch`]).

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

/// A JSON value decoded like [`serde_json::Value`], except that an object
/// holding a key twice is an error.
#[derive(Debug, PartialEq)]
pub struct StrictValue(pub Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let dup = RefCell::new(None);
        StrictSeed { dup: &dup }.deserialize(d).map(StrictValue)
    }
}

/// An object of named parameters, decoded by the rules of [`StrictValue`].
#[derive(Debug, PartialEq)]
pub struct StrictObject(pub Map<String, Value>);

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match StrictValue::deserialize(d)?.0 {
            Value::Object(m) => Ok(StrictObject(m)),
            other => Err(de::Error::invalid_type(unexpected(&other), &"an object")),
        }
    }
}

fn unexpected(v: &Value) -> de::Unexpected<'_> {
    match v {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(_) => de::Unexpected::Other("a number"),
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

/// Decodes `raw` (known to be valid JSON) by the rules of [`StrictValue`];
/// `Err` holds the first key found twice.
pub fn strict_value(raw: &RawValue) -> Result<Value, String> {
    let dup = RefCell::new(None);
    let mut d = serde_json::Deserializer::from_str(raw.get());
    match (StrictSeed { dup: &dup }).deserialize(&mut d) {
        Ok(v) => Ok(v),
        // Valid JSON fails only on a duplicate (nesting is bounded before
        // any line is decoded).
        Err(e) => Err(dup.into_inner().unwrap_or_else(|| e.to_string())),
    }
}

/// Decodes one value, recording in `dup` the first key seen twice.
#[derive(Clone, Copy)]
struct StrictSeed<'c> {
    dup: &'c RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for StrictSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(Number::from_f64(n).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element_seed(self)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut obj = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if obj.contains_key(&key) {
                let message = format!("duplicate key `{key}`");
                self.dup.borrow_mut().get_or_insert(key);
                return Err(de::Error::custom(message));
            }
            let value = map.next_value_seed(self)?;
            obj.insert(key, value);
        }
        Ok(Value::Object(obj))
    }
}

/// A string that borrows from the input when it has no escapes (object
/// keys, method names).
pub struct Text<'de>(pub Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Remembers the keys of one object to find one given twice: a few are
/// compared in a list, many go into a set (so a hostile object with
/// thousands of keys costs linear time, not quadratic).
/// Allocates nothing until a key is recorded.
#[derive(Default)]
pub struct SeenKeys<'de> {
    few: Vec<Cow<'de, str>>,
    many: Option<HashSet<Cow<'de, str>>>,
}

impl<'de> SeenKeys<'de> {
    /// Records `key`; false if it was already there.
    pub fn insert(&mut self, key: Cow<'de, str>) -> bool {
        if let Some(many) = &mut self.many {
            return many.insert(key);
        }
        if self.few.contains(&key) {
            return false;
        }
        if self.few.len() < 16 {
            self.few.push(key);
        } else {
            let mut many: HashSet<_> = self.few.drain(..).collect();
            many.insert(key);
            self.many = Some(many);
        }
        true
    }
}

/// What a line holds, read without decoding its members.
pub enum Shape<'de> {
    /// An object: its members in order, as raw text.
    Object(Vec<(Cow<'de, str>, &'de RawValue)>),
    /// Any other JSON value.
    Other,
}

impl<'de> Deserialize<'de> for Shape<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Shape<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape<'de>, A::Error> {
                let mut members = Vec::new();
                while let Some(Text(key)) = map.next_key()? {
                    members.push((key, map.next_value::<&RawValue>()?));
                }
                Ok(Shape::Object(members))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Shape::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Shape<'de>, E> {
                Ok(Shape::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Shape<'de>, E> {
                Ok(Shape::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Shape<'de>, E> {
                Ok(Shape::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Shape<'de>, E> {
                Ok(Shape::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Shape<'de>, E> {
                Ok(Shape::Other)
            }
            fn visit_unit<E>(self) -> Result<Shape<'de>, E> {
                Ok(Shape::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// Reads a line as an object's members (see [`Shape`]); `Err` is a JSON
/// syntax error.
pub fn members(line: &[u8]) -> Result<Shape<'_>, serde_json::Error> {
    serde_json::from_slice(line)
}

/// The members of a batch (a JSON array), as raw text, up to `max` of them.
pub enum Batch<'de> {
    /// At most `max` members.
    Members(Vec<&'de RawValue>),
    /// More than `max` members: how many there are.
    TooMany(usize),
}

/// Reads a line that starts with `[` as a batch of at most `max` members;
/// past that, the rest is only checked for syntax and counted. `Err` is a
/// JSON syntax error (or a line that is no array after all).
pub fn batch(line: &[u8], max: usize) -> Result<Batch<'_>, serde_json::Error> {
    struct Seed(usize);
    impl<'de> DeserializeSeed<'de> for Seed {
        type Value = Batch<'de>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Batch<'de>, D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de> Visitor<'de> for Seed {
        type Value = Batch<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of requests")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Batch<'de>, A::Error> {
            let mut members = Vec::new();
            while members.len() < self.0 {
                match seq.next_element::<&RawValue>()? {
                    Some(m) => members.push(m),
                    None => return Ok(Batch::Members(members)),
                }
            }
            let mut count = members.len();
            while seq.next_element::<IgnoredAny>()?.is_some() {
                count += 1;
            }
            Ok(if count > self.0 {
                Batch::TooMany(count)
            } else {
                Batch::Members(members)
            })
        }
    }
    let mut d = serde_json::Deserializer::from_slice(line);
    let batch = Seed(max).deserialize(&mut d)?;
    d.end()?;
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strict(text: &str) -> Result<Value, String> {
        let raw: &RawValue = serde_json::from_str(text).expect("valid JSON");
        strict_value(raw)
    }

    #[test]
    fn duplicate_keys_are_found_at_any_depth() {
        assert_eq!(
            strict(r#"{"a":1,"b":[{"c":2}]}"#),
            Ok(json!({"a":1,"b":[{"c":2}]}))
        );
        assert_eq!(strict(r#"{"a":1,"a":2}"#), Err("a".to_string()));
        assert_eq!(strict(r#"[{"x":{"y":1,"y":1}}]"#), Err("y".to_string()));
        // Escapes are decoded before keys are compared.
        assert_eq!(strict(r#"{"a":1,"\u0061":2}"#), Err("a".to_string()));
        // Equal keys in different objects are fine.
        assert!(strict(r#"{"a":{"a":{"a":1}}}"#).is_ok());
    }

    #[test]
    fn strict_values_decode_like_serde_json() {
        for text in [
            r#"{"n":[1,-2,3.5,1e300,18446744073709551615],"s":"\u00e9\n","t":true,"z":null}"#,
            r#"[]"#,
            r#""x""#,
        ] {
            let plain: Value = serde_json::from_str(text).expect("valid");
            assert_eq!(strict(text), Ok(plain), "{text}");
        }
    }

    #[test]
    fn seen_keys_switch_to_a_set_without_forgetting() {
        let mut seen = SeenKeys::default();
        for i in 0..100 {
            assert!(seen.insert(Cow::Owned(i.to_string())));
        }
        for i in [0, 15, 16, 99] {
            assert!(!seen.insert(Cow::Owned(i.to_string())), "{i}");
        }
    }

    #[test]
    fn batches_are_counted_past_their_limit() {
        let Ok(Batch::Members(m)) = batch(br#"[1, {"a":[2]} ,"x"]"#, 3) else {
            panic!("three members");
        };
        let texts: Vec<&str> = m.iter().map(|r| r.get()).collect();
        assert_eq!(texts, ["1", r#"{"a":[2]}"#, r#""x""#]);
        assert!(matches!(batch(b"[1,2,3,4]", 3), Ok(Batch::TooMany(4))));
        assert!(matches!(batch(b"[]", 3), Ok(Batch::Members(m)) if m.is_empty()));
        assert!(batch(b"[1,2", 3).is_err());
        assert!(
            batch(b"[1,2,3,4,", 3).is_err(),
            "syntax checked past the limit"
        );
        assert!(batch(b"[1] x", 3).is_err());
    }
}
