//! Evaluation budgets: how large a string, a list or map, the `for` loops, the configuration
//! and the values evaluation makes may grow (language spec §4.1). A hostile or mistaken file —
//! a `let` that doubles a string sixty times, three nested loops over a thousand items — stops
//! at the expression that would cross a budget, before the value is allocated, with a
//! diagnostic (E0116–E0120). The defaults are far above what real estates reach; `limits:` in
//! `mlpolicy.yaml` raises (or lowers) each one.

use std::cell::Cell;
use std::fmt::Write as _;

/// The budgets of one compilation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one string value (E0116).
    pub string_bytes: u64,
    /// Elements of one list or map, the elements of nested lists and maps included (E0117).
    pub collection_elements: u64,
    /// Instances of `for` bodies in all, each nested loop's counted (E0118).
    pub for_instances: u64,
    /// Objects (declarations, federated credentials and grants) of the configuration (E0119).
    pub objects: u64,
    /// Bytes of all values evaluation makes, each copy counted (E0120); resolving the
    /// configuration and evaluating its policies have one such budget each.
    pub evaluation_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            string_bytes: 1 << 20,
            collection_elements: 1_000_000,
            for_instances: 100_000,
            objects: 100_000,
            evaluation_bytes: 256 << 20,
        }
    }
}

impl Limits {
    /// The keys of `limits:` in `mlpolicy.yaml`, in the order documented.
    pub const KEYS: [&'static str; 5] =
        ["string_bytes", "collection_elements", "for_instances", "objects", "evaluation_bytes"];

    /// The budget named `key` (one of [`Self::KEYS`]), for setting it.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut u64> {
        match key {
            "string_bytes" => Some(&mut self.string_bytes),
            "collection_elements" => Some(&mut self.collection_elements),
            "for_instances" => Some(&mut self.for_instances),
            "objects" => Some(&mut self.objects),
            "evaluation_bytes" => Some(&mut self.evaluation_bytes),
            _ => None,
        }
    }
}

/// What one evaluation has spent of its [`Limits::evaluation_bytes`]. Shared by the
/// evaluators of one stage, so that a budget is reported once.
#[derive(Debug)]
pub struct Meter {
    pub limits: Limits,
    used: Cell<u64>,
    exhausted: Cell<bool>,
    reported: Cell<bool>,
}

impl Meter {
    pub fn new(limits: Limits) -> Meter {
        Meter { limits, used: Cell::new(0), exhausted: Cell::new(false), reported: Cell::new(false) }
    }

    /// Counts `bytes` as spent; false (and exhausted from then on) when that would cross the
    /// budget. The caller reports the first refusal, see [`Meter::exhausted`].
    pub fn spend(&self, bytes: u64) -> bool {
        if self.exhausted.get() {
            return false;
        }
        let used = self.used.get().saturating_add(bytes);
        if used > self.limits.evaluation_bytes {
            self.exhausted.set(true);
            return false;
        }
        self.used.set(used);
        true
    }

    /// Whether the budget has run out: evaluation then yields nothing more.
    pub fn exhausted(&self) -> bool {
        self.exhausted.get()
    }

    /// True the first time it is asked after the budget ran out: that refusal is reported.
    pub fn first_refusal(&self) -> bool {
        self.exhausted.get() && !self.reported.replace(true)
    }

    /// Bytes spent so far.
    pub fn used(&self) -> u64 {
        self.used.get()
    }
}

/// `1234567` as `1,234,567`, the way limits are shown in diagnostics.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        let _ = out.write_char(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::{Code, Diagnostics};
    use crate::model::Value;
    use crate::resolve::{Resolved, resolve_within};
    use crate::source::FileId;
    use std::collections::BTreeMap;

    /// Resolves `text` within `limits`, with `var.big` a map of 1,000 long strings.
    fn resolve_text(text: &str, limits: Limits) -> (Resolved, Diagnostics, u64) {
        let (file, diags) = crate::syntax::parse(FileId(0), text);
        assert!(!diags.has_errors(), "{diags:#?}");
        let big: BTreeMap<String, Value> = (0..1000).map(|i| (format!("k{i}"), Value::Str("x".repeat(1000)))).collect();
        let vars = BTreeMap::from([("big".to_owned(), Value::Map(big))]);
        let subs = BTreeMap::from([("prod".to_owned(), "11111111-2222-3333-4444-555555555555".to_owned())]);
        let meter = Meter::new(limits);
        let (resolved, diags) = resolve_within(std::slice::from_ref(&file), &vars, &subs, &meter);
        (resolved, diags, meter.used())
    }

    fn codes(d: &Diagnostics) -> Vec<Code> {
        d.items.iter().map(|d| d.code).collect()
    }

    fn with(f: impl FnOnce(&mut Limits)) -> Limits {
        let mut l = Limits::default();
        f(&mut l);
        l
    }

    #[test]
    fn a_string_may_reach_its_limit_but_not_pass_it() {
        let text = "let b = \"0123456789\"\nlet a = \"${b}${b}\"\n";
        let (_, d, _) = resolve_text(text, with(|l| l.string_bytes = 20));
        assert!(d.items.is_empty(), "{d:#?}");
        let (_, d, _) = resolve_text(text, with(|l| l.string_bytes = 19));
        assert_eq!(codes(&d), [Code::E0116]);
        assert!(d.items[0].message.contains("19 bytes"), "{}", d.items[0].message);
    }

    #[test]
    fn nested_elements_count_against_a_list_or_map() {
        let text = "let l = [[1, 2], [3]]\nlet m = { a = l }\n";
        let (_, d, _) = resolve_text(text, with(|l| l.collection_elements = 6));
        assert!(d.items.is_empty(), "{d:#?}");
        let (_, d, _) = resolve_text(text, with(|l| l.collection_elements = 5));
        assert_eq!(codes(&d), [Code::E0117], "the map holds 6");
        let (_, d, _) = resolve_text(text, with(|l| l.collection_elements = 4));
        assert_eq!(codes(&d), [Code::E0117], "the list holds 5; the map then has no value to report");
    }

    #[test]
    fn nested_loops_count_every_instance() {
        let text =
            "for a in [1, 2, 3] {\n  for b in [1, 2, 3] {\n    group g {\n      name = \"g${a}${b}\"\n    }\n  }\n}\n";
        let (r, d, _) = resolve_text(text, with(|l| l.for_instances = 12));
        assert!(d.items.is_empty(), "{d:#?}");
        assert_eq!(r.decls.len(), 9);
        let (r, d, _) = resolve_text(text, with(|l| l.for_instances = 11));
        assert_eq!(codes(&d), [Code::E0118]);
        assert!(r.decls.is_empty(), "nothing is evaluated once the walk stopped");
    }

    #[test]
    fn objects_count_declarations_federated_credentials_and_grants() {
        let text = "for a in [1, 2] {\n  identity i {\n    federated f {\n      subject = \"s\"\n    }\n  }\n\n  \
                    grant \"Reader\" to identity.i[a] on sub.prod\n}\n";
        let (r, d, _) = resolve_text(text, with(|l| l.objects = 6));
        assert!(d.items.is_empty(), "{d:#?}");
        assert_eq!(r.decls.len(), 4);
        let (_, d, _) = resolve_text(text, with(|l| l.objects = 5));
        assert_eq!(codes(&d), [Code::E0119]);
        assert!(d.items[0].message.contains("more than 5 objects"), "{}", d.items[0].message);
    }

    #[test]
    fn the_evaluation_budget_is_reported_once() {
        let text = "let a = [var.big, var.big]\nlet b = [var.big]\ngroup g {\n  name = \"x\"\n}\n";
        let (_, d, used) = resolve_text(text, Limits::default());
        assert!(d.items.is_empty(), "{d:#?}");
        assert!(used > 3_000_000, "three copies of a 1 MB map are paid for: {used}");
        let (_, d, _) = resolve_text(text, with(|l| l.evaluation_bytes = 1_500_000));
        assert_eq!(codes(&d), [Code::E0120]);
    }

    #[test]
    fn a_path_copies_only_what_it_selects() {
        let text = "let a = var.big.k1\nlet b = var.big[\"k2\"]\n";
        let (_, d, used) = resolve_text(text, Limits::default());
        assert!(d.items.is_empty(), "{d:#?}");
        assert!(used < 10_000, "two strings of 1,000 bytes, not the map of 1 MB: {used}");
    }

    #[test]
    fn a_long_let_chain_evaluates_without_recursing_in_any_order() {
        // Names sort so that the phase-2 walk starts in the middle of the chain.
        let mut text = String::from("let c0 = \"end\"\n");
        for i in 1..20_000 {
            let _ = writeln!(text, "let c{i} = c{}", i - 1);
        }
        text.push_str("group g {\n  name = c19999\n}\n");
        // A test thread's stack is 2 MiB: a recursion per `let` would overflow it.
        let (r, d, _) = resolve_text(&text, Limits::default());
        assert!(d.items.is_empty(), "{d:#?}");
        assert_eq!(r.decls[0].attrs[0].value, Some(Value::Str("end".into())));
    }

    #[test]
    fn a_long_cycle_is_cut_and_reported_once() {
        let mut text = String::from("let c0 = c4999\n");
        for i in 1..5_000 {
            let _ = writeln!(text, "let c{i} = c{}", i - 1);
        }
        let (_, d, _) = resolve_text(&text, Limits::default());
        assert_eq!(codes(&d), [Code::E0109], "{d:#?}");
        assert!(d.items[0].message.contains("more than 100 `let`s deep"), "{}", d.items[0].message);
    }

    #[test]
    fn thousands_separates_groups_of_three() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_048_576), "1,048,576");
        assert_eq!(thousands(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn the_meter_refuses_past_its_budget_and_stays_refusing() {
        let m = Meter::new(Limits { evaluation_bytes: 10, ..Limits::default() });
        assert!(m.spend(6));
        assert!(m.spend(4));
        assert!(!m.spend(1));
        assert!(m.exhausted());
        assert!(!m.spend(0), "once exhausted, nothing more");
        assert!(m.first_refusal());
        assert!(!m.first_refusal(), "reported once");
        assert_eq!(m.used(), 10);
    }

    #[test]
    fn every_key_names_a_budget() {
        let mut l = Limits::default();
        for key in Limits::KEYS {
            *l.get_mut(key).unwrap() = 7;
        }
        assert_eq!(
            l,
            Limits { string_bytes: 7, collection_elements: 7, for_instances: 7, objects: 7, evaluation_bytes: 7 }
        );
        assert!(l.get_mut("nope").is_none());
    }
}
