//! The benchmark cases, one module each. A case sets up its own world (see `lab.rs`), measures,
//! and returns its figures; `roster-bench run` prints them as a table.

mod daily;
mod first_load;
mod plan;

use std::path::PathBuf;

use anyhow::Result;
use chrono::NaiveDate;

pub struct Case {
    pub name: &'static str,
    pub about: &'static str,
    pub run: fn(&Context) -> Result<Vec<Figure>>,
}

/// Every case, in the order `run` runs them.
pub const ALL: &[Case] =
    &[plan::SCALING, daily::UNCHANGED, daily::FEW_CHANGES, first_load::OPENLDAP, first_load::SAMBA];

pub struct Context {
    /// The `roster` binary under test.
    pub roster: PathBuf,
    /// Folder for the cases' folders.
    pub work: PathBuf,
    pub seed: u64,
    pub as_of: NaiveDate,
    /// Multiplies every population (0.01 for a quick try).
    pub scale: f64,
    /// Days `daily-changes` times from the same starting point.
    pub days: u32,
    /// Pairs of loads (roster's and `ldapadd`'s) each first-load case measures.
    pub pairs: u32,
}

impl Context {
    /// `n` persons at this run's scale.
    pub fn persons(&self, n: u64) -> u64 {
        ((n as f64 * self.scale).round() as u64).max(30)
    }

    pub fn spec(&self, persons: u64) -> crate::generate::Spec {
        crate::generate::Spec { persons, seed: self.seed, as_of: self.as_of, changes: 0 }
    }
}

/// One measured figure.
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    /// The target, when it sets one: the value must be at most this.
    pub at_most: Option<f64>,
}

impl Figure {
    pub fn new(name: impl Into<String>, value: f64, unit: &'static str) -> Figure {
        Figure { name: name.into(), value, unit, at_most: None }
    }

    pub fn at_most(mut self, limit: f64) -> Figure {
        self.at_most = Some(limit);
        self
    }

    pub fn verdict(&self) -> &'static str {
        match self.at_most {
            Some(limit) if self.value <= limit => "met",
            Some(_) => "MISSED",
            None => "",
        }
    }
}

/// A population size as people write it: 10k, 100k, 1M.
pub fn short(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// `values` from the smallest: the median of an even number is the upper middle one.
pub fn sorted(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values
}
