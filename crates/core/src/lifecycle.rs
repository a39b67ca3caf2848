//! Lifecycle states, computed from a person's affiliations and dates as of a day.

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::config::{LastDayMeaning, LifecycleConfig};
use crate::source::Field;

/// Where a person (or one affiliation) stands on a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleState {
    /// Hire date beyond the pre-hire window: no account yet.
    Pending,
    /// Within the pre-hire window: the account exists, enabled or not by policy.
    Prehire,
    Active,
    /// On leave: the leave policy applies.
    Leave,
    /// The day after the last day worked (or missing from a complete source): disabled.
    Leaver,
    /// The hire was cancelled before day one: any pre-created account is removed.
    Rescinded,
    /// After the grace period: deleted; a tombstone keeps the login.
    Purged,
}

impl LifecycleState {
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleState::Pending => "pending",
            LifecycleState::Prehire => "prehire",
            LifecycleState::Active => "active",
            LifecycleState::Leave => "leave",
            LifecycleState::Leaver => "leaver",
            LifecycleState::Rescinded => "rescinded",
            LifecycleState::Purged => "purged",
        }
    }

    /// Whether an account exists in this state.
    pub fn has_account(self) -> bool {
        matches!(
            self,
            LifecycleState::Prehire | LifecycleState::Active | LifecycleState::Leave | LifecycleState::Leaver
        )
    }

    /// Which state wins when a person holds several affiliations: the one granting the most.
    fn precedence(self) -> u8 {
        match self {
            LifecycleState::Active => 6,
            LifecycleState::Leave => 5,
            LifecycleState::Prehire => 4,
            LifecycleState::Leaver => 3,
            LifecycleState::Pending => 2,
            LifecycleState::Purged => 1,
            LifecycleState::Rescinded => 0,
        }
    }
}

impl std::fmt::Display for LifecycleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One of a person's relationships with the organisation (employee, contractor, student), with its
/// own dates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Affiliation {
    pub kind: String,
    pub source: String,
    pub hire_date: Option<NaiveDate>,
    pub last_day: Option<NaiveDate>,
    pub leave_start: Option<NaiveDate>,
    pub leave_end: Option<NaiveDate>,
    pub status: Option<String>,
    /// The person is missing from this complete source; when roster decided they left.
    pub missing_since: Option<NaiveDate>,
}

impl Affiliation {
    pub fn from_record(source: &str, attrs: &crate::source::Attrs) -> Affiliation {
        let date = |name: &str| attrs.get(name).and_then(Field::as_date);
        Affiliation {
            kind: attrs.get("affiliation").map(Field::to_text).unwrap_or_else(|| "employee".to_string()),
            source: source.to_string(),
            hire_date: date("hire_date"),
            last_day: date("last_day"),
            leave_start: date("leave_start"),
            leave_end: date("leave_end"),
            status: attrs.get("status").map(Field::to_text),
            missing_since: None,
        }
    }
}

/// A state and the rule that set it, for the plan's reasons and `roster explain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateDecision {
    pub state: LifecycleState,
    pub because: String,
    /// The next day on which the calendar alone changes the state.
    pub next_transition: Option<NaiveDate>,
    /// The day the person became a leaver (purge counts from it).
    pub left_on: Option<NaiveDate>,
}

fn status_in(status: &Option<String>, values: &[String]) -> bool {
    status.as_deref().is_some_and(|s| values.iter().any(|v| v.trim().eq_ignore_ascii_case(s.trim())))
}

fn add_days(date: NaiveDate, days: u32) -> NaiveDate {
    date.checked_add_days(Days::new(u64::from(days))).unwrap_or(NaiveDate::MAX)
}

fn sub_days(date: NaiveDate, days: u32) -> NaiveDate {
    date.checked_sub_days(Days::new(u64::from(days))).unwrap_or(NaiveDate::MIN)
}

fn earliest(a: Option<NaiveDate>, b: Option<NaiveDate>) -> Option<NaiveDate> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The state of one affiliation on `today`. `left_on` is the day roster already recorded the person
/// as gone without a date from the source (a terminated status, or missing from a complete source).
pub fn affiliation_state(
    a: &Affiliation,
    today: NaiveDate,
    cfg: &LifecycleConfig,
    left_on: Option<NaiveDate>,
) -> StateDecision {
    let first_day_gone = a.last_day.map(|d| match cfg.last_day {
        LastDayMeaning::LastDayWorked => add_days(d, 1),
        LastDayMeaning::FirstDayGone => d,
    });
    let leaver = |since: NaiveDate, because: String| {
        let purge_on = add_days(since, cfg.purge_after_days);
        if today >= purge_on {
            StateDecision {
                state: LifecycleState::Purged,
                because: format!("{because}; purged {} days after leaving ({purge_on})", cfg.purge_after_days),
                next_transition: None,
                left_on: Some(since),
            }
        } else {
            StateDecision {
                state: LifecycleState::Leaver,
                because,
                next_transition: Some(purge_on),
                left_on: Some(since),
            }
        }
    };
    let started = a.hire_date.is_some_and(|h| h <= today);

    if status_in(&a.status, &cfg.status.rescinded) && started {
        // Rescinded after day one is an HR mistake or a quick exit, not a hire that never
        // happened: the account is disabled as a leaver's, never deleted at once.
        return leaver(
            left_on.unwrap_or(today),
            format!("leaver: status {:?} after the hire date", a.status.as_deref().unwrap_or_default()),
        );
    }
    if status_in(&a.status, &cfg.status.rescinded) {
        return StateDecision {
            state: LifecycleState::Rescinded,
            because: format!("hire rescinded: status {:?}", a.status.as_deref().unwrap_or_default()),
            next_transition: None,
            left_on: None,
        };
    }
    if let Some(missing) = a.missing_since {
        if !started {
            return StateDecision {
                state: LifecycleState::Rescinded,
                because: format!("hire rescinded: missing from complete source {} before day one", a.source),
                next_transition: None,
                left_on: None,
            };
        }
        return leaver(
            left_on.unwrap_or(missing),
            format!("leaver: missing from complete source {} since {missing}", a.source),
        );
    }
    if let Some(gone) = first_day_gone.filter(|g| *g <= today) {
        let last = a.last_day.unwrap_or(gone);
        return leaver(gone, format!("leaver: termination date {last} reached"));
    }
    if status_in(&a.status, &cfg.status.terminated) {
        return leaver(
            left_on.unwrap_or(today),
            format!("leaver: status {:?}", a.status.as_deref().unwrap_or_default()),
        );
    }
    let Some(hire) = a.hire_date else {
        return StateDecision {
            state: LifecycleState::Pending,
            because: "no hire date".to_string(),
            next_transition: None,
            left_on: None,
        };
    };
    if hire > today {
        let window_opens = sub_days(hire, cfg.prehire_days);
        if cfg.prehire_days > 0 && window_opens <= today {
            return StateDecision {
                state: LifecycleState::Prehire,
                because: format!("pre-hire: hire date {hire} is within {} days", cfg.prehire_days),
                next_transition: Some(hire),
                left_on: None,
            };
        }
        let next = if cfg.prehire_days > 0 { window_opens } else { hire };
        return StateDecision {
            state: LifecycleState::Pending,
            because: format!("pending: hire date {hire} is more than {} days away", cfg.prehire_days),
            next_transition: Some(next),
            left_on: None,
        };
    }
    let in_leave_dates = a.leave_start.is_some_and(|s| s <= today) && a.leave_end.is_none_or(|e| today <= e);
    if in_leave_dates || status_in(&a.status, &cfg.status.leave) {
        let because = if in_leave_dates {
            match a.leave_end {
                Some(end) => format!("on leave from {} to {end}", a.leave_start.unwrap_or(today)),
                None => format!("on leave since {}", a.leave_start.unwrap_or(today)),
            }
        } else {
            format!("on leave: status {:?}", a.status.as_deref().unwrap_or_default())
        };
        let leave_over = a.leave_end.filter(|_| in_leave_dates).map(|e| add_days(e, 1));
        return StateDecision {
            state: LifecycleState::Leave,
            because,
            next_transition: earliest(leave_over, first_day_gone),
            left_on: None,
        };
    }
    let upcoming_leave = a.leave_start.filter(|s| *s > today);
    StateDecision {
        state: LifecycleState::Active,
        because: format!("active: hired {hire}"),
        next_transition: earliest(upcoming_leave, first_day_gone),
        left_on: None,
    }
}

/// The person's state: the affiliation granting the most wins; the next transition is the earliest
/// of all.
pub fn person_state(
    affiliations: &[Affiliation],
    today: NaiveDate,
    cfg: &LifecycleConfig,
    left_on: Option<NaiveDate>,
) -> StateDecision {
    let decisions: Vec<StateDecision> =
        affiliations.iter().map(|a| affiliation_state(a, today, cfg, left_on)).collect();
    let next = decisions.iter().filter_map(|d| d.next_transition).min();
    match decisions.into_iter().max_by_key(|d| d.state.precedence()) {
        Some(mut best) => {
            best.next_transition = next;
            best
        }
        None => StateDecision {
            state: LifecycleState::Pending,
            because: "no affiliation".to_string(),
            next_transition: None,
            left_on: None,
        },
    }
}

/// Whether an affiliation in this state still holds (it has not ended).
fn holds(state: LifecycleState) -> bool {
    matches!(state, LifecycleState::Pending | LifecycleState::Prehire | LifecycleState::Active | LifecycleState::Leave)
}

/// The kinds of the affiliations whose own state grants access on `today` (active, or on leave
/// with `on_leave = "keep"`), each once, in the order given: what `affiliations` holds in
/// expressions.
pub fn current_kinds(
    affiliations: &[Affiliation],
    today: NaiveDate,
    cfg: &LifecycleConfig,
    left_on: Option<NaiveDate>,
) -> Vec<String> {
    // Room for one: most persons have one kind, and an empty vector's first push makes room for
    // four (a million persons' kinds held three in four slots empty).
    let mut kinds: Vec<String> = Vec::with_capacity(usize::from(!affiliations.is_empty()));
    for a in affiliations {
        let state = affiliation_state(a, today, cfg, left_on).state;
        let grants = state == LifecycleState::Active
            || (state == LifecycleState::Leave && cfg.on_leave == crate::config::LeavePolicy::Keep);
        if grants && !kinds.contains(&a.kind) {
            kinds.push(a.kind.clone());
        }
    }
    kinds
}

/// The person's last day of employment: the latest `last_day` of the affiliations that have not
/// ended, `None` while one of them is open-ended; once all have ended, the latest of all.
pub fn employment_ends(
    affiliations: &[Affiliation],
    today: NaiveDate,
    cfg: &LifecycleConfig,
    left_on: Option<NaiveDate>,
) -> Option<NaiveDate> {
    let open: Vec<&Affiliation> =
        affiliations.iter().filter(|a| holds(affiliation_state(a, today, cfg, left_on).state)).collect();
    if open.is_empty() {
        return affiliations.iter().filter_map(|a| a.last_day).max();
    }
    if open.iter().any(|a| a.last_day.is_none()) {
        return None;
    }
    open.iter().filter_map(|a| a.last_day).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn employee(hire: &str, last: Option<&str>) -> Affiliation {
        Affiliation {
            kind: "employee".into(),
            source: "hr".into(),
            hire_date: Some(d(hire)),
            last_day: last.map(d),
            leave_start: None,
            leave_end: None,
            status: None,
            missing_since: None,
        }
    }

    #[test]
    fn states_along_the_calendar() {
        let cfg = LifecycleConfig::default();
        let a = employee("2026-03-10", Some("2026-06-30"));
        let at = |day: &str| affiliation_state(&a, d(day), &cfg, None);
        assert_eq!(at("2026-03-02").state, LifecycleState::Pending);
        assert_eq!(at("2026-03-02").next_transition, Some(d("2026-03-03")));
        assert_eq!(at("2026-03-03").state, LifecycleState::Prehire);
        assert_eq!(at("2026-03-10").state, LifecycleState::Active);
        assert_eq!(at("2026-06-30").state, LifecycleState::Active);
        assert_eq!(at("2026-06-30").next_transition, Some(d("2026-07-01")));
        assert_eq!(at("2026-07-01").state, LifecycleState::Leaver);
        assert_eq!(at("2026-09-28").state, LifecycleState::Leaver);
        assert_eq!(at("2026-09-29").state, LifecycleState::Purged);
    }

    #[test]
    fn first_day_gone_meaning_makes_a_leaver_on_the_day() {
        let cfg = LifecycleConfig { last_day: LastDayMeaning::FirstDayGone, ..LifecycleConfig::default() };
        let a = employee("2020-01-01", Some("2026-06-30"));
        assert_eq!(affiliation_state(&a, d("2026-06-30"), &cfg, None).state, LifecycleState::Leaver);
    }

    #[test]
    fn zero_prehire_days_means_no_account_before_day_one() {
        let cfg = LifecycleConfig { prehire_days: 0, ..LifecycleConfig::default() };
        let a = employee("2026-03-10", None);
        assert_eq!(affiliation_state(&a, d("2026-03-09"), &cfg, None).state, LifecycleState::Pending);
        assert_eq!(affiliation_state(&a, d("2026-03-09"), &cfg, None).next_transition, Some(d("2026-03-10")));
    }

    #[test]
    fn active_affiliation_wins_over_an_ended_one() {
        let cfg = LifecycleConfig::default();
        let contractor = Affiliation { kind: "contractor".into(), ..employee("2024-01-01", Some("2026-02-28")) };
        let employee = employee("2026-03-01", None);
        let s = person_state(&[contractor, employee], d("2026-03-05"), &cfg, None);
        assert_eq!(s.state, LifecycleState::Active);
    }
}
