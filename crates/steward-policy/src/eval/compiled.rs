//! [`CompiledPolicySet`]: a tenant's (or integration's) active rules, built once and reused for every
//! request until the rules change. Rules are sorted by policy id and indexed by host, action group,
//! method and workload, so evaluation looks only at rules whose fixed scope fields equal the request's
//! and that name no other workload. The remaining scope fields are interned to small integers, so
//! matching one rule is a handful of integer comparisons over a compact array.

use std::collections::HashMap;
use std::hash::Hash;

use steward_canon::Method;
use steward_types::{PolicyId, WorkloadId};

use super::input::EvaluationInput;
use super::trace::ScopeField;
use crate::{PolicyRule, RuleType};

/// "Any value": an optional scope field the rule leaves out.
const ANY: u32 = 0;
/// A request value no rule names.
const UNKNOWN: u32 = u32::MAX;

/// The interned scope fields a rule matches on beyond its index slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MatchKey {
    tenant: u32,
    integration: u32,
    template_id: u32,
    query_keys: u32,
    /// `0` for any (a rule's version is at least 1).
    template_version: u64,
}

impl MatchKey {
    /// The first field that differs from the request's, or `None` when the rule matches.
    fn mismatch(&self, request: &MatchKey) -> Option<ScopeField> {
        if self.tenant != request.tenant {
            Some(ScopeField::TenantId)
        } else if self.integration != request.integration {
            Some(ScopeField::IntegrationId)
        } else if self.template_id != ANY && self.template_id != request.template_id {
            Some(ScopeField::TemplateId)
        } else if self.template_version != 0 && self.template_version != request.template_version {
            Some(ScopeField::TemplateVersion)
        } else if self.query_keys != ANY && self.query_keys != request.query_keys {
            Some(ScopeField::QueryKeys)
        } else {
            None
        }
    }
}

/// A rule's id, the rule and its precomputed rate-limit key prefix.
#[derive(Debug)]
pub(crate) struct RuleData {
    pub(crate) id: PolicyId,
    pub(crate) rule: PolicyRule,
    /// `rl:<policy_id>`, the key of a `per: rule` bucket and the stem of a per-workload one.
    pub(crate) bucket_key: String,
}

/// One rule as evaluation iterates it: its match key and rank inline, the rest behind a pointer.
#[derive(Debug)]
pub(crate) struct CompiledRule {
    key: MatchKey,
    /// Position in policy-id order across the whole set.
    rank: u32,
    pub(crate) data: Box<RuleData>,
}

impl CompiledRule {
    pub(crate) fn mismatch(&self, request: &MatchKey) -> Option<ScopeField> {
        self.key.mismatch(request)
    }
}

/// The rules of one index slot and workload, by type, each list in policy-id order.
#[derive(Debug, Default)]
pub(crate) struct Partition {
    pub(crate) deny: Vec<CompiledRule>,
    pub(crate) allow: Vec<CompiledRule>,
    pub(crate) approval: Vec<CompiledRule>,
    pub(crate) rate: Vec<CompiledRule>,
}

impl Partition {
    fn push(&mut self, rule: CompiledRule) {
        match rule.data.rule.rule_type() {
            RuleType::Deny => self.deny.push(rule),
            RuleType::Allow => self.allow.push(rule),
            RuleType::ApprovalRequired => self.approval.push(rule),
            RuleType::RateLimit => self.rate.push(rule),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.deny.len() + self.allow.len() + self.approval.len() + self.rate.len()
    }
}

static EMPTY: Partition =
    Partition { deny: Vec::new(), allow: Vec::new(), approval: Vec::new(), rate: Vec::new() };

/// The rules of one (host, action group, method): those for any workload and those for one.
#[derive(Debug, Default)]
struct Slot {
    any_workload: Partition,
    by_workload: HashMap<WorkloadId, Partition>,
}

/// Interning tables: value → small integer, from 1.
#[derive(Debug, Default)]
struct Interner {
    tenants: HashMap<String, u32>,
    integrations: HashMap<String, u32>,
    templates: HashMap<String, u32>,
    /// Sorted, distinct key lists.
    key_sets: HashMap<Vec<String>, u32>,
}

fn intern<K: Hash + Eq>(table: &mut HashMap<K, u32>, key: K) -> u32 {
    let next = u32::try_from(table.len() + 1).unwrap_or(UNKNOWN - 1);
    *table.entry(key).or_insert(next)
}

fn lookup<Q: Hash + Eq + ?Sized, K: Hash + Eq + std::borrow::Borrow<Q>>(
    table: &HashMap<K, u32>,
    key: &Q,
) -> u32 {
    table.get(key).copied().unwrap_or(UNKNOWN)
}

/// Rules compiled for evaluation. Immutable and `Sync`: share it (`Arc`) across requests and rebuild
/// it when the rules change.
#[derive(Debug, Default)]
pub struct CompiledPolicySet {
    /// host → action group → (method, slot).
    index: HashMap<String, HashMap<String, Vec<(Method, Slot)>>>,
    interner: Interner,
    len: usize,
}

/// The slot's rules that may match a request, and the request's interned key.
#[derive(Debug)]
pub(crate) struct Candidates<'s> {
    pub(crate) any: &'s Partition,
    pub(crate) mine: &'s Partition,
    pub(crate) key: MatchKey,
}

impl CompiledPolicySet {
    /// Compiles rules given with their ids, in any order. Evaluation visits them sorted by id.
    pub fn new(rules: impl IntoIterator<Item = (PolicyId, PolicyRule)>) -> Self {
        let mut rules: Vec<(PolicyId, PolicyRule)> = rules.into_iter().collect();
        rules.sort_by(|a, b| a.0.cmp(&b.0));
        let mut set = CompiledPolicySet::default();
        for (rank, (id, rule)) in rules.into_iter().enumerate() {
            // Validated rules always name an execute method; anything else could never match.
            let Some(method) = Method::parse(&rule.scope().method) else { continue };
            let scope = rule.scope();
            let i = &mut set.interner;
            let key = MatchKey {
                tenant: intern(&mut i.tenants, scope.tenant_id.as_str().to_owned()),
                integration: intern(&mut i.integrations, scope.integration_id.as_str().to_owned()),
                template_id: scope.template_id.clone().map_or(ANY, |t| intern(&mut i.templates, t)),
                query_keys: scope.query_keys.clone().map_or(ANY, |k| intern(&mut i.key_sets, normalized(k))),
                template_version: scope.template_version.unwrap_or(0),
            };
            let methods = set
                .index
                .entry(scope.host.clone())
                .or_default()
                .entry(scope.action_group.clone())
                .or_default();
            let at = match methods.iter().position(|(m, _)| *m == method) {
                Some(at) => at,
                None => {
                    methods.push((method, Slot::default()));
                    methods.len() - 1
                }
            };
            let Some((_, slot)) = methods.get_mut(at) else { continue };
            let partition = match &scope.workload_id {
                Some(w) => slot.by_workload.entry(w.clone()).or_default(),
                None => &mut slot.any_workload,
            };
            let bucket_key = format!("rl:{id}");
            let rank = u32::try_from(rank).unwrap_or(u32::MAX);
            partition.push(CompiledRule { key, rank, data: Box::new(RuleData { id, rule, bucket_key }) });
            set.len += 1;
        }
        set
    }

    /// How many rules the set holds.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The rules of the request's slot (any workload, this workload) and the request's key.
    pub(crate) fn candidates(&self, input: &EvaluationInput<'_>) -> Candidates<'_> {
        let slot = self
            .index
            .get(input.host)
            .and_then(|groups| groups.get(input.action_group))
            .and_then(|methods| methods.iter().find(|(m, _)| *m == input.method))
            .map(|(_, slot)| slot);
        let Some(slot) = slot else {
            return Candidates { any: &EMPTY, mine: &EMPTY, key: self.request_key(input, false) };
        };
        Candidates {
            any: &slot.any_workload,
            mine: slot.by_workload.get(input.workload_id).unwrap_or(&EMPTY),
            key: self.request_key(input, true),
        }
    }

    fn request_key(&self, input: &EvaluationInput<'_>, needed: bool) -> MatchKey {
        if !needed {
            return MatchKey {
                tenant: UNKNOWN,
                integration: UNKNOWN,
                template_id: UNKNOWN,
                query_keys: UNKNOWN,
                template_version: 0,
            };
        }
        let i = &self.interner;
        let keys = input.query_keys;
        let query_keys = if keys.windows(2).all(|w| w[0] < w[1]) {
            lookup(&i.key_sets, keys)
        } else {
            lookup(&i.key_sets, normalized(keys.to_vec()).as_slice())
        };
        MatchKey {
            tenant: lookup(&i.tenants, input.tenant_id.as_str()),
            integration: lookup(&i.integrations, input.integration_id.as_str()),
            template_id: lookup(&i.templates, input.template_id),
            query_keys,
            template_version: input.template_version,
        }
    }
}

/// A key list as a set: sorted, distinct.
fn normalized(mut keys: Vec<String>) -> Vec<String> {
    keys.sort();
    keys.dedup();
    keys
}

/// Two rank-sorted rule lists visited as one, in policy-id order.
#[derive(Debug)]
pub(crate) struct Merged<'s> {
    a: &'s [CompiledRule],
    b: &'s [CompiledRule],
}

impl<'s> Merged<'s> {
    pub(crate) fn new(a: &'s [CompiledRule], b: &'s [CompiledRule]) -> Self {
        Merged { a, b }
    }
}

impl<'s> Iterator for Merged<'s> {
    type Item = &'s CompiledRule;

    fn next(&mut self) -> Option<&'s CompiledRule> {
        let take_a = match (self.a.first(), self.b.first()) {
            (Some(x), Some(y)) => x.rank <= y.rank,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        let side = if take_a { &mut self.a } else { &mut self.b };
        let (first, rest) = side.split_first()?;
        *side = rest;
        Some(first)
    }
}
