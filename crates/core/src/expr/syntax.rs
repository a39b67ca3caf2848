//! What compiling learns from the syntax tree: the names an expression uses, how deep it
//! nests, and the closest known name to one that is unknown.
//!
//! cel's own `Program::references()` reports a comprehension's loop variable (the `e` of
//! `emails.exists(e, ...)`) as a variable and operators (`_+_`) as functions, and in no
//! particular order; `check()` needs the free variables and the called functions, in the
//! order they are written, so this walks the syntax tree itself.

use cel::IdedExpr;
use cel::common::ast::{EntryExpr, Expr, IdedEntryExpr};

/// A name an expression uses, in the order it is written.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Reference {
    Variable(String),
    /// A call; `arguments` counts a method call's receiver.
    Function {
        name: String,
        arguments: usize,
    },
}

/// The variables (free identifiers) and functions `root` uses. `is_qualified_function`
/// tells whether a dotted name such as `optional.of` names a function, making `optional`
/// part of the function's name rather than a variable.
pub(super) fn references(root: &IdedExpr, is_qualified_function: &dyn Fn(&str) -> bool) -> Vec<Reference> {
    let mut walker = Walker { bound: Vec::new(), found: Vec::new(), is_qualified_function };
    walker.walk(root);
    walker.found
}

struct Walker<'a> {
    /// Names bound by the comprehensions around the current node.
    bound: Vec<String>,
    found: Vec<Reference>,
    is_qualified_function: &'a dyn Fn(&str) -> bool,
}

impl Walker<'_> {
    fn walk(&mut self, node: &IdedExpr) {
        match &node.expr {
            Expr::Unspecified | Expr::Literal(_) => {}
            Expr::Ident(name) => self.variable(name),
            Expr::Select(select) => self.walk(&select.operand),
            Expr::List(list) => list.elements.iter().for_each(|e| self.walk(e)),
            Expr::Map(map) => self.entries(&map.entries),
            Expr::Struct(structure) => self.entries(&structure.entries),
            Expr::Call(call) => {
                if !is_operator(&call.func_name) {
                    let qualified = call
                        .target
                        .as_deref()
                        .and_then(qualified_name)
                        .map(|target| format!("{target}.{}", call.func_name))
                        .filter(|name| (self.is_qualified_function)(name));
                    if let Some(name) = qualified {
                        self.found.push(Reference::Function { name, arguments: call.args.len() });
                        call.args.iter().for_each(|a| self.walk(a));
                        return;
                    }
                    self.found.push(Reference::Function {
                        name: call.func_name.clone(),
                        arguments: call.args.len() + usize::from(call.target.is_some()),
                    });
                }
                if let Some(target) = &call.target {
                    self.walk(target);
                }
                call.args.iter().for_each(|a| self.walk(a));
            }
            Expr::Comprehension(comprehension) => {
                self.walk(&comprehension.iter_range);
                self.walk(&comprehension.accu_init);
                let outer = self.bound.len();
                self.bound.push(comprehension.accu_var.clone());
                self.bound.push(comprehension.iter_var.clone());
                self.bound.extend(comprehension.iter_var2.clone());
                self.walk(&comprehension.loop_cond);
                self.walk(&comprehension.loop_step);
                self.bound.truncate(outer + 1);
                self.walk(&comprehension.result);
                self.bound.truncate(outer);
            }
        }
    }

    fn entries(&mut self, entries: &[IdedEntryExpr]) {
        entry_values(entries).for_each(|e| self.walk(e));
    }

    fn variable(&mut self, name: &str) {
        // `@`-names are the parser's own (a comprehension's accumulator).
        if !name.starts_with('@') && !self.bound.iter().any(|bound| bound == name) {
            self.found.push(Reference::Variable(name.to_owned()));
        }
    }
}

/// How many levels deep the tree nests (a lone literal is 1). Evaluating recurses once per
/// level, so this is what bounds the stack an evaluation needs; found without recursion,
/// since it is what tells whether recursing is safe.
pub(super) fn depth(root: &IdedExpr) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(root, 1)];
    while let Some((node, depth)) = pending.pop() {
        deepest = deepest.max(depth);
        let mut child = |expr| pending.push((expr, depth + 1));
        match &node.expr {
            Expr::Unspecified | Expr::Literal(_) | Expr::Ident(_) => {}
            Expr::Select(select) => child(&select.operand),
            Expr::List(list) => list.elements.iter().for_each(child),
            Expr::Map(map) => entry_values(&map.entries).for_each(child),
            Expr::Struct(structure) => entry_values(&structure.entries).for_each(child),
            Expr::Call(call) => call.target.as_deref().into_iter().chain(&call.args).for_each(child),
            Expr::Comprehension(c) => {
                [&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result].into_iter().for_each(child)
            }
        }
    }
    deepest
}

/// The expressions of map or struct entries: keys and values.
fn entry_values(entries: &[IdedEntryExpr]) -> impl Iterator<Item = &IdedExpr> {
    entries
        .iter()
        .flat_map(|entry| match &entry.expr {
            EntryExpr::StructField(field) => [None, Some(&field.value)],
            EntryExpr::MapEntry(entry) => [Some(&entry.key), Some(&entry.value)],
        })
        .flatten()
}

/// Operators are calls too (`_+_`, `!_`, `-_`, `@in`), but no user writes their names.
fn is_operator(function: &str) -> bool {
    function.starts_with(['_', '@', '!', '-'])
}

/// `a.b.c` for an identifier with field selections on it.
fn qualified_name(node: &IdedExpr) -> Option<String> {
    match &node.expr {
        Expr::Ident(name) => Some(name.clone()),
        Expr::Select(select) if !select.test => {
            qualified_name(&select.operand).map(|operand| format!("{operand}.{}", select.field))
        }
        _ => None,
    }
}

/// The candidate closest to `name` in spelling, if one is close enough to be what was
/// meant. Case and underscores don't count (`givenName` finds `given_name`).
pub(super) fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let wanted = fold(name);
    let allowed = (wanted.chars().count() / 3).clamp(1, 3);
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        if candidate == name {
            continue;
        }
        let distance = edit_distance(&wanted, &fold(candidate));
        if distance <= allowed && best.is_none_or(|(shortest, _)| distance < shortest) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate.to_owned())
}

fn fold(name: &str) -> String {
    name.chars().filter(|c| *c != '_').flat_map(char::to_lowercase).collect()
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// Names longer than this get no single-edit guesses (their number grows with the length).
const MAX_GUESSED_NAME: usize = 64;

/// A known variable close to `name`, found by asking `known` about likely spellings: the
/// name in lower case, in snake_case, and every name one edit away (a character deleted,
/// swapped with its neighbour, replaced or inserted).
pub(super) fn guess_variable(name: &str, known: &dyn Fn(&str) -> bool) -> Option<String> {
    let lower = name.to_lowercase();
    let snake = snake_case(name);
    if let Some(found) = [lower, snake].into_iter().find(|guess| guess != name && known(guess)) {
        return Some(found);
    }
    let chars: Vec<char> = name.chars().collect();
    if chars.len() > MAX_GUESSED_NAME {
        return None;
    }
    let alphabet: Vec<char> = ('a'..='z').chain('0'..='9').chain(['_']).collect();
    let spell = |chars: &[char]| chars.iter().collect::<String>();
    let mut guesses: Vec<String> = Vec::new();
    for i in 0..chars.len() {
        let mut deleted = chars.clone();
        deleted.remove(i);
        guesses.push(spell(&deleted));
    }
    for i in 1..chars.len() {
        let mut swapped = chars.clone();
        swapped.swap(i - 1, i);
        guesses.push(spell(&swapped));
    }
    for i in 0..chars.len() {
        for &c in &alphabet {
            let mut replaced = chars.clone();
            replaced[i] = c;
            guesses.push(spell(&replaced));
        }
    }
    for i in 0..=chars.len() {
        for &c in &alphabet {
            let mut inserted = chars.clone();
            inserted.insert(i, c);
            guesses.push(spell(&inserted));
        }
    }
    guesses.into_iter().find(|guess| guess != name && known(guess))
}

/// `givenName` -> `given_name`.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(if c == '-' { '_' } else { c });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_levels() {
        let cases = [("1", 1), ("a + b", 2), ("a + b + c", 3), ("f(g(x), 1)", 3), ("[[1]]", 3), ("{'k': [v]}", 3)];
        for (src, expected) in cases {
            let program = cel::Env::stdlib().compile(src).unwrap();
            assert_eq!(depth(program.expression()), expected, "{src}");
        }
    }

    #[test]
    fn edit_distance_counts_single_character_edits() {
        let cases = [
            ("", "", 0),
            ("lowr", "lower", 1),
            ("lower", "lowr", 1),
            ("kitten", "sitting", 3),
            ("ß", "ss", 2),
            ("abc", "abc", 0),
        ];
        for (a, b, expected) in cases {
            assert_eq!(edit_distance(a, b), expected, "{a} -> {b}");
        }
    }

    #[test]
    fn closest_ignores_case_and_underscores() {
        let names = ["lower", "upper", "normalize_diacritics", "startsWith"];
        let cases = [
            ("lowr", Some("lower")),
            ("LOWER", Some("lower")),
            ("normalise_diacritics", Some("normalize_diacritics")),
            ("normalizeDiacritics", Some("normalize_diacritics")),
            ("startswith", Some("startsWith")),
            ("frobnicate", None),
            ("lower", None),
        ];
        for (name, expected) in cases {
            assert_eq!(closest(name, names).as_deref(), expected, "{name}");
        }
    }

    #[test]
    fn guesses_known_variables_one_edit_or_a_case_away() {
        let known = |name: &str| ["given_name", "family_name", "hire_date"].contains(&name);
        let cases = [
            ("givenName", Some("given_name")),
            ("Given_Name", Some("given_name")),
            ("gven_name", Some("given_name")),
            ("famliy_name", Some("family_name")),
            ("hire_datex", Some("hire_date")),
            ("hire-date", Some("hire_date")),
            ("salary", None),
        ];
        for (name, expected) in cases {
            assert_eq!(guess_variable(name, &known).as_deref(), expected, "{name}");
        }
    }
}
