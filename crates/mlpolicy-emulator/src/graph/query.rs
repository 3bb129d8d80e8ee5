//! The query options of Graph (an `OData` service) on directory collections: `$filter`,
//! `$search`, `$orderby`, `$select`, `$top`, `$count` (as a query parameter and as a path
//! segment) and `@odata.nextLink` paging.
//!
//! Directory objects split their queries in two, as Graph does
//! (<https://learn.microsoft.com/graph/aad-advanced-queries>): what works by default, and
//! *advanced queries*, which need the `ConsistencyLevel: eventual` header and, except for
//! `$search`, `$count=true`. Without them the `$count` segment answers 400
//! `Request_BadRequest` ("$count is not currently supported."), `$count=true` is silently
//! ignored (no `@odata.count`), `$search` answers 400 `Request_UnsupportedQuery`, and the
//! `ne` and `not` operators and `endsWith` answer 400 `Request_UnsupportedQuery` naming the
//! operator.

use serde_json::{Map, Value, json};

use super::super::util::{decode_skip_token, encode_skip_token, eq_ci, is_guid};
use super::super::{Ctx, Reply, ReplyBody, Shared};
use super::{bad_request, context_url};

/// A comparison of one property.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Test {
    Eq(String, Value),
    /// `ne`: advanced queries only.
    Ne(String, Value),
    StartsWith(String, String),
    /// `endsWith`: advanced queries only.
    EndsWith(String, String),
    /// `prop in ('a', 'b')`.
    In(String, Vec<Value>),
    /// A lambda over a collection: `servicePrincipalNames/any(c:c eq 'x')`,
    /// `identifierUris/any(x:startswith(x,'api://'))`.
    Any(String, Box<Test>),
    /// A parenthesized expression: `(a eq 'x' or b eq 'y') and …`.
    Nested(Box<Filter>),
}

/// One clause of a `$filter`: a test, maybe negated (`not …`, advanced queries only).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Clause {
    pub negated: bool,
    pub test: Test,
}

/// A parsed `$filter`: clauses joined by `and` inside groups joined by `or` (`and` binds
/// tighter, as in `OData`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Filter(pub Vec<Vec<Clause>>);

impl Test {
    fn property(&self) -> &str {
        let (Test::Eq(p, _)
        | Test::Ne(p, _)
        | Test::StartsWith(p, _)
        | Test::EndsWith(p, _)
        | Test::In(p, _)
        | Test::Any(p, _)) = self
        else {
            return "";
        };
        p
    }

    /// The operator that needs advanced query parameters, if this test uses one.
    fn advanced_operator(&self) -> Option<&'static str> {
        match self {
            Test::Ne(..) => Some("ne"),
            Test::EndsWith(..) => Some("endsWith"),
            Test::Any(_, inner) => inner.advanced_operator(),
            _ => None,
        }
    }
}

impl Filter {
    /// Every comparison of the filter, nested ones included, with whether a `not` applies.
    pub fn leaves(&self) -> Vec<(bool, &Test)> {
        let mut out = Vec::new();
        for c in self.0.iter().flatten() {
            match &c.test {
                Test::Nested(inner) => out.extend(inner.leaves().into_iter().map(|(n, t)| (n || c.negated, t))),
                test => out.push((c.negated, test)),
            }
        }
        out
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().any(|all| all.iter().all(|c| c.negated != test_matches(obj, &c.test)))
    }
}

fn parse_literal(s: &str) -> Option<Value> {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        return Some(json!(inner.replace("''", "'")));
    }
    match s {
        "true" => Some(json!(true)),
        "false" => Some(json!(false)),
        "null" => Some(Value::Null),
        _ if is_guid(s) => Some(json!(s)),
        _ => s.parse::<i64>().ok().map(|n| json!(n)),
    }
}

/// Splits `text` at every top-level (outside quotes and parentheses) occurrence of ` {word} `,
/// compared case-insensitively.
fn split_top(text: &str, word: &str) -> Vec<String> {
    let sep: Vec<char> = format!(" {word} ").chars().collect();
    let chars: Vec<char> = text.chars().collect();
    let (mut parts, mut current) = (Vec::new(), String::new());
    let (mut quoted, mut depth, mut i) = (false, 0usize, 0);
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            quoted = !quoted;
        } else if !quoted && c == '(' {
            depth += 1;
        } else if !quoted && c == ')' {
            depth = depth.saturating_sub(1);
        }
        let at_sep = !quoted
            && depth == 0
            && chars.len() >= i + sep.len()
            && chars[i..i + sep.len()].iter().zip(&sep).all(|(a, b)| a.eq_ignore_ascii_case(b));
        if at_sep {
            parts.push(std::mem::take(&mut current));
            i += sep.len();
            continue;
        }
        current.push(c);
        i += 1;
    }
    parts.push(current);
    parts
}

/// Strips one pair of parentheses that wraps the whole of `s`.
fn unwrap_parens(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('(')?.strip_suffix(')')?;
    // `(a) and (b)` is not wrapped: the first `(` must close at the very end.
    let mut depth = 1usize;
    let mut quoted = false;
    for c in inner.chars() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                depth -= 1;
                if depth == 0 {
                    return None;
                }
            }
            _ => {}
        }
    }
    Some(inner)
}

/// How deep parentheses and `not` may nest in a `$filter`.
const MAX_DEPTH: usize = 16;

/// Parses a `$filter`; `None` when it is not one the emulator understands.
pub(super) fn parse_filter(filter: &str) -> Option<Filter> {
    parse_nested(filter, 0)
}

fn parse_nested(filter: &str, depth: usize) -> Option<Filter> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut groups = Vec::new();
    for any in split_top(filter.trim(), "or") {
        let mut all = Vec::new();
        for raw in split_top(any.trim(), "and") {
            all.push(parse_clause(raw.trim(), depth + 1)?);
        }
        groups.push(all);
    }
    Some(Filter(groups))
}

fn parse_clause(c: &str, depth: usize) -> Option<Clause> {
    if depth > MAX_DEPTH {
        return None;
    }
    if let Some(inner) = unwrap_parens(c) {
        let nested = parse_nested(inner, depth)?;
        // `(one clause)` is that clause.
        if let [all] = nested.0.as_slice()
            && let [one] = all.as_slice()
        {
            return Some(one.clone());
        }
        return Some(Clause { negated: false, test: Test::Nested(Box::new(nested)) });
    }
    let lower = c.to_ascii_lowercase();
    if lower.starts_with("not ") || lower.starts_with("not(") {
        let inner = parse_clause(c[3..].trim(), depth + 1)?;
        return Some(Clause { negated: !inner.negated, test: inner.test });
    }
    Some(Clause { negated: false, test: parse_test(c, None)? })
}

/// One comparison; inside a lambda `var` is the lambda's variable, which stands for the
/// collection's items.
fn parse_test(c: &str, var: Option<&str>) -> Option<Test> {
    let function = |name: &str| -> Option<(String, String)> {
        let head = c.get(..name.len() + 1)?;
        if !head.eq_ignore_ascii_case(&format!("{name}(")) {
            return None;
        }
        let inner = c.get(name.len() + 1..)?.strip_suffix(')')?;
        let (prop, lit) = inner.split_once(',')?;
        let Value::String(v) = parse_literal(lit)? else { return None };
        Some((prop.trim().to_owned(), v))
    };
    let own = |prop: String| -> Option<String> {
        match var {
            Some(v) if prop != v => None,
            _ => Some(prop),
        }
    };
    if let Some((prop, v)) = function("startswith") {
        return Some(Test::StartsWith(own(prop)?, v));
    }
    if let Some((prop, v)) = function("endswith") {
        return Some(Test::EndsWith(own(prop)?, v));
    }
    if var.is_none()
        && let Some(at) = c.to_ascii_lowercase().find("/any(")
    {
        // `prop/any(x:test of x)`.
        let prop = c[..at].trim().to_owned();
        let body = c[at + 5..].strip_suffix(')')?;
        let (v, cond) = body.split_once(':')?;
        return Some(Test::Any(prop, Box::new(parse_test(cond.trim(), Some(v.trim()))?)));
    }
    if let [prop, list] = split_top(c, "in").as_slice() {
        let inner = list.trim().strip_prefix('(')?.strip_suffix(')')?;
        let values = inner.split(',').map(parse_literal).collect::<Option<Vec<_>>>()?;
        return Some(Test::In(own(prop.trim().to_owned())?, values));
    }
    for (op, make) in [("eq", Test::Eq as fn(String, Value) -> Test), ("ne", Test::Ne)] {
        if let [prop, lit] = split_top(c, op).as_slice() {
            return Some(make(own(prop.trim().to_owned())?, parse_literal(lit)?));
        }
    }
    None
}

/// The value of `p` in `obj`, the property name compared case-insensitively.
fn property<'a>(obj: &'a Value, p: &str) -> Option<&'a Value> {
    obj.as_object().and_then(|m| m.iter().find(|(k, _)| eq_ci(k, p)).map(|(_, v)| v))
}

fn value_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => eq_ci(x, y),
        (x, y) => x == y,
    }
}

fn text_test(v: &Value, s: &str, f: fn(&str, &str) -> bool) -> bool {
    v.as_str().is_some_and(|x| f(&x.to_ascii_lowercase(), &s.to_ascii_lowercase()))
}

/// Whether `value` (the property the test names, or a collection item in a lambda) passes.
fn value_matches(value: Option<&Value>, test: &Test) -> bool {
    let missing = Value::Null;
    let v = value.unwrap_or(&missing);
    match test {
        Test::Eq(_, want) => value_eq(v, want),
        Test::Ne(_, want) => !value_eq(v, want),
        Test::StartsWith(_, s) => text_test(v, s, |a, b| a.starts_with(b)),
        Test::EndsWith(_, s) => text_test(v, s, |a, b| a.ends_with(b)),
        Test::In(_, values) => values.iter().any(|w| value_eq(v, w)),
        Test::Any(..) | Test::Nested(_) => false,
    }
}

fn test_matches(obj: &Value, test: &Test) -> bool {
    match test {
        Test::Any(p, inner) => property(obj, p)
            .and_then(Value::as_array)
            .is_some_and(|items| items.iter().any(|item| value_matches(Some(item), inner))),
        Test::Nested(inner) => inner.matches(obj),
        other => value_matches(property(obj, other.property()), other),
    }
}

/// Applies `$select`, keeping `@odata.*` annotations.
pub(super) fn select(ctx: &Ctx, v: Value) -> Value {
    let Some(sel) = ctx.q("$select") else {
        return v;
    };
    let wanted: Vec<&str> = sel.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter().filter(|(k, _)| k.starts_with("@odata") || wanted.iter().any(|w| eq_ci(w, k))).collect(),
        ),
        other => other,
    }
}

/// Whether the request sent `ConsistencyLevel: eventual`.
pub(super) fn eventual(ctx: &Ctx) -> bool {
    ctx.header("consistencylevel").is_some_and(|v| eq_ci(v.trim(), "eventual"))
}

/// Whether the request is an advanced query: `ConsistencyLevel: eventual` and `$count=true`.
fn advanced(ctx: &Ctx) -> bool {
    eventual(ctx) && ctx.q("$count").is_some_and(|c| eq_ci(c.trim(), "true"))
}

/// Whether the path ends in the `$count` segment.
pub(super) fn counting(ctx: &Ctx) -> bool {
    ctx.segs.last().is_some_and(|s| s == "$count")
}

fn needs_advanced(ctx: &Ctx, operator: &str) -> Reply {
    Reply::graph_error(
        ctx,
        400,
        "Request_UnsupportedQuery",
        format!(
            "Operator '{operator}' is not supported because the required parameters might be missing. Try adding $count=true query parameter and ConsistencyLevel:eventual header. Refer to https://aka.ms/graph-docs/advanced-queries for more information"
        ),
    )
}

/// Which entity set a collection lists, for the rules that depend on it.
pub(super) struct Listing<'a> {
    /// The `@odata.context` fragment: `groups`, `directoryObjects`, ...
    pub entity: &'a str,
    /// The resource type Graph names in errors: `Group`, `DirectoryObject`, ...
    pub resource: &'a str,
    /// Properties `$filter` accepts.
    pub filterable: &'a [&'a str],
}

/// Filters, searches, sorts, pages and wraps a collection; with the `$count` segment, answers
/// the number of matching items as `text/plain` instead.
pub(super) fn collection(shared: &Shared, ctx: &Ctx, listing: &Listing, items: Vec<Value>) -> Reply {
    let items = match matching(ctx, listing, items) {
        Ok(items) => items,
        Err(reply) => return reply,
    };
    if counting(ctx) {
        let mut reply = Reply::empty(200);
        reply.body = ReplyBody::Text(COUNT_TYPE, items.len().to_string());
        return reply;
    }
    page(shared, ctx, listing, items)
}

/// The media type of a `$count` answer.
const COUNT_TYPE: &str = "text/plain;charset=utf-8";

/// The items that pass `$filter` and `$search`, in `$orderby` order.
fn matching(ctx: &Ctx, listing: &Listing, mut items: Vec<Value>) -> Result<Vec<Value>, Reply> {
    if let Some(filter) = ctx.q("$filter") {
        let parsed = parse_filter(filter)
            .ok_or_else(|| Reply::graph_error(ctx, 400, "BadRequest", format!("Invalid filter clause: {filter}")))?;
        for (negated, test) in parsed.leaves() {
            let p = test.property();
            if !listing.filterable.iter().any(|f| eq_ci(f, p)) {
                return Err(Reply::graph_error(
                    ctx,
                    400,
                    "Request_UnsupportedQuery",
                    format!(
                        "Unsupported or invalid query filter clause specified for property '{p}' of resource '{}'.",
                        listing.resource
                    ),
                ));
            }
            let operator = if negated { Some("not") } else { test.advanced_operator() };
            if let Some(op) = operator.filter(|_| !advanced(ctx)) {
                return Err(needs_advanced(ctx, op));
            }
        }
        items.retain(|o| parsed.matches(o));
    }
    if let Some(search) = ctx.q("$search") {
        if !eventual(ctx) {
            return Err(Reply::graph_error(
                ctx,
                400,
                "Request_UnsupportedQuery",
                "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'",
            ));
        }
        let parsed =
            parse_search(search).ok_or_else(|| bad_request(ctx, format!("Invalid $search clause: {search}")))?;
        items.retain(|o| parsed.iter().any(|all| all.iter().all(|(p, term)| search_matches(o, p, term))));
    }
    if let Some(order) = ctx.q("$orderby") {
        order_by(ctx, listing, order, &mut items)?;
    }
    Ok(items)
}

/// `$orderby=prop [asc|desc]`: `displayName` (and a user's `userPrincipalName`) of users and
/// groups by default; other properties, other entity sets, and sorting a filtered list only
/// in advanced queries.
fn order_by(ctx: &Ctx, listing: &Listing, order: &str, items: &mut [Value]) -> Result<(), Reply> {
    let mut words = order.split_whitespace();
    let prop = words.next().unwrap_or_default().to_owned();
    let descending = match words.next().map(str::to_ascii_lowercase).as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(bad_request(ctx, format!("Invalid $orderby expression: {order}"))),
    };
    let default = match listing.entity {
        "users" => ["displayName", "userPrincipalName"].iter().any(|p| eq_ci(p, &prop)),
        "groups" => eq_ci(&prop, "displayName"),
        _ => false,
    };
    let sortable = ["displayName", "userPrincipalName", "createdDateTime", "deletedDateTime"];
    let allowed = if advanced(ctx) {
        sortable.iter().any(|p| eq_ci(p, &prop))
    } else {
        default && ctx.q("$filter").is_none() && ctx.q("$search").is_none()
    };
    if !allowed {
        return Err(Reply::graph_error(
            ctx,
            400,
            "Request_UnsupportedQuery",
            "Sorting not supported for current query.",
        ));
    }
    let key = |v: &Value| property(v, &prop).and_then(Value::as_str).map(str::to_ascii_lowercase);
    items.sort_by_key(key);
    if descending {
        items.reverse();
    }
    Ok(())
}

/// Parses `"prop:term" AND "prop:term" OR …` into groups of (property, term) clauses.
fn parse_search(search: &str) -> Option<Vec<Vec<(String, String)>>> {
    let mut groups = Vec::new();
    for any in split_top(search.trim(), "OR") {
        let mut all = Vec::new();
        for clause in split_top(any.trim(), "AND") {
            let inner = clause.trim().strip_prefix('"')?.strip_suffix('"')?;
            let (prop, term) = inner.split_once(':')?;
            all.push((prop.trim().to_owned(), term.to_owned()));
        }
        groups.push(all);
    }
    Some(groups)
}

/// Directory search is tokenized: a term matches when each of its words starts a word of the
/// property's value (words split at anything but letters and digits).
fn search_matches(obj: &Value, prop: &str, term: &str) -> bool {
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
    };
    let Some(value) = property(obj, prop).and_then(Value::as_str) else { return false };
    let have = words(value);
    let want = words(term);
    !want.is_empty() && want.iter().all(|w| have.iter().any(|h| h.starts_with(w.as_str())))
}

/// One page of `items` with `@odata.context`, `@odata.count` in advanced queries that ask for
/// it, and `@odata.nextLink` when the page is full.
fn page(shared: &Shared, ctx: &Ctx, listing: &Listing, mut items: Vec<Value>) -> Reply {
    let mut size = shared.realism().page();
    if let Some(top) = ctx.q("$top") {
        match top.parse::<usize>() {
            Ok(n) if (1..=999).contains(&n) => size = n,
            _ => {
                return bad_request(
                    ctx,
                    format!("Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive."),
                );
            }
        }
    }
    let offset = match ctx.q("$skiptoken") {
        None => 0,
        Some(t) => match decode_skip_token(t) {
            Some(o) => o,
            None => {
                return Reply::graph_error(
                    ctx,
                    400,
                    "Directory_ExpiredPageToken",
                    "The specified page token value has expired and can no longer be included in your request.",
                );
            }
        },
    };
    let total = items.len();
    let end = offset.saturating_add(size).min(total);
    let page: Vec<Value> = items.drain(offset.min(end)..end).map(|v| select(ctx, v)).collect();
    // Built by hand: `json!` would copy every item through `to_value`.
    let mut body = Map::new();
    body.insert("@odata.context".to_owned(), json!(context_url(shared, listing.entity)));
    if advanced(ctx) {
        body.insert("@odata.count".to_owned(), json!(total));
    }
    body.insert("value".to_owned(), Value::Array(page));
    let mut body = Value::Object(body);
    if size > 0 && end.saturating_sub(offset) == size {
        body["@odata.nextLink"] = json!(ctx.next_link(&shared.base_url, "$skiptoken", &encode_skip_token(end)));
    }
    Reply::json(200, body)
}
