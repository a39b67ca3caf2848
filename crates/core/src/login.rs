//! Login names: generated once per person from ordered candidates, unique against every target,
//! every other person, the tombstones and what the plan already reserved.

use std::borrow::Cow;

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
    shortened(&rules.disallowed.replace_all(raw, ""), max_length).map(str::to_string)
}

/// The part of `kept` (the allowed characters of a candidate) that [`sanitize`] keeps.
fn shortened(kept: &str, max_length: usize) -> Option<&str> {
    let end = kept.char_indices().nth(max_length).map_or(kept.len(), |(at, _)| at);
    Some(kept[..end].trim_matches(|c: char| !c.is_ascii_alphanumeric())).filter(|trimmed| !trimmed.is_empty())
}

/// `login` lower-cased, borrowed when it already is (most candidates are lower-cased by their
/// expressions: a million persons' candidates were each copied to be looked up).
pub(crate) fn lowercase(login: &str) -> Cow<'_, str> {
    if login.bytes().any(|b| !b.is_ascii() || b.is_ascii_uppercase()) {
        Cow::Owned(login.to_lowercase())
    } else {
        Cow::Borrowed(login)
    }
}

/// A login chosen, and why ([`LoginChoice::because`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginChoice {
    pub login: String,
    why: Why,
}

/// Which way a login was found: kept apart from its text, which a plan of a million persons
/// formatted for each of them and never read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Why {
    /// The candidate with this index.
    Candidate(usize),
    /// The fallback; whether a candidate was skipped for its script.
    Fallback { skipped_script: bool },
    /// A numbered form of the first candidate, or of the fallback.
    Numbered { via: &'static str, number: u64 },
}

impl LoginChoice {
    /// Why the login was chosen, for the plan's reasons and `roster explain`.
    pub fn because(&self, rules: &LoginRules) -> String {
        match &self.why {
            Why::Candidate(i) => format!("candidate {} ({})", i + 1, rules.candidates[*i].source()),
            Why::Fallback { skipped_script } => {
                let why = if *skipped_script {
                    "the name is in a script without reliable transliteration"
                } else {
                    "no candidate gave a usable login"
                };
                format!("fallback ({}): {why}", rules.fallback.source())
            }
            Why::Numbered { via, number } => format!("{via} with number {number}: every candidate was taken"),
        }
    }
}

/// The numbered forms already found taken, per base, over one plan: the next number worth trying
/// for each lowercased base. Logins are only ever added to what is taken while a plan chooses
/// them, so a number once found taken stays taken, and the hundredth "j.smith" starts at
/// `j.smith100` instead of trying the 99 before it (numbering is linear in the people sharing a
/// name, not quadratic).
#[derive(Debug, Default)]
pub struct Numbering {
    next: crate::FastMap<String, u64>,
}

/// A person's login candidates, evaluated: everything [`Candidates::choose`] needs besides what
/// is taken. Evaluating them depends on the person alone, so a plan evaluates them for many
/// persons at once and only the choice, which depends on what earlier persons took, goes in order.
#[derive(Debug)]
pub struct Candidates {
    /// The candidates that gave a usable login, in order: (candidate index, login).
    usable: Vec<(usize, String)>,
    /// The error of the candidate whose evaluation failed: the later ones were not evaluated.
    error: Option<String>,
    /// When no candidate gave a usable login (and none failed): the fallback's login, or why it
    /// gives none.
    fallback: Option<Result<String, String>>,
    /// Whether a candidate was skipped because the name is in a script without reliable
    /// transliteration.
    skipped_script: bool,
}

/// Evaluates a person's login candidates, and the fallback when none of them gives a usable
/// login. `env` holds the person's variables (the romanised forms replace the names they stand
/// for in it: a planner refills it for the next person); `text_of(name)` their attribute texts
/// (to detect unreliable scripts and apply romanised forms).
pub fn candidates<'t>(rules: &LoginRules, env: &mut Env, text_of: &dyn Fn(&str) -> Cow<'t, str>) -> Candidates {
    let mut substituted = Vec::new();
    for (attr, romanized) in &rules.romanized {
        let original = text_of(attr);
        let latin = text_of(romanized);
        if original.chars().any(unreliable_script) && !latin.is_empty() {
            env.set(attr, ExprValue::Text(latin.into_owned()));
            substituted.push(attr.as_str());
        }
    }
    let mut out = Candidates { usable: Vec::new(), error: None, fallback: None, skipped_script: false };
    for (i, candidate) in rules.candidates.iter().enumerate() {
        let unreliable = candidate
            .variables()
            .iter()
            .any(|v| !substituted.contains(&v.as_str()) && text_of(v).chars().any(unreliable_script));
        if unreliable {
            out.skipped_script = true;
            continue;
        }
        match candidate.eval(env).and_then(ExprValue::into_text) {
            Ok(raw) => out.usable.extend(sanitize(rules, &raw, rules.max_length).map(|login| (i, login))),
            Err(e) => {
                out.error = Some(format!("login candidate {}: {e}", i + 1));
                return out;
            }
        }
    }
    if out.usable.is_empty() {
        out.fallback = Some(
            rules
                .fallback
                .eval(env)
                .and_then(ExprValue::into_text)
                .map_err(|e| format!("login fallback: {e}"))
                .and_then(|raw| {
                    sanitize(rules, &raw, rules.max_length).ok_or_else(|| {
                        format!("login fallback {:?} gives nothing usable ({raw:?})", rules.fallback.source())
                    })
                }),
        );
    }
    out
}

impl Candidates {
    /// Picks the first free login: the first candidate not taken, else the fallback, else the
    /// first usable candidate (or the fallback) numbered. `taken(login)` says whether a
    /// lowercased login is already someone else's; `numbering` carries what earlier choices of
    /// the same plan learnt about the numbered forms (only sound while `taken` never shrinks).
    pub fn choose(
        mut self,
        rules: &LoginRules,
        taken: &dyn Fn(&str) -> bool,
        numbering: &mut Numbering,
    ) -> Result<LoginChoice, String> {
        if let Some(at) = self.usable.iter().position(|(_, login)| !taken(&lowercase(login))) {
            let (i, login) = self.usable.swap_remove(at);
            return Ok(LoginChoice { login, why: Why::Candidate(i) });
        }
        if let Some(error) = self.error {
            return Err(error);
        }
        let (base, via) = match (self.usable.into_iter().next(), self.fallback) {
            (Some((_, base)), _) => (base, "first candidate"),
            (None, Some(fallback)) => {
                let base = fallback?;
                if !taken(&lowercase(&base)) {
                    return Ok(LoginChoice { login: base, why: Why::Fallback { skipped_script: self.skipped_script } });
                }
                (base, "fallback")
            }
            (None, None) => return Err("no login candidate was evaluated".to_string()),
        };
        let base_key = lowercase(&base);
        let start = numbering.next.get(base_key.as_ref()).copied().unwrap_or(2);
        let kept = rules.disallowed.replace_all(&base, "");
        for n in start.. {
            let suffix = n.to_string();
            let room = rules.max_length.saturating_sub(suffix.len());
            if room == 0 {
                break;
            }
            let Some(stem) = shortened(&kept, room) else { break };
            let login = format!("{stem}{suffix}");
            if !taken(&lowercase(&login)) {
                numbering.next.insert(base_key.into_owned(), n + 1);
                return Ok(LoginChoice { login, why: Why::Numbered { via, number: n } });
            }
            if n > 100_000 {
                break;
            }
        }
        Err(format!("no free login: {base:?} and its numbered forms are all taken"))
    }
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
                let login = candidates(&rules, &mut env, &|_| Cow::Borrowed(""))
                    .choose(&rules, &is_taken, &mut numbering)
                    .unwrap()
                    .login;
                taken.borrow_mut().insert(login.to_lowercase());
                login
            })
            .collect()
    }

    #[test]
    fn a_failing_candidate_or_fallback_matters_only_once_reached() {
        let mut rules = rules();
        rules.candidates = vec![Expr::compile("lower(given_name)").unwrap(), Expr::compile("given_name + 1").unwrap()];
        rules.fallback = Expr::compile(r#""x" + 1"#).unwrap();
        let mut env = Env::new();
        env.set("given_name", ExprValue::Text("Jo".to_string()));
        fn choose(rules: &LoginRules, env: &mut Env, taken: &[&str]) -> Result<LoginChoice, String> {
            candidates(rules, env, &|_| Cow::Borrowed("")).choose(
                rules,
                &|l| taken.contains(&l),
                &mut Numbering::default(),
            )
        }
        let chosen = choose(&rules, &mut env, &[]).unwrap();
        assert_eq!((chosen.login.as_str(), chosen.because(&rules).as_str()), ("jo", "candidate 1 (lower(given_name))"));
        let failed = choose(&rules, &mut env, &["jo"]).unwrap_err();
        assert!(failed.starts_with("login candidate 2:"), "{failed}");
        // No usable candidate: the fallback is evaluated, and its failure is the answer.
        rules.candidates = vec![Expr::compile(r#""..""#).unwrap()];
        let failed = choose(&rules, &mut env, &[]).unwrap_err();
        assert!(failed.starts_with("login fallback:"), "{failed}");
        rules.fallback = Expr::compile(r#""u" + lower(given_name)"#).unwrap();
        let chosen = choose(&rules, &mut env, &[]).unwrap();
        assert_eq!(
            (chosen.login.as_str(), chosen.because(&rules).as_str()),
            ("ujo", r#"fallback ("u" + lower(given_name)): no candidate gave a usable login"#)
        );
        let chosen = choose(&rules, &mut env, &["ujo"]).unwrap();
        assert_eq!(
            (chosen.login.as_str(), chosen.because(&rules).as_str()),
            ("ujo2", "fallback with number 2: every candidate was taken")
        );
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
