//! Mapping expressions: how a person's attributes become a target's attribute values.
//!
//! An expression is CEL (the Common Expression Language of Kubernetes and Google IAM
//! conditions, through the `cel` crate) with roster's identity functions added:
//! `lower(normalize_diacritics(given_name + "." + family_name))`. `docs/expressions.md`
//! is the users' reference; [`FUNCTIONS`] lists the added functions.
//!
//! Compiling and evaluating are apart: [`Expr::compile`] parses once (config load),
//! [`Expr::check`] tells unknown names with a suggestion (config validation), and
//! [`Expr::eval`] runs against one person's [`Env`] (a million times a run). The function
//! library is registered once per process into a shared root context; an evaluation only
//! adds a scope whose variables are looked up in the `Env`, so it costs the expression's
//! own work and nothing more.
//!
//! Every person attribute is text (an absent one is ""), so an expression over optional
//! attributes doesn't fail for the people who lack them; functions never panic, whatever
//! the text or number, and do work linear in their input.

pub mod entra;
mod functions;
mod syntax;

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

use cel::common::types::{CelBool, CelInt, CelList, CelNull, CelString, CelUInt, Kind};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, ExecutionError, Program};

pub use functions::FUNCTIONS;
use syntax::Reference;

/// A compiled expression. Cheap to clone; shareable between threads.
#[derive(Clone)]
pub struct Expr {
    compiled: Arc<Compiled>,
}

struct Compiled {
    source: String,
    form: Form,
    /// What evaluates a CEL expression of texts and variables without CEL ([`Shortcut`]).
    shortcut: Option<Shortcut>,
    /// [`Expr::variables`], found once: a plan asks for each person's login candidates.
    variables: Vec<String>,
}

/// A CEL expression made only of texts and variables joined with `+` (`"family_name"`,
/// `given_name + " " + family_name`, `"uid=" + login + ",ou=people"`), and of the text functions
/// of such joins that give text from text alone (`lower(normalize_diacritics(department))`,
/// [`functions::ON_TEXT`]), or two such compared with `==` or `!=`: most mappings, DNs, group
/// rules and login candidates. When every variable it reads holds text, the result is what CEL
/// gives (a variable's text, the texts joined, the function's text, whether they are equal),
/// made without CEL's scope, its values, its look-up of each function and the intermediate
/// strings of each `+`; otherwise (a variable that is a number, a list, null or unknown) CEL
/// evaluates it, errors and all.
enum Shortcut {
    /// `true` or `false`: a group rule's condition when it has none.
    Bool(bool),
    Join(Vec<Piece>),
    Compare {
        left: Vec<Piece>,
        right: Vec<Piece>,
        equal: bool,
    },
}

enum Piece {
    Text(String),
    Variable(String),
    /// A function of [`functions::ON_TEXT`] called on the pieces joined.
    Apply(functions::OnText, Vec<Piece>),
    /// `left(...)` of the pieces joined and a number written in the expression.
    Left(Vec<Piece>, i64),
}

impl Shortcut {
    fn of(root: &cel::IdedExpr) -> Option<Shortcut> {
        use cel::common::ast::{Expr as Node, LiteralValue, operators as op};
        if let Node::Literal(LiteralValue::Boolean(value)) = &root.expr {
            return Some(Shortcut::Bool(*value.inner()));
        }
        if let Node::Call(call) = &root.expr
            && call.target.is_none()
            && let [left, right] = call.args.as_slice()
            && (call.func_name == op::EQUALS || call.func_name == op::NOT_EQUALS)
        {
            return Some(Shortcut::Compare {
                left: pieces(left)?,
                right: pieces(right)?,
                equal: call.func_name == op::EQUALS,
            });
        }
        pieces(root).map(Shortcut::Join)
    }

    fn eval(&self, env: &Env) -> Option<ExprValue> {
        match self {
            Shortcut::Bool(value) => Some(ExprValue::Bool(*value)),
            Shortcut::Join(pieces) => join(pieces, env).map(|text| ExprValue::Text(text.into_owned())),
            Shortcut::Compare { left, right, equal } => {
                Some(ExprValue::Bool((join(left, env)? == join(right, env)?) == *equal))
            }
        }
    }
}

/// The texts and variables `node` joins with `+`, in order; `None` for anything else.
fn pieces(node: &cel::IdedExpr) -> Option<Vec<Piece>> {
    use cel::common::ast::{Expr as Node, LiteralValue, operators as op};
    fn walk(node: &cel::IdedExpr, out: &mut Vec<Piece>) -> Option<()> {
        let joined = |node: &cel::IdedExpr| {
            let mut pieces = Vec::new();
            walk(node, &mut pieces).map(|()| pieces)
        };
        match &node.expr {
            Node::Literal(LiteralValue::String(text)) => out.push(Piece::Text(text.inner().to_owned())),
            // A name with a leading dot is looked up outside the evaluation's scope.
            Node::Ident(name) if !name.starts_with('.') => out.push(Piece::Variable(name.clone())),
            Node::Call(call) if call.func_name == op::ADD && call.target.is_none() && call.args.len() == 2 => {
                walk(&call.args[0], out)?;
                walk(&call.args[1], out)?;
            }
            Node::Call(call) if call.target.is_none() && call.args.len() == 1 => {
                out.push(Piece::Apply(functions::on_text(&call.func_name)?, joined(&call.args[0])?));
            }
            Node::Call(call) if call.target.is_none() && call.func_name == "left" && call.args.len() == 2 => {
                let Node::Literal(LiteralValue::Int(count)) = &call.args[1].expr else { return None };
                out.push(Piece::Left(joined(&call.args[0])?, *count.inner()));
            }
            _ => return None,
        }
        Some(())
    }
    let mut out = Vec::new();
    walk(node, &mut out)?;
    Some(out)
}

/// `pieces` joined, when every variable among them holds text in `env`.
fn join<'a>(pieces: &'a [Piece], env: &'a Env) -> Option<Cow<'a, str>> {
    if let [one] = pieces {
        return text(one, env);
    }
    // Room for the texts and variables (a function's text is made only once, below).
    let mut length = 0;
    for piece in pieces {
        length += match piece {
            Piece::Text(text) => text.len(),
            Piece::Variable(name) => env.text(name)?.len(),
            Piece::Apply(..) | Piece::Left(..) => 0,
        };
    }
    let mut joined = String::with_capacity(length);
    for piece in pieces {
        joined.push_str(&text(piece, env)?);
    }
    Some(Cow::Owned(joined))
}

/// The text of one piece, when the variables it reads hold text in `env`.
fn text<'a>(piece: &'a Piece, env: &'a Env) -> Option<Cow<'a, str>> {
    match piece {
        Piece::Text(text) => Some(Cow::Borrowed(text)),
        Piece::Variable(name) => env.text(name).map(Cow::Borrowed),
        Piece::Apply(f, argument) => {
            let argument = join(argument, env)?;
            Some(f(&argument).map_or(argument, Cow::Owned))
        }
        Piece::Left(argument, count) => Some(match join(argument, env)? {
            Cow::Borrowed(text) => Cow::Borrowed(functions::left_text(text, *count)),
            Cow::Owned(text) => Cow::Owned(functions::left_text(&text, *count).to_owned()),
        }),
    }
}

/// The names `pick` takes from `references`, each once, in the order they first appear.
fn unique<'a>(references: &'a [Reference], pick: impl Fn(&'a Reference) -> Option<&'a String>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for name in references.iter().filter_map(pick) {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// The two syntaxes an expression may be written in.
enum Form {
    Cel {
        program: Program,
        references: Vec<Reference>,
    },
    /// Microsoft Entra ID's, for a value that starts with [`entra::PREFIX`].
    Entra(entra::Program),
}

/// A value an expression takes or gives.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprValue {
    Null,
    Bool(bool),
    Int(i64),
    Text(String),
    List(Vec<ExprValue>),
}

/// The variables of one evaluation: one person's attributes.
///
/// Reuse one `Env` for person after person: [`Env::set`] replaces a value in place, and
/// [`Env::set_text`] writes a text into the buffer the variable's last text had (a million
/// persons' dozen variables, set four times each, were a ninth of a plan's CPU when each was a
/// new string in a new box).
#[derive(Clone, Debug, Default)]
pub struct Env {
    values: crate::FastMap<String, Slot>,
}

/// A variable's value: text (most are), kept apart so that its buffer can be reused.
#[derive(Clone, Debug)]
enum Slot {
    Text(CelString<'static>),
    Other(Box<dyn Val>),
}

impl Slot {
    fn val(&self) -> &dyn Val {
        match self {
            Slot::Text(text) => text,
            Slot::Other(value) => value.as_ref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExprError {
    /// The expression is not valid CEL; the message says where (`line:column`).
    #[error("cannot parse the expression: {message}")]
    Parse { message: String },
    /// A call to a function that is neither CEL's nor roster's.
    #[error("unknown function `{name}`{}", did_you_mean(.suggestion))]
    UnknownFunction { name: String, suggestion: Option<String> },
    /// A name that is no variable.
    #[error("unknown variable `{name}`{}", did_you_mean(.suggestion))]
    UnknownVariable { name: String, suggestion: Option<String> },
    /// Evaluating failed: a wrong type or number of arguments, a bad date, a bad pattern.
    #[error("{message}")]
    Eval { message: String },
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion.as_ref().map(|name| format!(" (did you mean `{name}`?)")).unwrap_or_default()
}

fn eval_error(message: impl Into<String>) -> ExprError {
    ExprError::Eval { message: message.into() }
}

/// The longest expression compiled. CEL's parser recurses along chains such as `a.b.c...`
/// or `a + b + ...`; within this length it stays well inside a 2 MiB thread stack, even
/// unoptimised.
const MAX_SOURCE_BYTES: usize = 8192;

/// The deepest expression compiled: evaluating recurses once per level, with large frames
/// in unoptimised builds (about 30 KiB). Hand-written mappings nest 10 levels at most.
const MAX_DEPTH: usize = 32;

/// What every evaluation shares: CEL's standard library with roster's functions.
struct Runtime {
    env: Arc<cel::Env>,
    root: Context<'static, 'static>,
}

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let env = Arc::new(cel::Env::stdlib());
        let mut root = Context::with_env(Arc::clone(&env));
        for function in functions::LIBRARY {
            root.add_function::<functions::Registered, _>(function.name, function.registered())
                .expect("roster's function names are not in CEL's standard library");
        }
        Runtime { env, root }
    })
}

/// The root context for an evaluation that borrows for `'a`. Sound because a context
/// only ever borrows its variables' data (`'v`) and its parent (`'p`): shortening both
/// is what lets a scope borrow an `Env` that lives shorter than the process.
fn root_for<'a>(root: &'a Context<'static, 'static>) -> &'a Context<'a, 'a> {
    root
}

/// Whether `name` is a function of CEL's standard library (as `size`, `startsWith` or
/// `optional.of`).
fn is_cel_function(name: &str) -> bool {
    // cel 0.15 has no list of its functions; but it refuses to add a function whose name
    // its standard library declares, which is exactly the question.
    let mut probe = Context::with_env(Arc::clone(&runtime().env));
    probe.add_function(name, || true).is_err()
}

/// CEL functions suggested for a misspelt name (the ones mapping expressions use).
const CEL_FUNCTIONS: &[&str] = &[
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "string",
    "int",
    "uint",
    "double",
    "bool",
    "type",
    "dyn",
    "timestamp",
    "duration",
];

/// Names users of other provisioning tools write (Microsoft Entra ID, MIM), and ours.
const ALIASES: &[(&str, &str)] = &[
    ("tolower", "lower"),
    ("toupper", "upper"),
    ("propercase", "pcase"),
    ("normalizediacritics", "normalize_diacritics"),
    ("removediacritics", "normalize_diacritics"),
    ("isnullorempty", "is_empty"),
    ("formatdatetime", "format_date"),
    ("substring", "mid"),
];

fn suggest_function(name: &str) -> Option<String> {
    let folded: String = name.to_lowercase().replace('_', "");
    if let Some((_, ours)) = ALIASES.iter().find(|(alias, _)| *alias == folded) {
        return Some((*ours).to_owned());
    }
    let candidates = FUNCTIONS.iter().map(|(name, _, _)| *name);
    syntax::closest(name, candidates.chain(CEL_FUNCTIONS.iter().copied()))
}

impl Expr {
    /// Parses `src`: CEL, or Entra ID's syntax after the prefix `entra:`. Names are not
    /// looked up here: see [`Expr::check`].
    pub fn compile(src: &str) -> Result<Expr, ExprError> {
        if let Some(rest) = src.trim_start().strip_prefix(entra::PREFIX) {
            let program = entra::Program::parse(src, src.len() - rest.len())?;
            let variables = program.variables();
            return Ok(Expr {
                compiled: Arc::new(Compiled {
                    source: src.to_owned(),
                    form: Form::Entra(program),
                    shortcut: None,
                    variables,
                }),
            });
        }
        if src.len() > MAX_SOURCE_BYTES {
            return Err(ExprError::Parse {
                message: format!(
                    "the expression is {} bytes long, more than the {MAX_SOURCE_BYTES} roster takes",
                    src.len()
                ),
            });
        }
        let program = runtime().env.compile(src).map_err(|errors| {
            let message = errors
                .errors
                .iter()
                .map(|error| format!("{}:{}: {}", error.pos.0, error.pos.1, error.msg))
                .collect::<Vec<_>>()
                .join("; ");
            ExprError::Parse { message }
        })?;
        let depth = syntax::depth(program.expression());
        if depth > MAX_DEPTH {
            return Err(ExprError::Parse {
                message: format!(
                    "the expression nests {depth} levels deep, more than the {MAX_DEPTH} roster takes \
                     (a long chain of `+` can be one join(...))"
                ),
            });
        }
        let references = syntax::references(program.expression(), &is_cel_function);
        let shortcut = Shortcut::of(program.expression());
        let variables = unique(&references, |reference| match reference {
            Reference::Variable(name) => Some(name),
            Reference::Function { .. } => None,
        });
        Ok(Expr {
            compiled: Arc::new(Compiled {
                source: src.to_owned(),
                form: Form::Cel { program, references },
                shortcut,
                variables,
            }),
        })
    }

    pub fn source(&self) -> &str {
        &self.compiled.source
    }

    /// The variables the expression reads, in the order they first appear (a
    /// comprehension's own loop variable is not one).
    pub fn variables(&self) -> &[String] {
        &self.compiled.variables
    }

    /// The functions the expression calls (methods included, operators not), in the
    /// order they first appear.
    pub fn functions(&self) -> Vec<String> {
        if let Form::Entra(program) = &self.compiled.form {
            return program.functions();
        }
        unique(self.references(), |reference| match reference {
            Reference::Function { name, .. } => Some(name),
            Reference::Variable(_) => None,
        })
    }

    /// Unknown variables (known(name) false) and unknown functions (neither CEL builtin nor
    /// ours) are errors, with the closest known name as a suggestion. A call to one of
    /// roster's functions with a wrong number of arguments is an `Eval` error, found here
    /// rather than for every person.
    pub fn check(&self, known: &dyn Fn(&str) -> bool) -> Result<(), ExprError> {
        let references = match &self.compiled.form {
            Form::Cel { references, .. } => references,
            Form::Entra(program) => return program.check(known),
        };
        for reference in references {
            match reference {
                Reference::Variable(name) => {
                    let is_type = runtime().env.types().find_type(name).is_some();
                    if !known(name) && !is_type {
                        return Err(ExprError::UnknownVariable {
                            name: name.clone(),
                            suggestion: syntax::guess_variable(name, known),
                        });
                    }
                }
                Reference::Function { name, arguments } => {
                    if let Some(function) = functions::find(name) {
                        function
                            .arity
                            .check(*arguments)
                            .map_err(|message| eval_error(format!("{name}(): {message}")))?;
                    } else if !is_cel_function(name) {
                        return Err(ExprError::UnknownFunction {
                            name: name.clone(),
                            suggestion: suggest_function(name),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The CEL names an expression uses (none for an Entra expression).
    fn references(&self) -> &[Reference] {
        match &self.compiled.form {
            Form::Cel { references, .. } => references,
            Form::Entra(_) => &[],
        }
    }

    /// The login candidates this expression stands for: each rule of an Entra
    /// `SelectUniqueValue(...)`, in order, or else the expression itself. roster's login
    /// generator tries candidates in order for a free one, as SelectUniqueValue does.
    pub fn alternatives(&self) -> Result<Vec<Expr>, ExprError> {
        let rules = match &self.compiled.form {
            Form::Entra(program) => program.unique_value_rules(&self.compiled.source),
            Form::Cel { .. } => None,
        };
        match rules {
            None => Ok(vec![self.clone()]),
            Some(rules) => rules.iter().map(|rule| Expr::compile(&format!("{} {rule}", entra::PREFIX))).collect(),
        }
    }

    /// Whether an empty result leaves the target attribute as it is rather than clearing
    /// it: an Entra expression written `IgnoreFlowIfNullOrEmpty(...)`.
    pub fn ignores_flow_if_empty(&self) -> bool {
        matches!(&self.compiled.form, Form::Entra(program) if program.ignores_flow_if_empty())
    }

    /// Evaluates the expression with the variables of `env`.
    pub fn eval(&self, env: &Env) -> Result<ExprValue, ExprError> {
        if let Some(value) = self.compiled.shortcut.as_ref().and_then(|shortcut| shortcut.eval(env)) {
            return Ok(value);
        }
        self.eval_with_cel(env)
    }

    /// Evaluates the expression as written, without its [`Shortcut`].
    fn eval_with_cel(&self, env: &Env) -> Result<ExprValue, ExprError> {
        let program = match &self.compiled.form {
            Form::Cel { program, .. } => program,
            Form::Entra(program) => return program.eval(env),
        };
        let resolver = Resolver(env);
        let mut scope = root_for(&runtime().root).new_inner_scope();
        scope.set_variable_resolver(&resolver);
        match cel::Value::resolve_val(program.expression(), &scope) {
            Ok(value) => expr_value(value),
            Err(error) => Err(self.explain(error, env)),
        }
    }

    fn explain(&self, error: ExecutionError, env: &Env) -> ExprError {
        match error {
            ExecutionError::UndeclaredReference(name) => {
                let name = name.as_str();
                let is_call = self
                    .references()
                    .iter()
                    .any(|reference| matches!(reference, Reference::Function { name: called, .. } if called == name));
                if is_call {
                    ExprError::UnknownFunction { name: name.to_owned(), suggestion: suggest_function(name) }
                } else {
                    // In name order: the map's own order differs from process to process, and the
                    // first of two names as close is the one suggested.
                    let mut known: Vec<&str> = env.values.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    ExprError::UnknownVariable { name: name.to_owned(), suggestion: syntax::closest(name, known) }
                }
            }
            ExecutionError::FunctionError { function, message } => eval_error(format!("{function}(): {message}")),
            ExecutionError::NoSuchOverload(overload) => {
                let types = overload.argument_types();
                match operator_symbol(overload.function()) {
                    Some(symbol) => operator_misuse(symbol, types),
                    None => {
                        eval_error(format!("{}(): no version of it takes ({})", overload.function(), types.join(", ")))
                    }
                }
            }
            ExecutionError::UnsupportedBinaryOperator(name, left, right) => {
                let types = [left.type_of().to_string(), right.type_of().to_string()];
                match operator_symbol(name) {
                    Some(symbol) => operator_misuse(symbol, &types),
                    None => eval_error(format!("`{name}` cannot be applied to {}", types.join(" and "))),
                }
            }
            ExecutionError::UnexpectedType { got, want } => eval_error(format!("expected {want}, found {got}")),
            other => eval_error(other.to_string()),
        }
    }
}

fn operator_misuse(symbol: &str, types: &[String]) -> ExprError {
    let hint = if types.iter().any(|t| t == "string") && types.iter().any(|t| t == "int") {
        " (string(...) turns a number into text)"
    } else {
        ""
    };
    eval_error(format!("`{symbol}` cannot be applied to {}{hint}", types.join(" and ")))
}

/// How an operator is written, from the names CEL gives it (`_+_` in the syntax tree,
/// `add` in some errors).
fn operator_symbol(function: &str) -> Option<&'static str> {
    use cel::common::ast::operators as op;
    Some(match function {
        op::ADD | "add" => "+",
        op::SUBSTRACT | "sub" => "-",
        op::MULTIPLY | "mul" => "*",
        op::DIVIDE | "div" => "/",
        op::MODULO | "rem" => "%",
        op::LESS => "<",
        op::LESS_EQUALS => "<=",
        op::GREATER => ">",
        op::GREATER_EQUALS => ">=",
        op::NEGATE => "-",
        op::LOGICAL_NOT => "!",
        op::INDEX => "[]",
        op::IN => "in",
        _ => return None,
    })
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expr").field(&self.compiled.source).finish()
    }
}

/// Two expressions are equal when they are written the same.
impl PartialEq for Expr {
    fn eq(&self, other: &Expr) -> bool {
        self.source() == other.source()
    }
}

impl Eq for Expr {}

/// The result of an evaluation as an [`ExprValue`]; a string the expression built is
/// moved, not copied.
fn expr_value(value: CowVal<'_, '_>) -> Result<ExprValue, ExprError> {
    if let CowVal::Owned(boxed) = value {
        if boxed.get_type().kind() != Kind::String {
            return expr_value_of(boxed.as_ref());
        }
        return match String::try_from(boxed) {
            Ok(text) => Ok(ExprValue::Text(text)),
            Err(boxed) => expr_value_of(boxed.as_ref()),
        };
    }
    expr_value_of(value.as_ref())
}

fn expr_value_of(value: &dyn Val) -> Result<ExprValue, ExprError> {
    if let Some(s) = value.downcast_ref::<CelString>() {
        return Ok(ExprValue::Text(s.inner().to_owned()));
    }
    if let Some(b) = value.downcast_ref::<CelBool>() {
        return Ok(ExprValue::Bool(*b.inner()));
    }
    if let Some(n) = value.downcast_ref::<CelInt>() {
        return Ok(ExprValue::Int(*n.inner()));
    }
    if let Some(n) = value.downcast_ref::<CelUInt>() {
        return i64::try_from(*n.inner())
            .map(ExprValue::Int)
            .map_err(|_| eval_error(format!("expected a number up to {}, found {}", i64::MAX, n.inner())));
    }
    if value.get_type().kind() == Kind::NullType {
        return Ok(ExprValue::Null);
    }
    if let Some(list) = value.downcast_ref::<CelList>() {
        return list
            .inner()
            .iter()
            .map(|item| expr_value_of(item.as_ref()))
            .collect::<Result<_, _>>()
            .map(ExprValue::List);
    }
    Err(eval_error(format!(
        "expected the expression to give text, a number, true or false, null or a list, found {} (string(...) turns it into text)",
        functions::type_name(value)
    )))
}

/// Up to 40 characters of a text, for error messages.
fn preview(text: &str) -> String {
    const SHOWN: usize = 40;
    match text.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{:?}...", &text[..end]),
        None => format!("{text:?}"),
    }
}

impl ExprValue {
    /// What the value is, for error messages: `text "Ada"`, `true`, `a list of 3 values`.
    fn describe(&self) -> String {
        match self {
            ExprValue::Null => "null".to_owned(),
            ExprValue::Bool(b) => format!("{b} (true or false)"),
            ExprValue::Int(n) => format!("the number {n}"),
            ExprValue::Text(s) => format!("text {}", preview(s)),
            ExprValue::List(items) => format!("a list of {} values", items.len()),
        }
    }

    /// The value as text: a number as its decimal digits, null as "".
    pub fn into_text(self) -> Result<String, ExprError> {
        match self {
            ExprValue::Text(s) => Ok(s),
            ExprValue::Int(n) => Ok(n.to_string()),
            ExprValue::Null => Ok(String::new()),
            other @ (ExprValue::Bool(_) | ExprValue::List(_)) => {
                Err(eval_error(format!("expected text, found {}", other.describe())))
            }
        }
    }

    /// The value as a condition: only true and false are.
    pub fn into_bool(self) -> Result<bool, ExprError> {
        match self {
            ExprValue::Bool(b) => Ok(b),
            other => Err(eval_error(format!("expected true or false, found {}", other.describe()))),
        }
    }

    /// The value as texts: a list's elements, or the value alone, as [`ExprValue::into_text`]
    /// makes them; empty texts and nulls are dropped.
    pub fn into_texts(self) -> Result<Vec<String>, ExprError> {
        let items = match self {
            ExprValue::List(items) => items,
            single => vec![single],
        };
        let mut texts = Vec::with_capacity(items.len());
        for item in items {
            let text = match item {
                ExprValue::List(inner) => {
                    return Err(eval_error(format!(
                        "expected a list of texts, found a list containing {}",
                        ExprValue::List(inner).describe()
                    )));
                }
                scalar => scalar.into_text()?,
            };
            if !text.is_empty() {
                texts.push(text);
            }
        }
        Ok(texts)
    }
}

impl From<&str> for ExprValue {
    fn from(text: &str) -> ExprValue {
        ExprValue::Text(text.to_owned())
    }
}

impl From<String> for ExprValue {
    fn from(text: String) -> ExprValue {
        ExprValue::Text(text)
    }
}

impl Env {
    pub fn new() -> Env {
        Env::default()
    }

    /// Sets variable `name`, replacing any value it had.
    pub fn set(&mut self, name: &str, value: ExprValue) {
        let value = match value {
            ExprValue::Text(text) => Slot::Text(CelString::from(text)),
            other => Slot::Other(cel_value(other)),
        };
        match self.values.get_mut(name) {
            Some(slot) => *slot = value,
            None => {
                self.values.insert(name.to_owned(), value);
            }
        }
    }

    /// Sets variable `name` to the text `write` appends to an empty buffer: the buffer of the
    /// variable's last text when it had one, so that no string is made.
    pub fn set_text(&mut self, name: &str, write: impl FnOnce(&mut String)) {
        let slot = match self.values.get_mut(name) {
            Some(slot) => slot,
            None => self.values.entry(name.to_owned()).or_insert(Slot::Text(CelString::default())),
        };
        let mut buffer = match std::mem::replace(slot, Slot::Text(CelString::default())) {
            Slot::Text(text) => text.into_inner(),
            Slot::Other(_) => String::new(),
        };
        buffer.clear();
        write(&mut buffer);
        *slot = Slot::Text(CelString::from(buffer));
    }

    /// The text of variable `name`, when it holds text. Inlined into the pieces' evaluation,
    /// where a million persons' fourteen mappings read their variables: left a call of its own
    /// by a change elsewhere in the crate, it was 0.7 % more instructions of a plan.
    #[inline]
    fn text(&self, name: &str) -> Option<&str> {
        match self.values.get(name)? {
            Slot::Text(text) => Some(text.inner()),
            Slot::Other(_) => None,
        }
    }

    /// The value of variable `name`.
    fn get(&self, name: &str) -> Option<&dyn Val> {
        self.values.get(name).map(Slot::val)
    }
}

fn cel_value(value: ExprValue) -> Box<dyn Val> {
    match value {
        ExprValue::Null => Box::new(CelNull),
        ExprValue::Bool(b) => Box::new(CelBool::from(b)),
        ExprValue::Int(n) => Box::new(CelInt::from(n)),
        ExprValue::Text(s) => Box::new(CelString::from(s)),
        ExprValue::List(items) => Box::new(CelList::from(items.into_iter().map(cel_value).collect::<Vec<_>>())),
    }
}

/// Looks an evaluation's variables up in its [`Env`], lending them without a copy.
struct Resolver<'a>(&'a Env);

impl VariableResolver for Resolver<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        self.0.get(variable).map(CowVal::Borrowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_between_threads() {
        fn assert_send_sync<T: Send + Sync + Clone + fmt::Debug>() {}
        assert_send_sync::<Expr>();
        fn assert_send_sync_env<T: Send + Sync>() {}
        assert_send_sync_env::<Env>();
    }

    /// A text written into the buffer of the last one, over a value of another kind, or as a
    /// new variable: each evaluates as that text alone.
    #[test]
    fn a_text_set_in_place_replaces_the_whole_value() {
        let upper = Expr::compile("name + \"!\"").unwrap();
        let mut env = Env::new();
        env.set_text("name", |out| out.push_str("a longer first value"));
        env.set_text("name", |out| out.push_str("Ada"));
        assert_eq!(upper.eval(&env), Ok(ExprValue::Text("Ada!".into())));
        env.set("name", ExprValue::List(vec![ExprValue::Text("x".into())]));
        env.set_text("name", |out| out.push_str("Grace"));
        assert_eq!(upper.eval(&env), Ok(ExprValue::Text("Grace!".into())));
        env.set_text("name", |_| ());
        assert_eq!(upper.eval(&env), Ok(ExprValue::Text("!".into())));
    }

    /// An expression of texts and variables gives what CEL gives, with or without its shortcut:
    /// the variables' texts joined or compared when all are texts, CEL's value or error when one
    /// is a number, a list, null or unknown. Other expressions have no shortcut.
    #[test]
    fn the_shortcut_gives_what_cel_gives() {
        let mut texts = Env::new();
        for (name, value) in [("given", "Zoë"), ("family", "O'Brien \"Jr\""), ("empty", ""), ("string", "a variable")]
        {
            texts.set_text(name, |out| out.push_str(value));
        }
        let mut others = texts.clone();
        others.set("given", ExprValue::Int(7));
        others.set("family", ExprValue::List(vec![ExprValue::Text("x".into())]));
        others.set("empty", ExprValue::Null);
        let with_shortcut = [
            ("given", Ok(ExprValue::Text("Zoë".into()))),
            ("\"cn=all,dc=example\"", Ok(ExprValue::Text("cn=all,dc=example".into()))),
            ("given + \" \" + family", Ok(ExprValue::Text("Zoë O'Brien \"Jr\"".into()))),
            ("\"uid=\" + given + \",ou=\" + empty + \"\\u00e9\"", Ok(ExprValue::Text("uid=Zoë,ou=é".into()))),
            ("given == \"Zoë\"", Ok(ExprValue::Bool(true))),
            ("\"x\" + given != given + \"x\"", Ok(ExprValue::Bool(true))),
            ("empty != \"\"", Ok(ExprValue::Bool(false))),
            ("string", Ok(ExprValue::Text("a variable".into()))),
            ("lower(given)", Ok(ExprValue::Text("zoë".into()))),
            ("true", Ok(ExprValue::Bool(true))),
            ("left(given, 1)", Ok(ExprValue::Text("Z".into()))),
            (
                "lower(normalize_diacritics(left(given + family, 4) + \".\" + family))",
                Ok(ExprValue::Text("zoeo.o'brien \"jr\"".into())),
            ),
            ("left(family, 0) + left(given, 99) + left(empty, 1)", Ok(ExprValue::Text("Zoë".into()))),
            ("false", Ok(ExprValue::Bool(false))),
            (
                "\"cn=\" + lower(normalize_diacritics(given + \" \" + family)) + \",dc=x\"",
                Ok(ExprValue::Text("cn=zoe o'brien \"jr\",dc=x".into())),
            ),
            ("upper(trim(\"  a  \" + given + \"   b \")) + empty", Ok(ExprValue::Text("A ZOË B".into()))),
            ("normalize_diacritics(string)", Ok(ExprValue::Text("a variable".into()))),
            ("lower(family) == \"o'brien \\\"jr\\\"\"", Ok(ExprValue::Bool(true))),
        ];
        for (source, expected) in with_shortcut {
            let expr = Expr::compile(source).unwrap();
            assert!(expr.compiled.shortcut.is_some(), "{source} has no shortcut");
            assert_eq!(expr.eval(&texts), expected, "{source}");
            assert_eq!(expr.eval_with_cel(&texts), expected, "{source} in CEL");
            assert_eq!(expr.eval(&others), expr.eval_with_cel(&others), "{source} over other values");
            let mut missing = texts.clone();
            missing.values.remove("given");
            assert_eq!(expr.eval(&missing), expr.eval_with_cel(&missing), "{source} without given");
        }
        assert!(matches!(Expr::compile("given + 1").unwrap().eval(&others), Ok(ExprValue::Int(8))));
        assert!(Expr::compile("given + family").unwrap().eval(&others).is_err());
        for source in [
            "given + 1",
            "given == 1",
            "given < \"b\"",
            "given.size()",
            "[given]",
            "b\"x\"",
            "given.lower()",
            "lower(given, 1)",
            "lower(1)",
            "pcase(given)",
            "left(given, given)",
            "left(given)",
            "left(given, 1, 2)",
            "right(given, 1)",
            "1",
            "null",
            "!true",
        ] {
            assert!(Expr::compile(source).unwrap().compiled.shortcut.is_none(), "{source} has a shortcut");
        }
    }

    #[test]
    fn the_library_registers_without_clashing_with_cel() {
        let runtime = runtime();
        for (name, _, _) in FUNCTIONS {
            assert!(!is_cel_function(name), "{name} is a CEL function too");
        }
        assert!(runtime.env.types().find_type("string").is_some());
    }

    #[test]
    fn the_probe_knows_cel_functions() {
        for name in ["size", "contains", "startsWith", "endsWith", "matches", "string", "int", "optional.of"] {
            assert!(is_cel_function(name), "{name}");
        }
        for name in CEL_FUNCTIONS {
            assert!(is_cel_function(name), "{name} is suggested but not CEL's");
        }
        assert!(!is_cel_function("lowr"));
    }

    #[test]
    fn aliases_point_at_our_functions() {
        for (_, ours) in ALIASES {
            assert!(functions::find(ours).is_some(), "{ours}");
        }
    }
}
