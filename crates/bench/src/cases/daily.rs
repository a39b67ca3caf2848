//! Daily runs over a loaded directory: the first load (`roster run` into an empty directory, not
//! measured here), then the day's run with the same export, or with a few records changed (that
//! day timed `--days` times, each from a copy of the directory and store as the load left them).
//! Writes are counted by the directory itself: entries whose modifyTimestamp is at or after the
//! run's start.

use anyhow::{Result, ensure};

use super::{Case, Context, Figure, short, sorted};
use crate::lab::{Lab, generalized_time_now, operations_applied};
use crate::measure::Measured;

pub const UNCHANGED: Case = Case {
    name: "daily-unchanged",
    about: "roster run over 1M loaded persons with the same export: wall time, writes (must be 0)",
    run: unchanged,
};

pub const FEW_CHANGES: Case = Case {
    name: "daily-changes",
    about: "roster run over 100k loaded persons with 100 changed records, writes included (median of --days)",
    run: few_changes,
};

/// The time targets hold at the sizes it names, not at a scaled-down try.
fn target(figure: Figure, full_size: bool, limit: f64) -> Figure {
    if full_size { figure.at_most(limit) } else { figure }
}

fn loaded(cx: &Context, persons: u64) -> Result<Lab> {
    let lab = Lab::start(&cx.work, &cx.roster, cx.spec(persons))?;
    let first = lab.roster(&["run"], None)?;
    eprintln!("  first load of {}: {:.1} s", short(persons), first.seconds());
    Ok(lab)
}

/// Fails unless the run read the targets in part, as a daily run after a full read does (see
/// `full_read_after_hours`): a figure of a full read would be taken for the daily one.
fn read_in_part(run: &Measured) -> Result<()> {
    ensure!(run.stdout.contains("targets read in part"), "the daily run read the targets in full:\n{}", run.stdout);
    Ok(())
}

fn unchanged(cx: &Context) -> Result<Vec<Figure>> {
    let persons = cx.persons(1_000_000);
    let lab = loaded(cx, persons)?;
    // The periodic full read, for comparison: what every daily run cost before partial reads.
    let full = lab.roster(&["run", "--full-read"], None)?;
    let since = generalized_time_now();
    let run = lab.roster(&["run"], None)?;
    read_in_part(&run)?;
    let writes = lab.entries_written_since(&since)?;
    let label = short(persons);
    Ok(vec![
        Figure::new(format!("daily run, {label} unchanged, --full-read: wall"), full.seconds(), "s"),
        target(
            Figure::new(format!("daily run, {label} unchanged: wall"), run.seconds(), "s"),
            persons == 1_000_000,
            15.0,
        ),
        Figure::new(format!("daily run, {label} unchanged: peak memory"), run.peak_mib(), "MiB"),
        Figure::new(format!("daily run, {label} unchanged: operations"), operations_applied(&run)? as f64, "")
            .at_most(0.0),
        Figure::new(format!("daily run, {label} unchanged: entries written"), writes as f64, "").at_most(0.0),
    ])
}

fn few_changes(cx: &Context) -> Result<Vec<Figure>> {
    let persons = cx.persons(100_000);
    let mut lab = loaded(cx, persons)?;
    lab.spec.changes = 100;
    lab.export(&lab.spec)?;
    // Every day starts from the same directory and store: the days differ only in the machine's
    // pace, and their median is the figure.
    let kept = lab.keep()?;
    let mut runs = Vec::new();
    let mut day_one = None;
    for day in 1..=cx.days {
        lab.restore(&kept)?;
        let since = generalized_time_now();
        let run = lab.roster(&["run"], None)?;
        read_in_part(&run)?;
        let (operations, writes) = (operations_applied(&run)?, lab.entries_written_since(&since)?);
        ensure!(operations > 0, "the run with 100 changed records applied nothing:\n{}", run.stdout);
        eprintln!("  day {day}: {:.2} s, {operations} operations, {writes} entries written", run.seconds());
        let (first_operations, first_writes) = *day_one.get_or_insert((operations, writes));
        ensure!(
            (operations, writes) == (first_operations, first_writes),
            "day {day} applied {operations} operations and wrote {writes} entries, day 1 {first_operations} and \
             {first_writes}: the days did not start from the same state"
        );
        runs.push(run);
    }
    let (operations, writes) = day_one.unwrap_or_default();
    let walls = sorted(runs.iter().map(Measured::seconds));
    let peaks = sorted(runs.iter().map(Measured::peak_mib));
    let label = short(persons);
    let n = runs.len();
    Ok(vec![
        target(
            Figure::new(format!("daily run, 100 changed of {label}: wall, median of {n} days"), walls[n / 2], "s"),
            persons == 100_000,
            2.0,
        ),
        Figure::new(format!("daily run, 100 changed of {label}: fastest day"), walls[0], "s"),
        Figure::new(format!("daily run, 100 changed of {label}: slowest day"), walls[n - 1], "s"),
        Figure::new(format!("daily run, 100 changed of {label}: peak memory, median"), peaks[n / 2], "MiB"),
        Figure::new(format!("daily run, 100 changed of {label}: operations"), operations as f64, ""),
        Figure::new(format!("daily run, 100 changed of {label}: entries written"), writes as f64, ""),
    ])
}
