//! Login names: generated once per person from ordered candidates, unique against every target,
//! every other person, the tombstones and what the plan already reserved.

use std::collections::HashMap;

use crate::expr::{Env, ExprValue};
use crate::settings::LoginRules;

/// True for characters whose transliteration to Latin letters is unreliable: Han ideographs, kana.
pub fn unreliable_script(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x31F0..=0x31FF    // Katakana phonetic extensions
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0xFF66..=0xFF9F    // half-width Katakana
        | 0x20000..=0x2FA1F) // CJK extensions B-F, compatibility supplement
}

/// Cleans an evaluated candidate: drops characters outside the allowed set, trims separators at the
/// ends, and shortens to the maximum length. None when nothing usable is left.
pub fn sanitize(rules: &LoginRules, raw: &str, max_length: usize) -> Option<String> {
    let kept = rules.disallowed.replace_all(raw, "");
    let trimmed: String = kept.chars().take(max_length).collect();
    let trimmed = trimmed.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string();
    (!trimmed.is_empty()).then_some(trimmed)
}

/// Why a login was chosen, for the plan's reasons and `roster explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginChoice {
    pub login: String,
    pub because: String,
}

/// The numbered forms already found taken, per base, over one plan: the next number worth trying
/// for each lowercased base. Logins are only ever added to what is taken while a plan chooses
/// them, so a number once found taken stays taken, and the hundredth "j.smith" starts at
/// `j.smith100` instead of trying the 99 before it (numbering is linear in the people sharing a
/// name, not quadratic).
#[derive(Debug, Default)]
pub struct Numbering {
    next: HashMap<String, u64>,
}

/// Picks the first free login. `env` holds the person's variables (the romanised forms replace
/// the names they stand for in it: a planner refills it for the next person); `text_of(name)` their attribute
/// texts (to detect unreliable scripts and apply romanised forms); `taken(login)` says whether a
/// lowercased login is already someone else's; `numbering` carries what earlier choices of the
/// same plan learnt about the numbered forms (only sound while `taken` never shrinks).
pub fn choose(
    rules: &LoginRules,
    env: &mut Env,
    text_of: &dyn Fn(&str) -> String,
    taken: &dyn Fn(&str) -> bool,
    numbering: &mut Numbering,
) -> Result<LoginChoice, String> {
    let mut substituted = Vec::new();
    for (attr, romanized) in &rules.romanized {
        let original = text_of(attr);
        let latin = text_of(romanized);
        if original.chars().any(unreliable_script) && !latin.is_empty() {
            env.set(attr, ExprValue::Text(latin));
            substituted.push(attr.as_str());
        }
    }
    let mut first_usable: Option<String> = None;
    let mut skipped_script = false;
    for (i, candidate) in rules.candidates.iter().enumerate() {
        let unreliable = candidate
            .variables()
            .iter()
            .any(|v| !substituted.contains(&v.as_str()) && text_of(v).chars().any(unreliable_script));
        if unreliable {
            skipped_script = true;
            continue;
        }
        let raw = candidate
            .eval(env)
            .and_then(ExprValue::into_text)
            .map_err(|e| format!("login candidate {}: {e}", i + 1))?;
        let Some(login) = sanitize(rules, &raw, rules.max_length) else { continue };
        if !taken(&login.to_lowercase()) {
            return Ok(LoginChoice { login, because: format!("candidate {} ({})", i + 1, candidate.source()) });
        }
        first_usable.get_or_insert(login);
    }
    let (base, via) = match first_usable {
        Some(base) => (base, "first candidate"),
        None => {
            let raw =
                rules.fallback.eval(env).and_then(ExprValue::into_text).map_err(|e| format!("login fallback: {e}"))?;
            let base = sanitize(rules, &raw, rules.max_length).ok_or_else(|| {
                format!("login fallback {:?} gives nothing usable ({raw:?})", rules.fallback.source())
            })?;
            if !taken(&base.to_lowercase()) {
                let why = if skipped_script {
                    "the name is in a script without reliable transliteration"
                } else {
                    "no candidate gave a usable login"
                };
                return Ok(LoginChoice {
                    login: base,
                    because: format!("fallback ({}): {why}", rules.fallback.source()),
                });
            }
            (base, "fallback")
        }
    };
    let base_key = base.to_lowercase();
    let start = numbering.next.get(&base_key).copied().unwrap_or(2);
    for n in start.. {
        let suffix = n.to_string();
        let room = rules.max_length.saturating_sub(suffix.len());
        if room == 0 {
            break;
        }
        let Some(stem) = sanitize(rules, &base, room) else { break };
        let login = format!("{stem}{suffix}");
        if !taken(&login.to_lowercase()) {
            numbering.next.insert(base_key, n + 1);
            return Ok(LoginChoice { login, because: format!("{via} with number {n}: every candidate was taken") });
        }
        if n > 100_000 {
            break;
        }
    }
    Err(format!("no free login: {base:?} and its numbered forms are all taken"))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::{BTreeMap, HashSet};

    use regex::Regex;

    use super::*;
    use crate::expr::Expr;

    fn rules() -> LoginRules {
        LoginRules {
            candidates: vec![Expr::compile(r#"lower(given_name + "." + family_name)"#).unwrap()],
            fallback: Expr::compile(r#"lower(given_name + "." + family_name)"#).unwrap(),
            max_length: 12,
            disallowed: Regex::new("[^a-z0-9.]").unwrap(),
            romanized: BTreeMap::new(),
        }
    }

    /// Chooses a login for each (given, family) name in turn, as a plan does: each choice is
    /// taken from then on.
    fn choose_all(names: &[(&str, &str)], taken_before: &[&str]) -> Vec<String> {
        let rules = rules();
        let taken: RefCell<HashSet<String>> = RefCell::new(taken_before.iter().map(|l| l.to_string()).collect());
        let mut numbering = Numbering::default();
        names
            .iter()
            .map(|(given, family)| {
                let mut env = Env::new();
                env.set("given_name", ExprValue::Text(given.to_string()));
                env.set("family_name", ExprValue::Text(family.to_string()));
                let is_taken = |l: &str| taken.borrow().contains(l);
                let login = choose(&rules, &mut env, &|_| String::new(), &is_taken, &mut numbering).unwrap().login;
                taken.borrow_mut().insert(login.to_lowercase());
                login
            })
            .collect()
    }

    #[test]
    fn numbering_skips_what_is_taken_and_remembers_it_per_base() {
        let names = [("Jo", "Smith"), ("Jo", "Smith"), ("Al", "Day"), ("Jo", "Smith"), ("Al", "Day"), ("Jo", "Smith")];
        // jo.smith3 was someone's before this plan; the numbering must still not hand it out.
        let chosen = choose_all(&names, &["jo.smith3", "al.day"]);
        assert_eq!(chosen, ["jo.smith", "jo.smith2", "al.day2", "jo.smith4", "al.day3", "jo.smith5"]);
    }

    #[test]
    fn numbered_forms_shorten_the_stem_to_fit_the_maximum_length() {
        let names = [("Maximilian", "Berg"); 11];
        let chosen = choose_all(&names, &[]);
        // 12 characters at most: "maximilian.b" and then the stem shortened by the number's digits.
        assert_eq!(chosen[0], "maximilian.b");
        assert_eq!(chosen[1], "maximilian2");
        assert_eq!(chosen[9], "maximilian10");
        assert_eq!(chosen[10], "maximilian11");
    }
}
