//! The control API, `/_emulator/...`: realism, request counters and the whole tenant. What it is
//! sent is read as strictly as `mlpolicy.yaml`: an empty body, an unknown key, a value of the
//! wrong type, a YAML tag or an out-of-range realism value is a 400 whose message names the line
//! and column (serde's) or the field; and replacing the tenant must be asked for by name,
//! `PUT /_emulator/state?replace=true`, so that no stray PUT wipes a tenant.

use serde_json::Value;

use crate::realism::Rng;
use crate::{Ctx, Realism, Reply, ReplyBody, Shared, Tenant, lock};

fn bad(message: impl Into<String>) -> Reply {
    Reply::arm_error(400, "InvalidRequestContent", message)
}

/// Answers one control request.
pub(crate) async fn handle(shared: &Shared, ctx: &Ctx) -> Reply {
    let rest: Vec<&str> = ctx.segs.iter().skip(1).map(String::as_str).collect();
    match (ctx.method.as_str(), rest.as_slice()) {
        ("GET", ["realism"]) => Reply::json(200, serde_json::to_value(shared.realism()).unwrap_or(Value::Null)),
        ("PUT", ["realism"]) => match parse_realism(&ctx.body) {
            Ok(r) => {
                if let Some(seed) = r.seed {
                    *lock(&shared.rng) = Rng::new(Some(seed));
                }
                *lock(&shared.realism) = r.clone();
                Reply::json(200, serde_json::to_value(r).unwrap_or(Value::Null))
            }
            Err(message) => bad(message),
        },
        ("GET", ["stats"]) => Reply::json(200, shared.stats.to_json()),
        ("POST", ["stats", "reset"]) => {
            shared.stats.reset();
            Reply::empty(204)
        }
        ("GET", ["state"]) => {
            let yaml = shared.state.lock().await.to_yaml();
            Reply { status: 200, headers: Vec::new(), body: ReplyBody::Text("application/yaml", yaml), key_order: None }
        }
        ("PUT", ["state"]) => {
            if let Err(message) = replace_asked(ctx) {
                return Reply::arm_error(400, "ReplaceNotConfirmed", message);
            }
            let Ok(text) = std::str::from_utf8(&ctx.body) else {
                return bad(
                    "the body is not UTF-8 text; send the tenant as YAML (the format of `GET /_emulator/state`)",
                );
            };
            match Tenant::from_yaml(text, "request body") {
                Ok(mut t) => {
                    t.tenant_id.clone_from(&shared.tenant_id);
                    t.normalize();
                    let mut state = shared.state.lock().await;
                    *state = t;
                    shared.state_changed();
                    shared.persist(&state).await;
                    Reply::empty(204)
                }
                Err(e) => bad(e.to_string()),
            }
        }
        _ => Reply::arm_error(404, "NotFound", format!("unknown control endpoint `{}`", ctx.path)),
    }
}

/// A `Realism` from a JSON body: not empty, no unknown key, every value of its type and range.
pub fn parse_realism(body: &[u8]) -> Result<Realism, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("the body is empty; send a JSON realism object (`GET /_emulator/realism` shows the current one, `{}` the defaults)".to_owned());
    }
    // serde would also read a struct from an array of its fields in order: refuse that shape.
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("invalid realism: {e}"))?;
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    if !value.is_object() {
        return Err(format!("invalid realism: the body must be a JSON object, not {}", kind(&value)));
    }
    if let Some(t) = value.get("throttle").filter(|t| !t.is_object() && !t.is_null()) {
        return Err(format!("invalid realism: `throttle` must be an object or null, not {}", kind(t)));
    }
    let realism: Realism = serde_json::from_slice(body).map_err(|e| format!("invalid realism: {e}"))?;
    realism.validate().map_err(|e| format!("invalid realism: {e}"))?;
    Ok(realism)
}

/// `Ok` when the request says `replace=true`.
fn replace_asked(ctx: &Ctx) -> Result<(), String> {
    match ctx.q("replace") {
        Some("true") => Ok(()),
        Some(other) => Err(format!("`replace` must be `true`, not `{other}`")),
        None => Err("PUT /_emulator/state replaces the whole tenant; confirm with `PUT /_emulator/state?replace=true`"
            .to_owned()),
    }
}
