//! Planning from scratch: an empty store and an empty directory, the whole export to create.
//! Planning is `roster plan --format json` as a process, the plan written to a file: reading the
//! export, reading the directory, the store's snapshot, the planner, and writing the plan.

use anyhow::{Context as _, Result};
use serde::Deserialize;

use super::{Case, Context, Figure, short};
use crate::lab::Lab;

pub const SCALING: Case = Case {
    name: "plan",
    about: "roster plan of a first load at 10k, 100k and 1M records: wall time, peak memory, time per record",
    run: scaling,
};

const SIZES: [u64; 3] = [10_000, 100_000, 1_000_000];

fn scaling(cx: &Context) -> Result<Vec<Figure>> {
    let mut figures = Vec::new();
    let mut per_record = Vec::new();
    for size in SIZES {
        let persons = cx.persons(size);
        let lab = Lab::start(&cx.work, &cx.roster, cx.spec(persons))?;
        let run = lab.roster(&["plan", "--format", "json"], Some("plan.json"))?;
        let operations = planned_operations(&lab.dir().join("plan.json"))?;
        let label = short(persons);
        let mut wall = Figure::new(format!("plan {label}: wall"), run.seconds(), "s");
        let mut peak = Figure::new(format!("plan {label}: peak memory"), run.peak_mib(), "MiB");
        if persons == 1_000_000 {
            wall = wall.at_most(20.0);
            peak = peak.at_most(2048.0);
        }
        figures.push(wall);
        figures.push(peak);
        figures.push(Figure::new(format!("plan {label}: operations"), operations as f64, ""));
        let micros = run.seconds() * 1e6 / persons as f64;
        figures.push(Figure::new(format!("plan {label}: per record"), micros, "µs"));
        per_record.push((label, micros));
    }
    if let (Some((small, first)), Some((large, last))) = (per_record.first(), per_record.last()) {
        figures.push(Figure::new(format!("per-record time {large} / {small} (1.0 = linear)"), last / first, "x"));
    }
    Ok(figures)
}

/// The summary's operation count of a saved plan, read as the file streams past: everything else
/// is skipped unparsed, so reading a million persons' plan costs the bench no memory.
fn planned_operations(path: &std::path::Path) -> Result<u64> {
    #[derive(Deserialize)]
    struct Saved {
        summary: Summary,
    }
    #[derive(Deserialize)]
    struct Summary {
        operations: u64,
    }
    let file = std::fs::File::open(path).with_context(|| format!("reading the plan {}", path.display()))?;
    let saved: Saved = serde_json::from_reader(std::io::BufReader::new(file))
        .with_context(|| format!("{} is not a plan with a summary", path.display()))?;
    Ok(saved.summary.operations)
}
