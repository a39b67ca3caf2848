//! roster's function library: the identity functions added to CEL's standard ones.
//!
//! Every function is one row of [`LIBRARY`]: its name, signature, description, how many
//! arguments it takes and its implementation. [`FUNCTIONS`] (the docs and error hints), the
//! registration into CEL and `Expr::check`'s arity check all read that one table.
//!
//! Conventions shared by every function, so users can rely on them:
//! - wherever text is expected, a number counts as its decimal digits and `null` as "";
//! - positions and lengths count characters (Unicode scalar values), never bytes;
//! - out-of-range positions give what exists, never an error;
//! - an error names the function, the argument, what was expected and what was found.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;

use cel::common::types::{CelBool, CelInt, CelList, CelNull, CelString, CelUInt, Kind};
use cel::common::value::{CowVal, Val};
use cel::{ExecutionError, FunctionContext};
use regex::Regex;

/// How a function is registered into CEL: called with the arguments already evaluated,
/// and with `this` set when it is called as a method (`given_name.lower()`).
pub(super) type Registered =
    Box<dyn for<'c, 'k> Fn(&mut FunctionContext<'c, 'k>) -> Result<CowVal<'c, 'k>, ExecutionError> + Send + Sync>;

/// An implementation: the arguments in, a value or the message of an error out.
type Run = for<'b, 'v> fn(&mut Args<'b, 'v>) -> Result<CowVal<'b, 'v>, String>;

pub(super) struct Function {
    pub name: &'static str,
    pub signature: &'static str,
    pub description: &'static str,
    pub arity: Arity,
    run: Run,
}

/// How many arguments a function takes; a method call's receiver counts as the first.
#[derive(Clone, Copy)]
pub(super) enum Arity {
    Exactly(usize),
    OneOf(usize, usize),
    AtLeast(usize),
    /// `switch`: the value, the default, then key/value pairs.
    ValueDefaultPairs,
}

impl Arity {
    /// Why `found` arguments are not acceptable, if they are not.
    pub(super) fn check(self, found: usize) -> Result<(), String> {
        let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
        match self {
            Arity::Exactly(n) if found != n => Err(format!("expected {n} {}, found {found}", plural(n))),
            Arity::OneOf(a, b) if found != a && found != b => {
                Err(format!("expected {a} or {b} arguments, found {found}"))
            }
            Arity::AtLeast(n) if found < n => Err(format!("expected at least {n} {}, found {found}", plural(n))),
            Arity::ValueDefaultPairs if found < 2 => {
                Err(format!("expected at least 2 arguments (the value and the default), found {found}"))
            }
            Arity::ValueDefaultPairs if !found.is_multiple_of(2) => Err(format!(
                "expected a value after every key, found key {} (the {} argument) without one",
                found / 2,
                ordinal(found - 1)
            )),
            _ => Ok(()),
        }
    }
}

impl Function {
    pub(super) fn registered(&'static self) -> Registered {
        Box::new(higher_ranked(move |ftx| self.call(ftx)))
    }

    fn call<'c, 'k>(&self, ftx: &mut FunctionContext<'c, 'k>) -> Result<CowVal<'c, 'k>, ExecutionError> {
        let mut values = std::mem::take(&mut ftx.args);
        if let Some(this) = ftx.this.take() {
            values.insert(0, this);
        }
        self.arity
            .check(values.len())
            .and_then(|()| (self.run)(&mut Args { values }))
            .map_err(|message| ExecutionError::function_error(self.name, message))
    }
}

/// Makes the compiler infer a closure that works for every pair of lifetimes, as
/// [`Registered`] needs; a closure passed straight to `Box::new` would get one pair.
fn higher_ranked<F>(f: F) -> F
where
    F: for<'c, 'k> Fn(&mut FunctionContext<'c, 'k>) -> Result<CowVal<'c, 'k>, ExecutionError>,
{
    f
}

pub(super) fn find(name: &str) -> Option<&'static Function> {
    LIBRARY.iter().find(|function| function.name == name)
}

pub(super) const LIBRARY: &[Function] = &[
    Function {
        name: "lower",
        signature: "lower(text) -> text",
        description: "Lower-cases every letter (Unicode aware: \"ÉMILE\" -> \"émile\").",
        arity: Arity::Exactly(1),
        run: lower,
    },
    Function {
        name: "upper",
        signature: "upper(text) -> text",
        description: "Upper-cases every letter (\"straße\" -> \"STRASSE\").",
        arity: Arity::Exactly(1),
        run: upper,
    },
    Function {
        name: "trim",
        signature: "trim(text) -> text",
        description: "Removes leading and trailing whitespace and collapses inner runs of whitespace to one space.",
        arity: Arity::Exactly(1),
        run: trim,
    },
    Function {
        name: "normalize_diacritics",
        signature: "normalize_diacritics(text) -> text",
        description: "Folds text to ASCII: é -> e, ø -> o, ß -> ss, Ł -> L, Æ -> AE; ASCII stays as it is, characters with no ASCII form are dropped.",
        arity: Arity::Exactly(1),
        run: normalize_diacritics,
    },
    Function {
        name: "pcase",
        signature: "pcase(text) -> text",
        description: "Proper case: upper-cases the first letter of every word, also after a hyphen or apostrophe, and lower-cases the rest (\"o'brien-smith\" -> \"O'Brien-Smith\").",
        arity: Arity::Exactly(1),
        run: pcase,
    },
    Function {
        name: "join",
        signature: "join(separator, part, ...) -> text",
        description: "Joins the parts (texts, numbers or lists of them) with the separator, skipping empty parts.",
        arity: Arity::AtLeast(1),
        run: join,
    },
    Function {
        name: "coalesce",
        signature: "coalesce(value, ...) -> text",
        description: "The first argument (or list element) that is not empty; \"\" if all are.",
        arity: Arity::AtLeast(1),
        run: coalesce,
    },
    Function {
        name: "left",
        signature: "left(text, count) -> text",
        description: "The first `count` characters (all of them if the text is shorter).",
        arity: Arity::Exactly(2),
        run: left,
    },
    Function {
        name: "mid",
        signature: "mid(text, start, length) -> text",
        description: "The `length` characters from position `start` (1-based); positions outside the text are left out.",
        arity: Arity::Exactly(3),
        run: mid,
    },
    Function {
        name: "right",
        signature: "right(text, count) -> text",
        description: "The last `count` characters (all of them if the text is shorter).",
        arity: Arity::Exactly(2),
        run: right,
    },
    Function {
        name: "word",
        signature: "word(text, number[, delimiters]) -> text",
        description: "The word at `number` (1-based), words being separated by whitespace or by any of the characters in `delimiters`; \"\" if there is no such word.",
        arity: Arity::OneOf(2, 3),
        run: word,
    },
    Function {
        name: "replace",
        signature: "replace(text, regex, replacement) -> text",
        description: "Replaces every match of the regular expression; `$1` or `${name}` in the replacement insert a group.",
        arity: Arity::Exactly(3),
        run: replace,
    },
    Function {
        name: "switch",
        signature: "switch(value, default, key1, result1, key2, result2, ...) -> any",
        description: "The result after the first key equal to the value, or the default if none is.",
        arity: Arity::ValueDefaultPairs,
        run: switch,
    },
    Function {
        name: "format_date",
        signature: "format_date(date, [in_format,] out_format) -> text",
        description: "Reads a date (by default `%Y-%m-%d`) and writes it in `out_format` (strftime); an empty date gives \"\".",
        arity: Arity::OneOf(2, 3),
        run: format_date,
    },
    Function {
        name: "strip_chars",
        signature: "strip_chars(text, characters) -> text",
        description: "Removes every occurrence of each of the characters.",
        arity: Arity::Exactly(2),
        run: strip_chars,
    },
    Function {
        name: "is_empty",
        signature: "is_empty(value) -> bool",
        description: "True for \"\", null and an empty list; false otherwise (whitespace is not empty: use is_empty(trim(x))).",
        arity: Arity::Exactly(1),
        run: is_empty,
    },
];

/// `(name, signature, description)` of every function in [`LIBRARY`], in its order.
pub const FUNCTIONS: &[(&str, &str, &str)] = &{
    let mut table = [("", "", ""); LIBRARY.len()];
    let mut i = 0;
    while i < LIBRARY.len() {
        table[i] = (LIBRARY[i].name, LIBRARY[i].signature, LIBRARY[i].description);
        i += 1;
    }
    table
};

/// The arguments of one call, the receiver of a method call first.
struct Args<'b, 'v> {
    values: Vec<CowVal<'b, 'v>>,
}

static NULL: CelNull = CelNull;

impl<'b, 'v> Args<'b, 'v> {
    fn len(&self) -> usize {
        self.values.len()
    }

    fn get(&self, i: usize) -> Result<&(dyn Val + 'v), String> {
        self.values
            .get(i)
            .map(|value| value.as_ref())
            .ok_or_else(|| format!("expected a {} argument, found none", ordinal(i)))
    }

    /// Argument `i` as text.
    fn text(&self, i: usize) -> Result<Cow<'_, str>, String> {
        let value = self.get(i)?;
        scalar_text(value)
            .ok_or_else(|| format!("expected text as {} argument, found {}", ordinal(i), type_name(value)))
    }

    /// Argument `i` as a number.
    fn number(&self, i: usize) -> Result<i64, String> {
        let value = self.get(i)?;
        if let Some(n) = value.downcast_ref::<CelInt>() {
            return Ok(*n.inner());
        }
        if let Some(n) = value.downcast_ref::<CelUInt>() {
            return Ok(i64::try_from(*n.inner()).unwrap_or(i64::MAX));
        }
        let hint = if value.get_type().kind() == Kind::String { " (int(...) turns text into a number)" } else { "" };
        Err(format!("expected a number as {} argument, found {}{hint}", ordinal(i), type_name(value)))
    }

    /// Calls `each` with every part of argument `i`: the argument itself, or the elements
    /// of a list.
    fn for_each_part(&self, i: usize, each: &mut dyn FnMut(&str)) -> Result<(), String> {
        let value = self.get(i)?;
        if let Some(list) = value.downcast_ref::<CelList>() {
            for item in list.inner() {
                let text = scalar_text(item.as_ref()).ok_or_else(|| {
                    format!(
                        "expected a list of texts as {} argument, found a list containing {}",
                        ordinal(i),
                        type_name(item.as_ref())
                    )
                })?;
                each(&text);
            }
            return Ok(());
        }
        let text = scalar_text(value)
            .ok_or_else(|| format!("expected text or a list as {} argument, found {}", ordinal(i), type_name(value)))?;
        each(&text);
        Ok(())
    }

    /// Argument `i` itself, moved out without copying.
    fn take(&mut self, i: usize) -> CowVal<'b, 'v> {
        match self.values.get_mut(i) {
            Some(slot) => std::mem::replace(slot, CowVal::Borrowed(&NULL)),
            None => CowVal::Borrowed(&NULL),
        }
    }

    /// The text of argument `i` as the result: moved out if it is a string already.
    fn take_text(&mut self, i: usize) -> Result<CowVal<'b, 'v>, String> {
        if self.get(i)?.get_type().kind() == Kind::String {
            return Ok(self.take(i));
        }
        let text = self.text(i)?.into_owned();
        Ok(text_value(text))
    }
}

/// A scalar as text: a string as it is, a number as its decimal digits, null as "".
fn scalar_text<'a>(value: &'a dyn Val) -> Option<Cow<'a, str>> {
    if let Some(s) = value.downcast_ref::<CelString>() {
        return Some(Cow::Borrowed(s.inner()));
    }
    if let Some(n) = value.downcast_ref::<CelInt>() {
        return Some(Cow::Owned(n.inner().to_string()));
    }
    if let Some(n) = value.downcast_ref::<CelUInt>() {
        return Some(Cow::Owned(n.inner().to_string()));
    }
    if value.get_type().kind() == Kind::NullType {
        return Some(Cow::Borrowed(""));
    }
    None
}

/// The CEL name of a value's type, as users write it.
pub(super) fn type_name(value: &dyn Val) -> &str {
    match value.get_type().kind() {
        Kind::NullType => "null",
        _ => value.get_type().name(),
    }
}

/// "1st", "2nd", ... for argument index `i` (0-based).
pub(super) fn ordinal(i: usize) -> String {
    let n = i + 1;
    let suffix = match (n % 10, n % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn text_value<'b, 'v>(text: String) -> CowVal<'b, 'v> {
    CowVal::owned(CelString::from(text))
}

/// The result of a text function that may leave its input unchanged (`None`): then the
/// input itself is the result, without a copy.
fn changed_or_input<'b, 'v>(args: &mut Args<'b, 'v>, changed: Option<String>) -> Result<CowVal<'b, 'v>, String> {
    match changed {
        Some(text) => Ok(text_value(text)),
        None => args.take_text(0),
    }
}

/// A count or position as an index: negatives are 0, and whatever exceeds `usize` is
/// larger than any text anyway.
fn to_index(n: i64) -> usize {
    usize::try_from(n.max(0)).unwrap_or(usize::MAX)
}

/// The first `n` characters of `s`.
fn prefix_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

/// The characters after the first `n`.
fn skip_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((start, _)) => &s[start..],
        None => "",
    }
}

/// A set of characters given as a string, tested in `O(log n)`.
struct CharSet(Vec<char>);

impl CharSet {
    fn new(chars: &str) -> CharSet {
        let mut set: Vec<char> = chars.chars().collect();
        set.sort_unstable();
        set.dedup();
        CharSet(set)
    }

    fn contains(&self, c: char) -> bool {
        self.0.binary_search(&c).is_ok()
    }
}

/// The functions of one text that give text, and give it from the text alone (never an error):
/// [`super::Shortcut`] calls them without CEL, as `"cn=" + lower(department)` asks. Each gives
/// its text changed, or `None` when the text is its own result.
pub(super) const ON_TEXT: &[(&str, OnText)] =
    &[("lower", lower_text), ("upper", upper_text), ("trim", trim_text), ("normalize_diacritics", fold_text)];

/// A function of [`ON_TEXT`].
pub(super) type OnText = fn(&str) -> Option<String>;

/// The function of [`ON_TEXT`] called `name`.
pub(super) fn on_text(name: &str) -> Option<OnText> {
    ON_TEXT.iter().find(|(known, _)| *known == name).map(|(_, f)| *f)
}

/// Calls `f` of [`ON_TEXT`] on the first argument.
fn text_to_text<'b, 'v>(args: &mut Args<'b, 'v>, f: OnText) -> Result<CowVal<'b, 'v>, String> {
    let changed = f(&args.text(0)?);
    changed_or_input(args, changed)
}

fn lower<'b, 'v>(args: &mut Args<'b, 'v>) -> Result<CowVal<'b, 'v>, String> {
    text_to_text(args, lower_text)
}

fn lower_text(text: &str) -> Option<String> {
    Some(text.to_lowercase())
}

fn upper<'b, 'v>(args: &mut Args<'b, 'v>) -> Result<CowVal<'b, 'v>, String> {
    text_to_text(args, upper_text)
}

fn upper_text(text: &str) -> Option<String> {
    Some(text.to_uppercase())
}

fn trim<'b, 'v>(args: &mut Args<'b, 'v>) -> Result<CowVal<'b, 'v>, String> {
    text_to_text(args, trim_text)
}

fn trim_text(text: &str) -> Option<String> {
    let mut collapsed = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !collapsed.is_empty() {
            collapsed.push(' ');
        }
        collapsed.push_str(word);
    }
    (collapsed != text).then_some(collapsed)
}

fn normalize_diacritics<'b, 'v>(args: &mut Args<'b, 'v>) -> Result<CowVal<'b, 'v>, String> {
    text_to_text(args, fold_text)
}

fn fold_text(text: &str) -> Option<String> {
    match deunicode::deunicode_with_tofu_cow(text, "") {
        Cow::Borrowed(_) => None,
        Cow::Owned(folded) => Some(folded),
    }
}

/// Combining diacritical marks (U+0300..U+036F and the supplements): part of the letter
/// before them, so they neither start nor end a word.
fn is_combining_mark(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE20}'..='\u{FE2F}')
}

fn pcase<'b, 'v>(args: &mut Args<'b, 'v>) -> Result<CowVal<'b, 'v>, String> {
    let text = args.text(0)?;
    let mut out = String::with_capacity(text.len());
    let mut word_start = true;
    for c in text.chars() {
        if c.is_alphabetic() {
            if word_start {
                // Title case, by hand: "ß" becomes "Ss", not "SS".
                let mut upper = c.to_uppercase();
                out.extend(upper.next());
                upper.for_each(|rest| out.extend(rest.to_lowercase()));
            } else {
                out.extend(c.to_lowercase());
            }
            word_start = false;
        } else {
            out.push(c);
            if c.is_numeric() {
                word_start = false;
            } else if !is_combining_mark(c) {
                word_start = true;
            }
        }
    }
    Ok(text_value(out))
}

fn join<'b, 'v>(args: &mut Args<'b, 'v>) -> Result<CowVal<'b, 'v>, String> {
    let separator = args.text(0)?;
    let mut out = String::new();
    let mut first = true;
    for i in 1..args.len() {
        args.for_each_part(i, &mut |part| {
            if part.is_empty() {
                return;
            }
            if !first {
                out.push_str(&separator);
            }
            out.push_str(part);
            first = false;
        })?;
    }
    Ok(text_value(out))
}

fn coalesce<'b, 'v>(args: &mut Args<'b, 'v>) -> Result<CowVal<'b, 'v>, String> {
    for i in 0..args.len() {
        if args.get(i)?.get_type().kind() == Kind::String {
            if !args.text(i)?.is_empty() {
                return Ok(args.take(i));
            }
            continue;
        }
        let mut found = None;
        args.for_each_part(i, &mut |part| {
            if found.is_none() && !part.is_empty() {
                found = Some(part.to_owned());
            }
        })?;
        if let Some(text) = found {
            return Ok(text_value(text));
        }
    }
    Ok(text_value(String::new()))
}

fn left<'b, 'v>(args: &mut Args<'b, 'v>) -> Result<CowVal<'b, 'v>, String> {
    let count = args.number(1)?;
    Ok(text_value(left_text(&args.text(0)?, count).to_owned()))
}

/// `left(text, count)` of a text and a number: [`super::Shortcut`] calls it for a login's
/// initial (`left(given_name, 1)`) without CEL.
pub(super) fn left_text(text: &str, count: i64) -> &str {
    prefix_chars(text, to_index(count))
}

fn right<'b, 'v>(args: &mut Args<'b, 'v>) -> Result<CowVal<'b, 'v>, String> {
    let count = to_index(args.number(1)?);
    let text = args.text(0)?;
    let tail = match count.checked_sub(1) {
        None => "",
        Some(last) => match text.char_indices().rev().nth(last) {
            Some((start, _)) => &text[start..],
            None => &*text,
        },
    };
    Ok(text_value(tail.to_owned()))
}

fn mid<'b, 'v>(args: &mut Args<'b, 'v>) -> Result<CowVal<'b, 'v>, String> {
    let start = args.number(1)?;
    let length = args.number(2)?;
    let text = args.text(0)?;
    // The 1-based positions [start, start + length), cut to those that exist.
    let first = start.max(1);
    let end = start.saturating_add(length.max(0));
    let slice =
        if end <= first { "" } else { prefix_chars(skip_chars(&text, to_index(first - 1)), to_index(end - first)) };
    Ok(text_value(slice.to_owned()))
}

fn word<'b, 'v>(args: &mut Args<'b, 'v>) -> Result<CowVal<'b, 'v>, String> {
    let number = args.number(1)?;
    let delimiters = if args.len() > 2 { Some(CharSet::new(&args.text(2)?)) } else { None };
    let text = args.text(0)?;
    let found = match number.checked_sub(1).filter(|n| *n >= 0).map(to_index) {
        None => None,
        Some(index) => match &delimiters {
            None => text.split_whitespace().nth(index),
            Some(set) => text.split(|c| set.contains(c)).filter(|word| !word.is_empty()).nth(index),
        },
    };
    Ok(text_value(found.unwrap_or_default().to_owned()))
}

thread_local! {
    /// Compiled patterns, since most `replace` calls repeat a literal pattern for every
    /// person. Invalid ones are remembered too, with their message.
    static REGEXES: RefCell<HashMap<String, Result<Regex, String>>> = RefCell::new(HashMap::new());
}

/// How many patterns a thread keeps compiled; beyond, the cache starts over.
const REGEX_CACHE_SIZE: usize = 256;

fn compiled_regex(pattern: &str) -> Result<Regex, String> {
    REGEXES.with_borrow_mut(|cache| {
        if let Some(compiled) = cache.get(pattern) {
            return compiled.clone();
        }
        if cache.len() >= REGEX_CACHE_SIZE {
            cache.clear();
        }
        let compiled = Regex::new(pattern).map_err(|error| {
            // The regex crate's message spans lines (the pattern, a caret, the error):
            // its last line says what is wrong.
            let error = error.to_string();
            let reason = error.lines().last().unwrap_or_default().trim();
            let reason = reason.strip_prefix("error: ").unwrap_or(reason);
            format!("expected a regular expression as 2nd argument, found {pattern:?}: {reason}")
        });
        cache.insert(pattern.to_owned(), compiled.clone());
        compiled
    })
}

fn replace<'b, 'v>(args: &mut Args<'b, 'v>) -> Result<CowVal<'b, 'v>, String> {
    let regex = compiled_regex(&args.text(1)?)?;
    let changed = {
        let text = args.text(0)?;
        let replacement = args.text(2)?;
        match regex.replace_all(&text, replacement.as_ref()) {
            Cow::Borrowed(_) => None,
            Cow::Owned(replaced) => Some(replaced),
        }
    };
    changed_or_input(args, changed)
}

fn switch<'b, 'v>(args: &mut Args<'b, 'v>) -> Result<CowVal<'b, 'v>, String> {
    let chosen = {
        let value = args.text(0)?;
        let mut chosen = 1;
        for key in (2..args.len()).step_by(2) {
            if args.text(key)? == value {
                chosen = key + 1;
                break;
            }
        }
        chosen
    };
    Ok(args.take(chosen))
}

const DEFAULT_DATE_FORMAT: &str = "%Y-%m-%d";

fn format_date<'b, 'v>(args: &mut Args<'b, 'v>) -> Result<CowVal<'b, 'v>, String> {
    use chrono::format::{Parsed, StrftimeItems};

    let (in_format, out_index) =
        if args.len() == 3 { (args.text(1)?, 2) } else { (Cow::Borrowed(DEFAULT_DATE_FORMAT), 1) };
    let out_format = args.text(out_index)?;
    let text = args.text(0)?;
    let date = text.trim();
    if date.is_empty() {
        return Ok(text_value(String::new()));
    }

    let in_items = StrftimeItems::new(&in_format)
        .parse()
        .map_err(|_| format!("expected a date format as 2nd argument, found {in_format:?}"))?;
    let mut parsed = Parsed::new();
    let moment = chrono::format::parse(&mut parsed, date, in_items.iter())
        .and_then(|()| {
            parsed
                .to_naive_datetime_with_offset(0)
                .or_else(|_| parsed.to_naive_date().map(|day| day.and_time(chrono::NaiveTime::MIN)))
        })
        .map_err(|error| format!("expected a date like {in_format:?}, found {date:?} ({error})"))?;

    let out_items = StrftimeItems::new(&out_format)
        .parse()
        .map_err(|_| format!("expected a date format as {} argument, found {out_format:?}", ordinal(out_index)))?;
    let mut out = String::new();
    // `write!` reports what `to_string()` would panic on: a format asking for what a
    // date without a time zone doesn't have, such as `%z`.
    write!(out, "{}", moment.format_with_items(out_items.iter())).map_err(|_| {
        format!("cannot write a date as {out_format:?}: it asks for a time zone, which dates here don't have")
    })?;
    Ok(text_value(out))
}

fn strip_chars<'b, 'v>(args: &mut Args<'b, 'v>) -> Result<CowVal<'b, 'v>, String> {
    let changed = {
        let strip = CharSet::new(&args.text(1)?);
        let text = args.text(0)?;
        text.contains(|c| strip.contains(c)).then(|| text.chars().filter(|c| !strip.contains(*c)).collect())
    };
    changed_or_input(args, changed)
}

fn is_empty<'b, 'v>(args: &mut Args<'b, 'v>) -> Result<CowVal<'b, 'v>, String> {
    let value = args.get(0)?;
    let empty = if let Some(list) = value.downcast_ref::<CelList>() {
        list.inner().is_empty()
    } else {
        args.text(0)
            .map_err(|_| format!("expected text or a list as 1st argument, found {}", type_name(value)))?
            .is_empty()
    };
    Ok(CowVal::owned(CelBool::from(empty)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_read_as_english() {
        let found: Vec<String> = [0, 1, 2, 3, 10, 11, 12, 20, 21, 22, 100, 110].into_iter().map(ordinal).collect();
        assert_eq!(
            found,
            ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "101st", "111th"]
        );
    }

    #[test]
    fn arity_messages_say_what_was_expected_and_found() {
        let cases = [
            (Arity::Exactly(1), 2, Some("expected 1 argument, found 2")),
            (Arity::Exactly(2), 2, None),
            (Arity::OneOf(2, 3), 4, Some("expected 2 or 3 arguments, found 4")),
            (Arity::AtLeast(1), 0, Some("expected at least 1 argument, found 0")),
            (Arity::ValueDefaultPairs, 1, Some("expected at least 2 arguments (the value and the default), found 1")),
            (
                Arity::ValueDefaultPairs,
                5,
                Some("expected a value after every key, found key 2 (the 5th argument) without one"),
            ),
            (Arity::ValueDefaultPairs, 6, None),
        ];
        for (arity, found, expected) in cases {
            assert_eq!(arity.check(found).err().as_deref(), expected, "{found}");
        }
    }

    #[test]
    fn the_public_table_follows_the_library() {
        assert_eq!(FUNCTIONS.len(), LIBRARY.len());
        for ((name, signature, _), function) in FUNCTIONS.iter().zip(LIBRARY) {
            assert_eq!(*name, function.name);
            assert!(signature.starts_with(&format!("{name}(")), "{signature} should start with {name}(");
        }
    }
}
