//! JSON-RPC 2.0 framing (https://www.jsonrpc.org/specification) as pure
//! code: one request text in, one response text out (none for a
//! notification), method calls handed to [`Methods`]. Every fault of the
//! input is a JSON-RPC error object, never a panic or a closed socket.

use serde_json::{Map, Value, json};

/// Largest request accepted, so one client cannot make the control
/// process buffer without bound.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Largest batch (§6 of the specification).
pub const MAX_BATCH: usize = 64;

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// Application errors (the specification leaves -32000..-32099 to
/// implementations): a thing named that does not exist, a module not
/// loaded.
pub const NOT_FOUND: i64 = -32000;
pub const NOT_AVAILABLE: i64 = -32001;

#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
        }
    }

    pub fn params(message: impl Into<String>) -> RpcError {
        RpcError::new(INVALID_PARAMS, message)
    }
}

/// What the control interface can do.
pub trait Methods {
    fn call(&mut self, method: &str, params: &Params) -> Result<Value, RpcError>;
}

/// A call's parameters: by position (an array) or by name (an object).
pub struct Params<'a>(Option<&'a Value>);

impl<'a> Params<'a> {
    pub fn none() -> Params<'static> {
        Params(None)
    }

    pub fn of(v: Option<&'a Value>) -> Params<'a> {
        Params(v)
    }

    /// Whether the parameters are named (an object), not positional.
    pub fn is_named(&self) -> bool {
        matches!(self.0, Some(Value::Object(_)))
    }

    /// Parameter `name`, or position `index` of an array.
    pub fn get(&self, index: usize, name: &str) -> Option<&'a Value> {
        match self.0 {
            Some(Value::Array(a)) => a.get(index),
            Some(Value::Object(o)) => o.get(name),
            _ => None,
        }
    }

    pub fn str(&self, index: usize, name: &str) -> Result<Option<&'a str>, RpcError> {
        match self.get(index, name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(RpcError::params(format!("'{name}' must be a string"))),
        }
    }

    pub fn required_str(&self, index: usize, name: &str) -> Result<&'a str, RpcError> {
        self.str(index, name)?
            .ok_or_else(|| RpcError::params(format!("'{name}' is required")))
    }
}

/// Handles one request text: a request object or a batch of them.
pub fn handle(text: &[u8], methods: &mut dyn Methods) -> Option<String> {
    if text.len() > MAX_REQUEST {
        return Some(
            error(
                Value::Null,
                RpcError::new(INVALID_REQUEST, "request too large"),
            )
            .to_string(),
        );
    }
    let value: Value = match serde_json::from_slice(text) {
        Ok(v) => v,
        Err(e) => {
            let err = RpcError::new(PARSE_ERROR, format!("parse error: {e}"));
            return Some(error(Value::Null, err).to_string());
        }
    };
    match value {
        Value::Array(batch) if batch.is_empty() => {
            Some(error(Value::Null, RpcError::new(INVALID_REQUEST, "empty batch")).to_string())
        }
        Value::Array(batch) if batch.len() > MAX_BATCH => Some(
            error(
                Value::Null,
                RpcError::new(INVALID_REQUEST, "batch too large"),
            )
            .to_string(),
        ),
        Value::Array(batch) => {
            let out: Vec<Value> = batch.iter().filter_map(|r| one(r, methods)).collect();
            (!out.is_empty()).then(|| Value::Array(out).to_string())
        }
        v => one(&v, methods).map(|r| r.to_string()),
    }
}

/// A text holding one well-formed request (not a batch): its method, its
/// id (`None` for a notification) and its parameters, for a method the
/// caller answers later (`tm.t_uac`, when its transaction ends).
pub fn single(text: &[u8]) -> Option<(String, Option<Value>, Option<Value>)> {
    if text.len() > MAX_REQUEST {
        return None;
    }
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(text) else {
        return None;
    };
    let id = match obj.get("id") {
        None => None,
        Some(v @ (Value::String(_) | Value::Number(_) | Value::Null)) => Some(v.clone()),
        Some(_) => return None,
    };
    let (method, params) = check(&obj).ok()?;
    Some((method.to_string(), id, params.0.cloned()))
}

/// The response text to request `id`.
pub fn answer(id: Value, r: Result<Value, RpcError>) -> String {
    match r {
        Ok(v) => json!({"jsonrpc": "2.0", "result": v, "id": id}).to_string(),
        Err(e) => error(id, e).to_string(),
    }
}

fn one(req: &Value, methods: &mut dyn Methods) -> Option<Value> {
    let Value::Object(obj) = req else {
        return Some(error(
            Value::Null,
            RpcError::new(INVALID_REQUEST, "not a request object"),
        ));
    };
    // An id must be a string, a number or null; absent means a
    // notification, which gets no response (§4.1).
    let id = match obj.get("id") {
        None => None,
        Some(v @ (Value::String(_) | Value::Number(_) | Value::Null)) => Some(v.clone()),
        Some(_) => {
            return Some(error(Value::Null, RpcError::new(INVALID_REQUEST, "bad id")));
        }
    };
    let result = check(obj).and_then(|(method, params)| methods.call(method, &params));
    let id = id?;
    Some(match result {
        Ok(v) => json!({"jsonrpc": "2.0", "result": v, "id": id}),
        Err(e) => error(id, e),
    })
}

fn check(obj: &Map<String, Value>) -> Result<(&str, Params<'_>), RpcError> {
    if obj.get("jsonrpc") != Some(&Value::String("2.0".into())) {
        return Err(RpcError::new(INVALID_REQUEST, "jsonrpc must be \"2.0\""));
    }
    let Some(Value::String(method)) = obj.get("method") else {
        return Err(RpcError::new(INVALID_REQUEST, "method must be a string"));
    };
    match obj.get("params") {
        None => Ok((method, Params(None))),
        Some(p @ (Value::Array(_) | Value::Object(_))) => Ok((method, Params(Some(p)))),
        Some(_) => Err(RpcError::new(
            INVALID_REQUEST,
            "params must be an array or an object",
        )),
    }
}

fn error(id: Value, e: RpcError) -> Value {
    json!({"jsonrpc": "2.0", "error": {"code": e.code, "message": e.message}, "id": id})
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;

    impl Methods for Echo {
        fn call(&mut self, method: &str, params: &Params) -> Result<Value, RpcError> {
            match method {
                "echo" => Ok(json!(params.required_str(0, "text")?)),
                _ => Err(RpcError::new(
                    METHOD_NOT_FOUND,
                    format!("no method {method}"),
                )),
            }
        }
    }

    fn call(text: &str) -> Value {
        serde_json::from_str(&handle(text.as_bytes(), &mut Echo).unwrap()).unwrap()
    }

    #[test]
    fn answers_by_position_and_by_name() {
        let r = call(r#"{"jsonrpc":"2.0","method":"echo","params":["hi"],"id":1}"#);
        assert_eq!(r, json!({"jsonrpc":"2.0","result":"hi","id":1}));
        let r = call(r#"{"jsonrpc":"2.0","method":"echo","params":{"text":"yo"},"id":"a"}"#);
        assert_eq!(r["result"], "yo");
        assert_eq!(r["id"], "a");
    }

    #[test]
    fn every_fault_is_an_error_object() {
        assert_eq!(call("{not json")["error"]["code"], PARSE_ERROR);
        assert_eq!(call(r#"[]"#)["error"]["code"], INVALID_REQUEST);
        assert_eq!(call(r#"42"#)["error"]["code"], INVALID_REQUEST);
        assert_eq!(
            call(r#"{"method":"echo","id":1}"#)["error"]["code"],
            INVALID_REQUEST
        );
        assert_eq!(
            call(r#"{"jsonrpc":"2.0","method":"nope","id":1}"#)["error"]["code"],
            METHOD_NOT_FOUND
        );
        let r = call(r#"{"jsonrpc":"2.0","method":"echo","params":[5],"id":2}"#);
        assert_eq!(r["error"]["code"], INVALID_PARAMS);
        assert_eq!(r["id"], 2);
        let r = call(r#"{"jsonrpc":"2.0","method":"echo","params":"x","id":3}"#);
        assert_eq!(r["error"]["code"], INVALID_REQUEST);
        let big = format!("\"{}\"", "x".repeat(MAX_REQUEST));
        assert_eq!(call(&big)["error"]["code"], INVALID_REQUEST);
    }

    #[test]
    fn notifications_get_nothing_and_batches_a_list() {
        assert!(
            handle(
                br#"{"jsonrpc":"2.0","method":"echo","params":["x"]}"#,
                &mut Echo
            )
            .is_none()
        );
        let r = call(
            r#"[{"jsonrpc":"2.0","method":"echo","params":["a"],"id":1},
                {"jsonrpc":"2.0","method":"echo","params":["b"]},
                {"jsonrpc":"2.0","method":"nope","id":3}]"#,
        );
        let a = r.as_array().unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0]["result"], "a");
        assert_eq!(a[1]["error"]["code"], METHOD_NOT_FOUND);
    }
}
