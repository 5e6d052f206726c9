//! htable's RPC methods, with Kamailio's names and answers:
//! `htable.get`, `htable.sv`, `htable.seti`, `htable.delete`,
//! `htable.dump`, `htable.reset` (and `htable.flush`), `htable.listTables`.

use serde_json::{Value, json};

use super::rpc::{NOT_AVAILABLE, NOT_FOUND, Params, RpcError};
use crate::modules::htable::{TableDef, table::Items};
use crate::script::ctx::VarValue;

/// The store and the declared tables, as the control process sees them.
pub struct Tables<'a> {
    pub items: Option<&'a Items>,
    pub defs: &'a [TableDef],
}

use crate::modules::usrloc::unix_now;

fn json_value(v: &VarValue) -> Value {
    match v {
        VarValue::Null => Value::Null,
        VarValue::Int(n) => json!(n),
        VarValue::Str(s) => json!(String::from_utf8_lossy(s)),
    }
}

impl Tables<'_> {
    fn table(&self, p: &Params, i: usize) -> Result<(&Items, u16, &TableDef), RpcError> {
        let items = self
            .items
            .ok_or_else(|| RpcError::new(NOT_AVAILABLE, "no htable is declared"))?;
        let name = p.required_str(i, "htable")?;
        let t = self
            .defs
            .iter()
            .position(|d| d.name == name)
            .ok_or_else(|| RpcError::new(NOT_FOUND, format!("no htable '{name}'")))?;
        Ok((items, t as u16, &self.defs[t]))
    }

    fn expires(def: &TableDef) -> u64 {
        if def.autoexpire == 0 {
            0
        } else {
            unix_now() + def.autoexpire
        }
    }

    pub fn call(&self, method: &str, p: &Params) -> Result<Value, RpcError> {
        let mut buf = Vec::new();
        match method {
            "htable.get" => {
                let (items, t, _) = self.table(p, 0)?;
                let key = p.required_str(1, "key")?;
                match items.get(t, key.as_bytes(), unix_now(), &mut buf) {
                    VarValue::Null => Err(RpcError::new(NOT_FOUND, "key not found")),
                    v => Ok(json!({"item": {"name": key, "value": json_value(&v)}})),
                }
            }
            "htable.sv" | "htable.seti" => {
                let (items, t, def) = self.table(p, 0)?;
                let key = p.required_str(1, "key")?;
                let value = match (method, p.get(2, "value")) {
                    ("htable.seti", Some(Value::Number(n))) => n.as_i64().map(VarValue::Int),
                    ("htable.seti", Some(Value::String(s))) => {
                        s.trim().parse().ok().map(VarValue::Int)
                    }
                    ("htable.sv", Some(Value::String(s))) => {
                        Some(VarValue::Str(s.as_bytes().to_vec()))
                    }
                    _ => None,
                }
                .ok_or_else(|| RpcError::params("'value' is missing or of the wrong type"))?;
                items
                    .set(
                        t,
                        key.as_bytes(),
                        &value,
                        Self::expires(def),
                        false,
                        &mut buf,
                    )
                    .map_err(|_| RpcError::new(NOT_AVAILABLE, "the htable store is full"))?;
                Ok(json!({}))
            }
            "htable.delete" => {
                let (items, t, _) = self.table(p, 0)?;
                let key = p.required_str(1, "key")?;
                let _ = items.set(t, key.as_bytes(), &VarValue::Null, 0, false, &mut buf);
                Ok(json!({}))
            }
            // Kamailio has both names for emptying a table.
            "htable.reset" | "htable.flush" => {
                let (items, t, _) = self.table(p, 0)?;
                items.sweep(unix_now(), |e| e.table == t, &mut buf);
                Ok(json!({}))
            }
            "htable.dump" => {
                let (items, t, _) = self.table(p, 0)?;
                let mut slot = Vec::new();
                items.sweep(
                    unix_now(),
                    |e| {
                        if e.table == t {
                            slot.push(json!({
                                "name": String::from_utf8_lossy(e.key),
                                "value": json_value(&e.value),
                            }));
                        }
                        false
                    },
                    &mut buf,
                );
                // Kamailio lists its slots; rser's items share one store.
                Ok(json!([{"entry": 0, "size": slot.len(), "slot": slot}]))
            }
            "htable.listTables" => Ok(json!(
                self.defs
                    .iter()
                    .map(|d| json!({
                        "name": d.name,
                        "dbtable": "",
                        "dbmode": 0,
                        "expire": d.autoexpire,
                        "updateexpire": u8::from(d.update_expire),
                        "size": 1u64 << d.size,
                        "dmqreplicate": 0,
                    }))
                    .collect::<Vec<_>>()
            )),
            _ => Err(RpcError::new(
                super::rpc::METHOD_NOT_FOUND,
                format!("no method '{method}'"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::shared::Shared;

    #[test]
    fn set_get_dump_delete_as_kamailio_answers() {
        let config = crate::cfg::load(
            "loadmodule \"htable.so\"\nmodparam(\"htable\", \"htable\", \"a=>size=4;autoexpire=60\")\n\
             route { $sht(a=>x) = 1; }\n",
        )
        .unwrap();
        let shared = Shared::create(8 << 20, 2, Some(&config)).unwrap();
        let defs = crate::modules::htable::tables(&config).unwrap();
        let t = Tables {
            items: shared.module_shm("htable"),
            defs: &defs,
        };
        let call = |m: &str, v: Value| t.call(m, &Params::of(Some(&v)));
        call("htable.sv", json!(["a", "k1", "v1"])).unwrap();
        call("htable.seti", json!(["a", "k2", 7])).unwrap();
        assert_eq!(
            call("htable.get", json!(["a", "k1"])).unwrap(),
            json!({"item": {"name": "k1", "value": "v1"}})
        );
        assert_eq!(
            call("htable.get", json!(["a", "k2"])).unwrap()["item"]["value"],
            7
        );
        let dump = call("htable.dump", json!(["a"])).unwrap();
        assert_eq!(dump[0]["size"], 2, "{dump}");
        call("htable.delete", json!(["a", "k1"])).unwrap();
        assert_eq!(
            call("htable.get", json!(["a", "k1"])).unwrap_err().code,
            NOT_FOUND
        );
        assert_eq!(
            call("htable.get", json!(["b", "k1"])).unwrap_err().code,
            NOT_FOUND
        );
        call("htable.reset", json!(["a"])).unwrap();
        assert_eq!(call("htable.dump", json!(["a"])).unwrap()[0]["size"], 0);
        assert_eq!(
            call("htable.listTables", json!([])).unwrap()[0]["expire"],
            60
        );
    }
}
