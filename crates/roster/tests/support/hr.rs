//! HR exports written in code: a story changes a worker's fields from one day to the next and
//! writes the whole export again, as an HR system would.

use std::collections::BTreeMap;

/// The export's header, in the order the columns are written. `fixtures/roster.toml` maps them.
pub const HEADER: [&str; 9] = [
    "Employee_ID",
    "First_Name",
    "Last_Name",
    "Hire_Date",
    "Termination_Date",
    "Status",
    "Department",
    "Job_Title",
    "Manager_ID",
];

/// One row of the export.
#[derive(Debug, Clone)]
pub struct Worker {
    pub key: String,
    pub first: String,
    pub last: String,
    pub hire: String,
    pub last_day: String,
    pub status: String,
    pub department: String,
    pub title: String,
    pub manager: String,
}

impl Worker {
    /// An active worker hired long ago, without title or manager.
    pub fn new(key: &str, first: &str, last: &str, department: &str) -> Worker {
        Worker {
            key: key.to_owned(),
            first: first.to_owned(),
            last: last.to_owned(),
            hire: "2020-01-06".to_owned(),
            last_day: String::new(),
            status: "Active".to_owned(),
            department: department.to_owned(),
            title: String::new(),
            manager: String::new(),
        }
    }

    pub fn hired(mut self, date: &str) -> Worker {
        self.hire = date.to_owned();
        self
    }

    pub fn title(mut self, title: &str) -> Worker {
        self.title = title.to_owned();
        self
    }

    pub fn manager(mut self, key: &str) -> Worker {
        self.manager = key.to_owned();
        self
    }

    fn fields(&self) -> [&str; 9] {
        [
            &self.key,
            &self.first,
            &self.last,
            &self.hire,
            &self.last_day,
            &self.status,
            &self.department,
            &self.title,
            &self.manager,
        ]
    }
}

/// A whole export, in key order.
#[derive(Debug, Clone, Default)]
pub struct Hr {
    workers: BTreeMap<String, Worker>,
}

impl Hr {
    pub fn new(workers: impl IntoIterator<Item = Worker>) -> Hr {
        let mut hr = Hr::default();
        for worker in workers {
            hr.add(worker);
        }
        hr
    }

    pub fn add(&mut self, worker: Worker) {
        let key = worker.key.clone();
        assert!(self.workers.insert(key.clone(), worker).is_none(), "worker {key} is in the export twice");
    }

    /// The worker with this key, to change for the next day.
    pub fn worker(&mut self, key: &str) -> &mut Worker {
        self.workers.get_mut(key).unwrap_or_else(|| panic!("no worker {key} in the export"))
    }

    /// Takes the worker out of the export.
    pub fn remove(&mut self, key: &str) {
        assert!(self.workers.remove(key).is_some(), "no worker {key} in the export");
    }

    /// The export as CSV: a header line, then one line per worker, quoted where CSV needs it.
    pub fn to_csv(&self) -> String {
        let mut out = HEADER.join(",") + "\n";
        for worker in self.workers.values() {
            let fields: Vec<String> = worker.fields().iter().map(|f| csv_field(f)).collect();
            out += &fields.join(",");
            out.push('\n');
        }
        out
    }
}

/// A CSV field, quoted (with inner quotes doubled) when it holds a delimiter, a quote, a line break
/// or surrounding spaces.
fn csv_field(value: &str) -> String {
    let needs_quotes = value.contains([',', '"', '\n', '\r']) || value.trim() != value;
    if needs_quotes { format!("\"{}\"", value.replace('"', "\"\"")) } else { value.to_owned() }
}
