//! Microsoft Entra ID's attribute-mapping expressions, so administrators can bring the
//! mappings they wrote for Entra's provisioning service: `Join(".", [given_name],
//! [family_name])`.
//!
//! The syntax is Entra's (Microsoft's "Reference for writing expressions for attribute
//! mappings in Microsoft Entra ID"): function calls, `[attribute]` references, `"text"`
//! with `\"` and `\\` escapes, numbers (`7`, `-10`, `&HF7`, `42568.75`), empty arguments
//! (`Switch([a], , "1", "x")`), the names `True`, `False`, `vbBinaryCompare`,
//! `vbTextCompare`, and the comparisons `=`, `<>`, `<`, `<=`, `>`, `>=`. The functions
//! behave as Entra's do where that matters for the values they give (its diacritics
//! table, .NET's title casing, Visual Basic's date arithmetic); `docs/expressions.md`
//! lists where roster differs and why.
//!
//! Parsing resolves every function and checks its arguments' count, and compiles literal
//! regular expressions, so that evaluating a person does no more than the work itself.

mod dates;
mod diacritics;
mod functions;

use std::fmt;

use regex::Regex;

use super::{Env, ExprError, ExprValue};
use functions::{Function, Placement};

/// How a configuration value says it is written in Entra's syntax.
pub const PREFIX: &str = "entra:";

/// A parsed Entra expression.
pub(super) struct Program {
    root: Node,
}

/// A byte offset into the configuration value (prefix included).
type Offset = usize;

pub(super) enum Node {
    Text(String),
    Number(i64),
    /// A number with a fraction (`42568.75`), as Len() takes one.
    Fraction(f64),
    Bool(bool),
    /// `[name]`: a person attribute; an empty one is null, as an absent one is in Entra.
    Attribute(String),
    Call(Box<Call>),
    Compare {
        op: Comparison,
        left: Box<Node>,
        right: Box<Node>,
    },
}

pub(super) struct Call {
    function: &'static Function,
    /// `None` for an argument left empty (`Switch([a], , ...)`).
    args: Vec<Option<Node>>,
    /// Where the call starts and ends in the source.
    span: (Offset, Offset),
    /// The regular expression of a `Replace` whose pattern is a literal, compiled once.
    pattern: Option<Regex>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Comparison {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Comparison {
    fn symbol(self) -> &'static str {
        match self {
            Comparison::Equal => "=",
            Comparison::NotEqual => "<>",
            Comparison::Less => "<",
            Comparison::LessOrEqual => "<=",
            Comparison::Greater => ">",
            Comparison::GreaterOrEqual => ">=",
        }
    }
}

/// The deepest nesting parsed (as for CEL expressions: evaluating recurses once per level).
const MAX_DEPTH: usize = 32;

/// The longest expression Entra takes, in characters (its reference's limit for one
/// attribute mapping), so that every mapping Entra accepted is accepted here.
const MAX_CHARS: usize = 10_000;

/// `line:column` (1-based, in characters) of a byte offset.
fn position(source: &str, offset: Offset) -> String {
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or_default().chars().count() + 1;
    format!("{line}:{column}")
}

struct Parser<'s> {
    source: &'s str,
    at: Offset,
}

type Parsed<T> = Result<T, ExprError>;

impl<'s> Parser<'s> {
    fn error(&self, at: Offset, message: impl fmt::Display) -> ExprError {
        ExprError::Parse { message: format!("{}: {message}", position(self.source, at)) }
    }

    fn rest(&self) -> &'s str {
        &self.source[self.at..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start().len();
    }

    /// What is at the cursor, for "found ..." in messages.
    fn found(&self) -> String {
        match self.peek() {
            None => "the end of the expression".to_owned(),
            Some(c) => format!("`{c}`"),
        }
    }

    fn expression(&mut self, depth: usize) -> Parsed<Node> {
        let left = self.operand(depth)?;
        self.skip_space();
        let Some(op) = self.comparison() else { return Ok(left) };
        self.skip_space();
        let right = self.operand(depth)?;
        Ok(Node::Compare { op, left: Box::new(left), right: Box::new(right) })
    }

    fn comparison(&mut self) -> Option<Comparison> {
        let rest = self.rest();
        let (op, len) = if rest.starts_with("<>") {
            (Comparison::NotEqual, 2)
        } else if rest.starts_with("<=") {
            (Comparison::LessOrEqual, 2)
        } else if rest.starts_with(">=") {
            (Comparison::GreaterOrEqual, 2)
        } else if rest.starts_with('<') {
            (Comparison::Less, 1)
        } else if rest.starts_with('>') {
            (Comparison::Greater, 1)
        } else if rest.starts_with('=') {
            (Comparison::Equal, 1)
        } else {
            return None;
        };
        self.at += len;
        Some(op)
    }

    fn operand(&mut self, depth: usize) -> Parsed<Node> {
        if depth > MAX_DEPTH {
            return Err(self.error(
                self.at,
                format!("the expression nests more than {MAX_DEPTH} levels deep, more than roster takes"),
            ));
        }
        self.skip_space();
        let start = self.at;
        match self.peek() {
            Some('"') => self.text().map(Node::Text),
            Some('[') => self.attribute(),
            Some(c) if c.is_ascii_digit() || c == '-' || c == '&' => self.number(),
            Some(c) if c.is_alphabetic() || c == '_' => {
                let name = self.name();
                self.skip_space();
                if self.peek() == Some('(') {
                    return self.call(name, start, depth);
                }
                match name.to_ascii_lowercase().as_str() {
                    "true" => Ok(Node::Bool(true)),
                    "false" => Ok(Node::Bool(false)),
                    // Visual Basic's comparison modes, as InStr takes them.
                    "vbbinarycompare" => Ok(Node::Number(0)),
                    "vbtextcompare" => Ok(Node::Number(1)),
                    _ => Err(self.error(
                        start,
                        format!(
                            "expected a function call, an [attribute], \"text\" or a number, found the name `{name}` (an attribute is written in square brackets: [{name}])"
                        ),
                    )),
                }
            }
            _ => Err(self.error(
                start,
                format!("expected a function call, an [attribute], \"text\" or a number, found {}", self.found()),
            )),
        }
    }

    fn name(&mut self) -> &'s str {
        let rest = self.rest();
        let len = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
        self.at += len;
        &rest[..len]
    }

    fn text(&mut self) -> Parsed<String> {
        let start = self.at;
        self.at += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.at += i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, escaped @ ('"' | '\\'))) => out.push(escaped),
                    Some((_, other)) => {
                        return Err(self.error(
                            self.at + i,
                            format!(
                                "expected `\\\"` or `\\\\` after a backslash, found `\\{other}` (Entra escapes only these two: write `\\\\{other}` for a backslash followed by `{other}`)"
                            ),
                        ));
                    }
                    None => break,
                },
                other => out.push(other),
            }
        }
        Err(self.error(start, "expected the closing `\"` of this text, found the end of the expression"))
    }

    fn attribute(&mut self) -> Parsed<Node> {
        let start = self.at;
        self.at += 1;
        let rest = self.rest();
        let Some(end) = rest.find([']', '\n', '[']).filter(|end| rest[*end..].starts_with(']')) else {
            return Err(self.error(start, "expected the closing `]` of this attribute"));
        };
        let name = rest[..end].trim();
        if name.is_empty() {
            return Err(self.error(start, "expected an attribute name between `[` and `]`"));
        }
        self.at += end + 1;
        Ok(Node::Attribute(name.to_owned()))
    }

    fn number(&mut self) -> Parsed<Node> {
        let start = self.at;
        let rest = self.rest();
        let (negative, body) = match rest.strip_prefix('-') {
            Some(body) => (true, body),
            None => (false, rest),
        };
        let (radix, digits_at) =
            if body.get(..2).is_some_and(|start| start.eq_ignore_ascii_case("&h")) { (16, 2) } else { (10, 0) };
        if radix == 10 && body.starts_with('&') {
            return Err(self.error(start, "expected a number such as 42, -1 or &HFF, found `&`"));
        }
        let digits = &body[digits_at..];
        let len = digits.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(digits.len());
        let written = &digits[..len];
        let value = i64::from_str_radix(written, radix).map_err(|_| {
            self.error(
                start,
                format!(
                    "expected a whole number (up to {}), found `{}`",
                    i64::MAX,
                    &rest[..rest.len() - digits.len() + len]
                ),
            )
        })?;
        self.at += (rest.len() - body.len()) + digits_at + len;
        if radix == 10 && self.peek() == Some('.') {
            let fraction = &self.rest()[1..];
            let len = fraction.find(|c: char| !c.is_ascii_digit()).unwrap_or(fraction.len());
            self.at += 1;
            if len == 0 {
                return Err(
                    self.error(self.at, format!("expected digits after the decimal point, found {}", self.found()))
                );
            }
            self.at += len;
            let written = &self.source[start..self.at];
            return written
                .parse()
                .map(Node::Fraction)
                .map_err(|_| self.error(start, format!("expected a number, found `{written}`")));
        }
        Ok(Node::Number(if negative { -value } else { value }))
    }

    fn call(&mut self, name: &str, start: Offset, depth: usize) -> Parsed<Node> {
        let Some(function) = functions::find(name) else {
            return Err(ExprError::UnknownFunction { name: name.to_owned(), suggestion: functions::suggest(name) });
        };
        if let Placement::Unsupported(why) = function.placement {
            return Err(self.error(start, format!("{}() is not supported: {why}", function.name)));
        }
        self.at += 1;
        let mut args = Vec::new();
        self.skip_space();
        if self.peek() == Some(')') {
            self.at += 1;
        } else {
            loop {
                self.skip_space();
                let arg = if matches!(self.peek(), Some(',' | ')')) { None } else { Some(self.expression(depth + 1)?) };
                args.push(arg);
                self.skip_space();
                match self.peek() {
                    Some(',') => self.at += 1,
                    Some(')') => {
                        self.at += 1;
                        break;
                    }
                    _ => {
                        return Err(self.error(
                            self.at,
                            format!(
                                "expected `,` or `)` after an argument of {}(), found {}",
                                function.name,
                                self.found()
                            ),
                        ));
                    }
                }
            }
        }
        let end = self.at;
        let mut call = Call { function, args, span: (start, end), pattern: None };
        function
            .check_arguments(&call.args)
            .map_err(|message| self.error(start, format!("{}(): {message}", function.name)))?;
        call.pattern = functions::literal_pattern(&call).map_err(|message| self.error(start, message))?;
        Ok(Node::Call(Box::new(call)))
    }
}

impl Program {
    /// Parses the expression that starts at `start` in `source` (after the prefix).
    pub(super) fn parse(source: &str, start: Offset) -> Result<Program, ExprError> {
        let length = source[start..].trim().chars().count();
        if length > MAX_CHARS {
            return Err(ExprError::Parse {
                message: format!(
                    "the expression is {length} characters long, more than the {MAX_CHARS} Entra (and roster) take"
                ),
            });
        }
        let mut parser = Parser { source, at: start };
        parser.skip_space();
        if parser.peek().is_none() {
            return Err(parser.error(parser.at, "expected an expression after `entra:`, found nothing"));
        }
        let root = parser.expression(1)?;
        parser.skip_space();
        if parser.peek().is_some() {
            return Err(parser.error(
                parser.at,
                format!(
                    "expected the end of the expression, found {} (arguments are separated by commas)",
                    parser.found()
                ),
            ));
        }
        let program = Program { root };
        program.check_placement()?;
        Ok(program)
    }

    /// Functions Entra takes only as the whole expression (SelectUniqueValue,
    /// IgnoreFlowIfNullOrEmpty) are errors anywhere else.
    fn check_placement(&self) -> Result<(), ExprError> {
        let mut result = Ok(());
        self.root.walk(&mut |node, top| {
            if let Node::Call(call) = node
                && call.function.placement == Placement::TopLevel
                && !top
                && result.is_ok()
            {
                result = Err(ExprError::Eval {
                    message: format!(
                        "{}(): must be the whole expression, as in Entra (it cannot be an argument)",
                        call.function.name
                    ),
                });
            }
        });
        result
    }

    /// The attributes read, in order (with `today` for Now() and `key` for Guid()).
    pub(super) fn variables(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        self.root.walk(&mut |node, _| {
            let name = match node {
                Node::Attribute(name) => name.as_str(),
                Node::Call(call) => match call.function.reads {
                    Some(name) => name,
                    None => return,
                },
                _ => return,
            };
            if !names.iter().any(|known| known == name) {
                names.push(name.to_owned());
            }
        });
        names
    }

    pub(super) fn functions(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        self.root.walk(&mut |node, _| {
            if let Node::Call(call) = node
                && !names.iter().any(|known| known == call.function.name)
            {
                names.push(call.function.name.to_owned());
            }
        });
        names
    }

    pub(super) fn check(&self, known: &dyn Fn(&str) -> bool) -> Result<(), ExprError> {
        if let Node::Call(call) = &self.root
            && call.function.name == "SelectUniqueValue"
        {
            return Err(ExprError::Eval {
                message: "SelectUniqueValue(): roster keeps values unique only for the login name; use it as a [login] candidate (each argument becomes a candidate, tried in order) and write [login] where the unique value is wanted".to_owned(),
            });
        }
        for name in self.variables() {
            if !known(&name) {
                return Err(ExprError::UnknownVariable {
                    suggestion: super::syntax::guess_variable(&name, known),
                    name,
                });
            }
        }
        Ok(())
    }

    /// The arguments of a top-level SelectUniqueValue, each written back as Entra
    /// syntax; `None` for any other expression.
    pub(super) fn unique_value_rules(&self, source: &str) -> Option<Vec<String>> {
        match &self.root {
            Node::Call(call) if call.function.name == "SelectUniqueValue" => {
                Some(call.args.iter().flatten().map(|rule| rule.source(source)).collect())
            }
            _ => None,
        }
    }

    /// Whether the expression is IgnoreFlowIfNullOrEmpty(...): an empty result then leaves
    /// the target attribute as it is instead of clearing it.
    pub(super) fn ignores_flow_if_empty(&self) -> bool {
        matches!(&self.root, Node::Call(call) if call.function.name == "IgnoreFlowIfNullOrEmpty")
    }

    pub(super) fn eval(&self, env: &Env) -> Result<ExprValue, ExprError> {
        functions::eval(&self.root, env)
            .map(functions::Value::into_expr_value)
            .map_err(|message| ExprError::Eval { message })
    }
}

impl Node {
    /// Calls `visit` with every node, and whether it is the whole expression.
    fn walk(&self, visit: &mut dyn FnMut(&Node, bool)) {
        self.walk_at(visit, true);
    }

    fn walk_at(&self, visit: &mut dyn FnMut(&Node, bool), top: bool) {
        visit(self, top);
        match self {
            Node::Call(call) => call.args.iter().flatten().for_each(|arg| arg.walk_at(visit, false)),
            Node::Compare { left, right, .. } => {
                left.walk_at(visit, false);
                right.walk_at(visit, false);
            }
            Node::Text(_) | Node::Number(_) | Node::Fraction(_) | Node::Bool(_) | Node::Attribute(_) => {}
        }
    }

    /// The node written back as Entra syntax, for a candidate's description.
    fn source(&self, source: &str) -> String {
        match self {
            Node::Call(call) => source.get(call.span.0..call.span.1).unwrap_or_default().to_owned(),
            Node::Text(text) => format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\"")),
            Node::Number(n) => n.to_string(),
            Node::Fraction(x) => x.to_string(),
            Node::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
            Node::Attribute(name) => format!("[{name}]"),
            Node::Compare { op, left, right } => {
                format!("{} {} {}", left.source(source), op.symbol(), right.source(source))
            }
        }
    }
}
