//! docker's `--format`: Go templates over the JSON documents (`inspect`) and over the
//! rows of the listing verbs (`ps`, `images`, `network ls`, `stats`, `volume ls`), with
//! docker's template functions and its `table` and `json` shorthands.
//!
//! The template engine is `gotmpl`, a reimplementation of Go's `text/template`. `gtmpl`,
//! the older crate, was evaluated first and not kept: it is only passively maintained
//! (last release 2021), ranges over maps in hash order (Go sorts the keys), runs a
//! `{{range}}`'s `{{else}}` even when the range had items, prints lists and maps in
//! Rust's debug syntax instead of Go's `[a b]` and `map[k:v]`, and takes functions as
//! plain `fn` pointers. `gotmpl` follows Go's output and error texts, sorts map keys,
//! bounds the iterations a template may run, and takes closures.
//!
//! What differs from docker, because docker executes templates on Go structs and this
//! program on JSON documents: a struct prints as a map (`map[Pid:1 ...]` where docker
//! prints `{running true ... 1 ...}`), and a `null` field prints `<no value>` where docker
//! prints `[]` or `map[]` for an empty list or map. In `inspect`, a name the document
//! does not have prints `<no value>` (docker errors for a name its types do not have):
//! the engine leaves out fields it does not set, and a script asking for one should not fail.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use gotmpl::parse::{CommandNode, Expr, ListNode, Node, PipeNode};
use gotmpl::{FuncMap, MissingKey, Template, TemplateError, Value};
use serde_json::Value as Json;

use super::format::tabwriter;

/// The name the user's template is parsed under; error texts keep it out, as docker's
/// anonymous templates do.
const MAIN: &str = "basic-docker-format";

/// A name a template can never call: `.Label "key"` (a method with an argument on
/// docker's row types) is rewritten into a call of it.
const LABEL_FUNC: &str = "__label";

/// Iterations a template may run over all its `{{range}}`s: far more than any listing
/// has, few enough that a hostile format string cannot spin for long.
const MAX_RANGE_ITERATIONS: u64 = 1_000_000;

/// A template that could not be used, in docker's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// The format does not parse (docker: exit code 64 in `inspect`, 1 elsewhere).
    Parse(String),
    /// The format parsed but failed on a document or row.
    Execute(String),
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Parse(m) | FormatError::Execute(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for FormatError {}

/// Go's wording for an error: `template: :LINE: message` for parse errors, the
/// executor's message otherwise. `field_error` says how a missing field reads.
fn describe(e: &TemplateError, field_error: fn(&str) -> String) -> String {
    match e {
        TemplateError::Parse { line, message, .. } | TemplateError::Lex { line, message, .. } => {
            format!("template: :{line}: {message}")
        }
        TemplateError::MissingKey { key } => format!("template: {}", field_error(key)),
        other => format!("template: {other}"),
    }
}

fn parse_error(e: &TemplateError) -> FormatError {
    FormatError::Parse(describe(e, |k| format!("map has no entry for key {k:?}")))
}

// ------------------------------------------------------------------ JSON <-> values

/// The template value of a JSON document.
pub fn to_value(json: &Json) -> Value {
    match json {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::Uint(u)
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => Value::from(items.iter().map(to_value).collect::<Vec<_>>()),
        Json::Object(map) => Value::from(
            map.iter()
                .map(|(k, v)| (k.clone(), to_value(v)))
                .collect::<BTreeMap<String, Value>>(),
        ),
    }
}

/// Whether a JSON object is one of docker's structs (every key a Go field name, so
/// its order is the struct's) rather than a map (labels, ports, networks by name),
/// whose keys Go writes sorted.
fn is_struct(map: &serde_json::Map<String, Json>) -> bool {
    !map.is_empty()
        && map.keys().all(|k| {
            let mut chars = k.chars();
            chars.next().is_some_and(|c| c.is_ascii_uppercase())
                && chars.all(|c| c.is_ascii_alphanumeric())
        })
}

/// A document as Go writes it: struct fields in their order, map keys sorted (the
/// engine's maps come from hash maps, in no order at all).
pub fn canonical(json: Json) -> Json {
    match json {
        Json::Array(items) => Json::Array(items.into_iter().map(canonical).collect()),
        Json::Object(map) => {
            let keep_order = is_struct(&map);
            let mut entries: Vec<(String, Json)> =
                map.into_iter().map(|(k, v)| (k, canonical(v))).collect();
            if !keep_order {
                entries.sort_by(|a, b| a.0.cmp(&b.0));
            }
            Json::Object(entries.into_iter().collect())
        }
        other => other,
    }
}

/// The key order of a document's structs, so that `{{json .State}}` writes `State`'s
/// fields in docker's order although template maps are sorted: sorted keys → order.
#[derive(Debug, Default)]
struct KeyOrder(HashMap<Vec<String>, Vec<String>>);

impl KeyOrder {
    fn of(json: &Json) -> Self {
        let mut order = KeyOrder::default();
        order.learn(json);
        order
    }

    fn learn(&mut self, json: &Json) {
        match json {
            Json::Array(items) => items.iter().for_each(|i| self.learn(i)),
            Json::Object(map) => {
                let keys: Vec<String> = map.keys().cloned().collect();
                let mut sorted = keys.clone();
                sorted.sort();
                if sorted != keys {
                    self.0.insert(sorted, keys);
                }
                map.values().for_each(|v| self.learn(v));
            }
            _ => {}
        }
    }
}

/// The JSON of a template value, structs in the order `order` knows.
fn to_json(value: &Value, order: &KeyOrder) -> Result<Json, String> {
    Ok(match value {
        Value::Nil => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Uint(u) => Json::from(*u),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::String(s) => Json::String(s.to_string()),
        Value::List(items) => Json::Array(
            items
                .iter()
                .map(|i| to_json(i, order))
                .collect::<Result<_, _>>()?,
        ),
        Value::Map(map) => {
            let sorted: Vec<String> = map.keys().map(|k| k.to_string()).collect();
            let keys = order.0.get(&sorted).unwrap_or(&sorted);
            let mut out = serde_json::Map::new();
            for k in keys {
                if let Some(v) = map.get(k.as_str()) {
                    out.insert(k.clone(), to_json(v, order)?);
                }
            }
            Json::Object(out)
        }
        other => return Err(format!("json: unsupported type: {}", other.type_name())),
    })
}

/// Go's JSON text: `\u2028` and `\u2029` always escaped, and `<`, `>`, `&` too where
/// docker marshals with HTML escaping (a listing's whole row).
fn go_json_text(json: &Json, escape_html: bool) -> String {
    let text = json.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            '<' if escape_html => out.push_str("\\u003c"),
            '>' if escape_html => out.push_str("\\u003e"),
            '&' if escape_html => out.push_str("\\u0026"),
            c => out.push(c),
        }
    }
    out
}

// ------------------------------------------------------------------ functions

type FuncResult = gotmpl::Result<Value>;

fn func_error(message: String) -> TemplateError {
    TemplateError::Exec(message)
}

fn arity(name: &str, args: &[Value], wanted: usize) -> gotmpl::Result<()> {
    if args.len() == wanted {
        Ok(())
    } else {
        Err(TemplateError::ArgCount {
            name: name.to_string(),
            expected: wanted,
            got: args.len(),
        })
    }
}

fn string_arg<'a>(name: &str, v: &'a Value) -> gotmpl::Result<&'a str> {
    v.as_str().ok_or_else(|| {
        func_error(format!(
            "{name}: wrong type for value; expected string; got {}",
            v.type_name()
        ))
    })
}

fn int_arg(name: &str, v: &Value) -> gotmpl::Result<i64> {
    match v {
        Value::Int(_) | Value::Uint(_) => Ok(v.as_int().unwrap_or(0)),
        _ => Err(func_error(format!(
            "{name}: wrong type for value; expected int; got {}",
            v.type_name()
        ))),
    }
}

/// Go's `strings.Title`: the first letter of every word upper-cased, a word starting
/// after any ASCII character but a letter, a digit or `_`, or after a non-ASCII space.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut previous: Option<char> = None;
    for c in s.chars() {
        let separated = match previous {
            None => true,
            Some(p) if p.is_ascii() => !(p.is_ascii_alphanumeric() || p == '_'),
            Some(p) => p.is_whitespace(),
        };
        if separated {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        previous = Some(c);
    }
    out
}

/// Go's `strings.Split`: an empty separator splits into characters.
fn split(s: &str, sep: &str) -> Vec<Value> {
    if sep.is_empty() {
        s.chars().map(|c| Value::from(c.to_string())).collect()
    } else {
        s.split(sep).map(Value::from).collect()
    }
}

/// docker's `truncate`: the first `length` characters (docker counts bytes and can cut
/// a character in two; this never does).
fn truncate(s: &str, length: i64) -> String {
    let length = usize::try_from(length).unwrap_or(0);
    s.chars().take(length).collect()
}

/// State the functions read while a template runs: the document's key order for
/// `json`, and the row being written (its labels for `.Label`, and whether `json` is
/// given the whole row, which docker writes with HTML escaping).
#[derive(Debug, Default)]
struct Shared {
    order: KeyOrder,
    row: Mutex<Option<Row>>,
}

impl Shared {
    fn current_row(&self) -> Option<Row> {
        self.row
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// docker's functions (`templates.basicFunctions`): json, split, join, title, lower,
/// upper, pad, truncate; Go's own (print, println, printf, index, len, ...) are built in.
fn basic_funcs(shared: Arc<Shared>) -> FuncMap {
    let mut funcs = FuncMap::new();
    let json_shared = Arc::clone(&shared);
    funcs.insert(
        "json".into(),
        Arc::new(move |args: &[Value]| -> FuncResult {
            arity("json", args, 1)?;
            let json = to_json(&args[0], &json_shared.order).map_err(func_error)?;
            let whole_row = json_shared
                .current_row()
                .is_some_and(|row| row.value() == args[0]);
            Ok(Value::from(go_json_text(&json, whole_row)))
        }),
    );
    funcs.insert(
        "split".into(),
        Arc::new(|args: &[Value]| -> FuncResult {
            arity("split", args, 2)?;
            let (s, sep) = (
                string_arg("split", &args[0])?,
                string_arg("split", &args[1])?,
            );
            Ok(Value::from(split(s, sep)))
        }),
    );
    funcs.insert(
        "join".into(),
        Arc::new(|args: &[Value]| -> FuncResult {
            arity("join", args, 2)?;
            let sep = string_arg("join", &args[1])?;
            let Value::List(items) = &args[0] else {
                return Err(func_error(format!(
                    "join: wrong type for value; expected []string; got {}",
                    args[0].type_name()
                )));
            };
            let parts: Vec<&str> = items
                .iter()
                .map(|i| string_arg("join", i))
                .collect::<Result<_, _>>()?;
            Ok(Value::from(parts.join(sep)))
        }),
    );
    let string_func = |name: &'static str, f: fn(&str) -> String| -> gotmpl::ValueFunc {
        Arc::new(move |args: &[Value]| -> FuncResult {
            arity(name, args, 1)?;
            Ok(Value::from(f(string_arg(name, &args[0])?)))
        })
    };
    funcs.insert("title".into(), string_func("title", title));
    funcs.insert("lower".into(), string_func("lower", str::to_lowercase));
    funcs.insert("upper".into(), string_func("upper", str::to_uppercase));
    funcs.insert(
        "pad".into(),
        Arc::new(|args: &[Value]| -> FuncResult {
            arity("pad", args, 3)?;
            let s = string_arg("pad", &args[0])?;
            if s.is_empty() {
                return Ok(Value::from(""));
            }
            let spaces = |v: &Value| -> gotmpl::Result<String> {
                Ok(" ".repeat(usize::try_from(int_arg("pad", v)?).unwrap_or(0)))
            };
            Ok(Value::from(format!(
                "{}{s}{}",
                spaces(&args[1])?,
                spaces(&args[2])?
            )))
        }),
    );
    funcs.insert(
        "truncate".into(),
        Arc::new(|args: &[Value]| -> FuncResult {
            arity("truncate", args, 2)?;
            let s = string_arg("truncate", &args[0])?;
            Ok(Value::from(truncate(s, int_arg("truncate", &args[1])?)))
        }),
    );
    funcs.insert(
        LABEL_FUNC.into(),
        Arc::new(move |args: &[Value]| -> FuncResult {
            arity("Label", args, 1)?;
            let name = string_arg("Label", &args[0])?;
            let row = shared.current_row();
            Ok(Value::from(
                row.and_then(|r| r.labels.get(name).cloned())
                    .unwrap_or_default(),
            ))
        }),
    );
    funcs
}

/// docker's header functions (`templates.HeaderFunctions`): the table's header row is
/// the same template run on the column names, with the functions that would change a
/// name returning it as it is (`pad` is kept, so that headers align with padded cells).
fn header_funcs(shared: Arc<Shared>) -> FuncMap {
    let mut funcs = basic_funcs(shared);
    for name in [
        "json", "split", "join", "title", "lower", "upper", "truncate",
    ] {
        funcs.insert(
            name.into(),
            Arc::new(|args: &[Value]| -> FuncResult {
                Ok(args.first().cloned().unwrap_or(Value::Nil))
            }),
        );
    }
    // docker's header for `.Label "com.example.tier"`: the last dotted part, with `-`
    // and `_` as spaces ("tier").
    funcs.insert(
        LABEL_FUNC.into(),
        Arc::new(|args: &[Value]| -> FuncResult {
            let name = args.first().and_then(Value::as_str).unwrap_or_default();
            let last = name.rsplit('.').next().unwrap_or_default();
            Ok(Value::from(last.replace(['-', '_'], " ")))
        }),
    );
    funcs
}

// ------------------------------------------------------------------ parsing

/// Parses `text` with `funcs`; with `methods`, `.Label "key"` becomes a call of the
/// row's label function (Go calls the row type's method; template maps have none).
fn compile(
    text: &str,
    funcs: FuncMap,
    missing: MissingKey,
    methods: bool,
) -> Result<Template, FormatError> {
    let known: Vec<String> = funcs.keys().cloned().collect();
    let parsed = Template::new(MAIN)
        .funcs(funcs.clone())
        .parse(text)
        .map_err(|e| parse_error(&e))?;
    let names: Vec<String> = parsed.templates().iter().map(|s| s.to_string()).collect();
    let mut trees = Vec::new();
    for name in &names {
        let Some(tree) = parsed.lookup(name) else {
            continue;
        };
        let mut tree = tree.clone();
        if methods {
            rewrite_list(&mut tree);
        }
        check_funcs(&tree, &known)?;
        trees.push((name.clone(), tree));
    }
    // The rewritten trees replace the parsed ones; the main body calls its own.
    let mut template = Template::new("")
        .funcs(funcs)
        .missing_key(missing)
        .max_range_iters(MAX_RANGE_ITERATIONS)
        .parse(&format!("{{{{template {MAIN:?} .}}}}"))
        .map_err(|e| parse_error(&e))?;
    if !names.iter().any(|n| n == MAIN) {
        // An empty format: nothing to run.
        template = template.add_parse_tree(
            MAIN,
            ListNode {
                pos: gotmpl::parse::Pos::new(0, 1),
                nodes: Vec::new(),
            },
        );
    }
    for (name, tree) in trees {
        template = template.add_parse_tree(&name, tree);
    }
    Ok(template)
}

fn rewrite_list(list: &mut ListNode) {
    for node in &mut list.nodes {
        match node {
            Node::List(l) => rewrite_list(l),
            Node::Action(a) => rewrite_pipe(&mut a.pipe),
            Node::If(b) | Node::Range(b) | Node::With(b) => {
                rewrite_pipe(&mut b.pipe);
                rewrite_list(&mut b.body);
                if let Some(e) = &mut b.else_body {
                    rewrite_list(e);
                }
            }
            Node::Template(t) => {
                if let Some(p) = &mut t.pipe {
                    rewrite_pipe(p);
                }
            }
            Node::Define(d) => rewrite_list(&mut d.body),
            Node::Text(_) | Node::Break(_) | Node::Continue(_) => {}
        }
    }
}

fn rewrite_pipe(pipe: &mut PipeNode) {
    for command in &mut pipe.commands {
        rewrite_command(command);
    }
}

fn rewrite_command(command: &mut CommandNode) {
    for arg in &mut command.args {
        if let Expr::Pipe(_, p) = arg {
            rewrite_pipe(p);
        }
    }
    if let Some(Expr::Field(pos, fields)) = command.args.first()
        && fields.last().is_some_and(|f| f == "Label")
        && command.args.len() > 1
    {
        command.args[0] = Expr::Identifier(*pos, LABEL_FUNC.into());
    }
}

/// Go's own template functions, which gotmpl has built in.
const BUILTINS: &[&str] = &[
    "and", "call", "eq", "ge", "gt", "html", "index", "js", "le", "len", "lt", "ne", "not", "or",
    "print", "printf", "println", "slice", "urlquery",
];

/// Go refuses a call of an unknown function when it parses; gotmpl only when it runs.
fn check_funcs(list: &ListNode, known: &[String]) -> Result<(), FormatError> {
    let mut missing = None;
    visit_exprs(list, &mut |e| {
        if let Expr::Identifier(pos, name) = e
            && missing.is_none()
            && !BUILTINS.contains(&name.as_str())
            && !known.iter().any(|k| k == name.as_str())
        {
            missing = Some((pos.line, name.to_string()));
        }
    });
    match missing {
        Some((line, name)) => Err(FormatError::Parse(format!(
            "template: :{line}: function {name:?} not defined"
        ))),
        None => Ok(()),
    }
}

fn visit_exprs(list: &ListNode, f: &mut dyn FnMut(&Expr)) {
    fn pipe(p: &PipeNode, f: &mut dyn FnMut(&Expr)) {
        for c in &p.commands {
            for a in &c.args {
                expr(a, f);
            }
        }
    }
    fn expr(e: &Expr, f: &mut dyn FnMut(&Expr)) {
        f(e);
        match e {
            Expr::Pipe(_, p) => pipe(p, f),
            Expr::Chain(_, inner, _) => expr(inner, f),
            _ => {}
        }
    }
    for node in &list.nodes {
        match node {
            Node::List(l) => visit_exprs(l, f),
            Node::Action(a) => pipe(&a.pipe, f),
            Node::If(b) | Node::Range(b) | Node::With(b) => {
                pipe(&b.pipe, f);
                visit_exprs(&b.body, f);
                if let Some(e) = &b.else_body {
                    visit_exprs(e, f);
                }
            }
            Node::Template(t) => {
                if let Some(p) = &t.pipe {
                    pipe(p, f);
                }
            }
            Node::Define(d) => visit_exprs(&d.body, f),
            Node::Text(_) | Node::Break(_) | Node::Continue(_) => {}
        }
    }
}

// ------------------------------------------------------------------ inspect

/// `inspect -f`: docker 20.10's behaviour. No format prints the documents as an
/// indented JSON array; any other text, `json` included (docker 23's shorthand there is
/// not taken), is a template run once per document.
pub struct InspectFormat {
    text: Option<String>,
}

/// What an `inspect -f` printed and which documents failed.
#[derive(Debug, Default)]
pub struct InspectOutput {
    /// What goes to stdout.
    pub stdout: String,
    /// docker's `template parsing error: ...`, one per document that failed.
    pub errors: Vec<String>,
}

impl InspectFormat {
    /// Checks `format` parses (docker exits 64 when it does not).
    pub fn new(format: Option<&str>) -> Result<Self, FormatError> {
        let text = format.filter(|f| !f.is_empty()).map(str::to_string);
        if let Some(text) = &text {
            let shared = Arc::new(Shared::default());
            compile(text, basic_funcs(shared), MissingKey::Invalid, false)
                .map_err(|e| FormatError::Parse(format!("template parsing error: {e}")))?;
        }
        Ok(InspectFormat { text })
    }

    /// Renders `documents` (already [`canonical`]).
    pub fn render(&self, documents: &[Json]) -> InspectOutput {
        let mut out = InspectOutput::default();
        let Some(text) = &self.text else {
            out.stdout = indented(&Json::Array(documents.to_vec()));
            out.stdout.push('\n');
            return out;
        };
        for doc in documents {
            let shared = Arc::new(Shared {
                order: KeyOrder::of(doc),
                row: Mutex::new(None),
            });
            let result =
                compile(text, basic_funcs(shared), MissingKey::Invalid, false).and_then(|t| {
                    t.execute_to_string(&to_value(doc)).map_err(|e| {
                        FormatError::Execute(describe(&e, |k| {
                            format!("map has no entry for key {k:?}")
                        }))
                    })
                });
            match result {
                Ok(text) => {
                    out.stdout.push_str(&text);
                    out.stdout.push('\n');
                }
                Err(e) => out.errors.push(format!("template parsing error: {e}")),
            }
        }
        // docker writes one empty line when no document printed anything.
        if out.stdout.is_empty() {
            out.stdout.push('\n');
        }
        out
    }
}

/// JSON indented by four spaces, as docker prints documents.
pub fn indented(json: &Json) -> String {
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    serde::Serialize::serialize(json, &mut ser).expect("a JSON value always serializes");
    String::from_utf8(buf).expect("serde_json writes UTF-8")
}

// ------------------------------------------------------------------ listings

/// One row of a listing: docker's field names (`ID`, `Names`, ...) and their values,
/// plus the labels `.Label "key"` reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    fields: BTreeMap<String, Value>,
    labels: BTreeMap<String, String>,
}

impl Row {
    /// An empty row.
    pub fn new() -> Self {
        Row::default()
    }

    /// Sets a text field (docker's row fields are strings).
    pub fn text(mut self, name: &str, value: impl Into<String>) -> Self {
        self.fields
            .insert(name.to_string(), Value::from(value.into()));
        self
    }

    /// Sets a field to a JSON value (an object stays an object to the template).
    pub fn json(mut self, name: &str, value: &Json) -> Self {
        self.fields.insert(name.to_string(), to_value(value));
        self
    }

    /// The labels: `.Label "key"` reads them, and `.Labels` is docker's
    /// `key=value,...` (sorted).
    pub fn labels<'a>(
        mut self,
        labels: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Self {
        self.labels = labels
            .into_iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let joined: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        self.text("Labels", joined.join(","))
    }

    fn value(&self) -> Value {
        Value::from(self.fields.clone())
    }
}

/// A listing verb's formatting: its default table and its columns' header names.
#[derive(Debug, Clone, Copy)]
pub struct Listing {
    /// docker's default (`table {{.ID}}\t...`).
    pub default_table: &'static str,
    /// Field name → header (`("ID", "CONTAINER ID")`).
    pub headers: &'static [(&'static str, &'static str)],
    /// How errors read: docker's `ps` checks the template before it lists
    /// (`failed to parse template: ...`), its other listings while they write
    /// (`template parsing error: ...`).
    pub errors: ErrorWords,
}

/// The words before a template error, which differ between docker's listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorWords {
    /// `failed to parse template:` / `failed to execute template:` (`ps`).
    Check,
    /// `template parsing error:` (the other listings).
    Formatter,
}

impl ErrorWords {
    fn parse(self, e: FormatError) -> FormatError {
        match self {
            ErrorWords::Check => FormatError::Parse(format!("failed to parse template: {e}")),
            ErrorWords::Formatter => FormatError::Parse(format!("template parsing error: {e}")),
        }
    }

    fn execute(self, message: String) -> FormatError {
        match self {
            ErrorWords::Check => {
                FormatError::Execute(format!("failed to execute template: {message}"))
            }
            ErrorWords::Formatter => {
                FormatError::Execute(format!("template parsing error: {message}"))
            }
        }
    }
}

/// A parsed `--format` of a listing.
pub struct ListingFormat {
    listing: Listing,
    table: bool,
    rows: Template,
    header: Template,
    shared: Arc<Shared>,
    text: String,
}

impl ListingFormat {
    /// docker's reading of `--format`: none or `table` is the default table, `json` is
    /// `{{json .}}` (docker 23's shorthand), `table TEMPLATE` is a table with a header
    /// row, anything else a template per row; `\t` and `\n` written out are a tab and
    /// a newline.
    pub fn new(listing: Listing, format: Option<&str>) -> Result<Self, FormatError> {
        let source = match format {
            None | Some("") | Some("table") => listing.default_table,
            Some("json") => "{{json .}}",
            Some(other) => other,
        };
        let (table, text) = match source.strip_prefix("table") {
            Some(rest) => (true, rest),
            None => (false, source),
        };
        let text = text
            .trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n");
        let shared = Arc::new(Shared::default());
        let rows = compile(
            &text,
            basic_funcs(Arc::clone(&shared)),
            MissingKey::Error,
            true,
        )
        .map_err(|e| listing.errors.parse(e))?;
        let header = compile(
            &text,
            header_funcs(Arc::clone(&shared)),
            MissingKey::Invalid,
            true,
        )
        .map_err(|e| listing.errors.parse(e))?;
        Ok(ListingFormat {
            listing,
            table,
            rows,
            header,
            shared,
            text,
        })
    }

    /// Whether the template names `field` (docker computes sizes only when asked).
    pub fn mentions(&self, field: &str) -> bool {
        self.text.contains(field)
    }

    /// The listing: a header row and aligned columns for a table, else one rendered
    /// row per line.
    pub fn render(&self, rows: &[Row]) -> Result<String, FormatError> {
        let mut out = String::new();
        for row in rows {
            *self
                .shared
                .row
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(row.clone());
            let rendered = self.rows.execute_to_string(&row.value());
            *self
                .shared
                .row
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = None;
            let text = rendered.map_err(|e| {
                self.listing
                    .errors
                    .execute(describe(&e, |k| format!("can't evaluate field {k}")))
            })?;
            out.push_str(&text);
            out.push('\n');
        }
        if !self.table {
            return Ok(out);
        }
        let headers: BTreeMap<String, Value> = self
            .listing
            .headers
            .iter()
            .map(|(field, header)| (field.to_string(), Value::from(*header)))
            .collect();
        // docker ignores a header that fails to render, keeping what it wrote so far.
        let mut header = String::new();
        let _ = self.header.execute_fmt(&mut header, &Value::from(headers));
        Ok(tabwriter(&format!("{header}\n{out}")))
    }
}

/// `volume ls`'s formatting, for the volume verbs (docker's `VolumeContext`): rows from
/// [`volume_row`], printed with [`ListingFormat`].
// The volume verbs are being written beside this module; until they call it, only the
// tests do.
#[allow(dead_code)]
pub const VOLUMES: Listing = Listing {
    default_table: "table {{.Driver}}\t{{.Name}}",
    headers: &[
        ("Name", "VOLUME NAME"),
        ("Driver", "DRIVER"),
        ("Scope", "SCOPE"),
        ("Mountpoint", "MOUNTPOINT"),
        ("Labels", "LABELS"),
        ("Links", "LINKS"),
        ("Size", "SIZE"),
        ("Group", "GROUP"),
        ("Availability", "AVAILABILITY"),
        ("Status", "STATUS"),
    ],
    errors: ErrorWords::Formatter,
};

/// One `volume ls` row with docker's fields: `.Name .Driver .Scope .Mountpoint .Labels
/// .Label "k"`, and `N/A` for the ones a local volume has not (`.Links .Size .Group
/// .Availability .Status`, as docker without `--verbose` cluster data shows them).
#[allow(dead_code)]
pub fn volume_row(
    name: &str,
    driver: &str,
    mountpoint: &str,
    labels: &BTreeMap<String, String>,
) -> Row {
    Row::new()
        .text("Name", name)
        .text("Driver", driver)
        .text("Scope", "local")
        .text("Mountpoint", mountpoint)
        .text("Links", "N/A")
        .text("Size", "N/A")
        .text("Group", "N/A")
        .text("Availability", "N/A")
        .text("Status", "N/A")
        .labels(labels)
}

/// Prints a listing, or docker's error for its format (exit code 1).
pub fn print_listing(format: &ListingFormat, rows: &[Row]) -> std::process::ExitCode {
    match format.render(rows) {
        Ok(text) => {
            print!("{text}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inspect(format: &str, doc: Json) -> InspectOutput {
        InspectFormat::new(Some(format))
            .unwrap()
            .render(&[canonical(doc)])
    }

    fn one(format: &str, doc: Json) -> String {
        let out = inspect(format, doc);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        out.stdout.trim_end_matches('\n').to_string()
    }

    fn doc() -> Json {
        json!({
            "Id": "abc",
            "Name": "/web",
            "Args": ["-c", "sleep 10"],
            "State": {"Status": "running", "Running": true, "Pid": 42, "ExitCode": 0},
            "Config": {"Image": "busybox", "Labels": {"b": "2", "a": "<1&>"}, "Entrypoint": null},
            "Mounts": [{"Source": "/a", "Destination": "/x"}, {"Source": "/b", "Destination": "/y"}],
            "NetworkSettings": {"IPAddress": "172.17.0.2",
                "Networks": {"bridge": {"IPAddress": "172.17.0.2"}}},
        })
    }

    #[test]
    fn fields_maps_ranges_and_conditions_read_like_docker() {
        assert_eq!(one("{{.NetworkSettings.IPAddress}}", doc()), "172.17.0.2");
        assert_eq!(one("{{.State.Pid}}", doc()), "42");
        assert_eq!(one("{{.Config.Image}}", doc()), "busybox");
        assert_eq!(one(r#"{{index .Config.Labels "b"}}"#, doc()), "2");
        assert_eq!(
            one(
                "{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}",
                doc()
            ),
            "/a:/x /b:/y "
        );
        assert_eq!(
            one("{{if .State.Running}}up{{else}}down{{end}}", doc()),
            "up"
        );
        assert_eq!(
            one(
                "{{range $n, $e := .NetworkSettings.Networks}}{{$n}}={{$e.IPAddress}}{{end}}",
                doc()
            ),
            "bridge=172.17.0.2"
        );
        // Go's printing of lists, maps and nulls.
        assert_eq!(one("{{.Args}}", doc()), "[-c sleep 10]");
        assert_eq!(one("{{.Config.Labels}}", doc()), "map[a:<1&> b:2]");
        assert_eq!(one("{{.Config.Entrypoint}}", doc()), "<no value>");
        assert_eq!(
            one("{{range .Args}}{{println .}}{{end}}", doc()),
            "-c\nsleep 10"
        );
    }

    #[test]
    fn json_keeps_docker_struct_order_and_sorts_maps() {
        assert_eq!(
            one("{{json .State}}", doc()),
            r#"{"Status":"running","Running":true,"Pid":42,"ExitCode":0}"#
        );
        // Maps are sorted and, in inspect, not HTML-escaped (docker's SetEscapeHTML(false)).
        assert_eq!(
            one("{{json .Config.Labels}}", doc()),
            r#"{"a":"<1&>","b":"2"}"#
        );
        assert_eq!(one("{{json .Config.Entrypoint}}", doc()), "null");
        assert_eq!(one("{{json .Name}}", doc()), r#""/web""#);
        assert_eq!(one("{{json .Args}}", doc()), r#"["-c","sleep 10"]"#);
    }

    #[test]
    fn docker_string_functions() {
        assert_eq!(one(r#"{{join .Args ","}}"#, doc()), "-c,sleep 10");
        assert_eq!(one(r#"{{split "a,b,,c" ","}}"#, doc()), "[a b  c]");
        assert_eq!(one(r#"{{len (split "abc" "")}}"#, doc()), "3");
        assert_eq!(one("{{upper .Name}}", doc()), "/WEB");
        assert_eq!(one(r#"{{lower "MiXed"}}"#, doc()), "mixed");
        assert_eq!(
            one(r#"{{title "hello world-foo bar_baz"}}"#, doc()),
            "Hello World-Foo Bar_baz"
        );
        assert_eq!(one("{{truncate .Id 2}}", doc()), "ab");
        assert_eq!(one("{{truncate .Id 10}}", doc()), "abc");
        assert_eq!(one(r#"{{pad .Name 2 3}}|"#, doc()), "  /web   |");
        assert_eq!(one(r#"{{pad "" 2 3}}|"#, doc()), "|");
        assert_eq!(
            one(r#"{{printf "%s-%d" .Name .State.Pid}}"#, doc()),
            "/web-42"
        );
        assert_eq!(title("élan vital's\u{a0}x"), "Élan Vital'S\u{a0}X");
    }

    #[test]
    fn bad_templates_fail_with_dockers_words() {
        let Err(FormatError::Parse(parse)) = InspectFormat::new(Some("{{.Foo")) else {
            panic!("an unclosed action parsed");
        };
        assert!(
            parse.starts_with("template parsing error: template: :1:"),
            "{parse}"
        );
        assert!(parse.contains("unclosed action"), "{parse}");
        let Err(FormatError::Parse(unknown)) = InspectFormat::new(Some("{{nosuch .}}")) else {
            panic!("an unknown function parsed");
        };
        assert_eq!(
            unknown,
            r#"template parsing error: template: :1: function "nosuch" not defined"#
        );
        let out = inspect("{{lower .State.Pid}}", doc());
        assert_eq!(out.errors.len(), 1);
        assert!(
            out.errors[0].starts_with("template parsing error: ")
                && out.errors[0].contains("expected string"),
            "{:?}",
            out.errors
        );
        // Nothing printed: docker writes one empty line.
        assert_eq!(out.stdout, "\n");
        // A missing name prints docker's <no value> rather than failing a script.
        assert_eq!(one("{{.Nothing.Here}}", doc()), "<no value>");
    }

    #[test]
    fn a_hostile_template_is_bounded() {
        let out = inspect("{{range 100000000}}x{{end}}", doc());
        assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    }

    #[test]
    fn canonical_keeps_struct_order_and_sorts_maps() {
        let doc = canonical(json!({"Zeta": 1, "Alpha": {"b": 1, "a": 2, "c": {"Y": 1, "X": 2}}}));
        assert_eq!(
            doc.to_string(),
            r#"{"Zeta":1,"Alpha":{"a":2,"b":1,"c":{"Y":1,"X":2}}}"#
        );
        assert!(indented(&json!({"a": [1]})).contains("\n    \"a\": [\n        1"));
    }

    const PS: Listing = Listing {
        default_table: "table {{.ID}}\t{{.Names}}",
        headers: &[
            ("ID", "CONTAINER ID"),
            ("Names", "NAMES"),
            ("Status", "STATUS"),
            ("Labels", "LABELS"),
        ],
        errors: ErrorWords::Check,
    };

    fn rows() -> Vec<Row> {
        let labels: BTreeMap<String, String> = [
            ("com.example.tier".to_string(), "front".to_string()),
            ("a".to_string(), "1".to_string()),
        ]
        .into();
        vec![
            Row::new()
                .text("ID", "0123456789ab")
                .text("Names", "web")
                .text("Status", "Up 2 seconds")
                .text("Ports", "0.0.0.0:80->80/tcp")
                .labels(&labels),
            Row::new()
                .text("ID", "ba9876543210")
                .text("Names", "a-much-longer-name")
                .text("Status", "Exited (0) 1 second ago")
                .text("Ports", "")
                .labels(&BTreeMap::new()),
        ]
    }

    fn listing(format: Option<&str>) -> String {
        ListingFormat::new(PS, format)
            .unwrap()
            .render(&rows())
            .unwrap()
    }

    #[test]
    fn tables_have_dockers_header_and_columns() {
        assert_eq!(
            listing(None),
            "CONTAINER ID   NAMES\n\
             0123456789ab   web\n\
             ba9876543210   a-much-longer-name\n"
        );
        assert_eq!(
            listing(Some(
                r"table {{.Names}}\t{{.Status}}\t{{.Label `com.example.tier`}}"
            )),
            "NAMES                STATUS                    tier\n\
             web                  Up 2 seconds              front\n\
             a-much-longer-name   Exited (0) 1 second ago   \n"
        );
        // Columns are at least ten wide, as docker's tabwriter makes them.
        assert_eq!(
            listing(Some(r"table {{.ID}}\t{{upper .Labels}}|")),
            "CONTAINER ID   LABELS|\n\
             0123456789ab   A=1,COM.EXAMPLE.TIER=FRONT|\n\
             ba9876543210   |\n"
        );
        assert_eq!(
            listing(Some("table {{.Names}}")),
            "NAMES\nweb\na-much-longer-name\n"
        );
    }

    #[test]
    fn plain_and_json_rows() {
        assert_eq!(
            listing(Some(r"{{.Names}}\t{{.Status}}")),
            "web\tUp 2 seconds\na-much-longer-name\tExited (0) 1 second ago\n"
        );
        assert_eq!(listing(Some(r#"{{.Label "a"}}"#)), "1\n\n");
        let json = listing(Some("json"));
        let first: Json = serde_json::from_str(json.lines().next().unwrap()).unwrap();
        assert_eq!(first["Ports"], "0.0.0.0:80->80/tcp");
        // docker marshals a whole row with HTML escaping.
        assert!(json.contains(r"0.0.0.0:80-\u003e80/tcp"), "{json}");
        assert_eq!(json.lines().count(), 2);
        assert_eq!(first["Labels"], "a=1,com.example.tier=front");
    }

    #[test]
    fn listing_errors_use_dockers_words() {
        let Err(e) = ListingFormat::new(PS, Some("{{.ID")) else {
            panic!("parsed");
        };
        assert!(
            e.to_string()
                .starts_with("failed to parse template: template: :1:"),
            "{e}"
        );
        let e = ListingFormat::new(PS, Some("{{.Foo}}"))
            .unwrap()
            .render(&rows())
            .unwrap_err();
        assert_eq!(
            e,
            FormatError::Execute(
                "failed to execute template: template: can't evaluate field Foo".into()
            )
        );
    }

    #[test]
    fn volume_rows_for_the_volume_verbs() {
        let labels: BTreeMap<String, String> = [("k".to_string(), "v".to_string())].into();
        let rows = [volume_row("v1", "local", "/var/lib/x/v1/_data", &labels)];
        let table = ListingFormat::new(VOLUMES, None)
            .unwrap()
            .render(&rows)
            .unwrap();
        assert_eq!(table, "DRIVER    VOLUME NAME\nlocal     v1\n");
        let custom = ListingFormat::new(VOLUMES, Some(r#"{{.Name}} {{.Label "k"}} {{.Labels}}"#))
            .unwrap()
            .render(&rows)
            .unwrap();
        assert_eq!(custom, "v1 v k=v\n");
    }
}
