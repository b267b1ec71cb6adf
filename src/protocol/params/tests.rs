//! Unit tests of the params deserializer: the checks' order and their
//! messages, on params structs made for the tests (the methods' own are
//! tested through `protocol::call`).

use super::*;
use serde_json::json;

fn params(v: Value) -> Params {
    Params(v.as_object().cloned().unwrap_or_default())
}

fn message<'a, T: Deserialize<'a> + fmt::Debug>(p: &'a Params) -> String {
    let err = p.decode::<T>().expect_err("refused");
    assert_eq!(err.code, ErrorCode::InvalidParams);
    err.message
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Three<'a> {
    name: &'a str,
    wait: Option<bool>,
    limit: Option<u64>,
    #[allow(dead_code)]
    args: Option<Map<String, Value>>,
}

#[test]
fn right_params_decode_borrowing_strings_and_null_is_absent() {
    let p = params(json!({"name": "a", "wait": null, "limit": 5, "args": {"x": [1, {"y": null}]}}));
    let t: Three<'_> = p.decode().expect("decodes");
    assert_eq!((t.name, t.wait, t.limit), ("a", None, Some(5)));
    assert_eq!(
        t.args.map(Value::Object),
        Some(json!({"x": [1, {"y": null}]}))
    );
}

#[test]
fn each_problem_names_its_param_in_todays_words() {
    let cases = [
        (json!({"name": 3}), "param `name`: must be a string"),
        (json!({}), "param `name`: is required"),
        (json!({"name": null}), "param `name`: is required"),
        (
            json!({"name": "a", "wait": "yes"}),
            "param `wait`: must be true or false",
        ),
        (
            json!({"name": "a", "limit": -1}),
            "param `limit`: must be a non-negative integer",
        ),
        (
            json!({"name": "a", "limit": 1.5}),
            "param `limit`: must be a non-negative integer",
        ),
        (
            json!({"name": "a", "args": [1]}),
            "param `args`: must be an object",
        ),
        (
            json!({"name": "a", "bogus": 1}),
            "param `bogus`: is not a parameter of this method",
        ),
        (
            json!({"name": "a", "bogus": null}),
            "param `bogus`: is not a parameter of this method",
        ),
    ];
    for (given, want) in cases {
        let p = params(given.clone());
        assert_eq!(message::<Three<'_>>(&p), want, "{given}");
    }
}

#[test]
fn unknown_keys_come_first_then_fields_in_declaration_order() {
    // Whatever order the client wrote them in.
    let p = params(json!({"args": 1, "wait": 2, "name": 3, "zzz": 4}));
    assert_eq!(
        message::<Three<'_>>(&p),
        "param `zzz`: is not a parameter of this method"
    );
    let p = params(json!({"args": 1, "wait": 2, "name": 3}));
    assert_eq!(message::<Three<'_>>(&p), "param `name`: must be a string");
    let p = params(json!({"args": 1, "wait": 2}));
    assert_eq!(message::<Three<'_>>(&p), "param `name`: is required");
    let p = params(json!({"args": 1, "limit": "x", "name": "a"}));
    assert_eq!(
        message::<Three<'_>>(&p),
        "param `limit`: must be a non-negative integer"
    );
}

/// A params type with a check of its own, reporting whole messages.
#[derive(Debug)]
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Checked;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Checked, D::Error> {
                let m = Map::<String, Value>::deserialize(d)?;
                if m.is_empty() {
                    return Err(de::Error::custom("job: the whole message"));
                }
                Ok(Checked)
            }
        }
        d.deserialize_newtype_struct(WHOLE_MESSAGE, V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WithJob {
    #[allow(dead_code)]
    job: Checked,
}

#[test]
fn a_types_own_messages_are_sent_whole_but_type_errors_keep_the_prefix() {
    let p = params(json!({"job": {}}));
    assert_eq!(message::<WithJob>(&p), "job: the whole message");
    let p = params(json!({"job": "x"}));
    assert_eq!(message::<WithJob>(&p), "param `job`: must be an object");
    let p = params(json!({}));
    assert_eq!(message::<WithJob>(&p), "param `job`: is required");
    assert!(params(json!({"job": {"a": 1}})).decode::<WithJob>().is_ok());
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[test]
fn no_params_means_no_key_at_all() {
    assert!(Params::default().decode::<Empty>().is_ok());
    let p = params(json!({"x": null}));
    assert_eq!(
        message::<Empty>(&p),
        "param `x`: is not a parameter of this method"
    );
}
