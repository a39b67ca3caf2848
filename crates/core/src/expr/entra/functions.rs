//! Entra's functions: one row of [`LIBRARY`] each, and the values they pass around.
//!
//! Values follow Entra: an empty or absent attribute is null (IsNull is true for it,
//! Coalesce skips it), a condition is true/false, and a DateTime (from CDate, DateAdd,
//! DateFromNum, Now) is written `M/d/yyyy h:mm:ss tt` wherever it becomes text. Text
//! positions count characters, never bytes.

use std::fmt::Write as _;

use base64::Engine as _;
use regex::Regex;
use sha2::{Digest, Sha256};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use super::dates::{self, DateTime, Kind};
use super::diacritics;
use super::{Call, Comparison, Node};
use crate::expr::functions::ordinal;
use crate::expr::{Env, ExprValue};

/// A value during an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    /// A number with a fraction, written as .NET writes a double (`42568.75`).
    Fraction(f64),
    Text(String),
    /// A multi-valued attribute (or Split's result): never empty, no empty elements.
    List(Vec<String>),
    Date(DateTime),
}

impl Value {
    pub(super) fn into_expr_value(self) -> ExprValue {
        match self {
            Value::Null => ExprValue::Null,
            Value::Bool(b) => ExprValue::Bool(b),
            Value::Int(n) => ExprValue::Int(n),
            Value::Fraction(x) => ExprValue::Text(x.to_string()),
            Value::Text(s) => ExprValue::Text(s),
            Value::List(items) => ExprValue::List(items.into_iter().map(ExprValue::Text).collect()),
            Value::Date(dt) => ExprValue::Text(dates::display(dt)),
        }
    }

    fn describe(&self) -> String {
        match self {
            Value::Null => "nothing (an empty or absent value)".to_owned(),
            Value::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
            Value::Int(n) => format!("the number {n}"),
            Value::Fraction(x) => format!("the number {x}"),
            Value::Text(s) => format!("{s:?}"),
            Value::List(items) => format!("a list of {} values", items.len()),
            Value::Date(dt) => format!("the date {}", dates::display(*dt)),
        }
    }

    /// The value as Entra writes it in text: True/False, digits, a date as `M/d/yyyy ...`;
    /// null is "", and a list only when it holds one value.
    fn text(self) -> Result<String, Value> {
        Ok(match self {
            Value::Null => String::new(),
            Value::Bool(b) => if b { "True" } else { "False" }.to_owned(),
            Value::Int(n) => n.to_string(),
            Value::Fraction(x) => x.to_string(),
            Value::Text(s) => s,
            Value::Date(dt) => dates::display(dt),
            Value::List(mut items) if items.len() == 1 => items.remove(0),
            list @ Value::List(_) => return Err(list),
        })
    }

    fn is_null_or_empty(&self) -> bool {
        match self {
            Value::Null => true,
            Value::Text(s) => s.is_empty(),
            _ => false,
        }
    }
}

/// A person attribute as a value: text, or a list for a multi-valued one; empty ones null.
fn attribute(env: &Env, name: &str) -> Value {
    let Some(value) = env.get(name) else { return Value::Null };
    match crate::expr::expr_value_of(value) {
        Ok(ExprValue::List(items)) => {
            let texts: Vec<String> =
                items.into_iter().filter_map(|item| item.into_text().ok()).filter(|s| !s.is_empty()).collect();
            if texts.is_empty() { Value::Null } else { Value::List(texts) }
        }
        Ok(ExprValue::Text(s)) if s.is_empty() => Value::Null,
        Ok(ExprValue::Text(s)) => Value::Text(s),
        Ok(ExprValue::Int(n)) => Value::Int(n),
        Ok(ExprValue::Bool(b)) => Value::Bool(b),
        Ok(ExprValue::Null) | Err(_) => Value::Null,
    }
}

pub(super) fn eval(node: &Node, env: &Env) -> Result<Value, String> {
    match node {
        Node::Text(s) => Ok(Value::Text(s.clone())),
        Node::Number(n) => Ok(Value::Int(*n)),
        Node::Fraction(x) => Ok(Value::Fraction(*x)),
        Node::Bool(b) => Ok(Value::Bool(*b)),
        Node::Attribute(name) => Ok(attribute(env, name)),
        Node::Call(call) => (call.function.run)(&Args { call, env }),
        Node::Compare { op, left, right } => compare(*op, eval(left, env)?, eval(right, env)?).map(Value::Bool),
    }
}

/// A whole number, from a number or from text that is one.
fn as_number(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        Value::Text(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `=`, `<>`, ...: numbers as numbers, dates as dates, anything else as text
/// (case-sensitive, as Entra compares).
fn compare(op: Comparison, left: Value, right: Value) -> Result<bool, String> {
    use std::cmp::Ordering;
    let fraction = |value: &Value| match value {
        Value::Fraction(x) => Some(*x),
        Value::Int(n) => Some(*n as f64),
        Value::Text(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let ordering = if let (Some(a), Some(b)) = (as_number(&left), as_number(&right)) {
        a.cmp(&b)
    } else if let (true, Some(a), Some(b)) =
        (matches!(left, Value::Fraction(_)) || matches!(right, Value::Fraction(_)), fraction(&left), fraction(&right))
    {
        a.total_cmp(&b)
    } else if let (Value::Date(a), Value::Date(b)) = (&left, &right) {
        a.at.cmp(&b.at)
    } else if matches!(left, Value::Date(_)) || matches!(right, Value::Date(_)) {
        let date = |value: Value| match value {
            Value::Date(dt) => Ok(dt),
            other => other.text().map_err(|v| v.describe()).and_then(|s| dates::parse_loose(&s)),
        };
        date(left)?.at.cmp(&date(right)?.at)
    } else {
        let text =
            |value: Value| value.text().map_err(|v| format!("`{}` cannot compare {}", op.symbol(), v.describe()));
        text(left)?.cmp(&text(right)?)
    };
    Ok(match op {
        Comparison::Equal => ordering == Ordering::Equal,
        Comparison::NotEqual => ordering != Ordering::Equal,
        Comparison::Less => ordering == Ordering::Less,
        Comparison::LessOrEqual => ordering != Ordering::Greater,
        Comparison::Greater => ordering == Ordering::Greater,
        Comparison::GreaterOrEqual => ordering != Ordering::Less,
    })
}

/// Where a function may stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Placement {
    Anywhere,
    /// Only as the whole expression (as Entra requires of SelectUniqueValue).
    TopLevel,
    /// Not offered, for the reason given.
    Unsupported(&'static str),
}

type Run = fn(&Args<'_>) -> Result<Value, String>;

pub(super) struct Function {
    pub name: &'static str,
    min: usize,
    /// `None`: any number from `min`.
    max: Option<usize>,
    pub placement: Placement,
    /// A variable read besides the arguments (`today` for Now()).
    pub reads: Option<&'static str>,
    run: Run,
}

const fn function(name: &'static str, min: usize, max: Option<usize>, run: Run) -> Function {
    Function { name, min, max, placement: Placement::Anywhere, reads: None, run }
}

const fn unsupported(name: &'static str, why: &'static str) -> Function {
    Function { name, min: 0, max: None, placement: Placement::Unsupported(why), reads: None, run: |_| Ok(Value::Null) }
}

pub(super) const LIBRARY: &[Function] = &[
    function("Append", 2, Some(2), append),
    unsupported(
        "AppRoleAssignmentsComplex",
        "it reads the app role assignments of Entra's own users, which HR sources do not have; map roles with group rules instead",
    ),
    function("BitAnd", 2, Some(2), bit_and),
    function("CBool", 1, Some(1), cbool),
    function("CDate", 1, Some(1), cdate),
    function("Coalesce", 1, None, coalesce),
    function("ConvertToBase64", 1, Some(1), convert_to_base64),
    function("ConvertToUTF8Hex", 1, Some(1), convert_to_utf8_hex),
    function("Count", 1, Some(1), count),
    function("CStr", 1, Some(1), cstr),
    function("DateAdd", 3, Some(3), date_add),
    function("DateDiff", 3, Some(3), date_diff),
    function("DateFromNum", 1, Some(1), date_from_num),
    unsupported(
        "DefaultDomain",
        "it gives the default verified domain of the Entra tenant, which roster has no access to; write the domain as text, as in Join(\"@\", [login], \"example.org\")",
    ),
    function("FormatDateTime", 3, Some(4), format_date_time),
    Function { reads: Some("key"), ..function("Guid", 0, Some(0), guid) },
    Function { placement: Placement::TopLevel, ..function("IgnoreFlowIfNullOrEmpty", 1, Some(1), first) },
    function("IIF", 3, Some(3), iif),
    function("InStr", 2, Some(4), in_str),
    function("IsNull", 1, Some(1), is_null),
    function("IsNullOrEmpty", 1, Some(1), is_null_or_empty),
    function("IsPresent", 1, Some(1), is_present),
    function("IsString", 1, Some(1), is_string),
    function("Item", 2, Some(2), item),
    function("Join", 2, None, join),
    function("Left", 2, Some(2), left),
    function("Len", 1, Some(1), len),
    function("Mid", 3, Some(3), mid),
    function("NormalizeDiacritics", 1, Some(1), normalize_diacritics),
    function("Not", 1, Some(1), not),
    Function { reads: Some("today"), ..function("Now", 0, Some(0), now) },
    function("NumFromDate", 1, Some(1), num_from_date),
    function("PCase", 1, Some(2), pcase),
    unsupported(
        "RandomString",
        "a random value would change on every run and rewrite the attribute each time; roster sets initial passwords through [target.password]",
    ),
    unsupported(
        "Redact",
        "roster's plans and audit trail show every value they write, so it cannot keep a promise to hide one; leave secrets out of mappings ([target.password] sets passwords)",
    ),
    function("RemoveDuplicates", 1, Some(1), remove_duplicates),
    function("Replace", 7, Some(7), replace),
    Function { placement: Placement::TopLevel, ..function("SelectUniqueValue", 2, None, coalesce) },
    unsupported(
        "SingleAppRoleAssignment",
        "it reads the app role assignments of Entra's own users, which HR sources do not have; map roles with group rules instead",
    ),
    function("Split", 2, Some(2), split),
    function("StripSpaces", 1, Some(1), strip_spaces),
    function("Switch", 4, None, switch),
    function("ToLower", 1, Some(2), to_lower),
    function("ToUpper", 1, Some(2), to_upper),
    function("Word", 3, Some(3), word),
];

/// A function by name, in any case (`switch` is `Switch`).
pub(super) fn find(name: &str) -> Option<&'static Function> {
    LIBRARY.iter().find(|function| function.name.eq_ignore_ascii_case(name))
}

/// roster's names for Entra's functions, for a user who mixes the two up.
const ALIASES: &[(&str, &str)] =
    &[("lower", "ToLower"), ("upper", "ToUpper"), ("format_date", "FormatDateTime"), ("is_empty", "IsNullOrEmpty")];

pub(super) fn suggest(name: &str) -> Option<String> {
    if let Some((_, entra)) = ALIASES.iter().find(|(ours, _)| ours.eq_ignore_ascii_case(name)) {
        return Some((*entra).to_owned());
    }
    crate::expr::syntax::closest(name, LIBRARY.iter().map(|function| function.name))
}

impl Function {
    /// Whether the arguments as written suit the function: their number, and for Replace
    /// which of them are given.
    pub(super) fn check_arguments(&self, args: &[Option<Node>]) -> Result<(), String> {
        let found = args.len();
        let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
        match self.max {
            Some(max) if max == self.min && found != max => {
                return Err(format!("expected {max} {}, found {found}", plural(max)));
            }
            Some(max) if found < self.min || found > max => {
                return Err(format!("expected {} to {max} arguments, found {found}", self.min));
            }
            None if found < self.min => {
                return Err(format!("expected at least {} {}, found {found}", self.min, plural(self.min)));
            }
            _ => {}
        }
        match self.name {
            "Switch" if !found.is_multiple_of(2) => Err(format!(
                "expected the source, the default, then key and value pairs (an even number of arguments), found {found}"
            )),
            "Replace" => ReplaceForm::of(args).map(|_| ()),
            _ => Ok(()),
        }
    }
}

/// Replace's regular expression when it is written as text, compiled once.
pub(super) fn literal_pattern(call: &Call) -> Result<Option<Regex>, String> {
    if call.function.name != "Replace" {
        return Ok(None);
    }
    match call.args.get(2) {
        Some(Some(Node::Text(pattern))) => compile_pattern(pattern).map(Some),
        _ => Ok(None),
    }
}

fn compile_pattern(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|error| {
        let error = error.to_string();
        let reason = error.lines().last().unwrap_or_default().trim();
        let reason = reason.strip_prefix("error: ").unwrap_or(reason);
        format!("Replace(): expected a regular expression as 3rd argument, found {pattern:?}: {reason}")
    })
}

/// The arguments of one call, evaluated when a function asks for them (IIF and Switch
/// evaluate only the branch they take).
pub(super) struct Args<'a> {
    call: &'a Call,
    env: &'a Env,
}

impl Args<'_> {
    fn len(&self) -> usize {
        self.call.args.len()
    }

    fn given(&self, i: usize) -> bool {
        matches!(self.call.args.get(i), Some(Some(_)))
    }

    /// An error of this function: `Left(): ...`.
    fn fail(&self, message: impl std::fmt::Display) -> String {
        format!("{}(): {message}", self.call.function.name)
    }

    fn value(&self, i: usize) -> Result<Value, String> {
        match self.call.args.get(i) {
            Some(Some(node)) => eval(node, self.env),
            _ => Ok(Value::Null),
        }
    }

    fn text(&self, i: usize) -> Result<String, String> {
        self.value(i)?.text().map_err(|list| {
            self.fail(format!(
                "expected text as {} argument, found {} (Join or Item take values from a list)",
                ordinal(i),
                list.describe()
            ))
        })
    }

    fn number(&self, i: usize) -> Result<i64, String> {
        let value = self.value(i)?;
        as_number(&value).ok_or_else(|| {
            self.fail(format!("expected a whole number as {} argument, found {}", ordinal(i), value.describe()))
        })
    }

    fn date(&self, i: usize) -> Result<DateTime, String> {
        match self.value(i)? {
            Value::Date(dt) => Ok(dt),
            Value::Null => Err(self.fail(format!("expected a date as {} argument, found nothing", ordinal(i)))),
            other => {
                let text = other.text().map_err(|v| self.fail(format!("expected a date, found {}", v.describe())))?;
                dates::parse_loose(&text).map_err(|message| self.fail(message))
            }
        }
    }

    /// A condition: True/False (as values or as text), or a number (not 0 is true); an
    /// empty value is false.
    fn condition(&self, i: usize) -> Result<bool, String> {
        let value = self.value(i)?;
        match &value {
            Value::Bool(b) => Ok(*b),
            Value::Null => Ok(false),
            Value::Fraction(x) => Ok(*x != 0.0),
            Value::Text(s) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
            Value::Text(s) if s.trim().eq_ignore_ascii_case("false") || s.is_empty() => Ok(false),
            other => as_number(other).map(|n| n != 0).ok_or_else(|| {
                self.fail(format!("expected True or False as {} argument, found {}", ordinal(i), value.describe()))
            }),
        }
    }

    /// The elements of argument `i`: a list's, a single value's own, none for null.
    fn items(&self, i: usize) -> Result<Vec<String>, String> {
        Ok(match self.value(i)? {
            Value::Null => Vec::new(),
            Value::List(items) => items,
            other => vec![other.text().unwrap_or_default()],
        })
    }
}

fn append(args: &Args<'_>) -> Result<Value, String> {
    Ok(Value::Text(args.text(0)? + &args.text(1)?))
}

fn bit_and(args: &Args<'_>) -> Result<Value, String> {
    Ok(Value::Int(args.number(0)? & args.number(1)?))
}

fn cbool(args: &Args<'_>) -> Result<Value, String> {
    args.condition(0).map(Value::Bool)
}

fn cdate(args: &Args<'_>) -> Result<Value, String> {
    args.date(0).map(Value::Date)
}

fn coalesce(args: &Args<'_>) -> Result<Value, String> {
    for i in 0..args.len() {
        let value = args.value(i)?;
        if value != Value::Null {
            return Ok(value);
        }
    }
    Ok(Value::Null)
}

fn convert_to_base64(args: &Args<'_>) -> Result<Value, String> {
    // "Unicode" in .NET is UTF-16, little-endian.
    let bytes: Vec<u8> = args.text(0)?.encode_utf16().flat_map(u16::to_le_bytes).collect();
    Ok(Value::Text(base64::engine::general_purpose::STANDARD.encode(bytes)))
}

fn convert_to_utf8_hex(args: &Args<'_>) -> Result<Value, String> {
    let mut out = String::new();
    for byte in args.text(0)?.bytes() {
        let _ = write!(out, "{byte:02X}");
    }
    Ok(Value::Text(out))
}

fn count(args: &Args<'_>) -> Result<Value, String> {
    let n = args.items(0)?.len();
    Ok(Value::Int(i64::try_from(n).unwrap_or(i64::MAX)))
}

fn cstr(args: &Args<'_>) -> Result<Value, String> {
    args.text(0).map(Value::Text)
}

fn date_add(args: &Args<'_>) -> Result<Value, String> {
    let interval = args.text(0)?;
    let n = args.number(1)?;
    let dt = args.date(2)?;
    dates::add(&interval, n, dt).map(Value::Date).map_err(|message| args.fail(message))
}

fn date_diff(args: &Args<'_>) -> Result<Value, String> {
    let interval = args.text(0)?;
    let (first, second) = (args.date(1)?, args.date(2)?);
    dates::diff(&interval, first, second).map(Value::Int).map_err(|message| args.fail(message))
}

fn date_from_num(args: &Args<'_>) -> Result<Value, String> {
    dates::from_filetime(args.number(0)?).map(Value::Date).map_err(|message| args.fail(message))
}

fn num_from_date(args: &Args<'_>) -> Result<Value, String> {
    dates::to_filetime(args.date(0)?).map(Value::Int).map_err(|message| args.fail(message))
}

/// .NET's DateTimeStyles, which FormatDateTime accepts: Entra's service runs in UTC, so
/// those about the local zone change nothing, and leading and trailing white space is
/// always allowed.
const DATE_TIME_STYLES: &[&str] = &[
    "None",
    "AllowLeadingWhite",
    "AllowTrailingWhite",
    "AllowInnerWhite",
    "AllowWhiteSpaces",
    "NoCurrentDateDefault",
    "AdjustToUniversal",
    "AssumeLocal",
    "AssumeUniversal",
    "RoundtripKind",
];

fn format_date_time(args: &Args<'_>) -> Result<Value, String> {
    let (styles, input, output) = if args.len() == 4 { (Some(1), 2, 3) } else { (None, 1, 2) };
    if let Some(i) = styles {
        for style in args.text(i)?.split([',', '|']).map(str::trim).filter(|s| !s.is_empty()) {
            let style = style.strip_prefix("DateTimeStyles.").unwrap_or(style);
            if !DATE_TIME_STYLES.iter().any(|known| known.eq_ignore_ascii_case(style)) {
                return Err(args.fail(format!("expected DateTimeStyles such as \"RoundtripKind\", found {style:?}")));
            }
        }
    }
    let dt = match args.value(0)? {
        Value::Null => return Ok(Value::Null),
        Value::Date(dt) => dt,
        other => {
            let text = other.text().map_err(|v| args.fail(format!("expected a date, found {}", v.describe())))?;
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            dates::parse_exact(&text, &args.text(input)?).map_err(|message| args.fail(message))?
        }
    };
    dates::format(dt, &args.text(output)?).map(Value::Text).map_err(|message| args.fail(message))
}

/// Guid(): Entra makes a random one; roster, whose runs are repeatable, derives one from the
/// person's key, so the value is the same on every run (a UUID of version 8, RFC 9562).
fn guid(args: &Args<'_>) -> Result<Value, String> {
    let key = attribute(args.env, "key").text().unwrap_or_default();
    let digest = Sha256::digest(format!("roster Guid()\0{key}").as_bytes());
    let mut bytes: [u8; 16] = digest[..16].try_into().unwrap_or_default();
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(Value::Text(format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])))
}

fn first(args: &Args<'_>) -> Result<Value, String> {
    args.value(0)
}

fn iif(args: &Args<'_>) -> Result<Value, String> {
    if args.condition(0)? { args.value(1) } else { args.value(2) }
}

fn in_str(args: &Args<'_>) -> Result<Value, String> {
    let haystack: Vec<char> = args.text(0)?.chars().collect();
    let needle: Vec<char> = args.text(1)?.chars().collect();
    let start = if args.given(2) { args.number(2)? } else { 1 };
    if start < 1 {
        return Err(args.fail(format!("expected a start position of 1 or more, found {start}")));
    }
    let ignore_case = match args.value(3)? {
        Value::Null => false,
        Value::Text(mode) if mode.eq_ignore_ascii_case("vbTextCompare") => true,
        Value::Text(mode) if mode.eq_ignore_ascii_case("vbBinaryCompare") => false,
        other => match as_number(&other) {
            Some(0) => false,
            Some(1) => true,
            _ => {
                return Err(args.fail(format!(
                    "expected vbBinaryCompare or vbTextCompare as 4th argument, found {}",
                    other.describe()
                )));
            }
        },
    };
    let from = usize::try_from(start - 1).unwrap_or(usize::MAX);
    if from > haystack.len() {
        return Ok(Value::Int(0));
    }
    let same = |a: &char, b: &char| if ignore_case { a.to_lowercase().eq(b.to_lowercase()) } else { a == b };
    let found = (from..=haystack.len().saturating_sub(needle.len())).find(|&i| {
        haystack.get(i..i + needle.len()).is_some_and(|window| window.iter().zip(&needle).all(|(a, b)| same(a, b)))
    });
    Ok(Value::Int(found.map_or(0, |i| i64::try_from(i + 1).unwrap_or(i64::MAX))))
}

fn is_null(args: &Args<'_>) -> Result<Value, String> {
    Ok(Value::Bool(args.value(0)? == Value::Null))
}

fn is_null_or_empty(args: &Args<'_>) -> Result<Value, String> {
    Ok(Value::Bool(args.value(0)?.is_null_or_empty()))
}

fn is_present(args: &Args<'_>) -> Result<Value, String> {
    Ok(Value::Bool(!args.value(0)?.is_null_or_empty()))
}

fn is_string(args: &Args<'_>) -> Result<Value, String> {
    Ok(Value::Bool(matches!(args.value(0)?, Value::Text(_))))
}

fn item(args: &Args<'_>) -> Result<Value, String> {
    let items = args.items(0)?;
    let index = args.number(1)?;
    let found = usize::try_from(index).ok().and_then(|i| i.checked_sub(1)).and_then(|i| items.into_iter().nth(i));
    Ok(found.map_or(Value::Null, Value::Text))
}

fn join(args: &Args<'_>) -> Result<Value, String> {
    let separator = args.text(0)?;
    let mut parts = Vec::new();
    for i in 1..args.len() {
        parts.extend(args.items(i)?.into_iter().filter(|part| !part.is_empty()));
    }
    Ok(Value::Text(parts.join(&separator)))
}

/// The first `n` characters of `s`.
fn prefix_chars(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(end, _)| &s[..end])
}

fn left(args: &Args<'_>) -> Result<Value, String> {
    let text = args.text(0)?;
    let n = args.number(1)?;
    // Entra: a negative count gives the whole text.
    Ok(Value::Text(match usize::try_from(n) {
        Ok(n) => prefix_chars(&text, n).to_owned(),
        Err(_) => text,
    }))
}

/// Len: the characters of the text (of a number as written, `Len(42568.75)` is 8); 0 for
/// null or "".
fn len(args: &Args<'_>) -> Result<Value, String> {
    let n = args.text(0)?.chars().count();
    Ok(Value::Int(i64::try_from(n).unwrap_or(i64::MAX)))
}

fn mid(args: &Args<'_>) -> Result<Value, String> {
    let text = args.text(0)?;
    let (start, length) = (args.number(1)?, args.number(2)?);
    // The 1-based positions [start, start + length), cut to those that exist.
    let first = start.max(1);
    let end = start.saturating_add(length.max(0));
    let skip = usize::try_from(first - 1).unwrap_or(usize::MAX);
    let take = usize::try_from(end.saturating_sub(first)).unwrap_or(0);
    Ok(Value::Text(text.chars().skip(skip).take(take).collect()))
}

fn normalize_diacritics(args: &Args<'_>) -> Result<Value, String> {
    let text = args.text(0)?;
    Ok(Value::Text(diacritics::normalize(&text).unwrap_or(text)))
}

fn not(args: &Args<'_>) -> Result<Value, String> {
    // Entra: True gives False, anything else True.
    let value = args.value(0)?;
    let is_true = match &value {
        Value::Bool(b) => *b,
        Value::Text(s) => s.trim().eq_ignore_ascii_case("true"),
        _ => false,
    };
    Ok(Value::Bool(!is_true))
}

/// Now(): the day of the run (`--as-of`) at midnight UTC, not the clock, so that a plan
/// can be made again with the same result.
fn now(args: &Args<'_>) -> Result<Value, String> {
    let today = attribute(args.env, "today").text().unwrap_or_default();
    let day = chrono::NaiveDate::parse_from_str(&today, "%Y-%m-%d")
        .map_err(|_| args.fail(format!("expected the run's day as YYYY-MM-DD in `today`, found {today:?}")))?;
    Ok(Value::Date(DateTime { at: day.and_time(chrono::NaiveTime::MIN), kind: Kind::Utc }))
}

/// Unicode categories that end a word for .NET's ToTitleCase: separators, controls,
/// format characters, punctuation and symbols.
fn is_word_separator(c: char) -> bool {
    use GeneralCategory as G;
    matches!(
        c.general_category(),
        G::SpaceSeparator
            | G::LineSeparator
            | G::ParagraphSeparator
            | G::Control
            | G::Format
            | G::ConnectorPunctuation
            | G::DashPunctuation
            | G::OpenPunctuation
            | G::ClosePunctuation
            | G::InitialPunctuation
            | G::FinalPunctuation
            | G::OtherPunctuation
            | G::MathSymbol
            | G::CurrencySymbol
            | G::ModifierSymbol
            | G::OtherSymbol
    )
}

fn is_letter(c: char) -> bool {
    use GeneralCategory as G;
    matches!(
        c.general_category(),
        G::UppercaseLetter | G::LowercaseLetter | G::TitlecaseLetter | G::ModifierLetter | G::OtherLetter
    )
}

/// PCase: everything lower case, then the first letter of every word upper case. Without
/// separators, words as .NET's ToTitleCase finds them: an apostrophe does not end a word
/// (`O'neil`), a digit does not start one. With separators, only those end a word.
fn pcase(args: &Args<'_>) -> Result<Value, String> {
    let text = lower_case(&args.text(0)?, false);
    let separators: Option<Vec<char>> = if args.given(1) { Some(args.text(1)?.chars().collect()) } else { None };
    let mut out = String::with_capacity(text.len());
    let mut in_word = false;
    for c in text.chars() {
        match &separators {
            Some(set) => {
                if set.contains(&c) {
                    in_word = false;
                    out.push(c);
                } else if !in_word {
                    out.push_str(&upper_case(&c.to_string(), false));
                    in_word = true;
                } else {
                    out.push(c);
                }
            }
            None => {
                if !in_word && is_letter(c) {
                    out.push_str(&upper_case(&c.to_string(), false));
                    in_word = true;
                } else {
                    if in_word && c != '\'' && is_word_separator(c) {
                        in_word = false;
                    }
                    out.push(c);
                }
            }
        }
    }
    Ok(Value::Text(out))
}

fn remove_duplicates(args: &Args<'_>) -> Result<Value, String> {
    let mut kept: Vec<String> = Vec::new();
    for value in args.items(0)? {
        if !kept.contains(&value) {
            kept.push(value);
        }
    }
    Ok(if kept.is_empty() { Value::Null } else { Value::List(kept) })
}

/// Which of Replace's documented forms a call uses, by the arguments it gives:
/// source, oldValue, regexPattern, regexGroupName, replacementValue,
/// replacementAttributeName, template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplaceForm {
    /// oldValue and replacementValue: every oldValue in source becomes replacementValue.
    Plain,
    /// oldValue and template: every oldValue in template becomes source.
    Template,
    /// regexPattern and replacementValue: every match becomes replacementValue (`${name}`).
    Regex,
    /// regexPattern, regexGroupName and replacementValue: the group in every match.
    Group,
    /// regexPattern, regexGroupName and replacementAttributeName: source, or when it is
    /// empty, the group's match in the replacement attribute.
    Fallback,
}

impl ReplaceForm {
    fn of(args: &[Option<Node>]) -> Result<ReplaceForm, String> {
        let given = |i: usize| matches!(args.get(i), Some(Some(_)));
        let (old, pattern, group, replacement, attribute, template) =
            (given(1), given(2), given(3), given(4), given(5), given(6));
        match (old, pattern, group, replacement, attribute, template) {
            (true, false, false, true, false, false) => Ok(ReplaceForm::Plain),
            (true, false, false, false, false, true) => Ok(ReplaceForm::Template),
            (false, true, false, true, false, false) => Ok(ReplaceForm::Regex),
            (false, true, true, true, false, false) => Ok(ReplaceForm::Group),
            (false, true, true, false, true, false) => Ok(ReplaceForm::Fallback),
            _ => Err("expected one of Entra's forms, leaving the other arguments empty: Replace(source, oldValue, , , replacementValue, , ), Replace(source, oldValue, , , , , template), Replace(source, , regexPattern, , replacementValue, , ), Replace(source, , regexPattern, regexGroupName, replacementValue, , ) or Replace(source, , regexPattern, regexGroupName, , replacementAttributeName, )".to_owned()),
        }
    }
}

fn replace(args: &Args<'_>) -> Result<Value, String> {
    let form = ReplaceForm::of(&args.call.args).map_err(|message| args.fail(message))?;
    let compiled;
    let pattern = match (&args.call.pattern, form) {
        (_, ReplaceForm::Plain | ReplaceForm::Template) => None,
        (Some(regex), _) => Some(regex),
        (None, _) => {
            compiled = compile_pattern(&args.text(2)?)?;
            Some(&compiled)
        }
    };
    let group = |args: &Args<'_>| -> Result<String, String> {
        let name = args.text(3)?;
        match pattern {
            Some(regex) if regex.capture_names().flatten().any(|n| n == name) => Ok(name),
            _ => Err(args.fail(format!("the regular expression has no group named {name:?}"))),
        }
    };
    let source = args.value(0)?;
    let text = Value::text(source.clone())
        .map_err(|v| args.fail(format!("expected text as 1st argument, found {}", v.describe())))?;
    Ok(match (form, pattern) {
        (ReplaceForm::Plain, _) => {
            let old = args.text(1)?;
            if old.is_empty() { Value::Text(text) } else { Value::Text(text.replace(&old, &args.text(4)?)) }
        }
        (ReplaceForm::Template, _) => {
            let old = args.text(1)?;
            let template = args.text(6)?;
            if old.is_empty() { Value::Text(template) } else { Value::Text(template.replace(&old, &text)) }
        }
        (ReplaceForm::Regex, Some(regex)) => Value::Text(regex.replace_all(&text, args.text(4)?.as_str()).into_owned()),
        (ReplaceForm::Group, Some(regex)) => {
            let name = group(args)?;
            let replacement = args.text(4)?;
            let mut out = String::with_capacity(text.len());
            let mut last = 0;
            for captures in regex.captures_iter(&text) {
                if let Some(found) = captures.name(&name) {
                    out.push_str(&text[last..found.start()]);
                    out.push_str(&replacement);
                    last = found.end();
                }
            }
            out.push_str(&text[last..]);
            Value::Text(out)
        }
        (ReplaceForm::Fallback, Some(regex)) => {
            if !source.is_null_or_empty() {
                return Ok(source);
            }
            let name = group(args)?;
            let other = args.text(5)?;
            match regex.captures(&other).and_then(|captures| captures.name(&name).map(|m| m.as_str().to_owned())) {
                Some(found) => Value::Text(found),
                None => Value::Null,
            }
        }
        (_, None) => Value::Null,
    })
}

fn split(args: &Args<'_>) -> Result<Value, String> {
    let text = args.text(0)?;
    let delimiter = args.text(1)?;
    if delimiter.is_empty() {
        return Err(args.fail("expected a delimiter as 2nd argument, found \"\""));
    }
    let items: Vec<String> =
        text.split(delimiter.as_str()).map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect();
    Ok(if items.is_empty() { Value::Null } else { Value::List(items) })
}

fn strip_spaces(args: &Args<'_>) -> Result<Value, String> {
    Ok(Value::Text(args.text(0)?.replace(' ', "")))
}

fn switch(args: &Args<'_>) -> Result<Value, String> {
    let source = args.text(0)?;
    for key in (2..args.len()).step_by(2) {
        if args.text(key)? == source {
            return args.value(key + 1);
        }
    }
    args.value(1)
}

/// .NET's culture names as RFC 4646 writes them: `en-US`, `tr`, `sr-Latn-RS`.
fn is_turkic(args: &Args<'_>) -> Result<bool, String> {
    if !args.given(1) {
        return Ok(false);
    }
    let culture = args.text(1)?;
    let well_formed = !culture.is_empty()
        && culture
            .split('-')
            .all(|part| (1..=8).contains(&part.len()) && part.chars().all(|c| c.is_ascii_alphanumeric()));
    if !well_formed {
        return Err(args.fail(format!("expected a culture name such as \"en-US\" or \"tr-TR\", found {culture:?}")));
    }
    let language = culture.split('-').next().unwrap_or_default().to_ascii_lowercase();
    Ok(language == "tr" || language == "az")
}

/// .NET's ToLower: one character for one (so `İ` becomes `i`), Turkish and Azerbaijani
/// rules for their dotted and dotless i.
fn lower_case(text: &str, turkic: bool) -> String {
    text.chars()
        .map(|c| match c {
            'I' if turkic => 'ı',
            '\u{130}' => 'i',
            c => single(c.to_lowercase()).unwrap_or(c),
        })
        .collect()
}

/// .NET's ToUpper: one character for one (`ß` stays `ß`), with Turkish rules.
fn upper_case(text: &str, turkic: bool) -> String {
    text.chars()
        .map(|c| match c {
            'i' if turkic => '\u{130}',
            c => single(c.to_uppercase()).unwrap_or(c),
        })
        .collect()
}

/// The only character of a case mapping; `None` when it maps to several, which .NET's
/// one-for-one mapping leaves as they are.
fn single(mut mapped: impl Iterator<Item = char>) -> Option<char> {
    match (mapped.next(), mapped.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

fn to_lower(args: &Args<'_>) -> Result<Value, String> {
    let turkic = is_turkic(args)?;
    Ok(Value::Text(lower_case(&args.text(0)?, turkic)))
}

fn to_upper(args: &Args<'_>) -> Result<Value, String> {
    let turkic = is_turkic(args)?;
    Ok(Value::Text(upper_case(&args.text(0)?, turkic)))
}

fn word(args: &Args<'_>) -> Result<Value, String> {
    let text = args.text(0)?;
    let number = args.number(1)?;
    let delimiters: Vec<char> = args.text(2)?.chars().collect();
    let found = usize::try_from(number)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| text.split(|c| delimiters.contains(&c)).filter(|w| !w.is_empty()).nth(i));
    Ok(Value::Text(found.unwrap_or_default().to_owned()))
}
