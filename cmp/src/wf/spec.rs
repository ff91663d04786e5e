//! Workflow specifications: a DAG of steps, each naming an NF service operation, parsed
//! from YAML or JSON and validated with errors that point at the step and the field.
//!
//! # Value references
//! A step input (and a workflow output) is a string. One starting with `$` is a reference:
//! - `$input` / `$input.<path>`: the run's input document, or a field of it;
//! - `$steps.<id>.output` / `$steps.<id>.output.<path>`: the output of an earlier step.
//!
//! A path is dot-separated keys; a segment of digits indexes an array (`choices.0.text`),
//! and `key[0]` is accepted too. Any other string is a literal string; write `$$` to start a
//! literal with `$`. Typed constants (numbers, booleans, objects) go in a step's `params`.
//!
//! # Conditions (`when`)
//! A small expression language, on purpose:
//! ```text
//! cond    := or
//! or      := and ( "or" and )*
//! and     := unary ( "and" unary )*
//! unary   := "not" unary | "exists" ref | compare
//! compare := operand ( ("==" | "!=") operand )?
//! operand := ref | true | false | null | <number> | "string" | 'string'
//! ```
//! A lone operand is true when its value is JSON `true`. `exists <ref>` is true when the
//! reference resolves to a value other than `null`. A reference to a field that is absent,
//! or to the output of a skipped step, resolves to `null`. Numbers compare by value
//! (`1 == 1.0`). Example: `$steps.answer.output.answeredAtEdge != true`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::sched::DeviceKind;

/// A workflow: a named DAG of steps with an optional run-level latency budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowSpec {
    /// Name of the workflow (free text, shown in run records).
    pub name: String,
    /// What the workflow does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Latency budget of a whole run in milliseconds; a run still unfinished then fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_ms: Option<u64>,
    /// Fields the run input must carry. When given, `$input.<field>` references must name
    /// one of them and a run whose input lacks one is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
    /// The run's output: name -> value reference, resolved when every step is finished.
    /// Empty: the output of the single sink step, or `{sinkId: output}` when there are
    /// several (a skipped sink contributes `null`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub output: BTreeMap<String, String>,
    /// The steps, in any order (execution order follows the references).
    pub steps: Vec<StepSpec>,
}

/// One step: a call of one NF service operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepSpec {
    /// Step id, unique in the workflow: letters, digits, `_` and `-`.
    pub id: String,
    /// Operation called, e.g. `cloud.generate`, `amf.location`, `edge.complete`, `noop`.
    pub operation: String,
    /// Input fields of the call: value references (`$input.prompt`,
    /// `$steps.complete.output.prompt`) or literal strings.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// Constant input fields of any JSON type, merged into the call input (an `inputs`
    /// entry of the same name wins).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, Value>,
    /// Resources the step holds on its device while it runs.
    #[serde(default)]
    pub demand: Demand,
    /// Estimated execution time in milliseconds per device kind; a kind absent means the
    /// step cannot run on it.
    #[serde(default)]
    pub cost_ms: BTreeMap<DeviceKind, f64>,
    /// Time limit of one attempt in milliseconds (the engine's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// How failed attempts are retried.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Whether calling the operation twice is harmless: only such a step is re-executed
    /// when a restart finds its outcome unknown.
    #[serde(default)]
    pub idempotent: bool,
    /// Condition (see the module doc); false: the step is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Steps that must finish first, besides those the inputs and condition refer to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// Estimated output size in bytes, for the scheduler's transfer cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_bytes: Option<f64>,
}

/// Resources a step needs on its device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Demand {
    /// Processing units (cores, GPU slices), at least 1.
    #[serde(default = "one")]
    pub units: u32,
    /// Memory in MB.
    #[serde(default)]
    pub memory_mb: u64,
}

fn one() -> u32 {
    1
}

impl Default for Demand {
    fn default() -> Self {
        Self {
            units: 1,
            memory_mb: 0,
        }
    }
}

/// Retries of a failed attempt (a retryable error or a timeout): up to `limit` more
/// attempts, waiting `backoff_ms`, then `backoff_ms * factor`, `backoff_ms * factor^2`, ...
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: no retry).
    #[serde(default)]
    pub limit: u32,
    /// Wait before the first retry, in milliseconds.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
    /// Growth of the wait from one retry to the next (>= 1).
    #[serde(default = "default_factor")]
    pub factor: f64,
}

fn default_backoff_ms() -> u64 {
    100
}

fn default_factor() -> f64 {
    2.0
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            limit: 0,
            backoff_ms: default_backoff_ms(),
            factor: default_factor(),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt` (2 for the first retry).
    pub fn backoff(&self, attempt: u32) -> std::time::Duration {
        let exp = attempt.saturating_sub(2).min(64) as i32;
        let ms = self.backoff_ms as f64 * self.factor.powi(exp);
        std::time::Duration::from_secs_f64((ms / 1000.0).clamp(0.0, 86_400.0))
    }
}

/// One problem found in a workflow, located by step and field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpecError {
    /// The step concerned, when the problem is inside one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Path of the field, e.g. `steps[2].inputs.prompt`.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.field, self.reason)
        }
    }
}

/// All problems found in a workflow (never empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

impl SpecErrors {
    fn one(step: Option<String>, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self(vec![SpecError {
            step,
            field: field.into(),
            reason: reason.into(),
        }])
    }
}

/// Parses a workflow from JSON (text starting with `{`) or YAML; unknown fields are refused
/// and errors name the field (`steps[1]: unknown field ...`).
pub fn parse_workflow(text: &str) -> Result<WorkflowSpec, SpecErrors> {
    let located = |path: String, msg: String| {
        let path = if path == "." { String::new() } else { path };
        // The step's id is unknown here: it may be the very field that failed to parse.
        SpecErrors::one(None, path, msg)
    };
    if text.trim_start().starts_with('{') {
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut de)
            .map_err(|e| located(e.path().to_string(), e.inner().to_string()))
    } else {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            // serde_yaml_ng prefixes its message with the path, given apart here.
            let msg = e.inner().to_string();
            let msg = match msg.split_once(": ") {
                Some((head, rest)) if !head.contains(' ') => rest.to_owned(),
                _ => msg,
            };
            located(e.path().to_string(), msg)
        })
    }
}

/// The operations a workflow may call (the CmP's catalogue).
pub trait OperationCatalog: Send + Sync {
    /// Whether `operation` exists.
    fn contains(&self, operation: &str) -> bool;
    /// Input fields the operation cannot do without (checked against each step's
    /// `inputs` and `params`).
    fn required_inputs(&self, _operation: &str) -> Vec<String> {
        Vec::new()
    }
}

/// A catalogue accepting every operation: structural checks only.
pub struct AnyOperation;

impl OperationCatalog for AnyOperation {
    fn contains(&self, _operation: &str) -> bool {
        true
    }
}

/// A parsed value reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueRef {
    /// `$input.<path>`.
    Input(Vec<PathSeg>),
    /// `$steps.<id>.output.<path>`.
    Step {
        /// The step referred to.
        step: String,
        /// Path inside its output.
        path: Vec<PathSeg>,
    },
}

/// One segment of a path into a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    /// An object key; also tried as an array index when all digits.
    Key(String),
    /// An array index (`[n]`).
    Index(usize),
}

/// What an input string stands for.
#[derive(Debug, Clone, PartialEq)]
pub enum InputValue {
    /// A reference.
    Ref(ValueRef),
    /// A literal string.
    Literal(String),
}

/// Parses an input string: a reference when it starts with `$` (`$$` escapes a literal `$`).
pub fn parse_input(s: &str) -> Result<InputValue, String> {
    if let Some(rest) = s.strip_prefix("$$") {
        return Ok(InputValue::Literal(format!("${rest}")));
    }
    if s.starts_with('$') {
        return parse_ref(s).map(InputValue::Ref);
    }
    Ok(InputValue::Literal(s.to_owned()))
}

/// Parses `$input[.path]` or `$steps.<id>.output[.path]`.
pub fn parse_ref(s: &str) -> Result<ValueRef, String> {
    let bad = |why: &str| Err(format!("bad reference '{s}': {why}"));
    if let Some(rest) = s.strip_prefix("$input") {
        if rest.is_empty() {
            return Ok(ValueRef::Input(Vec::new()));
        }
        let Some(path) = rest.strip_prefix('.') else {
            return bad("expected '.' after $input");
        };
        return parse_path(path).map(ValueRef::Input).or_else(|e| bad(&e));
    }
    if let Some(rest) = s.strip_prefix("$steps.") {
        let (id, rest) = rest.split_once('.').unwrap_or((rest, ""));
        if id.is_empty() || !valid_id(id) {
            return bad("expected $steps.<id>.output");
        }
        let path = match rest.strip_prefix("output") {
            Some("") => Vec::new(),
            Some(p) if p.starts_with('.') => match parse_path(&p[1..]) {
                Ok(path) => path,
                Err(e) => return bad(&e),
            },
            _ => return bad("expected $steps.<id>.output"),
        };
        return Ok(ValueRef::Step {
            step: id.to_owned(),
            path,
        });
    }
    bad("must start with $input or $steps.<id>.output")
}

fn parse_path(p: &str) -> Result<Vec<PathSeg>, String> {
    let mut out = Vec::new();
    for part in p.split('.') {
        let (key, mut idx) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if key.is_empty() && idx.is_empty() {
            return Err("empty path segment".into());
        }
        if !key.is_empty() {
            out.push(PathSeg::Key(key.to_owned()));
        }
        while !idx.is_empty() {
            let Some(close) = idx.find(']') else {
                return Err("unclosed '['".into());
            };
            let n: usize = idx[1..close]
                .parse()
                .map_err(|_| format!("bad array index '{}'", &idx[1..close]))?;
            out.push(PathSeg::Index(n));
            idx = &idx[close + 1..];
            if !idx.is_empty() && !idx.starts_with('[') {
                return Err(format!("unexpected '{idx}' after ']'"));
            }
        }
    }
    Ok(out)
}

/// Follows `path` into `value`; `None` when a segment is absent.
pub fn lookup<'a>(value: &'a Value, path: &[PathSeg]) -> Option<&'a Value> {
    let mut v = value;
    for seg in path {
        v = match (seg, v) {
            (PathSeg::Key(k), Value::Object(m)) => m.get(k)?,
            (PathSeg::Key(k), Value::Array(a)) => a.get(k.parse::<usize>().ok()?)?,
            (PathSeg::Index(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Both sides equal (`==`).
    Eq(Operand, Operand),
    /// Sides differ (`!=`).
    Ne(Operand, Operand),
    /// The reference resolves to something other than null.
    Exists(ValueRef),
    /// The operand is JSON `true`.
    Truthy(Operand),
    /// Negation.
    Not(Box<Condition>),
    /// Both.
    And(Box<Condition>, Box<Condition>),
    /// Either.
    Or(Box<Condition>, Box<Condition>),
}

/// A side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A reference, resolved at run time (absent or skipped: null).
    Ref(ValueRef),
    /// A constant.
    Literal(Value),
}

impl Condition {
    /// Evaluates with `resolve` giving each reference's value (null when absent).
    pub fn eval(&self, resolve: &dyn Fn(&ValueRef) -> Value) -> bool {
        let val = |o: &Operand| match o {
            Operand::Ref(r) => resolve(r),
            Operand::Literal(v) => v.clone(),
        };
        match self {
            Condition::Eq(a, b) => json_eq(&val(a), &val(b)),
            Condition::Ne(a, b) => !json_eq(&val(a), &val(b)),
            Condition::Exists(r) => !resolve(r).is_null(),
            Condition::Truthy(o) => val(o) == Value::Bool(true),
            Condition::Not(c) => !c.eval(resolve),
            Condition::And(a, b) => a.eval(resolve) && b.eval(resolve),
            Condition::Or(a, b) => a.eval(resolve) || b.eval(resolve),
        }
    }

    /// Every reference in the condition.
    pub fn refs(&self) -> Vec<&ValueRef> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a ValueRef>) {
        let op = |o: &'a Operand, out: &mut Vec<&'a ValueRef>| {
            if let Operand::Ref(r) = o {
                out.push(r)
            }
        };
        match self {
            Condition::Eq(a, b) | Condition::Ne(a, b) => {
                op(a, out);
                op(b, out);
            }
            Condition::Exists(r) => out.push(r),
            Condition::Truthy(o) => op(o, out),
            Condition::Not(c) => c.collect(out),
            Condition::And(a, b) | Condition::Or(a, b) => {
                a.collect(out);
                b.collect(out);
            }
        }
    }
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Eq,
    Ne,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '=' || c == '!' {
            if cs.get(i + 1) != Some(&'=') {
                return Err(format!("expected '{c}=' at position {i}"));
            }
            out.push(if c == '=' { Tok::Eq } else { Tok::Ne });
            i += 2;
        } else if c == '"' || c == '\'' {
            let start = i + 1;
            let Some(len) = cs[start..].iter().position(|&d| d == c) else {
                return Err(format!("unterminated string at position {i}"));
            };
            out.push(Tok::Str(cs[start..start + len].iter().collect()));
            i = start + len + 1;
        } else {
            let start = i;
            while i < cs.len() && !cs[i].is_whitespace() && !matches!(cs[i], '=' | '!' | '"' | '\'')
            {
                i += 1;
            }
            out.push(Tok::Word(cs[start..i].iter().collect()));
        }
    }
    Ok(out)
}

/// Parses a condition (grammar in the module doc).
pub fn parse_condition(s: &str) -> Result<Condition, String> {
    let toks = tokenize(s)?;
    if toks.is_empty() {
        return Err("empty condition".into());
    }
    let mut p = CondParser { toks, pos: 0 };
    let c = p.or()?;
    if p.pos < p.toks.len() {
        return Err(format!(
            "unexpected {:?} after the condition",
            p.toks[p.pos]
        ));
    }
    Ok(c)
}

struct CondParser {
    toks: Vec<Tok>,
    pos: usize,
}

impl CondParser {
    fn keyword(&mut self, kw: &str) -> bool {
        if matches!(self.toks.get(self.pos), Some(Tok::Word(w)) if w == kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Condition, String> {
        let mut c = self.and()?;
        while self.keyword("or") {
            c = Condition::Or(Box::new(c), Box::new(self.and()?));
        }
        Ok(c)
    }

    fn and(&mut self) -> Result<Condition, String> {
        let mut c = self.unary()?;
        while self.keyword("and") {
            c = Condition::And(Box::new(c), Box::new(self.unary()?));
        }
        Ok(c)
    }

    fn unary(&mut self) -> Result<Condition, String> {
        if self.keyword("not") {
            return Ok(Condition::Not(Box::new(self.unary()?)));
        }
        if self.keyword("exists") {
            return match self.operand()? {
                Operand::Ref(r) => Ok(Condition::Exists(r)),
                Operand::Literal(_) => Err("'exists' needs a reference".into()),
            };
        }
        let a = self.operand()?;
        match self.toks.get(self.pos) {
            Some(Tok::Eq) => {
                self.pos += 1;
                Ok(Condition::Eq(a, self.operand()?))
            }
            Some(Tok::Ne) => {
                self.pos += 1;
                Ok(Condition::Ne(a, self.operand()?))
            }
            _ => Ok(Condition::Truthy(a)),
        }
    }

    fn operand(&mut self) -> Result<Operand, String> {
        let Some(tok) = self.toks.get(self.pos).cloned() else {
            return Err("condition ends where an operand was expected".into());
        };
        self.pos += 1;
        match tok {
            Tok::Str(s) => Ok(Operand::Literal(Value::String(s))),
            Tok::Eq | Tok::Ne => Err("operator where an operand was expected".into()),
            Tok::Word(w) => {
                if w.starts_with('$') {
                    return parse_ref(&w).map(Operand::Ref);
                }
                match w.as_str() {
                    "true" => Ok(Operand::Literal(Value::Bool(true))),
                    "false" => Ok(Operand::Literal(Value::Bool(false))),
                    "null" => Ok(Operand::Literal(Value::Null)),
                    "and" | "or" | "not" | "exists" => {
                        Err(format!("'{w}' where an operand was expected"))
                    }
                    _ => match serde_json::from_str::<serde_json::Number>(&w) {
                        Ok(n) => Ok(Operand::Literal(Value::Number(n))),
                        Err(_) => Err(format!(
                            "'{w}' is not a reference, number, true, false, null or quoted string"
                        )),
                    },
                }
            }
        }
    }
}

/// The ids of the steps `step` refers to (inputs, condition, `after`), unvalidated;
/// malformed references are left out.
pub fn step_dependencies(step: &StepSpec) -> BTreeSet<String> {
    let mut deps: BTreeSet<String> = step.after.iter().cloned().collect();
    for v in step.inputs.values() {
        if let Ok(InputValue::Ref(ValueRef::Step { step, .. })) = parse_input(v) {
            deps.insert(step);
        }
    }
    if let Some(Ok(c)) = step.when.as_deref().map(parse_condition) {
        for r in c.refs() {
            if let ValueRef::Step { step, .. } = r {
                deps.insert(step.clone());
            }
        }
    }
    deps
}

/// The DAG's edges `(from, to)` as indices into `spec.steps`, from input references,
/// condition references and `after`; unknown ids are ignored (validate first).
pub fn step_edges(spec: &WorkflowSpec) -> Vec<(usize, usize)> {
    let index: BTreeMap<&str, usize> = spec
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut edges = Vec::new();
    for (to, s) in spec.steps.iter().enumerate() {
        for dep in step_dependencies(s) {
            if let Some(&from) = index.get(dep.as_str()) {
                edges.push((from, to));
            }
        }
    }
    edges
}

/// The largest run budget a workflow may set: 30 days, in milliseconds.
pub const MAX_BUDGET_MS: u64 = 30 * 86_400_000;

/// Checks a workflow: ids, operations, references, conditions, numbers and cycles.
/// Every problem found is reported, each naming its step and field.
pub fn validate(spec: &WorkflowSpec, ops: &dyn OperationCatalog) -> Result<(), SpecErrors> {
    let mut errs = Vec::new();
    let mut err = |step: Option<&str>, field: String, reason: String| {
        errs.push(SpecError {
            step: step.map(str::to_owned),
            field,
            reason,
        })
    };
    if spec.name.trim().is_empty() {
        err(None, "name".into(), "must not be empty".into());
    }
    if spec.steps.is_empty() {
        err(
            None,
            "steps".into(),
            "a workflow needs at least one step".into(),
        );
    }
    if spec.budget_ms == Some(0) {
        err(None, "budgetMs".into(), "must be positive".into());
    }
    // The engine adds the budget to the current instant: beyond any sensible run, and
    // where `Instant` counts nanoseconds in a u64 (macOS) u64::MAX ms overflows it (a panic).
    if spec.budget_ms.is_some_and(|b| b > MAX_BUDGET_MS) {
        err(
            None,
            "budgetMs".into(),
            format!("must be at most {MAX_BUDGET_MS} (30 days)"),
        );
    }
    let mut first: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, s) in spec.steps.iter().enumerate() {
        if !valid_id(&s.id) {
            err(
                Some(&s.id),
                format!("steps[{i}].id"),
                format!(
                    "'{}' is not a valid id (letters, digits, '_' and '-')",
                    s.id
                ),
            );
        }
        if let Some(j) = first.get(s.id.as_str()) {
            err(
                Some(&s.id),
                format!("steps[{i}].id"),
                format!("duplicate step id '{}' (first at steps[{j}])", s.id),
            );
        } else {
            first.insert(&s.id, i);
        }
    }
    let check_ref = |r: &ValueRef, own: Option<&str>| -> Result<(), String> {
        match r {
            ValueRef::Input(path) => {
                if let (false, Some(PathSeg::Key(k))) = (spec.inputs.is_empty(), path.first()) {
                    if !spec.inputs.contains(k) {
                        return Err(format!(
                            "run input field '{k}' is not declared in the workflow's inputs"
                        ));
                    }
                }
                Ok(())
            }
            ValueRef::Step { step, .. } => {
                if own == Some(step.as_str()) {
                    Err(format!("step '{step}' refers to its own output"))
                } else if !first.contains_key(step.as_str()) {
                    Err(format!("reference to unknown step '{step}'"))
                } else {
                    Ok(())
                }
            }
        }
    };
    for (i, s) in spec.steps.iter().enumerate() {
        let at = |f: &str| format!("steps[{i}].{f}");
        let sid = Some(s.id.as_str());
        if !ops.contains(&s.operation) {
            err(
                sid,
                at("operation"),
                format!("unknown operation '{}'", s.operation),
            );
        } else {
            for need in ops.required_inputs(&s.operation) {
                if !s.inputs.contains_key(&need) && !s.params.contains_key(&need) {
                    err(
                        sid,
                        at(&format!("inputs.{need}")),
                        format!("missing input '{need}' required by '{}'", s.operation),
                    );
                }
            }
        }
        for (name, v) in &s.inputs {
            match parse_input(v) {
                Ok(InputValue::Ref(r)) => {
                    if let Err(e) = check_ref(&r, sid) {
                        err(sid, at(&format!("inputs.{name}")), e);
                    }
                }
                Ok(InputValue::Literal(_)) => {}
                Err(e) => err(sid, at(&format!("inputs.{name}")), e),
            }
        }
        if let Some(w) = &s.when {
            match parse_condition(w) {
                Ok(c) => {
                    for r in c.refs() {
                        if let Err(e) = check_ref(r, sid) {
                            err(sid, at("when"), e);
                        }
                    }
                }
                Err(e) => err(sid, at("when"), format!("bad condition '{w}': {e}")),
            }
        }
        for (k, a) in s.after.iter().enumerate() {
            if a == &s.id {
                err(
                    sid,
                    at(&format!("after[{k}]")),
                    "step waits for itself".into(),
                );
            } else if !first.contains_key(a.as_str()) {
                err(
                    sid,
                    at(&format!("after[{k}]")),
                    format!("unknown step '{a}'"),
                );
            }
        }
        if s.timeout_ms == Some(0) {
            err(sid, at("timeoutMs"), "must be positive".into());
        }
        if !(s.retry.factor.is_finite() && s.retry.factor >= 1.0) {
            err(
                sid,
                at("retry.factor"),
                format!("must be a finite number >= 1, got {}", s.retry.factor),
            );
        }
        if s.demand.units == 0 {
            err(sid, at("demand.units"), "must be at least 1".into());
        }
        for (kind, c) in &s.cost_ms {
            if !(c.is_finite() && *c >= 0.0) {
                let kind = serde_json::to_value(kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                err(
                    sid,
                    at(&format!("costMs.{kind}")),
                    format!("must be a finite number >= 0, got {c}"),
                );
            }
        }
        if let Some(b) = s.output_bytes {
            if !(b.is_finite() && b >= 0.0) {
                err(
                    sid,
                    at("outputBytes"),
                    format!("must be a finite number >= 0, got {b}"),
                );
            }
        }
    }
    for (name, v) in &spec.output {
        match parse_input(v) {
            Ok(InputValue::Ref(r)) => {
                if let Err(e) = check_ref(&r, None) {
                    err(None, format!("output.{name}"), e);
                }
            }
            Ok(InputValue::Literal(_)) => {}
            Err(e) => err(None, format!("output.{name}"), e),
        }
    }
    if first.len() == spec.steps.len() {
        if let Some(cycle) = find_cycle(spec) {
            let names: Vec<&str> = cycle.iter().map(|&i| spec.steps[i].id.as_str()).collect();
            let i = cycle[0];
            err(
                Some(&spec.steps[i].id),
                format!("steps[{i}]"),
                format!("cycle: {} -> {}", names.join(" -> "), names[0]),
            );
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(SpecErrors(errs))
    }
}

/// One cycle of the step graph, as step indices in dependency order, if any.
fn find_cycle(spec: &WorkflowSpec) -> Option<Vec<usize>> {
    let n = spec.steps.len();
    let mut succ = vec![Vec::new(); n];
    // A step referring to itself is reported as such, not as a cycle.
    for (from, to) in step_edges(spec).into_iter().filter(|(f, t)| f != t) {
        succ[from].push(to);
    }
    // Iterative DFS with colours; the grey stack is the current path.
    let mut colour = vec![0u8; n];
    for root in 0..n {
        if colour[root] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        colour[root] = 1;
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            if *next < succ[v].len() {
                let w = succ[v][*next];
                *next += 1;
                match colour[w] {
                    0 => {
                        colour[w] = 1;
                        stack.push((w, 0));
                    }
                    1 => {
                        let pos = stack.iter().position(|&(u, _)| u == w).unwrap_or(0);
                        return Some(stack[pos..].iter().map(|&(u, _)| u).collect());
                    }
                    _ => {}
                }
            } else {
                colour[v] = 2;
                stack.pop();
            }
        }
    }
    None
}
